/* Small helpers shared by the tokenizer files: a string arena, growable byte and id vectors, and
 * the string hash. Vectors report allocation failure by returning false; callers turn that into
 * LLMRT_ERR_OUT_OF_MEMORY. */
#ifndef LLMRT_TOKENIZER_TK_UTIL_H
#define LLMRT_TOKENIZER_TK_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena: many small immutable strings (vocabulary pieces) in few allocations ---------- */

typedef struct tk_arena_block {
    struct tk_arena_block *next;
    size_t                 used, cap;
    char                   data[];
} tk_arena_block;

typedef struct tk_arena {
    tk_arena_block *head;
} tk_arena;

/* Copies s[0..len) plus a NUL; NULL on allocation failure. */
char *tk_arena_strdup(tk_arena *a, const char *s, size_t len);
void  tk_arena_free(tk_arena *a);

/* ---- growable byte buffer -------------------------------------------------------------- */

typedef struct tk_buf {
    char  *p;
    size_t n, cap;
} tk_buf;

bool tk_buf_reserve(tk_buf *b, size_t extra);

static inline bool tk_buf_append(tk_buf *b, const void *s, size_t len) {
    if (b->cap - b->n < len + 1 && !tk_buf_reserve(b, len + 1)) return false;
    if (len) memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = 0; /* always NUL-terminated for callers that hand the text out */
    return true;
}

static inline bool tk_buf_push(tk_buf *b, char c) {
    return tk_buf_append(b, &c, 1);
}

/* ---- growable int32 vector -------------------------------------------------------------- */

typedef struct tk_ids {
    int32_t *v;
    int64_t  n, cap;
} tk_ids;

bool tk_ids_reserve(tk_ids *x, int64_t extra);

static inline bool tk_ids_push(tk_ids *x, int32_t id) {
    if (x->n == x->cap && !tk_ids_reserve(x, 1)) return false;
    x->v[x->n++] = id;
    return true;
}

/* ---- hashing ------------------------------------------------------------------------------ */

/* A fast 64-bit string hash (8 bytes per step, multiply-xorshift mixing). Not for adversarial
 * settings beyond what open addressing with a good mix tolerates. */
static inline uint64_t tk_hash_mix(uint64_t h) {
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return h;
}

static inline uint64_t tk_hash_bytes(const void *data, size_t len) {
    const uint8_t *p = (const uint8_t *)data;
    uint64_t       h = 0x9e3779b97f4a7c15ull ^ (len * 0xff51afd7ed558ccdull);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
        h ^= h >> 29;
        p += 8;
        len -= 8;
    }
    uint64_t w = 0;
    if (len) memcpy(&w, p, len);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    return tk_hash_mix(h);
}

#endif
