/* The CPU backend's block allocator (backend/cpu/cpu_memory.h):
 * 1. blocks of irregular sizes (1 byte to 40 MiB: carved from chunks, and their own mappings)
 *    are 64-byte aligned and never overlap: each is filled with its own pattern, and every
 *    pattern is intact after all allocations, and again after frees and new allocations in a
 *    shuffled order;
 * 2. small blocks allocated one after another are adjacent (a layer's matrices next to each
 *    other, as a decode step streams them), except where a chunk ends (not under ASan, where
 *    every block is its own allocation);
 * 3. four threads allocating and freeing at once keep the same guarantees;
 * 4. 0 bytes and sizes near SIZE_MAX give NULL; freeing NULL does nothing.
 * Whether the kernel granted 2 MiB pages is printed (AnonHugePages), not checked: it depends on
 * the machine's THP setting and free memory. */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_memory.h"
#include "test_util.h"

typedef struct block {
    unsigned char *p;
    size_t         n;
    unsigned char  tag;
} block;

static uint64_t next_rand(uint64_t *s) {
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

/* sizes: mostly small (weights of tiny models), some chunk-sized, a few with their own mapping */
static size_t some_size(uint64_t *s) {
    uint64_t r = next_rand(s) % 100;
    if (r < 70) return 1 + next_rand(s) % 600000;
    if (r < 95) return 1 + next_rand(s) % (6u << 20);
    return (8u << 20) + next_rand(s) % (32u << 20);
}

/* fills with tag at a few spots (first, last, every 4 KiB): cheap, and any overlap shows */
static void fill(block *b) {
    for (size_t i = 0; i < b->n; i += 4096) b->p[i] = b->tag;
    b->p[b->n - 1] = b->tag;
}

static bool intact(const block *b) {
    for (size_t i = 0; i < b->n; i += 4096)
        if (b->p[i] != b->tag) return false;
    return b->p[b->n - 1] == b->tag;
}

static bool alloc_block(block *b, uint64_t *s, unsigned char tag) {
    b->n   = some_size(s);
    b->tag = tag;
    b->p   = llmrt_cpu_mem_alloc(b->n);
    if (!b->p) return false;
    fill(b);
    return true;
}

/* allocates, checks, frees half in a shuffled order, allocates again, checks, frees all;
 * returns the number of failed checks */
static int churn(uint64_t seed, int n_blocks) {
    uint64_t s = seed;
    block   *b = calloc((size_t)n_blocks, sizeof *b);
    int      bad = 0;
    if (!b) return 1;
    for (int i = 0; i < n_blocks; i++) {
        if (!alloc_block(&b[i], &s, (unsigned char)(i * 37 + 1))) bad++;
        else if ((uintptr_t)b[i].p % 64 != 0) bad++;
    }
    for (int i = 0; i < n_blocks; i++) bad += b[i].p && !intact(&b[i]);
    for (int k = 0; k < n_blocks; k++) { /* free about half, in a random order */
        int i = (int)(next_rand(&s) % (uint64_t)n_blocks);
        if (b[i].p && next_rand(&s) % 2) {
            llmrt_cpu_mem_free(b[i].p);
            b[i].p = NULL;
        }
    }
    for (int i = 0; i < n_blocks; i++)
        if (!b[i].p) bad += !alloc_block(&b[i], &s, (unsigned char)(i * 53 + 7));
    for (int i = 0; i < n_blocks; i++) bad += b[i].p && !intact(&b[i]);
    for (int i = 0; i < n_blocks; i++) llmrt_cpu_mem_free(b[i].p);
    free(b);
    return bad;
}

static void *churn_thread(void *arg) {
    int *bad = arg;
    *bad     = churn(0x9e3779b97f4a7c15ull + (uint64_t)(uintptr_t)arg, 60);
    return NULL;
}

static long anon_huge_kb(void) {
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    char  line[256];
    long  kb = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "AnonHugePages: %ld kB", &kb) == 1) break;
    fclose(f);
    return kb;
}

int main(void) {
    /* 1 */
    CHECK_MSG(churn(0x2545f4914f6cdd1dull, 200) == 0, "blocks overlap or misalign");

    /* 2: 100 blocks of 100 KB in a row; a chunk boundary may fall between two of them */
    enum { ROW = 100 };
    unsigned char *row[ROW];
    size_t         sz = 100000, step = (64 + sz + 63) / 64 * 64;
    int            adjacent = 0;
    for (int i = 0; i < ROW; i++) {
        row[i] = llmrt_cpu_mem_alloc(sz);
        CHECK(row[i] != NULL);
        if (i && row[i] && row[i - 1] && row[i] == row[i - 1] + step) adjacent++;
    }
    if (llmrt_cpu_mem_chunked())
        CHECK_MSG(adjacent >= ROW - 2, "%d of %d small blocks adjacent", adjacent, ROW - 1);
    for (int i = 0; i < ROW; i++)
        if (row[i]) memset(row[i], i, sz);
    printf("AnonHugePages with 10 MB of small blocks touched: %ld kB (-1: unknown)\n",
           anon_huge_kb());
    for (int i = 0; i < ROW; i++) llmrt_cpu_mem_free(row[i]);

    /* 3 */
    pthread_t th[4];
    int       bad[4] = {0};
    for (int t = 0; t < 4; t++) CHECK(pthread_create(&th[t], NULL, churn_thread, &bad[t]) == 0);
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        CHECK_MSG(bad[t] == 0, "thread %d: %d failed checks", t, bad[t]);
    }

    /* 4 */
    CHECK(llmrt_cpu_mem_alloc(0) == NULL);
    CHECK(llmrt_cpu_mem_alloc(SIZE_MAX) == NULL);
    CHECK(llmrt_cpu_mem_alloc(SIZE_MAX - 63) == NULL);
    CHECK(llmrt_cpu_mem_alloc(SIZE_MAX / 2) == NULL);
    llmrt_cpu_mem_free(NULL);
    return test_summary("test_cpu_memory");
}
