/* The KV block manager: a pool of fixed-size blocks, per-sequence block tables, reference counts
 * and a prefix cache.
 *
 * Prefix caching: once every token of a full block has been computed, the block is registered
 * under a hash chained over the token ids of all blocks up to it (h_i = H(h_{i-1}, tokens of
 * block i)). A new sequence whose prompt starts with the same tokens takes references to those
 * blocks instead of recomputing them; shared blocks are never written (a sequence only writes its
 * own, partially filled tail blocks). A hit is verified token by token and against the parent
 * block (id and registration generation), so a hash collision can never return wrong KV.
 * Blocks whose count drops to zero stay cached (evictable) and are reused least-recently-freed first when the free list is empty.
 *
 * Every block is in exactly one state: used (ref > 0), cached (ref == 0, registered) or free
 * (ref == 0, not registered). llmrt_bm_check() verifies the accounting (tests). */
#ifndef LLMRT_ENGINE_BLOCK_MANAGER_H
#define LLMRT_ENGINE_BLOCK_MANAGER_H

#include <stdbool.h>
#include <stdint.h>

typedef struct llmrt_block_manager llmrt_block_manager;

/* A sequence's block table. Zero-initialise; release with llmrt_bm_release. */
typedef struct llmrt_seq_blocks {
    int32_t *ids;        /* [n] block ids in position order */
    int32_t  n, cap;
    int32_t  n_hashed;   /* leading blocks registered in (or taken from) the prefix cache */
    uint64_t last_hash;  /* chain hash of block n_hashed - 1 */
    uint64_t ns;         /* KV namespace: blocks are shared only within one (0: the base model;
                          * the engine gives each LoRA adapter and scale its own), set before
                          * the first llmrt_bm_match_prefix */
    int32_t  n_dropped;  /* leading entries dropped by llmrt_bm_drop_before (ids -1) */
} llmrt_seq_blocks;

typedef struct llmrt_bm_stats {
    int32_t n_blocks, n_used, n_cached, n_free;
    int64_t prefix_queries;    /* tokens looked up in the prefix cache */
    int64_t prefix_hits;       /* of which found cached */
    int64_t evictions;
} llmrt_bm_stats;

/* NULL on allocation failure. */
llmrt_block_manager *llmrt_bm_create(int32_t n_blocks, int32_t block_size, bool prefix_caching);
void                 llmrt_bm_destroy(llmrt_block_manager *bm);
int32_t              llmrt_bm_block_size(const llmrt_block_manager *bm);

/* Blocks that could be handed out now (free + evictable cached). */
int32_t llmrt_bm_available(const llmrt_block_manager *bm);

/* For an empty table: takes the longest chain of cached full blocks that prefixes
 * tokens[0..n_tokens), capped so at least one token is left to compute (its logits are needed).
 * Returns the number of tokens covered. */
int64_t llmrt_bm_match_prefix(llmrt_block_manager *bm, llmrt_seq_blocks *sb, const int32_t *tokens,
                              int64_t n_tokens);

/* Blocks the table needs for n_total tokens beyond those it has. */
int32_t llmrt_bm_blocks_needed(const llmrt_block_manager *bm, const llmrt_seq_blocks *sb,
                               int64_t n_total);

/* Grows the table to hold n_total tokens. All or nothing: false (table unchanged) when the pool
 * cannot supply the blocks, or on allocation failure. */
bool llmrt_bm_ensure(llmrt_block_manager *bm, llmrt_seq_blocks *sb, int64_t n_total);

/* Registers the full blocks among the first n_computed tokens (whose KV is now written). */
void llmrt_bm_commit(llmrt_block_manager *bm, llmrt_seq_blocks *sb, const int32_t *tokens,
                     int64_t n_computed);

/* Forks `src`, whose first n_tokens tokens have KV, into the empty table `dst` (n > 1
 * sequences of one prompt): dst references src's full blocks among them (reference counts + 1,
 * never written again by either) and, when n_tokens ends inside a block and copy_partial is set,
 * gets a fresh block of its own for that partial block (copy-on-write: the caller copies the
 * KV of *partial_src into *partial_dst before either sequence writes it). Otherwise (or when
 * n_tokens ends on a block boundary) *partial_src = *partial_dst = -1 and dst covers the full
 * blocks only: the caller recomputes the tail. The prefix-cache chain state is inherited.
 * All or nothing: false (dst unchanged, empty) when the pool has no block for the copy or on
 * allocation failure. */
bool llmrt_bm_fork(llmrt_block_manager *bm, const llmrt_seq_blocks *src, llmrt_seq_blocks *dst,
                   int64_t n_tokens, bool copy_partial, int32_t *partial_src,
                   int32_t *partial_dst);

/* Sliding-window attention (a token at position p reads positions (p - W, p] only): drops the
 * table's leading blocks that hold no position >= keep_from, i.e. blocks [0, keep_from / bs),
 * which no later token of the sequence attends to when keep_from = n_computed - W + 1 (the
 * first position the next token reads). Their entries become -1, so the sequence can never use
 * them again (the forward never reads an entry below a token's window), and each block goes
 * back to the pool exactly as a released one: cached when registered in the prefix cache (its
 * KV is still right for the prefix it was computed for, so a hit by another sequence stays
 * correct; hits take only registered blocks whose whole chain is verified), free otherwise.
 * Prefix-cache rule: commit registers no block whose predecessor was dropped (the chain's
 * parent is gone), so a sequence stops adding blocks to the cache from that point; blocks it
 * registered before stay valid. Returns the number of blocks dropped by this call. */
int32_t llmrt_bm_drop_before(llmrt_block_manager *bm, llmrt_seq_blocks *sb, int64_t keep_from);

/* Drops the table's references and empties it (blocks freed exactly once). */
void llmrt_bm_release(llmrt_block_manager *bm, llmrt_seq_blocks *sb);

llmrt_bm_stats llmrt_bm_get_stats(const llmrt_block_manager *bm);

/* Checks every invariant (state counts, ref counts vs the given live tables, hash index,
 * LRU list). Returns NULL when consistent, else a static description of the first problem. */
const char *llmrt_bm_check(const llmrt_block_manager *bm, const llmrt_seq_blocks *const *live,
                           int32_t n_live);

#endif
