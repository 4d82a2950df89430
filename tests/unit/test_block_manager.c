/* The KV block manager (internal API): allocation, prefix sharing and its cap, commit of full
 * blocks only, release exactly once, LRU eviction of cached blocks, the parent-generation check,
 * duplicate commits, statistics, and a randomized stress that checks every invariant (and that a
 * prefix hit never hands out a block holding other tokens) after each of 10k operations. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/block_manager.h"
#include "test_util.h"

#define BS 4 /* block size used by most cases: small, so a few tokens span several blocks */

/* llmrt_bm_check with the given live tables; reports the line of the caller. */
#define CHECK_BM(bm, ...)                                                                          \
    do {                                                                                           \
        const llmrt_seq_blocks *live_[] = {NULL, __VA_ARGS__};                                     \
        const char *problem_ = llmrt_bm_check((bm), live_ + 1,                                     \
                                              (int32_t)(sizeof live_ / sizeof live_[0]) - 1);      \
        CHECK_MSG(problem_ == NULL, "llmrt_bm_check: %s", problem_);                               \
    } while (0)

#define CHECK_BM_NONE(bm)                                                                          \
    do {                                                                                           \
        const char *problem_ = llmrt_bm_check((bm), NULL, 0);                                      \
        CHECK_MSG(problem_ == NULL, "llmrt_bm_check: %s", problem_);                               \
    } while (0)

static void check_stats(const llmrt_block_manager *bm, int32_t used, int32_t cached, int32_t free_,
                        int line) {
    llmrt_bm_stats st = llmrt_bm_get_stats(bm);
    CHECK_MSG(st.n_used == used && st.n_cached == cached && st.n_free == free_ &&
                  st.n_used + st.n_cached + st.n_free == st.n_blocks,
              "line %d: used/cached/free %d/%d/%d, expected %d/%d/%d (of %d)", line, st.n_used,
              st.n_cached, st.n_free, used, cached, free_, st.n_blocks);
    CHECK_MSG(llmrt_bm_available(bm) == cached + free_, "line %d: available %d", line,
              llmrt_bm_available(bm));
}
#define CHECK_STATS(bm, used, cached, free_) check_stats((bm), (used), (cached), (free_), __LINE__)

/* tokens[i] = base + i */
static void fill_tokens(int32_t *t, int32_t n, int32_t base) {
    for (int32_t i = 0; i < n; i++) t[i] = base + i;
}

static bool ids_distinct(const llmrt_seq_blocks *a, const llmrt_seq_blocks *b) {
    for (int32_t i = 0; i < a->n; i++)
        for (int32_t j = 0; j < b->n; j++)
            if (a->ids[i] == b->ids[j]) return false;
    return true;
}

/* --------------------------------------------------------------------------------------------- */

static void test_create_args(void) {
    CHECK(llmrt_bm_create(0, BS, true) == NULL);
    CHECK(llmrt_bm_create(4, 0, true) == NULL);
    CHECK(llmrt_bm_create(-1, BS, false) == NULL);
    llmrt_block_manager *bm = llmrt_bm_create(1, 1, false);
    CHECK(bm != NULL);
    if (bm) {
        CHECK(llmrt_bm_block_size(bm) == 1);
        CHECK_STATS(bm, 0, 0, 1);
    }
    llmrt_bm_destroy(bm);
    llmrt_bm_destroy(NULL);
}

static void test_allocation(void) {
    llmrt_block_manager *bm = llmrt_bm_create(8, BS, true);
    llmrt_seq_blocks     a = {0}, b = {0};
    CHECK_STATS(bm, 0, 0, 8);
    CHECK(llmrt_bm_blocks_needed(bm, &a, 0) == 0);
    CHECK(llmrt_bm_blocks_needed(bm, &a, 1) == 1);
    CHECK(llmrt_bm_blocks_needed(bm, &a, 10) == 3);
    CHECK(llmrt_bm_ensure(bm, &a, 10));
    CHECK(a.n == 3);
    CHECK_BM(bm, &a);
    CHECK_STATS(bm, 3, 0, 5);
    CHECK(llmrt_bm_blocks_needed(bm, &a, 12) == 0);
    CHECK(llmrt_bm_ensure(bm, &a, 12)); /* 3 blocks already hold 12 tokens */
    CHECK(a.n == 3);
    CHECK(llmrt_bm_ensure(bm, &a, 0) && a.n == 3);
    CHECK(llmrt_bm_ensure(bm, &a, 13));
    CHECK(a.n == 4);
    CHECK_STATS(bm, 4, 0, 4);

    /* all or nothing: 5 blocks asked, 4 available -> false, table and pool unchanged */
    CHECK(!llmrt_bm_ensure(bm, &b, 20));
    CHECK(b.n == 0);
    CHECK_BM(bm, &a, &b);
    CHECK_STATS(bm, 4, 0, 4);
    CHECK(llmrt_bm_ensure(bm, &b, 16));
    CHECK(b.n == 4);
    CHECK(ids_distinct(&a, &b));
    CHECK_BM(bm, &a, &b);
    CHECK_STATS(bm, 8, 0, 0);
    /* growing a partly allocated table: also all or nothing */
    int32_t first = a.ids[0];
    CHECK(!llmrt_bm_ensure(bm, &a, 17));
    CHECK(a.n == 4 && a.ids[0] == first);
    CHECK_BM(bm, &a, &b);

    llmrt_bm_release(bm, &a);
    CHECK(a.n == 0 && a.ids == NULL);
    CHECK_BM(bm, &b);
    CHECK_STATS(bm, 4, 0, 4);
    llmrt_bm_release(bm, &b);
    CHECK_BM_NONE(bm);
    CHECK_STATS(bm, 0, 0, 8);
    llmrt_bm_destroy(bm);
}

