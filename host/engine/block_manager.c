#include "block_manager.h"

#include <stdlib.h>
#include <string.h>

#define NO_BLOCK (-1)

struct llmrt_block_manager {
    int32_t  n_blocks, block_size;
    bool     prefix_caching;
    int32_t *ref;       /* [n_blocks] references from sequence tables */
    bool    *hashed;    /* [n_blocks] registered in the index */
    uint64_t *hash;     /* [n_blocks] chain hash when registered */
    int32_t *parent;    /* [n_blocks] previous block of the chain when registered (NO_BLOCK first) */
    uint32_t *gen;       /* [n_blocks] bumped at each registration of the block              */
    uint64_t *ns;        /* [n_blocks] KV namespace the block was computed in (llmrt_seq_blocks.ns) */
    uint32_t *parent_gen;/* [n_blocks] gen of the parent when this block was registered: a
                            parent evicted and re-registered with other content no longer
                            matches, so a hit never depends on the hash alone               */
    int32_t *tokens;    /* [n_blocks, block_size] token ids when registered (hit verification) */

    int32_t *free_stack; /* unregistered blocks with ref 0 */
    int32_t  n_free;

    /* LRU of cached blocks (registered, ref 0): head is evicted first */
    int32_t *lru_prev, *lru_next;
    int32_t  lru_head, lru_tail, n_cached;

    /* hash index: open addressing, linear probing, backward-shift deletion */
    int32_t *slots;     /* block id or NO_BLOCK */
    uint32_t slot_mask;

    int64_t prefix_queries, prefix_hits, evictions;
};

/* --------------------------------------------------------------------------------------------- */
/* hashing                                                                                       */
/* --------------------------------------------------------------------------------------------- */

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static uint64_t chain_hash(uint64_t parent, const int32_t *tokens, int32_t n) {
    uint64_t h = mix64(parent ^ 0x9e3779b97f4a7c15ull);
    for (int32_t i = 0; i < n; i++) h = mix64(h ^ (uint32_t)tokens[i]) + (uint64_t)i;
    return h;
}

static uint32_t slot_of(const llmrt_block_manager *bm, uint64_t h) {
    return (uint32_t)h & bm->slot_mask;
}

static uint32_t gen_of(const llmrt_block_manager *bm, int32_t b) {
    return b == NO_BLOCK ? 0 : bm->gen[b];
}

static int32_t index_find(const llmrt_block_manager *bm, uint64_t h, int32_t parent,
                          uint64_t ns, const int32_t *tokens) {
    for (uint32_t s = slot_of(bm, h);; s = (s + 1) & bm->slot_mask) {
        int32_t b = bm->slots[s];
        if (b == NO_BLOCK) return NO_BLOCK;
        if (bm->hash[b] == h && bm->parent[b] == parent && bm->ns[b] == ns &&
            bm->parent_gen[b] == gen_of(bm, parent) &&
            memcmp(bm->tokens + (int64_t)b * bm->block_size, tokens,
                   (size_t)bm->block_size * sizeof(int32_t)) == 0)
            return b;
    }
}

static void index_insert(llmrt_block_manager *bm, int32_t b) {
    uint32_t s = slot_of(bm, bm->hash[b]);
    while (bm->slots[s] != NO_BLOCK) s = (s + 1) & bm->slot_mask;
    bm->slots[s] = b;
}

static void index_remove(llmrt_block_manager *bm, int32_t b) {
    uint32_t s = slot_of(bm, bm->hash[b]);
    while (bm->slots[s] != b) s = (s + 1) & bm->slot_mask;
    /* backward-shift: move later entries of the probe run into the hole */
    uint32_t hole = s;
    for (uint32_t j = (hole + 1) & bm->slot_mask; bm->slots[j] != NO_BLOCK; j = (j + 1) & bm->slot_mask) {
        uint32_t home = slot_of(bm, bm->hash[bm->slots[j]]);
        /* can the entry at j move to hole? only if its home is not in (hole, j] cyclically */
        bool in_range = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!in_range) {
            bm->slots[hole] = bm->slots[j];
            hole            = j;
        }
    }
    bm->slots[hole] = NO_BLOCK;
}

