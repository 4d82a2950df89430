/* Token sampling. Penalties are applied in place to the few seen tokens (and undone at the end);
 * then one of three paths, chosen so that a 128k vocabulary is never fully sorted:
 *  - top-k: a size-k heap over the vocabulary, skipping 16-logit chunks that cannot enter it;
 *  - top-p without top-k: a histogram of probability mass over log-probability buckets bounds
 *    the nucleus; only the bucket where the mass crosses top_p is sorted;
 *  - neither: a normaliser pass, then an inverse-CDF scan (no scratch).
 * Full-vocabulary passes use 4-lane GCC/Clang vector extensions (SSE2 on x86-64, NEON on arm64)
 * with a polynomial exp, about 3x faster than scalar expf without ISA flags. */
#include "sampler.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct cand {
    float   l; /* logit while selecting, then the weight exp((l - lmax) / T) = p / p_max */
    int32_t id;
} cand;

typedef struct seen_entry {
    int32_t id;
    int32_t out_count; /* times generated; 0 for a prompt-only token */
} seen_entry;

struct llmrt_sampler {
    llmrt_sampling_config cfg;
    int32_t               vocab;
    uint64_t              seed;
    uint64_t              rng[4];
    bool                  penalized; /* a penalty is active: keep the seen-token map */
    /* Seen tokens (prompt ones only for the repetition penalty): dense entries plus an
     * open-addressing index holding entry + 1 (0 = empty). Sized by distinct tokens, not vocab. */
    seen_entry *seen;
    float      *saved; /* raw logits overwritten by the penalties, per entry */
    int32_t     n_seen, cap_seen;
    int32_t    *slots;
    int32_t     n_slots; /* power of two, 2 * cap_seen */
    cand       *scratch;
    int64_t     cap_scratch;
    /* logit bias (own copy); bias_saved: the logits it overwrote, restored in reverse order */
    int32_t *bias_ids;
    float   *bias, *bias_saved;
    int32_t  n_bias;
};

/* ---- Config ------------------------------------------------------------------------------ */

llmrt_sampling_config llmrt_sampling_default_config(void) {
    return (llmrt_sampling_config){.temperature = 1.0f, .top_p = 1.0f, .repetition_penalty = 1.0f,
                                   .top_k = -1};
}

#define BAD(...) llmrt_err(err, LLMRT_ERR_INVALID_ARG, __VA_ARGS__)

llmrt_status llmrt_sampling_validate(const llmrt_sampling_config *c, llmrt_error *err) {
    if (!c) return BAD("sampling config is NULL");
    /* Comparisons are written so that NaN fails them. */
    if (!(c->temperature >= 0.0f && isfinite(c->temperature)))
        return BAD("temperature must be finite and >= 0, got %g", (double)c->temperature);
    if (!(c->top_p > 0.0f && c->top_p <= 1.0f))
        return BAD("top_p must be in (0, 1], got %g", (double)c->top_p);
    if (!(c->min_p >= 0.0f && c->min_p <= 1.0f))
        return BAD("min_p must be in [0, 1], got %g", (double)c->min_p);
    if (c->top_k < -1)
        return BAD("top_k must be -1 or 0 (disabled) or >= 1, got %d", (int)c->top_k);
    if (!(c->repetition_penalty > 0.0f && isfinite(c->repetition_penalty)))
        return BAD("repetition_penalty must be finite and > 0, got %g",
                   (double)c->repetition_penalty);
    if (!(c->presence_penalty >= -2.0f && c->presence_penalty <= 2.0f))
        return BAD("presence_penalty must be in [-2, 2], got %g", (double)c->presence_penalty);
    if (!(c->frequency_penalty >= -2.0f && c->frequency_penalty <= 2.0f))
        return BAD("frequency_penalty must be in [-2, 2], got %g", (double)c->frequency_penalty);
    if (c->n_logprobs < 0 || c->n_logprobs > LLMRT_SAMPLER_MAX_LOGPROBS)
        return BAD("n_logprobs must be in [0, %d], got %d", LLMRT_SAMPLER_MAX_LOGPROBS,
                   (int)c->n_logprobs);
    if (c->n_bias < 0 || c->n_bias > LLMRT_SAMPLER_MAX_LOGIT_BIAS)
        return BAD("logit_bias: %d entries, the limit is %d", (int)c->n_bias,
                   LLMRT_SAMPLER_MAX_LOGIT_BIAS);
    if (c->n_bias > 0 && (!c->bias_ids || !c->bias))
        return BAD("logit_bias: %d entries but its ids or values are NULL", (int)c->n_bias);
    for (int32_t i = 0; i < c->n_bias; i++)
        if (!(c->bias[i] >= -100.0f && c->bias[i] <= 100.0f))
            return BAD("logit_bias[%d] (token %d) must be in [-100, 100], got %g", (int)i,
                       (int)c->bias_ids[i], (double)c->bias[i]);
    return LLMRT_OK;
}

