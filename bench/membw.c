/* Memory bandwidth probes: the roofline reference for CPU figures. Each reads and/or writes
 * buffers far larger than the last-level cache with the given number of threads and reports the
 * best of several repetitions in GB/s (1e9 bytes/s).
 *
 * The reference (BENCH_MEMBW_READ) is meant to measure what the hardware gives, so that a
 * kernel's "% of roofline" does not flatter it: full-width loads (AVX-512, else AVX2) into 8
 * independent accumulators per thread, threads started once and released together by a
 * barrier, pages touched before timing. The old probe (8 scalar float
 * sums, a new thread per repetition, BENCH_MEMBW_READ_SCALAR) read 12-17 % less on Zen 4. A
 * copy with non-temporal stores and a STREAM triad (a = b + s c, non-temporal stores, STREAM's
 * byte count: 3 arrays) are second methods printed next to it by `llmrt bench membw`. */
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "bench.h"

typedef struct membw_shared {
    pthread_barrier_t start, stop;
    pthread_mutex_t   gate;   /* held while threads start; workers pass it before the barriers */
    int               cancel; /* set (under gate) when a thread could not be started            */
    int               mode, reps, n_threads, isa; /* isa: 2 avx512, 1 avx2, 0 scalar */
    float            *a, *b, *c;                  /* a: read / copy source; b, c: destinations */
    size_t            n;                          /* floats per array, a multiple of 128 * threads */
} membw_shared;

typedef struct membw_thread {
    membw_shared *sh;
    int           index;
    double        sink;
} membw_thread;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* --- kernels over [p, p + n) floats, n a multiple of 128, 64-byte aligned ---------------------- */

/* One stream, 8 accumulators: 512 bytes of independent loads per iteration keep the add
 * latency out of the way. Splitting a thread's slice into 2-16 concurrent streams measured no
 * better on Zen 4 (median of 12 interleaved runs: 1x8 12.9 GB/s, 4 streams x 2 10.3). */
#define READ8(LOAD, ADD, W)                                                                        \
    do {                                                                                           \
        a0 = ADD(a0, LOAD(p + i)), a1 = ADD(a1, LOAD(p + i + (W)));                               \
        a2 = ADD(a2, LOAD(p + i + 2 * (W))), a3 = ADD(a3, LOAD(p + i + 3 * (W)));                 \
        a4 = ADD(a4, LOAD(p + i + 4 * (W))), a5 = ADD(a5, LOAD(p + i + 5 * (W)));                 \
        a6 = ADD(a6, LOAD(p + i + 6 * (W))), a7 = ADD(a7, LOAD(p + i + 7 * (W)));                 \
    } while (0)

__attribute__((target("avx512f"))) static double read_avx512(const float *p, size_t n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (size_t i = 0; i < n; i += 128) READ8(_mm512_load_ps, _mm512_add_ps, 16);
    a0 = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
    a4 = _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7));
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a4));
}

__attribute__((target("avx2"))) static double read_avx2(const float *p, size_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (size_t i = 0; i < n; i += 64) READ8(_mm256_load_ps, _mm256_add_ps, 8);
    a0 = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
    a4 = _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7));
    float out[8];
    _mm256_storeu_ps(out, _mm256_add_ps(a0, a4));
    return (double)out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
}

/* the old probe: 8 scalar float sums (GCC does not vectorise them without -ffast-math) */
static double read_scalar(const float *p, size_t n) {
    float s[8] = {0};
    for (size_t i = 0; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) s[k] += p[i + k];
    double t = 0;
    for (int k = 0; k < 8; k++) t += s[k];
    return t;
}

/* dst = src (mode copy) or dst = src + 3 * src2 (triad) with non-temporal stores: the
 * destination is not read first (no write-allocate traffic) and does not evict the source */
__attribute__((target("avx512f"))) static void stream_avx512(float *dst, const float *src,
                                                             const float *src2, size_t n) {
    __m512 s = _mm512_set1_ps(3.0f);
    for (size_t i = 0; i < n; i += 32) {
        __m512 x0 = _mm512_load_ps(src + i), x1 = _mm512_load_ps(src + i + 16);
        if (src2) {
            x0 = _mm512_fmadd_ps(s, _mm512_load_ps(src2 + i), x0);
            x1 = _mm512_fmadd_ps(s, _mm512_load_ps(src2 + i + 16), x1);
        }
        _mm512_stream_ps(dst + i, x0);
        _mm512_stream_ps(dst + i + 16, x1);
    }
    _mm_sfence();
}

__attribute__((target("avx2,fma"))) static void stream_avx2(float *dst, const float *src,
                                                            const float *src2, size_t n) {
    __m256 s = _mm256_set1_ps(3.0f);
    for (size_t i = 0; i < n; i += 16) {
        __m256 x0 = _mm256_load_ps(src + i), x1 = _mm256_load_ps(src + i + 8);
        if (src2) {
            x0 = _mm256_fmadd_ps(s, _mm256_load_ps(src2 + i), x0);
            x1 = _mm256_fmadd_ps(s, _mm256_load_ps(src2 + i + 8), x1);
        }
        _mm256_stream_ps(dst + i, x0);
        _mm256_stream_ps(dst + i + 8, x1);
    }
    _mm_sfence();
}

static void stream_scalar(float *dst, const float *src, const float *src2, size_t n) {
    if (!src2) {
        memcpy(dst, src, n * sizeof(float));
        return;
    }
    for (size_t i = 0; i < n; i++) dst[i] = src[i] + 3.0f * src2[i];
}