static void test_prefix_sharing(void) {
    llmrt_block_manager *bm = llmrt_bm_create(16, BS, true);
    int32_t              ta[14], tb[15];
    fill_tokens(ta, 14, 100);
    fill_tokens(tb, 15, 100);
    tb[12] = 7; /* same 3-block prefix, different tail */
    tb[13] = 8;
    tb[14] = 9;
    llmrt_seq_blocks a = {0}, b = {0}, c = {0};

    CHECK(llmrt_bm_match_prefix(bm, &a, ta, 14) == 0); /* empty cache */
    CHECK(llmrt_bm_ensure(bm, &a, 14));
    CHECK(a.n == 4);
    llmrt_bm_commit(bm, &a, ta, 14);
    CHECK(a.n_hashed == 3); /* the 4th block holds 2 of 4 tokens: not registered */
    CHECK_BM(bm, &a);
    CHECK_STATS(bm, 4, 0, 12);

    CHECK(llmrt_bm_match_prefix(bm, &b, tb, 15) == 12);
    CHECK(b.n == 3 && b.n_hashed == 3);
    for (int32_t i = 0; i < 3 && b.n == 3; i++) CHECK(b.ids[i] == a.ids[i]);
    CHECK_BM(bm, &a, &b); /* ref counts of the shared blocks are 2 */
    CHECK_STATS(bm, 4, 0, 12);
    CHECK(llmrt_bm_ensure(bm, &b, 15));
    CHECK(b.n == 4 && b.ids[3] != a.ids[3]);
    CHECK_BM(bm, &a, &b);
    CHECK_STATS(bm, 5, 0, 11);
    llmrt_bm_commit(bm, &b, tb, 15);
    CHECK(b.n_hashed == 3);

    llmrt_bm_release(bm, &a); /* shared blocks stay used by b; a's own tail block is freed */
    CHECK_BM(bm, &b);
    CHECK_STATS(bm, 4, 0, 12);
    llmrt_bm_release(bm, &b); /* the 3 registered blocks become cached */
    CHECK_BM_NONE(bm);
    CHECK_STATS(bm, 0, 3, 13);

    /* a third sequence takes the cached prefix back */
    CHECK(llmrt_bm_match_prefix(bm, &c, ta, 14) == 12);
    CHECK_BM(bm, &c);
    CHECK_STATS(bm, 3, 0, 13);
    llmrt_bm_release(bm, &c);
    CHECK_BM_NONE(bm);

    /* a different first block shares nothing, even with equal later blocks */
    int32_t td[13];
    fill_tokens(td, 13, 100);
    td[0] = 5;
    CHECK(llmrt_bm_match_prefix(bm, &c, td, 13) == 0);
    CHECK(c.n == 0);
    llmrt_bm_release(bm, &c);
    CHECK_BM_NONE(bm);
    llmrt_bm_destroy(bm);
}

static void test_match_cap(void) {
    llmrt_block_manager *bm = llmrt_bm_create(16, BS, true);
    int32_t              t[13];
    fill_tokens(t, 13, 40);
    llmrt_seq_blocks a = {0};
    CHECK(llmrt_bm_ensure(bm, &a, 13));
    llmrt_bm_commit(bm, &a, t, 13);
    llmrt_bm_release(bm, &a);
    CHECK_STATS(bm, 0, 3, 13);

    /* n tokens -> the longest cached prefix leaving >= 1 token to compute */
    const int32_t n_tok[]  = {1, 4, 5, 8, 9, 12, 13};
    const int64_t expect[] = {0, 0, 4, 4, 8, 8, 12};
    for (size_t i = 0; i < sizeof n_tok / sizeof n_tok[0]; i++) {
        llmrt_seq_blocks s   = {0};
        int64_t          got = llmrt_bm_match_prefix(bm, &s, t, n_tok[i]);
        CHECK_MSG(got == expect[i] && got < n_tok[i] && s.n * BS == got,
                  "%d tokens: matched %lld, expected %lld", n_tok[i], (long long)got,
                  (long long)expect[i]);
        CHECK_BM(bm, &s);
        llmrt_bm_release(bm, &s);
    }
    /* a table that is not empty is not matched again */
    llmrt_seq_blocks s = {0};
    CHECK(llmrt_bm_match_prefix(bm, &s, t, 13) == 12);
    CHECK(llmrt_bm_match_prefix(bm, &s, t, 13) == 0);
    CHECK(s.n == 3);
    CHECK_BM(bm, &s);
    llmrt_bm_release(bm, &s);
    CHECK(llmrt_bm_match_prefix(bm, &s, t, 0) == 0);
    CHECK_BM_NONE(bm);
    llmrt_bm_destroy(bm);
}