/* ---- RNG: splitmix64 expands the seed, xoshiro256** makes the stream --------------------- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z          = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z          = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_uniform(llmrt_sampler *s) {
    uint64_t *r = s->rng, out = rotl(r[1] * 5, 7) * 9, t = r[1] << 17;
    r[2] ^= r[0], r[3] ^= r[1], r[1] ^= r[2], r[0] ^= r[3], r[2] ^= t, r[3] = rotl(r[3], 45);
    return (double)(out >> 11) * 0x1.0p-53;
}

static uint64_t derive_seed(void) {
    static atomic_uint_fast64_t counter;
    struct timespec             ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) ^
                 (atomic_fetch_add(&counter, 1) * 0xd1b54a32d192ed03ull);
    return splitmix64(&x);
}

/* ---- Seen-token map and penalties -------------------------------------------------------- */

static inline uint32_t slot_of(int32_t id, int32_t n_slots) {
    uint32_t h = (uint32_t)id * 2654435761u;
    return (h ^ (h >> 16)) & (uint32_t)(n_slots - 1);
}

/* Makes room for `need` entries, so that inserting cannot fail afterwards. */
static llmrt_status seen_reserve(llmrt_sampler *s, int32_t need, llmrt_error *err) {
    if (need <= s->cap_seen) return LLMRT_OK;
    int32_t cap = s->cap_seen ? 2 * s->cap_seen : 64;
    seen_entry *seen = realloc(s->seen, (size_t)cap * sizeof *seen);
    if (seen) s->seen = seen;
    float *saved = seen ? realloc(s->saved, (size_t)cap * sizeof *saved) : NULL;
    if (saved) s->saved = saved;
    int32_t *slots = saved ? calloc((size_t)cap * 2, sizeof *slots) : NULL;
    if (!slots) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "sampler: token map of %d", cap);
    for (int32_t e = 0; e < s->n_seen; e++) {
        uint32_t j = slot_of(s->seen[e].id, 2 * cap);
        while (slots[j]) j = (j + 1) & (uint32_t)(2 * cap - 1);
        slots[j] = e + 1;
    }
    free(s->slots);
    s->slots = slots, s->n_slots = 2 * cap, s->cap_seen = cap;
    return LLMRT_OK;
}

/* The entry of `id`, added if new (room reserved by the caller). */
static seen_entry *seen_get(llmrt_sampler *s, int32_t id) {
    uint32_t j = slot_of(id, s->n_slots);
    for (; s->slots[j]; j = (j + 1) & (uint32_t)(s->n_slots - 1))
        if (s->seen[s->slots[j] - 1].id == id) return &s->seen[s->slots[j] - 1];
    s->seen[s->n_seen] = (seen_entry){.id = id};
    s->slots[j]        = ++s->n_seen;
    return &s->seen[s->n_seen - 1];
}

/* vLLM's order: repetition, then frequency, then presence. */
static void apply_penalties(llmrt_sampler *s, float *logits) {
    const float rep = s->cfg.repetition_penalty;
    const float pres = s->cfg.presence_penalty, freq = s->cfg.frequency_penalty;
    for (int32_t i = 0; i < s->n_seen; i++) {
        const seen_entry *e = &s->seen[i];
        float             l = s->saved[i] = logits[e->id];
        if (rep != 1.0f) l = l > 0.0f ? l / rep : l * rep;
        if (e->out_count > 0) l = l - freq * (float)e->out_count - pres;
        logits[e->id] = l;
    }
}

/* ---- Vector helpers ---------------------------------------------------------------------- */

typedef float   v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

static inline v4f v4_splat(float x) {
    return (v4f){x, x, x, x};
}
static inline v4f v4_select(v4i mask, v4f a, v4f b) {
    return (v4f)(((v4i)a & mask) | ((v4i)b & ~mask));
}