/* --- threads ----------------------------------------------------------------------------------- */

static void run_part(membw_thread *th) {
    membw_shared *sh    = th->sh;
    size_t        chunk = sh->n / (size_t)sh->n_threads, off = (size_t)th->index * chunk;
    const float  *a = sh->a + off;
    switch (sh->mode) {
    case BENCH_MEMBW_READ:
        th->sink += sh->isa == 2 ? read_avx512(a, chunk)
                    : sh->isa == 1 ? read_avx2(a, chunk)
                                   : read_scalar(a, chunk);
        break;
    case BENCH_MEMBW_READ_SCALAR: th->sink += read_scalar(a, chunk); break;
    default: {
        float       *dst  = sh->b + off;
        const float *src2 = sh->mode == BENCH_MEMBW_TRIAD ? sh->c + off : NULL;
        if (sh->isa == 2) stream_avx512(dst, a, src2, chunk);
        else if (sh->isa == 1) stream_avx2(dst, a, src2, chunk);
        else stream_scalar(dst, a, src2, chunk);
    }
    }
}

static void *membw_worker(void *p) {
    membw_thread *th = p;
    pthread_mutex_lock(&th->sh->gate);
    int cancel = th->sh->cancel;
    pthread_mutex_unlock(&th->sh->gate);
    for (int r = 0; r < th->sh->reps && !cancel; r++) {
        pthread_barrier_wait(&th->sh->start);
        run_part(th);
        pthread_barrier_wait(&th->sh->stop);
    }
    return NULL;
}

/* On 2 MiB pages where the kernel gives them, as the CPU backend's weights and KV cache
 * (backend/cpu/cpu_memory.h): the reference gets every advantage the kernels get. (On Zen 3 the
 * probe read the same with 4 KiB pages; the int8 decode matmul ran ~10 % faster with 2 MiB.) */
static float *alloc_touch(size_t n) {
    const size_t page  = (size_t)2 << 20;
    size_t       bytes = (n * sizeof(float) + page - 1) / page * page;
    float       *p     = NULL;
    if (posix_memalign((void **)&p, page, bytes) != 0) return NULL;
    (void)madvise(p, bytes, MADV_HUGEPAGE); /* a hint: 4 KiB pages where THP is off */
    for (size_t i = 0; i < n; i++) p[i] = (float)(i & 1023);
    return p;
}

/* Returns the best GB/s over `reps` of the given mode with n_threads threads and about `bytes`
 * of buffers in all (split between the arrays the mode uses). Bytes counted: reads for the read
 * modes, read + write for copy, STREAM's 3 arrays for triad. 0 on allocation failure. */
double bench_membw(int n_threads, size_t bytes, int mode, int reps) {
    if (n_threads < 1) n_threads = 1;
    if (reps < 1) reps = 1;
    int    arrays = mode == BENCH_MEMBW_COPY ? 2 : mode == BENCH_MEMBW_TRIAD ? 3 : 1;
    size_t unit   = (size_t)128 * (size_t)n_threads;
    size_t n      = bytes / sizeof(float) / (size_t)arrays / unit * unit;
    if (n == 0) return 0.0;
    membw_shared sh = {.mode = mode, .reps = reps, .n_threads = n_threads, .n = n};
    __builtin_cpu_init();
    sh.isa = __builtin_cpu_supports("avx512f") ? 2
             : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1 : 0;
    sh.a = alloc_touch(n);
    if (arrays > 1) sh.b = alloc_touch(n);
    if (arrays > 2) sh.c = alloc_touch(n);
    membw_thread *th   = calloc((size_t)n_threads, sizeof *th);
    pthread_t    *tids = calloc((size_t)n_threads, sizeof *tids);
    double        best = 0.0;
    if (sh.a && (arrays < 2 || sh.b) && (arrays < 3 || sh.c) && th && tids) {
        pthread_barrier_init(&sh.start, NULL, (unsigned)n_threads);
        pthread_barrier_init(&sh.stop, NULL, (unsigned)n_threads);
        pthread_mutex_init(&sh.gate, NULL);
        pthread_mutex_lock(&sh.gate);
        int started = 1;
        for (int t = 0; t < n_threads; t++) th[t] = (membw_thread){.sh = &sh, .index = t};
        for (int t = 1; t < n_threads; t++)
            if (pthread_create(&tids[t], NULL, membw_worker, &th[t]) != 0) break;
            else started++;
        sh.cancel = started != n_threads; /* then nothing is measured (0 returned) */
        pthread_mutex_unlock(&sh.gate);
        if (!sh.cancel) {
            double traffic = (double)n * sizeof(float) * (double)arrays;
            for (int r = 0; r < reps; r++) {
                pthread_barrier_wait(&sh.start);
                double t0 = now_s();
                run_part(&th[0]);
                pthread_barrier_wait(&sh.stop);
                double gbps = traffic / (now_s() - t0) / 1e9;
                if (gbps > best) best = gbps;
            }
        }
        for (int t = 1; t < started; t++) pthread_join(tids[t], NULL);
        pthread_mutex_destroy(&sh.gate);
        pthread_barrier_destroy(&sh.start);
        pthread_barrier_destroy(&sh.stop);
    }
    free(th);
    free(tids);
    free(sh.a);
    free(sh.b);
    free(sh.c);
    return best;
}