/* --------------------------------------------------------------------------------------------- */
/* LRU of cached blocks                                                                          */
/* --------------------------------------------------------------------------------------------- */

static void lru_push_tail(llmrt_block_manager *bm, int32_t b) {
    bm->lru_prev[b] = bm->lru_tail;
    bm->lru_next[b] = NO_BLOCK;
    if (bm->lru_tail != NO_BLOCK) bm->lru_next[bm->lru_tail] = b;
    else bm->lru_head = b;
    bm->lru_tail = b;
    bm->n_cached++;
}

static void lru_unlink(llmrt_block_manager *bm, int32_t b) {
    if (bm->lru_prev[b] != NO_BLOCK) bm->lru_next[bm->lru_prev[b]] = bm->lru_next[b];
    else bm->lru_head = bm->lru_next[b];
    if (bm->lru_next[b] != NO_BLOCK) bm->lru_prev[bm->lru_next[b]] = bm->lru_prev[b];
    else bm->lru_tail = bm->lru_prev[b];
    bm->lru_prev[b] = bm->lru_next[b] = NO_BLOCK;
    bm->n_cached--;
}

/* --------------------------------------------------------------------------------------------- */
/* lifecycle                                                                                     */
/* --------------------------------------------------------------------------------------------- */

void llmrt_bm_destroy(llmrt_block_manager *bm) {
    if (!bm) return;
    free(bm->ref);
    free(bm->hashed);
    free(bm->hash);
    free(bm->parent);
    free(bm->gen);
    free(bm->parent_gen);
    free(bm->ns);
    free(bm->tokens);
    free(bm->free_stack);
    free(bm->lru_prev);
    free(bm->lru_next);
    free(bm->slots);
    free(bm);
}

llmrt_block_manager *llmrt_bm_create(int32_t n_blocks, int32_t block_size, bool prefix_caching) {
    if (n_blocks < 1 || block_size < 1) return NULL;
    llmrt_block_manager *bm = calloc(1, sizeof *bm);
    if (!bm) return NULL;
    bm->n_blocks       = n_blocks;
    bm->block_size     = block_size;
    bm->prefix_caching = prefix_caching;
    uint32_t n_slots   = 2;
    while (n_slots < 2u * (uint32_t)n_blocks) n_slots <<= 1; /* load factor <= 1/2 */
    bm->slot_mask  = n_slots - 1;
    bm->ref        = calloc((size_t)n_blocks, sizeof *bm->ref);
    bm->hashed     = calloc((size_t)n_blocks, sizeof *bm->hashed);
    bm->hash       = calloc((size_t)n_blocks, sizeof *bm->hash);
    bm->parent     = calloc((size_t)n_blocks, sizeof *bm->parent);
    bm->gen        = calloc((size_t)n_blocks, sizeof *bm->gen);
    bm->parent_gen = calloc((size_t)n_blocks, sizeof *bm->parent_gen);
    bm->ns         = calloc((size_t)n_blocks, sizeof *bm->ns);
    bm->tokens     = prefix_caching ? calloc((size_t)n_blocks * block_size, sizeof *bm->tokens) : NULL;
    bm->free_stack = malloc((size_t)n_blocks * sizeof *bm->free_stack);
    bm->lru_prev   = malloc((size_t)n_blocks * sizeof *bm->lru_prev);
    bm->lru_next   = malloc((size_t)n_blocks * sizeof *bm->lru_next);
    bm->slots      = malloc((size_t)n_slots * sizeof *bm->slots);
    if (!bm->ref || !bm->hashed || !bm->hash || !bm->parent || !bm->gen || !bm->parent_gen || !bm->ns ||
        (prefix_caching && !bm->tokens) ||
        !bm->free_stack || !bm->lru_prev || !bm->lru_next || !bm->slots) {
        llmrt_bm_destroy(bm);
        return NULL;
    }
    /* hand out low ids first: the stack pops from the end */
    for (int32_t i = 0; i < n_blocks; i++) {
        bm->free_stack[i] = n_blocks - 1 - i;
        bm->lru_prev[i] = bm->lru_next[i] = NO_BLOCK;
    }
    bm->n_free   = n_blocks;
    bm->lru_head = bm->lru_tail = NO_BLOCK;
    for (uint32_t s = 0; s < n_slots; s++) bm->slots[s] = NO_BLOCK;
    return bm;
}