/* l[i..i+4), padded with NaN past n (NaN weighs 0 and never wins a max). */
static inline v4f load4(const float *l, int64_t i, int64_t n) {
    v4f v = v4_splat(NAN);
    if (i + 4 <= n) memcpy(&v, l + i, sizeof v);
    else
        for (int64_t j = i; j < n; j++) v[j - i] = l[j];
    return v;
}

/* exp(x) for x <= 0 on every lane of VF (VI: the int32 vector of as many lanes): Cephes' expf
 * polynomial (relative error < 1e-7, exactly 1 at 0); 0 below -87 and for NaN. One body for the
 * 4-lane baseline code and the 8-lane AVX2 code, so that each lane sees the same operations
 * (no fma: neither target contracts) and the same results. */
#define DEFINE_EXP(NAME, VF, VI, ATTR)                                                             \
    ATTR static inline VF NAME(VF x) {                                                             \
        VI ok  = x > -87.0f;                                                                       \
        VF lo  = (VF){0} - 87.0f;                                                                  \
        x      = (VF)(((VI)x & ok) | ((VI)lo & ~ok));                                              \
        VI n   = __builtin_convertvector(x * 1.44269504f - 0.5f, VI);                              \
        VF fn  = __builtin_convertvector(n, VF);                                                   \
        VF r   = x - fn * 0.693359375f + fn * 2.12194440e-4f;                                      \
        VF p   = r * 1.9875691500e-4f + 1.3981999507e-3f;                                          \
        p      = p * r + 8.3334519073e-3f;                                                         \
        p      = p * r + 4.1665795894e-2f;                                                         \
        p      = p * r + 1.6666665459e-1f;                                                         \
        p      = p * r + 5.0000001201e-1f;                                                         \
        p      = p * r * r + r + 1.0f;                                                             \
        return (VF)((VI)(p * (VF)((n + 127) << 23)) & ok);                                         \
    }
DEFINE_EXP(exp4, v4f, v4i, )

/* Weights exp((l - lmax) * inv_t) of l[i..i+4), those below min_w zeroed. */
static inline v4f weights4(const float *l, int64_t i, int64_t n, float lmax, float inv_t,
                           float min_w) {
    v4f w = exp4((load4(l, i, n) - lmax) * inv_t);
    return (v4f)((v4i)w & (w >= min_w));
}

/* Sum of the weights of one block of 64 logits: vector adds in a fixed order, then one double
 * add per block, so the CDF scan can repeat the normaliser's additions exactly. */
#define BLOCK 64
static double block_sum(const float *l, int64_t i, int64_t n, float lmax, float inv_t,
                        float min_w) {
    v4f acc = v4_splat(0.0f);
    for (int64_t j = i; j < i + BLOCK && j < n; j += 4) acc += weights4(l, j, n, lmax, inv_t, min_w);
    return (double)acc[0] + acc[1] + acc[2] + acc[3];
}

/* NAME(l, i, ...): block_sum's results for the 4 whole blocks from i, LANES weights at a time
 * (VF / VI: the vectors of LANES floats / int32s; EXP: exp4's body at that width); each block's
 * 4-lane accumulator takes the weights' 4-lane quarters in order, as block_sum adds them. */
#define BLOCK_SUMS4_FULL(NAME, VF, VI, LANES, EXP, ATTR)                                           \
    ATTR static void NAME(const float *l, int64_t i, float lmax, float inv_t, float min_w,         \
                          double bs[4]) {                                                          \
        v4f acc[4] = {v4_splat(0.0f), v4_splat(0.0f), v4_splat(0.0f), v4_splat(0.0f)};            \
        for (int64_t j = 0; j < BLOCK; j += LANES)                                                 \
            _Pragma("GCC unroll 4") for (int b = 0; b < 4; b++) {                                  \
                VF v;                                                                              \
                memcpy(&v, l + i + b * BLOCK + j, sizeof v);                                       \
                VF w = EXP((v - lmax) * inv_t);                                                    \
                w    = (VF)((VI)w & (w >= min_w));                                                 \
                for (int q = 0; q < LANES; q += 4)                                                 \
                    acc[b] += (v4f){w[q], w[q + 1], w[q + 2], w[q + 3]};                           \
            }                                                                                      \
        for (int b = 0; b < 4; b++)                                                                \
            bs[b] = (double)acc[b][0] + acc[b][1] + acc[b][2] + acc[b][3];                         \
    }