static void test_commit_full_blocks_only(void) {
    llmrt_block_manager *bm = llmrt_bm_create(16, BS, true);
    int32_t              t[14];
    fill_tokens(t, 14, 7);
    llmrt_seq_blocks a = {0}, b = {0};
    CHECK(llmrt_bm_ensure(bm, &a, 14));
    llmrt_bm_commit(bm, &a, t, 0);
    CHECK(a.n_hashed == 0);
    llmrt_bm_commit(bm, &a, t, 3);
    CHECK(a.n_hashed == 0);
    llmrt_bm_commit(bm, &a, t, 7); /* 1 full block computed */
    CHECK(a.n_hashed == 1);
    CHECK(llmrt_bm_match_prefix(bm, &b, t, 14) == 4); /* only the committed block is found */
    CHECK_BM(bm, &a, &b);
    llmrt_bm_release(bm, &b);
    llmrt_bm_commit(bm, &a, t, 7); /* again: no change */
    CHECK(a.n_hashed == 1);
    llmrt_bm_commit(bm, &a, t, 14);
    CHECK(a.n_hashed == 3);
    CHECK_BM(bm, &a);
    llmrt_bm_release(bm, &a);
    CHECK_STATS(bm, 0, 3, 13);

    /* computed tokens beyond the table's blocks are ignored (only blocks it holds register) */
    CHECK(llmrt_bm_ensure(bm, &a, 4));
    int32_t u[12];
    fill_tokens(u, 12, 900);
    llmrt_bm_commit(bm, &a, u, 12);
    CHECK(a.n_hashed == 1);
    CHECK_BM(bm, &a);
    llmrt_bm_release(bm, &a);
    CHECK_STATS(bm, 0, 4, 12);

    /* prefix caching off: nothing registers, nothing matches, released blocks are free */
    llmrt_block_manager *off = llmrt_bm_create(8, BS, false);
    CHECK(llmrt_bm_ensure(off, &a, 14));
    llmrt_bm_commit(off, &a, t, 14);
    CHECK(a.n_hashed == 0);
    llmrt_bm_release(off, &a);
    CHECK(llmrt_bm_match_prefix(off, &b, t, 14) == 0);
    CHECK_STATS(off, 0, 0, 8);
    CHECK_BM_NONE(off);
    llmrt_bm_destroy(off);
    llmrt_bm_destroy(bm);
}

static void test_release_exactly_once(void) {
    llmrt_block_manager *bm = llmrt_bm_create(6, BS, true);
    int32_t              t[9];
    fill_tokens(t, 9, 3);
    llmrt_seq_blocks a = {0}, b = {0};
    CHECK(llmrt_bm_ensure(bm, &a, 9));
    llmrt_bm_commit(bm, &a, t, 9);
    CHECK(llmrt_bm_match_prefix(bm, &b, t, 9) == 8);
    CHECK(llmrt_bm_ensure(bm, &b, 9));
    CHECK_BM(bm, &a, &b);
    CHECK_STATS(bm, 4, 0, 2);
    llmrt_bm_release(bm, &a);
    CHECK_BM(bm, &b);
    llmrt_bm_release(bm, &a); /* an emptied table: releasing again changes nothing */
    CHECK_BM(bm, &b);
    CHECK_STATS(bm, 3, 0, 3);
    llmrt_bm_release(bm, &b);
    llmrt_bm_release(bm, &b);
    CHECK_BM_NONE(bm);
    CHECK_STATS(bm, 0, 2, 4);
    /* every block can be handed out again, each once */
    CHECK(llmrt_bm_ensure(bm, &a, 6 * BS));
    CHECK(a.n == 6);
    for (int32_t i = 0; i < a.n; i++)
        for (int32_t j = i + 1; j < a.n; j++) CHECK(a.ids[i] != a.ids[j]);
    CHECK_BM(bm, &a);
    CHECK_STATS(bm, 6, 0, 0);
    llmrt_bm_release(bm, &a);
    CHECK_STATS(bm, 0, 0, 6);
    CHECK_BM_NONE(bm);
    llmrt_bm_destroy(bm);
}

/* One registered block of 4 tokens base..base+3, released at once: the block id. */
static int32_t cache_one_block(llmrt_block_manager *bm, int32_t base) {
    int32_t          t[BS];
    llmrt_seq_blocks s = {0};
    fill_tokens(t, BS, base);
    if (!llmrt_bm_ensure(bm, &s, BS)) return -1;
    llmrt_bm_commit(bm, &s, t, BS);
    int32_t id = s.ids[0];
    llmrt_bm_release(bm, &s);
    return id;
}

/* Does a 5-token prompt starting with base..base+3 hit the cache? */
static bool block_cached(llmrt_block_manager *bm, int32_t base) {
    int32_t          t[BS + 1];
    llmrt_seq_blocks s = {0};
    fill_tokens(t, BS + 1, base);
    bool hit = llmrt_bm_match_prefix(bm, &s, t, BS + 1) == BS;
    llmrt_bm_release(bm, &s);
    return hit;
}

