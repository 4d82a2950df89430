#include "tk_util.h"

#include <stdint.h>

char *tk_arena_strdup(tk_arena *a, const char *s, size_t len) {
    if (len > SIZE_MAX / 2) return NULL;
    size_t need = len + 1;
    if (!a->head || a->head->cap - a->head->used < need) {
        /* big blocks amortise malloc over the ~100k pieces of a vocabulary */
        size_t cap = need > (1u << 20) ? need : (1u << 20);
        tk_arena_block *b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->next = a->head;
        b->used = 0;
        b->cap  = cap;
        a->head = b;
    }
    char *dst = a->head->data + a->head->used;
    if (len) memcpy(dst, s, len);
    dst[len] = 0;
    a->head->used += need;
    return dst;
}

void tk_arena_free(tk_arena *a) {
    tk_arena_block *b = a->head;
    while (b) {
        tk_arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
}

bool tk_buf_reserve(tk_buf *b, size_t extra) {
    if (b->cap - b->n >= extra) return true;
    if (extra > SIZE_MAX / 4 - b->n) return false;
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->n < extra) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return false;
    b->p   = p;
    b->cap = cap;
    return true;
}

bool tk_ids_reserve(tk_ids *x, int64_t extra) {
    if (extra < 0 || extra > INT64_MAX / 8 - x->n) return false;
    if (x->cap - x->n >= extra) return true;
    int64_t cap = x->cap ? x->cap : 16;
    while (cap - x->n < extra) cap *= 2;
    if ((uint64_t)cap > SIZE_MAX / sizeof(int32_t)) return false;
    int32_t *v = realloc(x->v, (size_t)cap * sizeof *v);
    if (!v) return false;
    x->v   = v;
    x->cap = cap;
    return true;
}