BLOCK_SUMS4_FULL(block_sums4_base, v4f, v4i, 4, exp4, )

/* ---- AVX2 variants -------------------------------------------------------------------------
 * The vocabulary-wide passes (the normaliser's block sums, argmax) 8 lanes at a time where the
 * CPU has AVX2 (checked at run time; the library is built for baseline x86-64): the same
 * per-element operations (exp8 is exp4's body) and, per block, the same 4-lane additions in the
 * same order (each 8-lane weight vector is added as its two halves), so the same results. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SAMPLER_AVX2 __attribute__((target("avx2")))
typedef float   v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
DEFINE_EXP(exp8, v8f, v8i, SAMPLER_AVX2)

BLOCK_SUMS4_FULL(block_sums4_avx2, v8f, v8i, 8, exp8, SAMPLER_AVX2)

/* the running maxima of argmax over l[0 .. n - n % 32), 8 lanes x 4 */
SAMPLER_AVX2 static float max_avx2(const float *l, int64_t n) {
    v8f m[4];
    for (int c = 0; c < 4; c++) m[c] = (v8f){0} - INFINITY;
    for (int64_t i = 0; i + 32 <= n; i += 32)
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            v8f v;
            memcpy(&v, l + i + 8 * c, sizeof v);
            v8i gt = v > m[c];
            m[c]   = (v8f)(((v8i)v & gt) | ((v8i)m[c] & ~gt));
        }
    float best = -INFINITY;
    for (int c = 0; c < 4; c++)
        for (int k = 0; k < 8; k++) best = m[c][k] > best ? m[c][k] : best;
    return best;
}

static bool avx2_off; /* llmrt_sampler_use_avx2(false): tests compare the two paths */

static bool have_avx2(void) {
    return !avx2_off && __builtin_cpu_supports("avx2");
}

bool llmrt_sampler_use_avx2(bool on) {
    avx2_off = !on;
    return on && __builtin_cpu_supports("avx2");
}
#else
bool llmrt_sampler_use_avx2(bool on) {
    (void)on;
    return false;
}
#endif

/* bs[b] = block_sum(l, i + b * BLOCK, ...) for the 4 blocks from i (0 for a block at or past
 * n), with the same additions: one block's 16 vector adds form a chain of dependent adds, and
 * interleaving 4 blocks' chains (whole blocks in range: no padding checks), with argmax's 4
 * running maxima, took a greedy sample with its logprob from ~170 to ~112 us on SmolLM2's 49k
 * logits (Ice Lake, baseline code; ~75-92 us with the AVX2 variants). */
static void block_sums4(const float *l, int64_t i, int64_t n, float lmax, float inv_t,
                        float min_w, double bs[4]) {
    if (i + 4 * BLOCK > n) {
        for (int b = 0; b < 4; b++)
            bs[b] = i + b * BLOCK < n ? block_sum(l, i + b * BLOCK, n, lmax, inv_t, min_w) : 0.0;
        return;
    }
#ifdef SAMPLER_AVX2
    if (have_avx2()) {
        block_sums4_avx2(l, i, lmax, inv_t, min_w, bs);
        return;
    }
#endif
    block_sums4_base(l, i, lmax, inv_t, min_w, bs);
}

/* The sum of every block's weights over l[0..n), added block after block in order. */
static double weights_sum(const float *l, int64_t n, float lmax, float inv_t, float min_w) {
    double z = 0.0, bs[4];
    for (int64_t i = 0; i < n; i += 4 * BLOCK) {
        block_sums4(l, i, n, lmax, inv_t, min_w, bs);
        for (int b = 0; b < 4 && i + b * BLOCK < n; b++) z += bs[b];
    }
    return z;
}

/* Max value (NaN skipped; -inf if none) and its lowest id. Four running maxima over the 16
 * logits of each step (one chain of compares and selects was ~0.7 ns per logit). */
