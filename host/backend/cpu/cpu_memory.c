/* Chunked, huge-page memory for the CPU backend (cpu_memory.h). */
#include "cpu_memory.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

#define HUGE_PAGE   ((size_t)2 << 20)
#define CHUNK_BYTES ((size_t)32 << 20)
#define OWN_MIN     (CHUNK_BYTES / 4) /* blocks this large get their own mapping */
#define HEADER      ((size_t)64)      /* before every block; keeps the 64-byte alignment */

typedef struct chunk {
    unsigned char *base; /* CHUNK_BYTES, 2 MiB aligned */
    size_t         used; /* bytes handed out, headers included */
    size_t         live; /* blocks not yet freed */
} chunk;

typedef struct header {
    chunk *owner; /* NULL: the block has its own allocation, which starts at base */
    void  *base;
} header;
_Static_assert(sizeof(header) <= HEADER, "block header larger than its slot");

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static chunk          *current; /* the chunk new small blocks are carved from */

/* bytes rounded up to whole 2 MiB pages, 2 MiB aligned and marked for huge pages; the advice is
 * only a hint (THP "never", or a kernel without it: 4 KiB pages, same results) */
static void *alloc_huge(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, HUGE_PAGE, bytes) != 0) return NULL;
    (void)madvise(p, bytes, MADV_HUGEPAGE);
    return p;
}

static void *alloc_own(size_t bytes) {
    size_t total = HEADER + bytes;
    void  *base  = NULL;
    if (!UNDER_ASAN && total >= HUGE_PAGE) {
        base = alloc_huge((total + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE);
    } else if (posix_memalign(&base, HEADER, total) != 0) {
        base = NULL;
    }
    if (!base) return NULL;
    header *h = base;
    *h        = (header){.owner = NULL, .base = base};
    return (unsigned char *)base + HEADER;
}

void *llmrt_cpu_mem_alloc(size_t bytes) {
    if (bytes == 0 || bytes > SIZE_MAX / 2 - HEADER - HUGE_PAGE) return NULL;
    if (UNDER_ASAN || bytes >= OWN_MIN) return alloc_own(bytes);
    size_t need = (HEADER + bytes + 63) & ~(size_t)63;
    pthread_mutex_lock(&lock);
    if (!current || current->used + need > CHUNK_BYTES) {
        chunk *c = malloc(sizeof *c);
        if (c) *c = (chunk){.base = alloc_huge(CHUNK_BYTES)};
        if (!c || !c->base) {
            free(c);
            pthread_mutex_unlock(&lock);
            return NULL;
        }
        /* a full chunk left behind still has live blocks (one whose last block went was
         * already freed and current reset): llmrt_cpu_mem_free frees it with its last block */
        current = c;
    }
    header *h = (header *)(current->base + current->used);
    *h        = (header){.owner = current, .base = h};
    current->used += need;
    current->live++;
    pthread_mutex_unlock(&lock);
    return (unsigned char *)h + HEADER;
}

bool llmrt_cpu_mem_chunked(void) {
    return !UNDER_ASAN;
}

void llmrt_cpu_mem_free(void *p) {
    if (!p) return;
    header *h = (header *)((unsigned char *)p - HEADER);
    chunk  *c = h->owner;
    if (!c) {
        free(h->base);
        return;
    }
    pthread_mutex_lock(&lock);
    bool last = --c->live == 0;
    if (last && c == current) current = NULL;
    pthread_mutex_unlock(&lock);
    if (last) {
        free(c->base);
        free(c);
    }
}

void llmrt_cpu_mem_page_out(const void *p, size_t bytes) {
#ifdef MADV_PAGEOUT
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || !p || bytes == 0) return;
    uintptr_t a = ((uintptr_t)p + (uintptr_t)page - 1) / (uintptr_t)page * (uintptr_t)page;
    uintptr_t b = ((uintptr_t)p + bytes) / (uintptr_t)page * (uintptr_t)page;
    /* advice only: an error changes nothing */
    if (b > a) (void)madvise((void *)a, b - a, MADV_PAGEOUT);
#else
    (void)p, (void)bytes;
#endif
}