int32_t llmrt_bm_block_size(const llmrt_block_manager *bm) {
    return bm->block_size;
}

int32_t llmrt_bm_available(const llmrt_block_manager *bm) {
    return bm->n_free + bm->n_cached;
}

/* --------------------------------------------------------------------------------------------- */
/* tables                                                                                        */
/* --------------------------------------------------------------------------------------------- */

static bool table_reserve(llmrt_seq_blocks *sb, int32_t n) {
    if (n <= sb->cap) return true;
    int32_t cap = sb->cap ? sb->cap : 8;
    while (cap < n) cap *= 2;
    int32_t *ids = realloc(sb->ids, (size_t)cap * sizeof *ids);
    if (!ids) return false;
    sb->ids = ids;
    sb->cap = cap;
    return true;
}

/* Takes a block for writing: the free stack first, else the least recently used cached block. */
static int32_t take_block(llmrt_block_manager *bm) {
    int32_t b;
    if (bm->n_free > 0) {
        b = bm->free_stack[--bm->n_free];
    } else {
        b = bm->lru_head;
        lru_unlink(bm, b);
        index_remove(bm, b);
        bm->hashed[b] = false;
        bm->evictions++;
    }
    bm->ref[b] = 1;
    return b;
}

int64_t llmrt_bm_match_prefix(llmrt_block_manager *bm, llmrt_seq_blocks *sb, const int32_t *tokens,
                              int64_t n_tokens) {
    if (!bm->prefix_caching || sb->n != 0 || n_tokens < 1) return 0;
    /* at least one token must remain to compute: only blocks fully inside [0, n_tokens - 1) */
    int64_t  max_blocks = (n_tokens - 1) / bm->block_size;
    uint64_t h          = mix64(sb->ns); /* each namespace (adapter) its own chains */
    int32_t  parent     = NO_BLOCK, matched = 0;
    bm->prefix_queries += n_tokens;
    if (!table_reserve(sb, (int32_t)(max_blocks > 0 ? max_blocks : 1))) return 0;
    for (int64_t i = 0; i < max_blocks; i++) {
        const int32_t *blk_tokens = tokens + i * bm->block_size;
        uint64_t       hi         = chain_hash(h, blk_tokens, bm->block_size);
        int32_t        b          = index_find(bm, hi, parent, sb->ns, blk_tokens);
        if (b == NO_BLOCK) break;
        if (bm->ref[b]++ == 0) lru_unlink(bm, b);
        sb->ids[matched++] = b;
        h                  = hi;
        parent             = b;
    }
    sb->n         = matched;
    sb->n_hashed  = matched;
    sb->last_hash = h;
    int64_t hit   = (int64_t)matched * bm->block_size;
    bm->prefix_hits += hit;
    return hit;
}

int32_t llmrt_bm_blocks_needed(const llmrt_block_manager *bm, const llmrt_seq_blocks *sb,
                               int64_t n_total) {
    int64_t need = (n_total + bm->block_size - 1) / bm->block_size - sb->n;
    return need > 0 ? (int32_t)need : 0;
}

bool llmrt_bm_ensure(llmrt_block_manager *bm, llmrt_seq_blocks *sb, int64_t n_total) {
    int32_t need = llmrt_bm_blocks_needed(bm, sb, n_total);
    if (need == 0) return true;
    if (need > llmrt_bm_available(bm) || !table_reserve(sb, sb->n + need)) return false;
    for (int32_t i = 0; i < need; i++) sb->ids[sb->n++] = take_block(bm);
    return true;
}