static int32_t argmax(const float *l, int32_t n, float *max_out) {
    v4f     m[4] = {v4_splat(-INFINITY), v4_splat(-INFINITY), v4_splat(-INFINITY),
                    v4_splat(-INFINITY)};
    int64_t i    = 0;
#ifdef SAMPLER_AVX2
    if (have_avx2()) {
        float b = max_avx2(l, n);
        m[0]    = (v4f){b, b, b, b};
        i       = n - n % 32;
    }
#endif
    for (; i + 16 <= n; i += 16)
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            v4f v;
            memcpy(&v, l + i + 4 * c, sizeof v);
            m[c] = v4_select(v > m[c], v, m[c]);
        }
    for (; i < n; i += 4) {
        v4f v = load4(l, i, n);
        m[0]  = v4_select(v > m[0], v, m[0]);
    }
    for (int c = 1; c < 4; c++) m[0] = v4_select(m[c] > m[0], m[c], m[0]);
    float   best = fmaxf(fmaxf(m[0][0], m[0][1]), fmaxf(m[0][2], m[0][3]));
    int32_t id   = 0;
    if (best > -INFINITY)
        while (!(l[id] == best)) id++;
    *max_out = best;
    return id;
}

/* ---- Candidate selection ----------------------------------------------------------------- */

/* Higher value first, lower id on ties (NaN compares as nothing: callers clean it). */
static inline bool cand_better(cand a, cand b) {
    return a.l > b.l || (a.l == b.l && a.id < b.id);
}

static int cand_cmp(const void *pa, const void *pb) {
    const cand *a = pa, *b = pb;
    return cand_better(*a, *b) ? -1 : cand_better(*b, *a) ? 1 : 0;
}

/* Min-heap on "better": the worst candidate sits at the root, where a better token replaces it. */
static void heap_sift(cand *h, int64_t n, int64_t i) {
    for (;;) {
        int64_t w = i, lc = 2 * i + 1, rc = lc + 1;
        if (lc < n && cand_better(h[w], h[lc])) w = lc;
        if (rc < n && cand_better(h[w], h[rc])) w = rc;
        if (w == i) return;
        cand t = h[i];
        h[i] = h[w], h[w] = t, i = w;
    }
}

/* The min(k, n) best logits (NaN as -inf) into out[], best first. */
static int64_t select_top(const float *l, int64_t n, int64_t k, cand *out) {
    int64_t m = 0, i = 0;
    if (k <= 0) return 0;
    for (; i < n && m < k; i++) { /* fill, sifting up while the parent is the better one */
        int64_t j = m++;
        out[j]    = (cand){l[i] != l[i] ? -INFINITY : l[i], (int32_t)i};
        for (int64_t p = (j - 1) / 2; j > 0 && cand_better(out[p], out[j]); j = p, p = (j - 1) / 2) {
            cand t = out[j];
            out[j] = out[p], out[p] = t;
        }
    }
    while (i < n) {
        if (i % 16 == 0 && i + 16 <= n) { /* skip a chunk that has nothing above the root */
            v4f mx = load4(l, i, n);
            for (int c = 4; c < 16; c += 4) {
                v4f v = load4(l, i + c, n);
                mx    = v4_select(v > mx, v, mx);
            }
            v4i beats = mx > out[0].l;
            if (!(beats[0] | beats[1] | beats[2] | beats[3])) {
                i += 16;
                continue;
            }
        }
        if (l[i] > out[0].l) { /* later ids lose ties: "better" is "greater" here */
            out[0] = (cand){l[i], (int32_t)i};
            heap_sift(out, m, 0);
        }
        i++;
    }
    for (int64_t end = m - 1; end > 0; end--) { /* pop the worst to the back: best first */
        cand t = out[0];
        out[0] = out[end], out[end] = t;
        heap_sift(out, end, 0);
    }
    return m;
}

static llmrt_status scratch_reserve(llmrt_sampler *s, int64_t n, llmrt_error *err) {
    if (n <= s->cap_scratch) return LLMRT_OK;
    cand *p = realloc(s->scratch, (size_t)n * sizeof *p);
    if (!p) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "sampler: scratch of %lld", (long long)n);
    s->scratch = p, s->cap_scratch = n;
    return LLMRT_OK;
}

/* Top-p without top-k. Buckets of x = (l - lmax) / T over [-HIST_RANGE, 0] (anything lower in
 * the last bucket) follow x, so the buckets up to the one where the mass reaches top_p hold the
 * nucleus: tokens of the earlier buckets are all in it and need no order, and only the boundary
 * bucket is sorted. Out: s->scratch[0..*n_out) with weights; *z_out = the full normaliser. */
#define HIST_BUCKETS 512
#define HIST_RANGE   40.0f

