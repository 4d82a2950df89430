/* Open-addressing hash maps (linear probing, power-of-two capacity, load <= 1/2) for the two hot
 * lookups of BPE: vocabulary string -> id and merge pair (id, id) -> (rank, new id). Keys of the
 * string map are not copied: they must outlive the map (they live in the tokenizer's arena). */
#ifndef LLMRT_TOKENIZER_STRMAP_H
#define LLMRT_TOKENIZER_STRMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tk_strmap_slot {
    const char *key; /* NULL = empty */
    uint32_t    len;
    uint32_t    hash32;
    int32_t     value;
} tk_strmap_slot;

typedef struct tk_strmap {
    tk_strmap_slot *slots;
    uint64_t        mask; /* capacity - 1 */
    uint64_t        count;
} tk_strmap;

/* Room for `expected` keys without growing. false on allocation failure. */
bool tk_strmap_init(tk_strmap *m, uint64_t expected);
void tk_strmap_free(tk_strmap *m);
/* Inserts or, if the key is present, reports it: returns false only on allocation failure;
 * *existing (if not NULL) gets the old value, or -1 when the key was new (then it is stored).
 * Keys longer than UINT32_MAX bytes are not supported (callers bound lengths). */
bool tk_strmap_put(tk_strmap *m, const char *key, size_t len, int32_t value, int32_t *existing);
/* Inserts or overwrites. false on allocation failure. */
bool tk_strmap_set(tk_strmap *m, const char *key, size_t len, int32_t value);
/* Value of key[0..len) or -1. */
int32_t tk_strmap_get(const tk_strmap *m, const char *key, size_t len);

typedef struct tk_u64map_slot {
    uint64_t key; /* UINT64_MAX = empty */
    uint64_t value;
} tk_u64map_slot;

typedef struct tk_u64map {
    tk_u64map_slot *slots;
    uint64_t        mask;
    uint64_t        count;
} tk_u64map;

bool tk_u64map_init(tk_u64map *m, uint64_t expected);
void tk_u64map_free(tk_u64map *m);
/* Inserts or overwrites (key must not be UINT64_MAX). false on allocation failure. */
bool tk_u64map_put(tk_u64map *m, uint64_t key, uint64_t value);

static inline bool tk_u64map_get(const tk_u64map *m, uint64_t key, uint64_t *value) {
    if (!m->slots) return false;
    uint64_t h = key * 0x9e3779b97f4a7c15ull;
    uint64_t i = (h ^ (h >> 29)) & m->mask;
    for (;;) {
        const tk_u64map_slot *s = &m->slots[i];
        if (s->key == key) {
            *value = s->value;
            return true;
        }
        if (s->key == UINT64_MAX) return false;
        i = (i + 1) & m->mask;
    }
}

#endif