static void test_lru_eviction(void) {
    llmrt_block_manager *bm = llmrt_bm_create(4, BS, true);
    int32_t id[4];
    for (int32_t i = 0; i < 4; i++) id[i] = cache_one_block(bm, 1000 * (i + 1));
    CHECK_STATS(bm, 0, 4, 0);
    CHECK_BM_NONE(bm);
    /* use block 1 again: it becomes the most recently freed. LRU order now 0, 2, 3, 1 */
    CHECK(block_cached(bm, 2000));
    CHECK_BM_NONE(bm);

    llmrt_seq_blocks s = {0};
    const int32_t    order[4] = {0, 2, 3, 1};
    for (int32_t k = 0; k < 4; k++) {
        CHECK(llmrt_bm_ensure(bm, &s, (int64_t)(k + 1) * BS));
        CHECK_MSG(s.n == k + 1 && s.ids[k] == id[order[k]], "eviction %d took block %d, expected %d",
                  k, s.n == k + 1 ? s.ids[k] : -1, id[order[k]]);
        CHECK_BM(bm, &s);
        CHECK(llmrt_bm_get_stats(bm).evictions == k + 1);
        /* the evicted content no longer matches; the others still do */
        CHECK(!block_cached(bm, 1000 * (order[k] + 1)));
        for (int32_t j = k + 1; j < 4; j++) CHECK(block_cached(bm, 1000 * (order[j] + 1)));
    }
    CHECK_STATS(bm, 4, 0, 0);
    llmrt_bm_release(bm, &s);
    for (int32_t i = 0; i < 4; i++) CHECK(!block_cached(bm, 1000 * (i + 1)));
    CHECK_STATS(bm, 0, 0, 4);

    /* free blocks are taken before any cached block is evicted */
    int32_t kept = cache_one_block(bm, 5000);
    CHECK(llmrt_bm_ensure(bm, &s, 3 * BS));
    for (int32_t i = 0; i < s.n; i++) CHECK(s.ids[i] != kept);
    CHECK(block_cached(bm, 5000));
    CHECK(llmrt_bm_get_stats(bm).evictions == 4);
    llmrt_bm_release(bm, &s);
    CHECK_BM_NONE(bm);
    CHECK_STATS(bm, 0, 1, 3);
    llmrt_bm_destroy(bm);
}

/* The eviction order of a chain: its blocks leave the cache last block first. */
static void test_lru_chain_order(void) {
    llmrt_block_manager *bm = llmrt_bm_create(3, BS, true);
    int32_t              t[3 * BS];
    fill_tokens(t, 3 * BS, 70);
    llmrt_seq_blocks c = {0}, s = {0};
    CHECK(llmrt_bm_ensure(bm, &c, 3 * BS));
    llmrt_bm_commit(bm, &c, t, 3 * BS);
    int32_t chain[3] = {c.ids[0], c.ids[1], c.ids[2]};
    llmrt_bm_release(bm, &c);
    CHECK_STATS(bm, 0, 3, 0);
    for (int32_t k = 0; k < 3; k++) {
        CHECK(llmrt_bm_ensure(bm, &s, (int64_t)(k + 1) * BS));
        CHECK_MSG(s.ids[k] == chain[2 - k], "eviction %d took %d, expected %d", k, s.ids[k],
                  chain[2 - k]);
        CHECK_BM(bm, &s);
        /* what is left of the chain still matches, as a prefix */
        llmrt_seq_blocks m = {0};
        CHECK(llmrt_bm_match_prefix(bm, &m, t, 3 * BS) == (int64_t)(2 - k) * BS);
        CHECK_BM(bm, &s, &m);
        llmrt_bm_release(bm, &m);
    }
    llmrt_bm_release(bm, &s);
    CHECK_BM_NONE(bm);
    llmrt_bm_destroy(bm);
}

/* Two sequences compute the same blocks without sharing (admitted in the same step): one copy
 * stays registered; the other is private and freed (not cached) on release. */