static inline v4i bucket4(const float *l, int64_t i, int64_t n, float lmax, float inv_t) {
    v4f b = (lmax - load4(l, i, n)) * (inv_t * (float)(HIST_BUCKETS - 1) / HIST_RANGE);
    return __builtin_convertvector(
        v4_select(b < (float)(HIST_BUCKETS - 1), b, v4_splat(HIST_BUCKETS - 1)), v4i);
}

static llmrt_status nucleus_candidates(llmrt_sampler *s, const float *l, float lmax, float inv_t,
                                       int64_t *n_out, double *z_out, llmrt_error *err) {
    const int32_t V                   = s->vocab;
    double        mass[HIST_BUCKETS]  = {0}, z = 0.0, cum = 0.0;
    int64_t       count[HIST_BUCKETS] = {0}, n_inner = 0;
    for (int64_t i = 0; i < V; i += 4) {
        v4f w = weights4(l, i, V, lmax, inv_t, 0.0f);
        v4i b = bucket4(l, i, V, lmax, inv_t);
        for (int j = 0; j < 4 && i + j < V; j++) mass[b[j]] += w[j], count[b[j]]++, z += w[j];
    }
    int last = 0;
    while (last < HIST_BUCKETS - 1 && cum + mass[last] < (double)s->cfg.top_p * z)
        cum += mass[last], n_inner += count[last++];
    int64_t n = n_inner + count[last], a = 0, b = n_inner;
    LLMRT_TRY(scratch_reserve(s, n, err));
    for (int64_t i = 0; i < V; i += 4) {
        v4f w  = weights4(l, i, V, lmax, inv_t, 0.0f);
        v4i bk = bucket4(l, i, V, lmax, inv_t);
        for (int j = 0; j < 4 && i + j < V; j++) {
            if (bk[j] < last) s->scratch[a++] = (cand){w[j], (int32_t)(i + j)};
            else if (bk[j] == last) s->scratch[b++] = (cand){w[j], (int32_t)(i + j)};
        }
    }
    qsort(s->scratch + n_inner, (size_t)(n - n_inner), sizeof(cand), cand_cmp);
    *n_out = n, *z_out = z;
    return LLMRT_OK;
}

/* Non-greedy draw on penalised logits: exactly one uniform per call. max_id >= 0: argmax(l) is
 * already known (max_id, max_val). */
static llmrt_status sample_random(llmrt_sampler *s, const float *l, int32_t max_id,
                                  float max_val, int32_t *token, llmrt_error *err) {
    const float   inv_t = 1.0f / s->cfg.temperature, min_p = s->cfg.min_p, top_p = s->cfg.top_p;
    const int32_t V     = s->vocab;
    float         lmax  = max_val;
    *token = max_id >= 0 ? max_id : argmax(l, V, &lmax);
    if (!isfinite(lmax)) { /* all -inf, or +inf logits: no distribution, the first max wins */
        (void)rng_uniform(s);
        return LLMRT_OK;
    }
    if ((s->cfg.top_k <= 0 || s->cfg.top_k >= V) && top_p >= 1.0f) {
        double z = weights_sum(l, V, lmax, inv_t, min_p), cum = 0.0;
        double target = rng_uniform(s) * z;
        double bs[4];
        for (int64_t i0 = 0; i0 < V; i0 += 4 * BLOCK) {
            block_sums4(l, i0, V, lmax, inv_t, min_p, bs);
            for (int b = 0; b < 4 && i0 + b * BLOCK < V; b++) {
                int64_t i = i0 + b * BLOCK;
                if (target < cum + bs[b]) { /* in this block; rounding falls back to its last token */
                    for (int64_t j = i; j < i + BLOCK && j < V; j += 4) {
                        v4f w = weights4(l, j, V, lmax, inv_t, min_p);
                        for (int q = 0; q < 4 && j + q < V; q++)
                            if (w[q] > 0.0f) {
                                *token = (int32_t)(j + q);
                                if (target < (cum += w[q])) return LLMRT_OK;
                            }
                    }
                    return LLMRT_OK;
                }
                cum += bs[b];
            }
        }
        return LLMRT_OK;
    }

    int64_t n;
    double  z = 0.0;
    if (s->cfg.top_k > 0 && s->cfg.top_k < V) {
        LLMRT_TRY(scratch_reserve(s, s->cfg.top_k, err));
        n = select_top(l, V, s->cfg.top_k, s->scratch);
        for (int64_t i = 0; i < n; i++)
            z += s->scratch[i].l = exp4(v4_splat((s->scratch[i].l - lmax) * inv_t))[0];
    } else {
        LLMRT_TRY(nucleus_candidates(s, l, lmax, inv_t, &n, &z, err));
    }
    cand *c = s->scratch;
    if (top_p < 1.0f) { /* keep a token iff the mass before it is < top_p (the max is kept) */
        double  target = (double)top_p * z, cum = 0.0;
        int64_t keep   = 0;
        while (keep < n && (keep == 0 || cum < target)) cum += c[keep++].l;
        n = keep;
    }
    int64_t kept  = 0; /* min-p on p / p_max; the max itself weighs exactly 1 */
    double  total = 0.0, cum = 0.0;
    for (int64_t i = 0; i < n; i++)
        if (c[i].l > 0.0f && c[i].l >= min_p) total += (c[kept++] = c[i]).l;
    double target = rng_uniform(s) * total;
    for (int64_t i = 0; i < kept; i++) {
        *token = c[i].id;
        if (target < (cum += c[i].l)) break;
    }
    return LLMRT_OK;
}

