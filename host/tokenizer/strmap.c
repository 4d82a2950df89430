#include "strmap.h"

#include <stdlib.h>
#include <string.h>

#include "tk_util.h"

static uint64_t capacity_for(uint64_t expected) {
    uint64_t cap = 16;
    while (cap < expected * 2 && cap < (1ull << 40)) cap *= 2;
    return cap;
}

bool tk_strmap_init(tk_strmap *m, uint64_t expected) {
    uint64_t cap = capacity_for(expected);
    m->slots = calloc(cap, sizeof *m->slots);
    m->mask  = cap - 1;
    m->count = 0;
    return m->slots != NULL;
}

void tk_strmap_free(tk_strmap *m) {
    free(m->slots);
    memset(m, 0, sizeof *m);
}

static tk_strmap_slot *find_slot(tk_strmap_slot *slots, uint64_t mask, const char *key,
                                 size_t len, uint64_t h) {
    uint32_t h32 = (uint32_t)(h >> 32);
    uint64_t i   = h & mask;
    for (;;) {
        tk_strmap_slot *s = &slots[i];
        if (!s->key) return s;
        if (s->hash32 == h32 && s->len == len && memcmp(s->key, key, len) == 0) return s;
        i = (i + 1) & mask;
    }
}

static bool grow(tk_strmap *m) {
    uint64_t        cap   = (m->mask + 1) * 2;
    tk_strmap_slot *slots = calloc(cap, sizeof *slots);
    if (!slots) return false;
    for (uint64_t i = 0; i <= m->mask; i++) {
        tk_strmap_slot *s = &m->slots[i];
        if (!s->key) continue;
        uint64_t h = tk_hash_bytes(s->key, s->len);
        *find_slot(slots, cap - 1, s->key, s->len, h) = *s;
    }
    free(m->slots);
    m->slots = slots;
    m->mask  = cap - 1;
    return true;
}

bool tk_strmap_put(tk_strmap *m, const char *key, size_t len, int32_t value, int32_t *existing) {
    if (!m->slots && !tk_strmap_init(m, 16)) return false;
    if ((m->count + 1) * 2 > m->mask + 1 && !grow(m)) return false;
    uint64_t        h = tk_hash_bytes(key, len);
    tk_strmap_slot *s = find_slot(m->slots, m->mask, key, len, h);
    if (s->key) {
        if (existing) *existing = s->value;
        return true;
    }
    s->key    = key ? key : "";
    s->len    = (uint32_t)len;
    s->hash32 = (uint32_t)(h >> 32);
    s->value  = value;
    m->count++;
    if (existing) *existing = -1;
    return true;
}

bool tk_strmap_set(tk_strmap *m, const char *key, size_t len, int32_t value) {
    int32_t old;
    if (!tk_strmap_put(m, key, len, value, &old)) return false;
    if (old >= 0) {
        uint64_t h = tk_hash_bytes(key, len);
        find_slot(m->slots, m->mask, key, len, h)->value = value;
    }
    return true;
}

int32_t tk_strmap_get(const tk_strmap *m, const char *key, size_t len) {
    if (!m->slots || len > UINT32_MAX) return -1;
    uint64_t        h = tk_hash_bytes(key, len);
    tk_strmap_slot *s = find_slot(m->slots, m->mask, key, len, h);
    return s->key ? s->value : -1;
}

bool tk_u64map_init(tk_u64map *m, uint64_t expected) {
    uint64_t cap = capacity_for(expected);
    m->slots = malloc(cap * sizeof *m->slots);
    if (!m->slots) return false;
    /* all-ones bytes == UINT64_MAX keys == empty */
    memset(m->slots, 0xff, cap * sizeof *m->slots);
    m->mask  = cap - 1;
    m->count = 0;
    return true;
}

void tk_u64map_free(tk_u64map *m) {
    free(m->slots);
    memset(m, 0, sizeof *m);
}

static tk_u64map_slot *u64_slot(tk_u64map_slot *slots, uint64_t mask, uint64_t key) {
    uint64_t h = key * 0x9e3779b97f4a7c15ull;
    uint64_t i = (h ^ (h >> 29)) & mask;
    while (slots[i].key != key && slots[i].key != UINT64_MAX) i = (i + 1) & mask;
    return &slots[i];
}

bool tk_u64map_put(tk_u64map *m, uint64_t key, uint64_t value) {
    if (!m->slots && !tk_u64map_init(m, 16)) return false;
    if ((m->count + 1) * 2 > m->mask + 1) {
        uint64_t        cap   = (m->mask + 1) * 2;
        tk_u64map_slot *slots = malloc(cap * sizeof *slots);
        if (!slots) return false;
        memset(slots, 0xff, cap * sizeof *slots);
        for (uint64_t i = 0; i <= m->mask; i++)
            if (m->slots[i].key != UINT64_MAX) *u64_slot(slots, cap - 1, m->slots[i].key) = m->slots[i];
        free(m->slots);
        m->slots = slots;
        m->mask  = cap - 1;
    }
    tk_u64map_slot *s = u64_slot(m->slots, m->mask, key);
    if (s->key == UINT64_MAX) m->count++;
    s->key   = key;
    s->value = value;
    return true;
}