static void test_duplicate_commit(void) {
    llmrt_block_manager *bm = llmrt_bm_create(12, BS, true);
    int32_t              t[2 * BS + 1];
    fill_tokens(t, 2 * BS + 1, 500);
    llmrt_seq_blocks a = {0}, b = {0}, c = {0};
    CHECK(llmrt_bm_ensure(bm, &a, 2 * BS + 1));
    CHECK(llmrt_bm_ensure(bm, &b, 2 * BS + 1));
    int32_t a0 = a.ids[0], a1 = a.ids[1], b0 = b.ids[0];
    llmrt_bm_commit(bm, &a, t, 2 * BS + 1);
    llmrt_bm_commit(bm, &b, t, 2 * BS + 1);
    CHECK(a.n_hashed == 2 && b.n_hashed == 2);
    CHECK_BM(bm, &a, &b);
    CHECK(llmrt_bm_match_prefix(bm, &c, t, 2 * BS + 1) == 2 * BS);
    CHECK(c.n == 2 && c.ids[0] == a0 && c.ids[1] == a1);
    CHECK_BM(bm, &a, &b, &c);
    llmrt_bm_release(bm, &c);
    llmrt_bm_release(bm, &a);
    CHECK_BM(bm, &b);
    CHECK_STATS(bm, 3, 2, 7);
    /* b's first block was a private copy: freed, not cached. Its second block registered under
     * b's own (unregistered) parent: cached, but no lookup can reach it */
    llmrt_bm_release(bm, &b);
    CHECK_BM_NONE(bm);
    CHECK_STATS(bm, 0, 3, 9);
    CHECK(llmrt_bm_match_prefix(bm, &c, t, 2 * BS + 1) == 2 * BS);
    CHECK(c.n == 2 && c.ids[0] == a0 && c.ids[1] == a1);
    llmrt_bm_release(bm, &c);
    CHECK(llmrt_bm_ensure(bm, &c, 1));
    CHECK(c.ids[0] == b0); /* the private copy went back to the free list */
    llmrt_bm_release(bm, &c);
    CHECK_BM_NONE(bm);
    llmrt_bm_destroy(bm);
}

/* Builds: a = P C x registered (a0, a1), b = the same computed privately (b0 private, b1
 * registered under b0), then evicts a's chain and releases b, so that b1 is cached under a
 * parent id b0 that is free. Returns b0 and b1. */
static void orphan_child(llmrt_block_manager *bm, const int32_t *pc, int32_t *b0, int32_t *b1) {
    llmrt_seq_blocks a = {0}, b = {0}, e = {0};
    CHECK(llmrt_bm_ensure(bm, &a, 2 * BS + 1));
    llmrt_bm_commit(bm, &a, pc, 2 * BS + 1);
    CHECK(llmrt_bm_ensure(bm, &b, 2 * BS + 1));
    llmrt_bm_commit(bm, &b, pc, 2 * BS + 1);
    *b0 = b.ids[0];
    *b1 = b.ids[1];
    llmrt_bm_release(bm, &a); /* a1, a0 cached (a1 first); a2 free */
    CHECK_BM(bm, &b);
    int64_t ev = llmrt_bm_get_stats(bm).evictions;
    CHECK(llmrt_bm_ensure(bm, &e, (int64_t)llmrt_bm_available(bm) * BS)); /* evicts a1, a0 */
    CHECK(llmrt_bm_get_stats(bm).evictions == ev + 2);
    CHECK_BM(bm, &b, &e);
    llmrt_bm_release(bm, &e);
    llmrt_bm_release(bm, &b); /* b2 free, b1 cached, b0 free (top of the free stack) */
    CHECK_BM_NONE(bm);
    CHECK_STATS(bm, 0, 1, 7);
}

/* A parent evicted and its id registered again with other content must not let a child
 * registered under the old parent match. */
static void test_generation_check(void) {
    llmrt_block_manager *bm = llmrt_bm_create(8, BS, true);
    int32_t              pc[2 * BS + 1], xc[2 * BS + 1];
    fill_tokens(pc, 2 * BS + 1, 10); /* P C x */
    memcpy(xc, pc, sizeof xc);
    for (int32_t i = 0; i < BS; i++) xc[i] = 300 + i; /* X C x: other first block */
    llmrt_seq_blocks f = {0}, d = {0};
    int32_t          b0, b1;

    orphan_child(bm, pc, &b0, &b1);
    CHECK(b0 != b1);
    CHECK(llmrt_bm_ensure(bm, &f, BS + 1));
    CHECK(f.ids[0] == b0);
    llmrt_bm_commit(bm, &f, xc, BS + 1); /* b0 registered with X */
    CHECK(f.n_hashed == 1);
    CHECK(llmrt_bm_match_prefix(bm, &d, xc, 2 * BS + 1) == BS); /* X, then not b1 */
    CHECK(d.n == 1 && d.ids[0] == b0);
    CHECK_BM(bm, &f, &d);
    llmrt_bm_release(bm, &d);
    CHECK(llmrt_bm_match_prefix(bm, &d, pc, 2 * BS + 1) == 0); /* P is gone */
    llmrt_bm_release(bm, &d);
    llmrt_bm_release(bm, &f);
    CHECK_BM_NONE(bm);
    llmrt_bm_destroy(bm);

    /* The same content P registered again at b0: parent id, chain hash and tokens of b1 all
     * match, only the registration generation differs. b1 is not used (a hit never depends on
     * the hash and ids alone). */
    bm = llmrt_bm_create(8, BS, true);
    orphan_child(bm, pc, &b0, &b1);
    CHECK(llmrt_bm_ensure(bm, &f, BS + 1));
    CHECK(f.ids[0] == b0);
    llmrt_bm_commit(bm, &f, pc, BS + 1);
    CHECK(llmrt_bm_match_prefix(bm, &d, pc, 2 * BS + 1) == BS);
    CHECK(d.n == 1 && d.ids[0] == b0);
    CHECK_BM(bm, &f, &d);
    llmrt_bm_release(bm, &d);
    llmrt_bm_release(bm, &f);
    CHECK_BM_NONE(bm);
    CHECK_STATS(bm, 0, 2, 6); /* b0 (P) and the unreachable b1 */
    llmrt_bm_destroy(bm);
}