void llmrt_bm_commit(llmrt_block_manager *bm, llmrt_seq_blocks *sb, const int32_t *tokens,
                     int64_t n_computed) {
    if (!bm->prefix_caching) return;
    int64_t full = n_computed / bm->block_size;
    if (full > sb->n) full = sb->n;
    if (sb->n_hashed == 0) sb->last_hash = mix64(sb->ns); /* the chain's root */
    for (int64_t i = sb->n_hashed; i < full; i++) {
        const int32_t *blk_tokens = tokens + i * bm->block_size;
        int32_t        b          = sb->ids[i];
        int32_t        parent     = i > 0 ? sb->ids[i - 1] : NO_BLOCK;
        /* a dropped block (sliding window) or one whose parent was dropped: the chain ends */
        if (b == NO_BLOCK || (i > 0 && parent == NO_BLOCK)) break;
        uint64_t       h          = chain_hash(sb->last_hash, blk_tokens, bm->block_size);
        /* If an equal block is already registered (another sequence computed the same prefix at
         * the same time), ours stays private; the chain continues from the registered one only
         * for lookups, so later blocks of ours register under our own parent id. */
        if (!bm->hashed[b] && index_find(bm, h, parent, sb->ns, blk_tokens) == NO_BLOCK) {
            bm->hash[b]       = h;
            bm->ns[b]         = sb->ns;
            bm->parent[b]     = parent;
            bm->parent_gen[b] = gen_of(bm, parent);
            bm->gen[b]++;
            memcpy(bm->tokens + (int64_t)b * bm->block_size, blk_tokens,
                   (size_t)bm->block_size * sizeof(int32_t));
            bm->hashed[b] = true;
            index_insert(bm, b);
        }
        sb->last_hash = h;
        sb->n_hashed  = (int32_t)i + 1;
    }
}

bool llmrt_bm_fork(llmrt_block_manager *bm, const llmrt_seq_blocks *src, llmrt_seq_blocks *dst,
                   int64_t n_tokens, bool copy_partial, int32_t *partial_src,
                   int32_t *partial_dst) {
    *partial_src = *partial_dst = NO_BLOCK;
    if (dst->n != 0 || n_tokens < 0) return false;
    int64_t full64 = n_tokens / bm->block_size;
    int32_t full   = (int32_t)(full64 < src->n ? full64 : src->n);
    if (src->n_hashed > full) return false; /* forks at the computed end only */
    bool partial   = copy_partial && n_tokens % bm->block_size != 0 && full < src->n;
    int32_t n      = full + (partial ? 1 : 0);
    if (partial && llmrt_bm_available(bm) < 1) return false;
    if (!table_reserve(dst, n > 0 ? n : 1)) return false;
    for (int32_t i = 0; i < full; i++) {
        int32_t b = src->ids[i];
        if (b != NO_BLOCK) bm->ref[b]++; /* src holds it: never cached or free here */
        dst->ids[i] = b;                 /* a block src dropped is dropped for dst too */
    }
    if (partial) {
        *partial_src    = src->ids[full];
        *partial_dst    = take_block(bm);
        dst->ids[full]  = *partial_dst;
    }
    dst->n         = n;
    dst->n_dropped = src->n_dropped < n ? src->n_dropped : n;
    dst->n_hashed  = src->n_hashed;
    dst->last_hash = src->last_hash;
    dst->ns        = src->ns;
    return true;
}

static void unref_block(llmrt_block_manager *bm, int32_t b) {
    if (--bm->ref[b] > 0) return;
    if (bm->hashed[b]) lru_push_tail(bm, b);
    else bm->free_stack[bm->n_free++] = b;
}

