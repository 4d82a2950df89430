/* The CPU attention (host/backend/cpu/attention_cpu.h) on every instruction-set path this
 * machine can run, forced one at a time: against an fp64 reference over irregular shapes (odd
 * lengths, chunk and block boundaries, GQA ratios 1/3/4, head_dim 64/128 and odd ones, paged
 * blocks in shuffled order, prompt chunks that start mid-sequence, decode tokens), and batch
 * invariance: each token's output is bit-identical whether it is computed in the full mixed
 * batch, alone, in other prompt chunkings, or with another number of threads. Also under a
 * sliding window (a token at p sees (p - W, p]), with the blocks below every query's window
 * filled with NaN: a kernel that read them would fail the reference. All of it again with the
 * cache in int8 and fp8 e4m3 (format/kv_quant.h): the reference then runs on the values the
 * codes stand for (so the kernels' dequantisation and paging are checked at fp32 tolerance), and
 * those values are checked against the unquantised ones within the type's rounding bound. And in
 * bf16: every stored value is checked against round-to-nearest-even computed in fp64, and the
 * output must be bit-identical to that of an fp32 cache holding the rounded values (the widening
 * is exact, so only the memory read differs). */
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/attention_cpu.h"
#include "backend/cpu/cpu_kernels.h"
#include "core/thread_pool.h"
#include "format/kv_quant.h"
#include "test_util.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static int32_t  g_window; /* the sliding window of the current test_shape (0: none) */
static llmrt_dtype g_kv = LLMRT_DTYPE_F32; /* the cache dtype of the current test_shape */

static int32_t lo_of(int32_t p) {
    return g_window > 0 && p >= g_window ? p - g_window + 1 : 0;
}
static float    frand(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) / 8388608.0 - 1.0);
}
static int irand(int n) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (int)((rng >> 33) % (uint64_t)n);
}

/* A batch: the sequences' caches are filled up to each one's max position; tokens list the
 * queries (seq, position) in batch order. */
#define MAX_SEQS 6
typedef struct setup {
    int32_t  Hq, Hkv, hd, bs, n_seqs, max_blocks;
    int32_t  seq_len[MAX_SEQS]; /* positions held in the cache per sequence */
    int32_t *tables;            /* [n_seqs, max_blocks] shuffled block ids  */
    float   *k, *v;             /* [n_blocks * bs, Hkv, hd]                 */
    uint8_t *k8, *v8;           /* 8-bit or bf16 g_kv: k, v as such pools (format/kv_quant.h);
                                 * k, v then hold the values the codes stand for */
    float   *q;                 /* [n_seqs, max_len, Hq, hd]: q of (seq, position) */
    int32_t  max_len;
} setup;