static void test_stats(void) {
    llmrt_block_manager *bm = llmrt_bm_create(10, BS, true);
    llmrt_bm_stats       st = llmrt_bm_get_stats(bm);
    CHECK(st.n_blocks == 10 && st.n_used == 0 && st.n_cached == 0 && st.n_free == 10);
    CHECK(st.prefix_queries == 0 && st.prefix_hits == 0 && st.evictions == 0);
    int32_t t[11];
    fill_tokens(t, 11, 60);
    llmrt_seq_blocks a = {0}, b = {0};
    CHECK(llmrt_bm_match_prefix(bm, &a, t, 11) == 0);
    st = llmrt_bm_get_stats(bm);
    CHECK(st.prefix_queries == 11 && st.prefix_hits == 0);
    CHECK(llmrt_bm_ensure(bm, &a, 11));
    llmrt_bm_commit(bm, &a, t, 11);
    CHECK(llmrt_bm_match_prefix(bm, &b, t, 11) == 8);
    st = llmrt_bm_get_stats(bm);
    CHECK(st.prefix_queries == 22 && st.prefix_hits == 8);
    CHECK(st.n_used == 3 && st.n_cached == 0 && st.n_free == 7);
    llmrt_bm_release(bm, &a);
    st = llmrt_bm_get_stats(bm);
    CHECK(st.n_used == 2 && st.n_cached == 0 && st.n_free == 8);
    llmrt_bm_release(bm, &b);
    st = llmrt_bm_get_stats(bm);
    CHECK(st.n_used == 0 && st.n_cached == 2 && st.n_free == 8);
    CHECK(llmrt_bm_available(bm) == 10);
    CHECK_BM_NONE(bm);
    llmrt_bm_destroy(bm);
}

/* --------------------------------------------------------------------------------------------- */
/* randomized stress                                                                             */
/* --------------------------------------------------------------------------------------------- */

#define N_SEQ    20
#define N_OPS    10000
#define MAX_TOK  64
#define N_BLOCKS 48

typedef struct sim_seq {
    llmrt_seq_blocks sb;
    int32_t          tokens[MAX_TOK];
    int32_t          n_tokens;   /* tokens known (prompt + generated) */
    int32_t          n_computed; /* tokens whose "KV" is written */
    bool             active;
} sim_seq;

static uint64_t rng_state = 0x12345678u;
static uint32_t rnd(uint32_t n) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33) % n;
}

/* shadow KV: the token each block slot was written with (-1 = never) */
static int32_t shadow[N_BLOCKS][BS];

static int32_t holders(const sim_seq *s, int32_t block) {
    int32_t n = 0;
    for (int32_t i = 0; i < N_SEQ; i++)
        for (int32_t k = 0; k < s[i].sb.n; k++) n += s[i].sb.ids[k] == block;
    return n;
}

/* A new prompt: one of 4 shared prefixes (0..3 blocks of it) then random tokens. */
static void new_prompt(sim_seq *q) {
    int32_t family = (int32_t)rnd(4), shared = (int32_t)rnd(4) * BS;
    q->n_tokens    = 1 + (int32_t)rnd(40);
    for (int32_t i = 0; i < q->n_tokens; i++)
        q->tokens[i] = i < shared ? family * 100 + i : (int32_t)rnd(5) + 50;
}

static int stress_failures;

static void stress_match(llmrt_block_manager *bm, sim_seq *q) {
    new_prompt(q);
    q->active     = true;
    int64_t hit   = llmrt_bm_match_prefix(bm, &q->sb, q->tokens, q->n_tokens);
    q->n_computed = (int32_t)hit;
    if (!(hit < q->n_tokens && hit % BS == 0 && q->sb.n * BS == hit)) stress_failures++;
    /* a hit hands out blocks holding exactly these tokens */
    for (int32_t k = 0; k < q->sb.n; k++)
        for (int32_t j = 0; j < BS; j++)
            if (shadow[q->sb.ids[k]][j] != q->tokens[k * BS + j]) stress_failures++;
}

static void stress_compute(llmrt_block_manager *bm, sim_seq *s, sim_seq *q) {
    if (q->n_computed == q->n_tokens) { /* "generate" a token */
        if (q->n_tokens == MAX_TOK) return;
        q->tokens[q->n_tokens++] = (int32_t)rnd(5) + 50;
    }
    int32_t n_new = 1 + (int32_t)rnd((uint32_t)(q->n_tokens - q->n_computed));
    if (!llmrt_bm_ensure(bm, &q->sb, q->n_computed + n_new)) return;
    for (int32_t p = q->n_computed; p < q->n_computed + n_new; p++) {
        int32_t b = q->sb.ids[p / BS];
        if (holders(s, b) != 1) stress_failures++; /* never write a shared block */
        shadow[b][p % BS] = q->tokens[p];
    }
    q->n_computed += n_new;
    if (rnd(4) != 0) llmrt_bm_commit(bm, &q->sb, q->tokens, q->n_computed);
}