int32_t llmrt_bm_drop_before(llmrt_block_manager *bm, llmrt_seq_blocks *sb, int64_t keep_from) {
    int64_t upto = keep_from > 0 ? keep_from / bm->block_size : 0;
    if (upto > sb->n) upto = sb->n;
    int32_t dropped = 0;
    for (int32_t i = sb->n_dropped; i < upto; i++) {
        if (sb->ids[i] == NO_BLOCK) continue; /* dropped by the sequence it was forked from */
        unref_block(bm, sb->ids[i]);
        sb->ids[i] = NO_BLOCK;
        dropped++;
    }
    if (upto > sb->n_dropped) sb->n_dropped = (int32_t)upto;
    return dropped;
}

void llmrt_bm_release(llmrt_block_manager *bm, llmrt_seq_blocks *sb) {
    /* release in reverse so a sequence's tail blocks are evicted before its prefix */
    for (int32_t i = sb->n - 1; i >= 0; i--)
        if (sb->ids[i] != NO_BLOCK) unref_block(bm, sb->ids[i]);
    free(sb->ids);
    memset(sb, 0, sizeof *sb);
}

llmrt_bm_stats llmrt_bm_get_stats(const llmrt_block_manager *bm) {
    return (llmrt_bm_stats){
        .n_blocks       = bm->n_blocks,
        .n_used         = bm->n_blocks - bm->n_free - bm->n_cached,
        .n_cached       = bm->n_cached,
        .n_free         = bm->n_free,
        .prefix_queries = bm->prefix_queries,
        .prefix_hits    = bm->prefix_hits,
        .evictions      = bm->evictions,
    };
}

const char *llmrt_bm_check(const llmrt_block_manager *bm, const llmrt_seq_blocks *const *live,
                           int32_t n_live) {
    int32_t *count = calloc((size_t)bm->n_blocks, sizeof *count);
    uint8_t *where = calloc((size_t)bm->n_blocks, 1); /* 1 free, 2 cached */
    if (!count || !where) {
        free(count);
        free(where);
        return "out of memory in check";
    }
    const char *problem = NULL;
    for (int32_t s = 0; s < n_live; s++)
        for (int32_t i = 0; i < live[s]->n; i++)
            if (live[s]->ids[i] != NO_BLOCK) count[live[s]->ids[i]]++;
    for (int32_t i = 0; i < bm->n_free && !problem; i++) {
        int32_t b = bm->free_stack[i];
        if (where[b]) problem = "a block is on the free list twice";
        where[b] = 1;
    }
    int32_t n_lru = 0;
    for (int32_t b = bm->lru_head; b != NO_BLOCK && !problem; b = bm->lru_next[b]) {
        if (where[b]) problem = "a block is both free and cached";
        where[b] = 2;
        if (++n_lru > bm->n_blocks) problem = "the LRU list has a cycle";
    }
    if (!problem && n_lru != bm->n_cached) problem = "the LRU length differs from n_cached";
    int32_t n_indexed = 0;
    for (uint32_t s = 0; s <= bm->slot_mask && !problem; s++) {
        int32_t b = bm->slots[s];
        if (b == NO_BLOCK) continue;
        n_indexed++;
        if (!bm->hashed[b]) problem = "an unregistered block is in the hash index";
    }
    for (int32_t b = 0; b < bm->n_blocks && !problem; b++) {
        if (count[b] != bm->ref[b]) problem = "a reference count differs from the live tables";
        else if (bm->ref[b] > 0 && where[b]) problem = "a referenced block is free or cached";
        else if (bm->ref[b] == 0 && !where[b]) problem = "an unreferenced block leaked";
        else if (where[b] == 1 && bm->hashed[b]) problem = "a registered block is on the free list";
        else if (where[b] == 2 && !bm->hashed[b]) problem = "an unregistered block is cached";
        if (bm->hashed[b]) n_indexed--;
    }
    if (!problem && n_indexed != 0) problem = "the hash index and the registered blocks disagree";
    free(count);
    free(where);
    return problem;
}