static void setup_make(setup *s, int32_t Hq, int32_t Hkv, int32_t hd, int32_t bs, int n_seqs,
                       const int32_t *lens) {
    memset(s, 0, sizeof *s);
    s->Hq = Hq, s->Hkv = Hkv, s->hd = hd, s->bs = bs, s->n_seqs = n_seqs;
    for (int i = 0; i < n_seqs; i++) {
        s->seq_len[i] = lens[i];
        if (lens[i] > s->max_len) s->max_len = lens[i];
    }
    s->max_blocks    = (s->max_len + bs - 1) / bs;
    int32_t n_blocks = n_seqs * s->max_blocks;
    int32_t *perm    = malloc((size_t)n_blocks * sizeof *perm);
    for (int i = 0; i < n_blocks; i++) perm[i] = i;
    for (int i = n_blocks - 1; i > 0; i--) {
        int j = irand(i + 1), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    s->tables = perm;
    int64_t kv_n = (int64_t)n_blocks * bs * Hkv * hd;
    s->k = malloc((size_t)kv_n * sizeof(float));
    s->v = malloc((size_t)kv_n * sizeof(float));
    /* scores of a few units after scaling, so the softmax is neither flat nor one-hot */
    for (int64_t i = 0; i < kv_n; i++) s->k[i] = 2.0f * frand(), s->v[i] = frand();
    int64_t q_n = (int64_t)n_seqs * s->max_len * Hq * hd;
    s->q = malloc((size_t)q_n * sizeof(float));
    for (int64_t i = 0; i < q_n; i++) s->q[i] = 2.0f * frand();
}

static void setup_free(setup *s) {
    free(s->tables);
    free(s->k);
    free(s->v);
    free(s->k8);
    free(s->v8);
    free(s->q);
}

static const float *q_of(const setup *s, int seq, int32_t pos) {
    return s->q + ((int64_t)seq * s->max_len + pos) * s->Hq * s->hd;
}

static const float *kv_of(const setup *s, const float *base, int seq, int32_t pos, int h) {
    int64_t slot = (int64_t)s->tables[seq * s->max_blocks + pos / s->bs] * s->bs + pos % s->bs;
    return base + (slot * s->Hkv + h) * s->hd;
}

/* An F32 or BF16 K pool ([slots, Hkv, hd] rows of es-byte elements) in the layout the kernels
 * read, d-major per block and head (llmrt_cpu_k_index). */
static void *k_dmajor(const setup *s, const void *rows, size_t es) {
    int64_t        n_slots = (int64_t)s->n_seqs * s->max_blocks * s->bs;
    uint8_t       *d       = malloc((size_t)(n_slots * s->Hkv * s->hd) * es);
    const uint8_t *r       = rows;
    for (int64_t sl = 0; sl < n_slots; sl++)
        for (int h = 0; h < s->Hkv; h++)
            for (int i = 0; i < s->hd; i++)
                memcpy(d + llmrt_cpu_k_index(sl, h, i, s->Hkv, s->hd, s->bs) * (int64_t)es,
                       r + ((sl * s->Hkv + h) * s->hd + i) * (int64_t)es, es);
    return d;
}

/* out [T, Hq, hd] for the queries (seqs[i], pos[i]) with the given kernel and pool */
static void run(const setup *s, llmrt_cpu_attn *a, llmrt_thread_pool *pool, int T,
                const int32_t *seqs, const int32_t *pos, float *out) {
    int64_t w = (int64_t)s->Hq * s->hd;
    float  *q = malloc((size_t)(T * w) * sizeof(float));
    for (int t = 0; t < T; t++) memcpy(q + t * w, q_of(s, seqs[t], pos[t]), (size_t)w * sizeof(float));
    llmrt_error err = {0};
    CHECK(llmrt_cpu_attn_reserve(a, T, s->hd, &err) == LLMRT_OK);
    llmrt_cpu_attn_batch b = {.positions = pos, .seq_of = seqs, .block_tables = s->tables,
                              .n_tokens = T, .max_blocks = s->max_blocks};
    for (int64_t i = 0; i < T * w; i++) out[i] = NAN;
    const void *k = s->k8 ? (const void *)s->k8 : s->k, *v = s->v8 ? (const void *)s->v8 : s->v;
    void       *kd = NULL;
    if (g_kv == LLMRT_DTYPE_F32 || g_kv == LLMRT_DTYPE_BF16)
        k = kd = k_dmajor(s, k, g_kv == LLMRT_DTYPE_F32 ? 4 : 2);
    CHECK(llmrt_cpu_attention(a, pool, out, q, k, v, g_kv, s->Hq, s->Hkv, s->hd, s->bs,
                              (float)(1.0 / sqrt((double)s->hd)), g_window, &b) == LLMRT_OK);
    free(kd);
    free(q);
}

static double check_ref(const setup *s, int T, const int32_t *seqs, const int32_t *pos,
                        const float *out) {
    double worst = 0, scale = 1.0 / sqrt((double)s->hd);
    int    G     = s->Hq / s->Hkv;
    double *sc   = malloc((size_t)s->max_len * sizeof(double));
    for (int t = 0; t < T; t++)
        for (int h = 0; h < s->Hq; h++) {
            const float *qv = q_of(s, seqs[t], pos[t]) + h * s->hd;
            double       mx = -INFINITY, sum = 0;
            for (int32_t p = lo_of(pos[t]); p <= pos[t]; p++) {
                const float *kv = kv_of(s, s->k, seqs[t], p, h / G);
                double       d  = 0;
                for (int i = 0; i < s->hd; i++) d += (double)qv[i] * kv[i];
                sc[p] = d * scale;
                if (sc[p] > mx) mx = sc[p];
            }
            for (int32_t p = lo_of(pos[t]); p <= pos[t]; p++) sum += (sc[p] = exp(sc[p] - mx));
            for (int i = 0; i < s->hd; i++) {
                double o = 0;
                for (int32_t p = lo_of(pos[t]); p <= pos[t]; p++)
                    o += sc[p] * kv_of(s, s->v, seqs[t], p, h / G)[i];
                double e = fabs(o / sum - out[((int64_t)t * s->Hq + h) * s->hd + i]);
                if (!(e <= worst)) worst = e; /* NaN sticks */
            }
        }
    free(sc);
    return worst;
}

/* The cache as 8-bit pools (g_kv); k and v become the values the codes stand for, after a
 * check that they are within the rounding bound of the type: int8 half a step of absmax / 127;
 * e4m3 2^-4 relative (3 mantissa bits, round to nearest), or half a subnormal step (2^-10 of
 * the scale) near 0. Poisoned (NaN) slots must read back as NaN. */
static void quantise_cache(setup *s) {
    int64_t          n_slots = (int64_t)s->n_seqs * s->max_blocks * s->bs;
    int64_t          w       = (int64_t)s->Hkv * s->hd;
    llmrt_kv8_layout l       = {s->bs, s->Hkv, s->hd};
    double           worst   = 0;
    int              nan_ok  = 1;
    float           *src[2]  = {s->k, s->v};
    for (int kv = 0; kv < 2; kv++) {
        uint8_t *q = malloc((size_t)(n_slots / s->bs * llmrt_kv8_block_bytes(&l)));
        for (int64_t sl = 0; sl < n_slots; sl++) {
            float *x = src[kv] + sl * w;
            for (int64_t e = 3; e < w; e += 7) x[e] *= 1e-5f; /* tiny values: fp8 subnormals */
            llmrt_kv_quantise_token(q, &l, sl, x, g_kv);
            for (int h = 0; h < s->Hkv; h++) {
                float  deq[256], sc = llmrt_kv8_scale(q, &l, sl, h);
                float *xh = x + (int64_t)h * s->hd;
                llmrt_kv_dequantise_head(deq, q + llmrt_kv8_codes_off(&l, sl, h), sc, s->hd, g_kv);
                for (int i = 0; i < s->hd; i++) {
                    if (xh[i] != xh[i]) {
                        nan_ok &= deq[i] != deq[i];
                        continue;
                    }
                    double bound = g_kv == LLMRT_DTYPE_I8 ? 0.5 * sc
                                                          : fmax(fabs(xh[i]) / 16, sc * 0x1p-10);
                    double e = fabs((double)deq[i] - xh[i]) / (bound * (1 + 1e-4) + 1e-30);
                    if (!(e <= worst)) worst = e;
                    xh[i] = deq[i];
                }
            }
        }
        if (kv == 0) s->k8 = q;
        else s->v8 = q;
    }
    CHECK_MSG(worst <= 1.0, "%s quantisation error %g x the rounding bound",
              llmrt_dtype_name(g_kv), worst);
    CHECK_MSG(nan_ok, "%s: a NaN written to the cache did not read back as NaN",
              llmrt_dtype_name(g_kv));
}

/* The bf16 value nearest x, ties to the even code, found in fp64 from the two bf16 values around
 * x (truncation and one step away from zero), independently of the bit trick of core/half.h. */
static uint16_t bf16_nearest_even(float x) {
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    uint16_t lo = (uint16_t)(b >> 16), hi = (uint16_t)(lo + 1);
    uint32_t lb = (uint32_t)lo << 16, hb = (uint32_t)hi << 16;
    float    lf, hf;
    memcpy(&lf, &lb, sizeof lf);
    memcpy(&hf, &hb, sizeof hf);
    double dl = fabs((double)x - lf), dh = fabs((double)hf - x);
    return dl < dh ? lo : dh < dl ? hi : (lo & 1) ? hi : lo;
}

/* The cache as bf16 pools (g_kv BF16, [slots, Hkv, hd] of uint16 as the engine keeps V; run()
 * gives the kernels K d-major); k and v
 * become the rounded values. Every code must be the fp64 nearest-even one; NaN stays NaN. */
static void bf16_cache(setup *s) {
    int64_t n      = (int64_t)s->n_seqs * s->max_blocks * s->bs * s->Hkv * s->hd;
    int     ok     = 1;
    float  *src[2] = {s->k, s->v};
    for (int kv = 0; kv < 2; kv++) {
        uint16_t *c = malloc((size_t)n * sizeof *c);
        for (int64_t i = 3; i < n; i += 11) src[kv][i] *= 1e-39f; /* fp32 subnormals */
        llmrt_kv_store_bf16(c, src[kv], n);
        for (int64_t i = 0; i < n; i++) {
            float    x = src[kv][i];
            uint32_t bits = (uint32_t)c[i] << 16;
            if (x != x) {
                ok &= (c[i] & 0x7f80) == 0x7f80 && (c[i] & 0x7f) != 0;
                continue;
            }
            ok &= c[i] == bf16_nearest_even(x);
            memcpy(&src[kv][i], &bits, sizeof bits);
        }
        if (kv == 0) s->k8 = (uint8_t *)c;
        else s->v8 = (uint8_t *)c;
    }
    CHECK_MSG(ok, "bf16 cache: a stored value is not the nearest-even bf16 (or a NaN was lost)");
}

static int same_bits(const float *a, const float *b, int64_t n) {
    return memcmp(a, b, (size_t)n * sizeof(float)) == 0;
}

static void test_shape_w(const char *isa, int32_t Hq, int32_t Hkv, int32_t hd, int32_t bs,
                         int32_t window) {
    /* seq 0: a prompt of 37 tokens from position 0; seq 1: a chunk of 23 tokens starting at
     * position 50 (positions 0..49 already cached); seq 2: one decode token at position 100;
     * seq 3: a one-token prompt; seq 4: a 16-token chunk on a chunk boundary (32..47);
     * seq 5: a decode token at position 16 (first of a chunk). */
    static const int32_t lens[MAX_SEQS]   = {37, 73, 101, 1, 48, 17};
    static const int32_t first[MAX_SEQS]  = {0, 50, 100, 0, 32, 16};
    setup                s;
    setup_make(&s, Hq, Hkv, hd, bs, MAX_SEQS, lens);
    int32_t seqs[256], pos[256], T = 0;
    for (int q = 0; q < MAX_SEQS; q++)
        for (int32_t p = first[q]; p < lens[q]; p++) seqs[T] = q, pos[T] = p, T++;
    g_window = window;
    for (int q = 0; q < MAX_SEQS && window > 0; q++) /* freed blocks: poison */
        for (int32_t blk = 0; (blk + 1) * bs <= lo_of(first[q]); blk++)
            for (int32_t p = blk * bs; p < (blk + 1) * bs; p++)
                for (int h = 0; h < Hkv; h++)
                    for (int i = 0; i < hd; i++) {
                        ((float *)kv_of(&s, s.k, q, p, h))[i] = NAN;
                        ((float *)kv_of(&s, s.v, q, p, h))[i] = NAN;
                    }
    /* the slots after each sequence's last position (the rest of its last block): NaN. The
     * d-major kernels read them as lanes of the last chunk; they must drop them by mask. */
    for (int q = 0; q < MAX_SEQS; q++)
        for (int32_t p = lens[q]; p < (lens[q] + bs - 1) / bs * bs; p++)
            for (int h = 0; h < Hkv; h++)
                for (int i = 0; i < hd; i++) {
                    ((float *)kv_of(&s, s.k, q, p, h))[i] = NAN;
                    ((float *)kv_of(&s, s.v, q, p, h))[i] = NAN;
                }
    if (g_kv == LLMRT_DTYPE_BF16) bf16_cache(&s);
    else if (g_kv != LLMRT_DTYPE_F32) quantise_cache(&s);
    int64_t w = (int64_t)Hq * hd;
    float  *full = malloc((size_t)(T * w) * sizeof(float)), *part = malloc((size_t)(T * w) * sizeof(float));

    llmrt_cpu_attn     a;
    llmrt_error        err = {0};
    llmrt_thread_pool *pool1 = llmrt_thread_pool_create(1), *pool3 = llmrt_thread_pool_create(3);
    CHECK(llmrt_cpu_attn_init(&a, isa, 3, &err) == LLMRT_OK);

    run(&s, &a, pool3, T, seqs, pos, full);
    double e = check_ref(&s, T, seqs, pos, full);
    CHECK_MSG(e < 2e-5, "%s kv %s Hq %d Hkv %d hd %d bs %d window %d: max |err| %g vs fp64",
              isa, llmrt_dtype_name(g_kv), Hq, Hkv, hd, bs, window, e);

    if (g_kv == LLMRT_DTYPE_BF16) { /* an fp32 cache of the same values: the same bits */
        uint8_t *k8 = s.k8, *v8 = s.v8;
        s.k8 = s.v8 = NULL, g_kv = LLMRT_DTYPE_F32;
        run(&s, &a, pool3, T, seqs, pos, part);
        s.k8 = k8, s.v8 = v8, g_kv = LLMRT_DTYPE_BF16;
        CHECK_MSG(same_bits(full, part, T * w), "%s Hq %d hd %d bs %d window %d: the bf16 cache "
                  "differs from an fp32 cache of the same values", isa, Hq, hd, bs, window);
    }

    /* one thread: the same bits */
    run(&s, &a, pool1, T, seqs, pos, part);
    CHECK_MSG(same_bits(full, part, T * w), "%s hd %d: 1 thread differs from 3", isa, hd);

    /* every token alone (a decode step of that sequence) */
    int alone_ok = 1;
    for (int t = 0; t < T; t++) {
        run(&s, &a, pool3, 1, seqs + t, pos + t, part);
        alone_ok &= same_bits(full + t * w, part, w);
    }
    CHECK_MSG(alone_ok, "%s Hq %d Hkv %d hd %d: a token alone differs from the batch", isa, Hq, Hkv, hd);

    /* the batch cut into irregular chunks (prompt chunks of 1..20 tokens, sequences split) */
    int chunk_ok = 1;
    for (int t0 = 0; t0 < T;) {
        int n = 1 + irand(20);
        if (t0 + n > T) n = T - t0;
        run(&s, &a, pool3, n, seqs + t0, pos + t0, part);
        chunk_ok &= same_bits(full + t0 * w, part, n * w);
        t0 += n;
    }
    CHECK_MSG(chunk_ok, "%s Hq %d Hkv %d hd %d: chunked prefill differs from the batch", isa, Hq, Hkv, hd);

    /* the sequences in reverse batch order (other neighbours, other tiles) */
    int32_t rs[256], rp[256], n_r = 0;
    for (int q = MAX_SEQS - 1; q >= 0; q--)
        for (int32_t p = first[q]; p < lens[q]; p++) rs[n_r] = q, rp[n_r] = p, n_r++;
    run(&s, &a, pool3, n_r, rs, rp, part);
    int rev_ok = 1;
    for (int t = 0; t < n_r; t++) {
        int u = 0;
        while (!(seqs[u] == rs[t] && pos[u] == rp[t])) u++;
        rev_ok &= same_bits(full + u * w, part + t * w, w);
    }
    CHECK_MSG(rev_ok, "%s hd %d: reordered batch differs", isa, hd);

    llmrt_cpu_attn_free(&a);
    llmrt_thread_pool_destroy(pool1);
    llmrt_thread_pool_destroy(pool3);
    free(full);
    free(part);
    setup_free(&s);
    g_window = 0;
}

static void test_shape(const char *isa, int32_t Hq, int32_t Hkv, int32_t hd, int32_t bs) {
    test_shape_w(isa, Hq, Hkv, hd, bs, 0);
}

int main(void) {
    static const char *isas[] = {"avx512", "avx2", "generic"};
    static const llmrt_dtype kvs[] = {LLMRT_DTYPE_F32, LLMRT_DTYPE_I8, LLMRT_DTYPE_F8_E4M3,
                                      LLMRT_DTYPE_BF16};
    for (size_t k = 0; k < sizeof kvs / sizeof kvs[0]; k++)
    for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
        g_kv = kvs[k];
        /* run only the paths this CPU has (select falls back to generic for missing ones) */
        if (strcmp(llmrt_cpu_kernels_select(isas[i]).isa, isas[i]) != 0) {
            printf("%s: not supported here, skipped\n", isas[i]);
            continue;
        }
        test_shape(isas[i], 4, 4, 64, 16);   /* MHA                                     */
        test_shape(isas[i], 9, 3, 64, 16);   /* SmolLM2: GQA 3                           */
        test_shape(isas[i], 8, 2, 128, 16);  /* GQA 4, hd 128                            */
        test_shape(isas[i], 6, 2, 128, 7);   /* blocks that straddle the 16-position chunks */
        test_shape(isas[i], 3, 1, 36, 5);    /* hd with a vector tail, odd block size   */
        test_shape(isas[i], 48, 1, 16, 16);  /* one token fills a tile (G = MAX_ROWS)  */
        test_shape(isas[i], 100, 1, 16, 16); /* a group wider than a tile: split by heads */
        /* sliding windows: smaller than a chunk, across chunks, not a multiple of anything,
         * wider than some sequences */
        test_shape_w(isas[i], 4, 2, 64, 4, 8);
        test_shape_w(isas[i], 9, 3, 64, 16, 20);
        test_shape_w(isas[i], 6, 2, 36, 5, 33);
        test_shape_w(isas[i], 8, 2, 128, 7, 1);
    }
    return test_summary("test_cpu_attention");
}