/* ---- Sampler ----------------------------------------------------------------------------- */

llmrt_status llmrt_sampler_create(const llmrt_sampling_config *c, int32_t vocab,
                                  const int32_t *prompt, int64_t n_prompt, llmrt_sampler **out,
                                  llmrt_error *err) {
    if (!out) return BAD("sampler: out is NULL");
    *out = NULL;
    LLMRT_TRY(llmrt_sampling_validate(c, err));
    if (vocab <= 0) return BAD("sampler: vocab must be > 0, got %d", vocab);
    if (n_prompt < 0 || (n_prompt > 0 && !prompt))
        return BAD("sampler: bad prompt (n_prompt %lld)", (long long)n_prompt);
    for (int64_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= vocab)
            return BAD("sampler: prompt token %d at index %lld is outside the vocabulary [0, %d)",
                       prompt[i], (long long)i, vocab);
    for (int32_t i = 0; i < c->n_bias; i++)
        if (c->bias_ids[i] < 0 || c->bias_ids[i] >= vocab)
            return BAD("logit_bias[%d]: token %d is outside the vocabulary [0, %d)", (int)i,
                       (int)c->bias_ids[i], vocab);

    llmrt_sampler *s = calloc(1, sizeof *s);
    if (!s) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "sampler: allocation failed");
    s->cfg      = *c;
    s->vocab    = vocab;
    s->seed     = c->has_seed ? c->seed : derive_seed();
    uint64_t x  = s->seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
    s->penalized = c->repetition_penalty != 1.0f || c->presence_penalty != 0.0f ||
                   c->frequency_penalty != 0.0f;
    s->cfg.bias_ids = NULL, s->cfg.bias = NULL, s->cfg.n_bias = 0; /* the copy below holds it */
    llmrt_status st = LLMRT_OK; /* repetition is the only penalty that looks at the prompt */
    if (c->n_bias > 0) {
        size_t n      = (size_t)c->n_bias;
        s->bias_ids   = malloc(n * sizeof *s->bias_ids);
        s->bias       = malloc(n * sizeof *s->bias);
        s->bias_saved = malloc(n * sizeof *s->bias_saved);
        if (!s->bias_ids || !s->bias || !s->bias_saved)
            st = llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "sampler: logit_bias of %d", c->n_bias);
        else {
            memcpy(s->bias_ids, c->bias_ids, n * sizeof *s->bias_ids);
            memcpy(s->bias, c->bias, n * sizeof *s->bias);
            s->n_bias = c->n_bias;
        }
    }
    for (int64_t i = 0; c->repetition_penalty != 1.0f && i < n_prompt && st == LLMRT_OK; i++)
        if ((st = seen_reserve(s, s->n_seen + 1, err)) == LLMRT_OK) seen_get(s, prompt[i]);
    if (st != LLMRT_OK) {
        llmrt_sampler_destroy(s);
        return st;
    }
    *out = s;
    return LLMRT_OK;
}

void llmrt_sampler_destroy(llmrt_sampler *s) {
    if (!s) return;
    free(s->seen), free(s->saved), free(s->slots), free(s->scratch);
    free(s->bias_ids), free(s->bias), free(s->bias_saved), free(s);
}

uint64_t llmrt_sampler_seed(const llmrt_sampler *s) {
    return s->seed;
}

