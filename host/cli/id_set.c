#include "id_set.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash_str(const char *s) { /* FNV-1a, 64 bit */
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The slot holding id, or the empty slot where it would go (cap > 0 and never full). */
static size_t find_slot(char *const *slots, size_t cap, const char *id) {
    size_t i = (size_t)hash_str(id) & (cap - 1);
    while (slots[i] && strcmp(slots[i], id) != 0) i = (i + 1) & (cap - 1);
    return i;
}

bool id_set_has(const id_set *s, const char *id) {
    return s->cap && s->slots[find_slot(s->slots, s->cap, id)] != NULL;
}

static bool grow(id_set *s) {
    size_t cap = s->cap ? s->cap * 2 : 1024;
    if (cap < s->cap || cap > SIZE_MAX / sizeof(char *)) return false;
    char **slots = calloc(cap, sizeof *slots);
    if (!slots) return false;
    for (size_t k = 0; k < s->cap; k++)
        if (s->slots[k]) slots[find_slot(slots, cap, s->slots[k])] = s->slots[k];
    free(s->slots);
    s->slots = slots;
    s->cap   = cap;
    return true;
}

bool id_set_add(id_set *s, const char *id) {
    if (id_set_has(s, id)) return true;
    /* load factor at most 1/2: probes stay short and an empty slot always exists */
    if ((s->n + 1) * 2 > s->cap && !grow(s)) return false;
    char *copy = strdup(id);
    if (!copy) return false;
    s->slots[find_slot(s->slots, s->cap, copy)] = copy;
    s->n++;
    return true;
}

void id_set_free(id_set *s) {
    for (size_t k = 0; k < s->cap; k++) free(s->slots[k]);
    free(s->slots);
    s->slots = NULL;
    s->n = s->cap = 0;
}