static void stress_release(llmrt_block_manager *bm, sim_seq *q) {
    llmrt_bm_release(bm, &q->sb);
    q->active     = false;
    q->n_tokens   = 0;
    q->n_computed = 0;
}

static void test_stress(void) {
    llmrt_block_manager *bm = llmrt_bm_create(N_BLOCKS, BS, true);
    static sim_seq       s[N_SEQ];
    memset(s, 0, sizeof s);
    memset(shadow, 0xff, sizeof shadow);
    const llmrt_seq_blocks *live[N_SEQ];
    for (int32_t i = 0; i < N_SEQ; i++) live[i] = &s[i].sb;
    int32_t n_bad = 0, n_hits = 0, n_evict_ops = 0;
    for (int32_t op = 0; op < N_OPS; op++) {
        sim_seq *q = &s[rnd(N_SEQ)];
        uint32_t r = rnd(10);
        if (!q->active) {
            if (r < 7) stress_match(bm, q);
            else { /* start without a lookup: the duplicate-commit path */
                new_prompt(q);
                q->active = true;
            }
            n_hits += q->n_computed > 0;
        } else if (r < 7) {
            stress_compute(bm, s, q);
        } else if (r < 8) {
            llmrt_bm_commit(bm, &q->sb, q->tokens, q->n_computed);
        } else {
            stress_release(bm, q);
        }
        const char *problem = llmrt_bm_check(bm, live, N_SEQ);
        if (problem) {
            if (n_bad++ < 5) fprintf(stderr, "stress op %d: %s\n", op, problem);
        }
        llmrt_bm_stats st = llmrt_bm_get_stats(bm);
        if (st.n_used + st.n_cached + st.n_free != N_BLOCKS) n_bad++;
        n_evict_ops = (int32_t)st.evictions;
    }
    CHECK_MSG(n_bad == 0, "%d operations left the block manager inconsistent", n_bad);
    CHECK_MSG(stress_failures == 0, "%d wrong prefix hits / shared writes / bad matches",
              stress_failures);
    printf("stress: %d ops, %d prefix hits, %d evictions\n", N_OPS, n_hits, n_evict_ops);
    CHECK(n_hits > 100);      /* the workload really shares prefixes */
    CHECK(n_evict_ops > 100); /* and really runs the pool dry */
    for (int32_t i = 0; i < N_SEQ; i++) stress_release(bm, &s[i]);
    CHECK_BM_NONE(bm);
    llmrt_bm_stats st = llmrt_bm_get_stats(bm);
    CHECK(st.n_used == 0 && st.n_cached + st.n_free == N_BLOCKS);
    llmrt_bm_destroy(bm);
}

/* n > 1: forks share the full blocks (reference counts), copy-on-write of the partial block,
 * release in any order frees each block exactly once; commits continue the inherited chain. */
static void test_fork(void) {
    for (int pc = 0; pc < 2; pc++) {
        llmrt_block_manager *bm = llmrt_bm_create(8, BS, pc == 1);
        int32_t              tok[16];
        fill_tokens(tok, 16, 100);
        llmrt_seq_blocks a = {0}, b = {0}, c = {0};
        CHECK(llmrt_bm_ensure(bm, &a, 10)); /* 3 blocks: 2 full + 2 tokens in the third */
        llmrt_bm_commit(bm, &a, tok, 10);
        int32_t ps = 0, pd = 0;
        CHECK(llmrt_bm_fork(bm, &a, &b, 10, true, &ps, &pd));
        CHECK(b.n == 3 && b.ids[0] == a.ids[0] && b.ids[1] == a.ids[1]);
        CHECK(ps == a.ids[2] && pd == b.ids[2] && pd != ps);
        CHECK(b.n_hashed == a.n_hashed && b.last_hash == a.last_hash);
        CHECK_STATS(bm, 4, 0, 4);
        CHECK_BM(bm, &a, &b);
        /* without copy: the full blocks only */
        CHECK(llmrt_bm_fork(bm, &a, &c, 10, false, &ps, &pd));
        CHECK(c.n == 2 && ps == -1 && pd == -1);
        CHECK_STATS(bm, 4, 0, 4);
        CHECK_BM(bm, &a, &b, &c);
        /* a non-empty destination is refused, unchanged */
        CHECK(!llmrt_bm_fork(bm, &a, &c, 10, true, &ps, &pd) && c.n == 2);
        /* each grows privately past the fork */
        CHECK(llmrt_bm_ensure(bm, &b, 13));
        CHECK(llmrt_bm_ensure(bm, &c, 11));
        CHECK(ids_distinct(&b, &c) || b.ids[0] == c.ids[0]);
        CHECK(b.ids[3] != c.ids[2] && c.ids[2] != a.ids[2]);
        int32_t tb[16];
        memcpy(tb, tok, sizeof tb);
        tb[10] = 7; /* b's own continuation */
        llmrt_bm_commit(bm, &b, tb, 13);
        CHECK_BM(bm, &a, &b, &c);
        /* release in any order: each block exactly once */
        llmrt_bm_release(bm, &a);
        CHECK_BM(bm, &b, &c);
        llmrt_bm_release(bm, &b);
        CHECK_BM(bm, &c);
        llmrt_bm_release(bm, &c);
        CHECK_BM_NONE(bm);
        CHECK(llmrt_bm_get_stats(bm).n_used == 0);
        llmrt_bm_destroy(bm);
    }
    /* the copy needs a block: all or nothing when the pool is dry */
    llmrt_block_manager *bm = llmrt_bm_create(3, BS, false);
    llmrt_seq_blocks     a = {0}, b = {0};
    int32_t              ps, pd;
    CHECK(llmrt_bm_ensure(bm, &a, 10));
    CHECK(!llmrt_bm_fork(bm, &a, &b, 10, true, &ps, &pd) && b.n == 0 && pd == -1);
    CHECK_BM(bm, &a);
    CHECK(llmrt_bm_fork(bm, &a, &b, 10, false, &ps, &pd) && b.n == 2);
    /* on a block boundary nothing is copied */
    llmrt_seq_blocks c = {0};
    CHECK(llmrt_bm_fork(bm, &a, &c, 8, true, &ps, &pd) && c.n == 2 && pd == -1);
    CHECK_BM(bm, &a, &b, &c);
    llmrt_bm_release(bm, &b);
    llmrt_bm_release(bm, &a);
    llmrt_bm_release(bm, &c);
    CHECK_BM_NONE(bm);
    CHECK_STATS(bm, 0, 0, 3);
    llmrt_bm_destroy(bm);
}