llmrt_status llmrt_sampler_accept(llmrt_sampler *s, int32_t token, llmrt_error *err) {
    if (token < 0 || token >= s->vocab)
        return BAD("sampler: token %d is outside the vocabulary [0, %d)", token, s->vocab);
    if (!s->penalized) return LLMRT_OK;
    LLMRT_TRY(seen_reserve(s, s->n_seen + 1, err));
    seen_entry *e = seen_get(s, token);
    if (e->out_count < INT32_MAX) e->out_count++;
    return LLMRT_OK;
}

/* Raw log-sum-exp of logits[V] (0 when the maximum is not finite) and the n_top best tokens
 * as logprobs: what both the sampler and prompt logprobs report; *max_id, *max_val: argmax's. */
static double raw_logprobs(const float *logits, int32_t V, int32_t n_top, int32_t *top_ids,
                           float *top_logprobs, int32_t *n_out, int32_t *max_id, float *max_val) {
    double lse = 0.0;
    float  m;
    *max_id  = argmax(logits, V, &m);
    *max_val = m;
    if (isfinite(m)) {
        lse = (double)m + log(weights_sum(logits, V, m, 1.0f, 0.0f));
    }
    cand top[LLMRT_SAMPLER_MAX_LOGPROBS];
    *n_out = (int32_t)select_top(logits, V, n_top, top);
    for (int32_t i = 0; i < *n_out; i++) {
        top_ids[i]      = top[i].id;
        top_logprobs[i] = (float)((double)top[i].l - lse);
    }
    return lse;
}

void llmrt_logprobs_of(const float *logits, int32_t vocab, int32_t token, int32_t n_top,
                       float *logprob, int32_t *top_ids, float *top_logprobs) {
    if (n_top > LLMRT_SAMPLER_MAX_LOGPROBS) n_top = LLMRT_SAMPLER_MAX_LOGPROBS;
    int32_t n = 0, max_id;
    float   max_val;
    double  lse = raw_logprobs(logits, vocab, n_top, top_ids, top_logprobs, &n, &max_id, &max_val);
    *logprob    = logits[token] != logits[token] ? -INFINITY
                                                 : (float)((double)logits[token] - lse);
}

llmrt_status llmrt_sampler_sample(llmrt_sampler *s, float *logits, llmrt_sample_result *res,
                                  llmrt_error *err) {
    const int32_t V = s->vocab, n_top = s->cfg.n_logprobs;
    const bool    want_lp = s->cfg.logprobs || n_top > 0;
    /* Grow the map now so that recording the chosen token cannot fail afterwards. */
    if (s->penalized) LLMRT_TRY(seen_reserve(s, s->n_seen + 1, err));
    memset(res, 0, sizeof *res);

    double  lse    = 0.0; /* raw log-sum-exp, before anything touches the logits */
    int32_t max_id = -1;  /* argmax of the logits as sampled from, when already known */
    float   max_val = 0.0f;
    if (want_lp)
        lse = raw_logprobs(logits, V, n_top, res->top_ids, res->top_logprobs, &res->n_top,
                           &max_id, &max_val);
    if (s->n_bias > 0 || s->penalized) max_id = -1; /* the logits change below */

    for (int32_t i = 0; i < s->n_bias; i++) { /* before the penalties (vLLM) */
        s->bias_saved[i] = logits[s->bias_ids[i]];
        logits[s->bias_ids[i]] += s->bias[i];
    }
    if (s->penalized) apply_penalties(s, logits);
    int32_t      token;
    llmrt_status st = LLMRT_OK;
    float        lmax;
    if (s->cfg.temperature < LLMRT_SAMPLER_GREEDY_EPS)
        token = max_id >= 0 ? max_id : argmax(logits, V, &lmax);
    else st = sample_random(s, logits, max_id, max_val, &token, err);
    for (int32_t i = 0; i < s->n_seen; i++) logits[s->seen[i].id] = s->saved[i]; /* undo */
    for (int32_t i = s->n_bias - 1; i >= 0; i--) logits[s->bias_ids[i]] = s->bias_saved[i];
    if (st != LLMRT_OK) return st;

    res->token = token;
    if (want_lp) res->logprob = logits[token] != logits[token] ? -INFINITY
                                                              : (float)((double)logits[token] - lse);
    return llmrt_sampler_accept(s, token, err);
}