/* Sliding window (llmrt_bm_drop_before): the leading blocks below keep_from go back to the pool
 * exactly once (registered ones cached, still hit by a new sequence with the same prefix),
 * their entries become -1, the table keeps growing by new blocks only, commit registers no
 * block whose predecessor was dropped, a fork inherits the dropped entries, and release skips
 * them. */
static void test_drop_before(void) {
    llmrt_block_manager *bm = llmrt_bm_create(6, BS, true);
    int32_t              tok[40];
    fill_tokens(tok, 40, 300);
    llmrt_seq_blocks a = {0};
    CHECK(llmrt_bm_ensure(bm, &a, 10)); /* blocks 0..2 */
    llmrt_bm_commit(bm, &a, tok, 10);   /* 0, 1 registered */
    int32_t first = a.ids[0], second = a.ids[1];
    CHECK(llmrt_bm_drop_before(bm, &a, 3) == 0); /* block 0 holds position 3: kept */
    CHECK(llmrt_bm_drop_before(bm, &a, 5) == 1); /* positions 0..3 below 5: block 0 */
    CHECK(a.ids[0] == -1 && a.n_dropped == 1 && a.n == 3);
    CHECK(llmrt_bm_drop_before(bm, &a, 5) == 0); /* idempotent */
    CHECK_STATS(bm, 2, 1, 3);                    /* block 0 registered: cached */
    CHECK_BM(bm, &a);
    /* a new sequence with the same prompt still hits the dropped (cached) block 0 and block 1 */
    llmrt_seq_blocks b = {0};
    CHECK(llmrt_bm_match_prefix(bm, &b, tok, 10) == 8);
    CHECK(b.ids[0] == first && b.ids[1] == second);
    CHECK_BM(bm, &a, &b);
    llmrt_bm_release(bm, &b);
    /* growth allocates only the new blocks: 3 live + 1 */
    CHECK(llmrt_bm_blocks_needed(bm, &a, 16) == 1);
    CHECK(llmrt_bm_ensure(bm, &a, 16));
    CHECK(llmrt_bm_drop_before(bm, &a, 12) == 2); /* blocks 1, 2 */
    CHECK(a.ids[1] == -1 && a.ids[2] == -1 && a.n_dropped == 3);
    /* block 2 was never registered (commit stopped at 10 tokens); block 3's predecessor is
     * dropped: commit registers neither */
    llmrt_bm_commit(bm, &a, tok, 16);
    CHECK(a.n_hashed == 2);
    CHECK_BM(bm, &a);
    /* a fork past the drop shares the live full block and inherits the dropped entries */
    llmrt_seq_blocks c = {0};
    int32_t          ps, pd;
    CHECK(llmrt_bm_fork(bm, &a, &c, 16, true, &ps, &pd));
    CHECK(c.n == 4 && c.ids[0] == -1 && c.ids[2] == -1 && c.ids[3] == a.ids[3] && c.n_dropped == 3);
    CHECK_BM(bm, &a, &c);
    llmrt_bm_release(bm, &a);
    CHECK_BM(bm, &c);
    llmrt_bm_release(bm, &c);
    CHECK_BM_NONE(bm);
    CHECK(llmrt_bm_get_stats(bm).n_used == 0);
    llmrt_bm_destroy(bm);
}

int main(void) {
    test_create_args();
    test_drop_before();
    test_fork();
    test_allocation();
    test_prefix_sharing();
    test_match_cap();
    test_commit_full_blocks_only();
    test_release_exactly_once();
    test_lru_eviction();
    test_lru_chain_order();
    test_duplicate_commit();
    test_generation_check();
    test_stats();
    test_stress();
    return test_summary("test_block_manager");
}
