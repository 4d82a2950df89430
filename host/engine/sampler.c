/* Token sampling: penalties in place (restored afterwards), then one of three paths chosen so
 * that a 128k vocabulary is never fully sorted in the common cases:
 *  - top-k: a size-k heap over the vocabulary (O(V log k)), then filters on the k candidates;
 *  - top-p without top-k: one pass builds a histogram of probability mass over log-probability
 *    buckets, which bounds the nucleus; only the tokens of the buckets that reach top_p are
 *    sorted (the whole vocabulary only when the distribution is nearly flat);
 *  - neither: two streaming passes (normaliser, then inverse-CDF scan), no scratch at all. */
#include "sampler.h"

#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct cand {
    float   l; /* logit while selecting; the unnormalised weight exp((l - lmax) / T) afterwards */
    int32_t id;
} cand;

typedef struct seen_entry {
    int32_t id;
    int32_t out_count; /* times generated                                              */
    bool    in_prompt;
} seen_entry;

struct llmrt_sampler {
    llmrt_sampling_config cfg;
    int32_t               vocab;
    uint64_t              seed;
    uint64_t              rng[4];
    bool                  penalized; /* any penalty active: keep the seen-token map   */

    /* Seen tokens: dense entries plus an open-addressing index (entry + 1, 0 = empty). */
    seen_entry *seen;
    float      *saved; /* [cap_seen] raw logits overwritten by the penalties */
    int32_t     n_seen, cap_seen;
    int32_t    *slots;
    int32_t     n_slots; /* power of two, >= 2 * cap_seen */

    cand   *scratch;
    int64_t cap_scratch;
};

/* ---------------------------------------------------------------------------------------- */
/* Config                                                                                   */
/* ---------------------------------------------------------------------------------------- */

llmrt_sampling_config llmrt_sampling_default_config(void) {
    return (llmrt_sampling_config){
        .temperature        = 1.0f,
        .top_p              = 1.0f,
        .min_p              = 0.0f,
        .repetition_penalty = 1.0f,
        .presence_penalty   = 0.0f,
        .frequency_penalty  = 0.0f,
        .top_k              = -1,
        .seed               = 0,
        .has_seed           = false,
        .logprobs           = false,
        .n_logprobs         = 0,
    };
}

llmrt_status llmrt_sampling_validate(const llmrt_sampling_config *c, llmrt_error *err) {
    if (!c) return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "sampling config is NULL");
    /* Comparisons are written so that NaN fails them. */
    if (!(c->temperature >= 0.0f && isfinite(c->temperature)))
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "temperature must be finite and >= 0, got %g", (double)c->temperature);
    if (!(c->top_p > 0.0f && c->top_p <= 1.0f))
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "top_p must be in (0, 1], got %g",
                         (double)c->top_p);
    if (!(c->min_p >= 0.0f && c->min_p <= 1.0f))
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "min_p must be in [0, 1], got %g",
                         (double)c->min_p);
    if (c->top_k < -1)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "top_k must be -1 or 0 (disabled) or >= 1, got %d", (int)c->top_k);
    if (!(c->repetition_penalty > 0.0f && isfinite(c->repetition_penalty)))
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "repetition_penalty must be finite and > 0, got %g",
                         (double)c->repetition_penalty);
    if (!(c->presence_penalty >= -2.0f && c->presence_penalty <= 2.0f))
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "presence_penalty must be in [-2, 2], got %g",
                         (double)c->presence_penalty);
    if (!(c->frequency_penalty >= -2.0f && c->frequency_penalty <= 2.0f))
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "frequency_penalty must be in [-2, 2], got %g",
                         (double)c->frequency_penalty);
    if (c->n_logprobs < 0 || c->n_logprobs > LLMRT_SAMPLER_MAX_LOGPROBS)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "n_logprobs must be in [0, %d], got %d",
                         LLMRT_SAMPLER_MAX_LOGPROBS, (int)c->n_logprobs);
    return LLMRT_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* RNG: splitmix64 to expand the seed, xoshiro256** for the stream                          */
/* ---------------------------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z          = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z          = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

static uint64_t xoshiro_next(uint64_t s[4]) {
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t      = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_uniform(llmrt_sampler *s) {
    return (double)(xoshiro_next(s->rng) >> 11) * 0x1.0p-53;
}

static uint64_t derive_seed(void) {
    static atomic_uint_fast64_t counter;
    struct timespec             ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) ^
                 (atomic_fetch_add(&counter, 1) * 0xd1b54a32d192ed03ull);
    return splitmix64(&x);
}

/* ---------------------------------------------------------------------------------------- */
/* Seen-token map                                                                           */
/* ---------------------------------------------------------------------------------------- */

static inline uint32_t slot_of(int32_t id, int32_t n_slots) {
    uint32_t h = (uint32_t)id * 2654435761u;
    return (h ^ (h >> 16)) & (uint32_t)(n_slots - 1);
}

/* Makes room for `need` entries so that inserting cannot fail afterwards. */
static llmrt_status seen_reserve(llmrt_sampler *s, int32_t need, llmrt_error *err) {
    if (need <= s->cap_seen) return LLMRT_OK;
    int32_t cap = s->cap_seen ? s->cap_seen : 64;
    while (cap < need) cap *= 2;
    seen_entry *seen  = realloc(s->seen, (size_t)cap * sizeof *seen);
    if (seen) s->seen = seen;
    float *saved      = seen ? realloc(s->saved, (size_t)cap * sizeof *saved) : NULL;
    if (saved) s->saved = saved;
    int32_t  n_slots    = 2 * cap;
    int32_t *slots      = saved ? calloc((size_t)n_slots, sizeof *slots) : NULL;
    if (!slots) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "sampler: token map of %d", cap);
    for (int32_t e = 0; e < s->n_seen; e++) {
        uint32_t j = slot_of(s->seen[e].id, n_slots);
        while (slots[j]) j = (j + 1) & (uint32_t)(n_slots - 1);
        slots[j] = e + 1;
    }
    free(s->slots);
    s->slots    = slots;
    s->n_slots  = n_slots;
    s->cap_seen = cap;
    return LLMRT_OK;
}

/* The entry of `id`, added if new; room must have been reserved. */
static seen_entry *seen_get(llmrt_sampler *s, int32_t id) {
    uint32_t j = slot_of(id, s->n_slots);
    while (s->slots[j]) {
        seen_entry *e = &s->seen[s->slots[j] - 1];
        if (e->id == id) return e;
        j = (j + 1) & (uint32_t)(s->n_slots - 1);
    }
    seen_entry *e = &s->seen[s->n_seen++];
    *e            = (seen_entry){.id = id};
    s->slots[j]   = s->n_seen;
    return e;
}

static void apply_penalties(llmrt_sampler *s, float *logits) {
    const float rep = s->cfg.repetition_penalty;
    const float pres = s->cfg.presence_penalty, freq = s->cfg.frequency_penalty;
    for (int32_t i = 0; i < s->n_seen; i++) {
        const seen_entry *e = &s->seen[i];
        float             l = logits[e->id];
        s->saved[i]         = l;
        if (rep != 1.0f) l = l > 0.0f ? l / rep : l * rep;
        if (e->out_count > 0) {
            l -= freq * (float)e->out_count;
            l -= pres;
        }
        logits[e->id] = l;
    }
}

static void restore_logits(const llmrt_sampler *s, float *logits) {
    for (int32_t i = 0; i < s->n_seen; i++) logits[s->seen[i].id] = s->saved[i];
}

/* ---------------------------------------------------------------------------------------- */
/* Selection helpers                                                                        */
/* ---------------------------------------------------------------------------------------- */

static inline float clean(float x) {
    if (x != x) return -INFINITY;
    return x == INFINITY ? FLT_MAX : x;
}

/* Candidate order: higher logit first, lower id on ties. */
static inline bool cand_better(cand a, cand b) {
    return a.l > b.l || (a.l == b.l && a.id < b.id);
}

static int cand_cmp(const void *pa, const void *pb) {
    const cand *a = pa, *b = pb;
    if (a->l != b->l) return a->l > b->l ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

/* The heap keeps the worst candidate at the root, so a better token replaces it. */
static void heap_sift_down(cand *h, int64_t n, int64_t i) {
    for (;;) {
        int64_t w = i, lc = 2 * i + 1, rc = lc + 1;
        if (lc < n && cand_better(h[w], h[lc])) w = lc;
        if (rc < n && cand_better(h[w], h[rc])) w = rc;
        if (w == i) return;
        cand t = h[i];
        h[i]   = h[w];
        h[w]   = t;
        i      = w;
    }
}

/* The min(k, n) best of logits[0..n) into out[], best first. */
static int64_t select_top(const float *logits, int64_t n, int64_t k, cand *out) {
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        cand c = {clean(logits[i]), (int32_t)i};
        if (m < k) {
            int64_t j = m++;
            out[j]    = c;
            while (j > 0 && cand_better(out[(j - 1) / 2], out[j])) {
                cand t          = out[j];
                out[j]          = out[(j - 1) / 2];
                out[(j - 1) / 2] = t;
                j               = (j - 1) / 2;
            }
        } else if (cand_better(c, out[0])) {
            out[0] = c;
            heap_sift_down(out, m, 0);
        }
    }
    for (int64_t end = m - 1; end > 0; end--) { /* worst to the back: best first */
        cand t   = out[0];
        out[0]   = out[end];
        out[end] = t;
        heap_sift_down(out, end, 0);
    }
    return m;
}

static int32_t argmax(const float *logits, int32_t n, float *max_out) {
    float   best = -INFINITY;
    int32_t id   = 0;
    for (int32_t i = 0; i < n; i++) {
        float v = clean(logits[i]);
        if (v > best) best = v, id = i;
    }
    if (max_out) *max_out = best;
    return id;
}

static llmrt_status scratch_reserve(llmrt_sampler *s, int64_t n, llmrt_error *err) {
    if (n <= s->cap_scratch) return LLMRT_OK;
    cand *p = realloc(s->scratch, (size_t)n * sizeof *p);
    if (!p) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "sampler: scratch of %lld", (long long)n);
    s->scratch     = p;
    s->cap_scratch = n;
    return LLMRT_OK;
}

/* Histogram of exp(x), x = (l - lmax) / T <= 0, over HIST_BUCKETS buckets of x; everything below
 * -HIST_RANGE (relative weight < 5e-18) lands in the last one. Bucket order follows x, so the
 * tokens of buckets 0..B are exactly a prefix of the sorted vocabulary. */
#define HIST_BUCKETS 512
#define HIST_RANGE   40.0f

static inline int bucket_of(float x) {
    float b = -x * ((float)(HIST_BUCKETS - 1) / HIST_RANGE);
    return b < (float)(HIST_BUCKETS - 1) ? (int)b : HIST_BUCKETS - 1;
}

/* The smallest sorted prefix of the vocabulary holding top_p of the mass, into s->scratch with
 * weights; *z_out = the normaliser over the whole vocabulary. */
static llmrt_status nucleus_candidates(llmrt_sampler *s, const float *logits, float lmax,
                                       int64_t *n_out, double *z_out, llmrt_error *err) {
    const float T = s->cfg.temperature;
    double      mass[HIST_BUCKETS] = {0};
    int64_t     count[HIST_BUCKETS] = {0};
    double      z = 0.0;
    for (int32_t i = 0; i < s->vocab; i++) {
        float x = (clean(logits[i]) - lmax) / T;
        float w = expf(x);
        int   b = bucket_of(x);
        mass[b] += w;
        count[b]++;
        z += w;
    }
    double  target = (double)s->cfg.top_p * z, cum = 0.0;
    int     last   = 0;
    int64_t n      = 0;
    for (last = 0; last < HIST_BUCKETS; last++) {
        cum += mass[last];
        n += count[last];
        if (cum >= target) break;
    }
    if (last == HIST_BUCKETS) last = HIST_BUCKETS - 1;
    LLMRT_TRY(scratch_reserve(s, n, err));
    int64_t m = 0;
    for (int32_t i = 0; i < s->vocab && m < n; i++) {
        float l = clean(logits[i]);
        if (bucket_of((l - lmax) / T) <= last) s->scratch[m++] = (cand){l, i};
    }
    qsort(s->scratch, (size_t)m, sizeof(cand), cand_cmp);
    *n_out = m;
    *z_out = z;
    return LLMRT_OK;
}

/* Non-greedy draw on penalised logits. */
static llmrt_status sample_random(llmrt_sampler *s, const float *logits, int32_t *token,
                                  llmrt_error *err) {
    const float   T = s->cfg.temperature, min_p = s->cfg.min_p, top_p = s->cfg.top_p;
    const int32_t V = s->vocab;
    const bool    use_k = s->cfg.top_k > 0 && s->cfg.top_k < V;
    float         lmax;
    int32_t       best = argmax(logits, V, &lmax);
    if (lmax == -INFINITY) { /* nothing is possible: keep the stream length fixed anyway */
        (void)rng_uniform(s);
        *token = best;
        return LLMRT_OK;
    }

    if (!use_k && top_p >= 1.0f) {
        /* Streaming: normaliser, then inverse CDF over the same weights in the same order. */
        double z = 0.0;
        for (int32_t i = 0; i < V; i++) {
            float w = expf((clean(logits[i]) - lmax) / T);
            if (w >= min_p) z += w;
        }
        double target = rng_uniform(s) * z, cum = 0.0;
        *token        = best;
        for (int32_t i = 0; i < V; i++) {
            float w = expf((clean(logits[i]) - lmax) / T);
            if (w > 0.0f && w >= min_p) {
                cum += w;
                *token = i;
                if (target < cum) break;
            }
        }
        return LLMRT_OK;
    }

    int64_t n;
    double  z = 0.0;
    if (use_k) {
        LLMRT_TRY(scratch_reserve(s, s->cfg.top_k, err));
        n = select_top(logits, V, s->cfg.top_k, s->scratch);
        for (int64_t i = 0; i < n; i++) z += expf((s->scratch[i].l - lmax) / T);
    } else {
        LLMRT_TRY(nucleus_candidates(s, logits, lmax, &n, &z, err));
    }
    cand *c = s->scratch;
    for (int64_t i = 0; i < n; i++) c[i].l = expf((c[i].l - lmax) / T);

    if (top_p < 1.0f) { /* keep a token iff the mass strictly before it is < top_p */
        double  target = (double)top_p * z, cum = 0.0;
        int64_t keep   = 0;
        while (keep < n && (keep == 0 || cum < target)) cum += c[keep++].l;
        n = keep;
    }
    while (n > 1 && c[n - 1].l < min_p) n--; /* weights are p / p_max, descending */

    double total = 0.0;
    for (int64_t i = 0; i < n; i++) total += c[i].l;
    double target = rng_uniform(s) * total, cum = 0.0;
    *token        = c[n - 1].id;
    for (int64_t i = 0; i < n; i++) {
        cum += c[i].l;
        if (target < cum) {
            *token = c[i].id;
            break;
        }
    }
    return LLMRT_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Sampler                                                                                  */
/* ---------------------------------------------------------------------------------------- */

llmrt_status llmrt_sampler_create(const llmrt_sampling_config *c, int32_t vocab,
                                  const int32_t *prompt, int64_t n_prompt, llmrt_sampler **out,
                                  llmrt_error *err) {
    if (!out) return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "sampler: out is NULL");
    *out = NULL;
    LLMRT_TRY(llmrt_sampling_validate(c, err));
    if (vocab <= 0)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "sampler: vocab must be > 0, got %d", vocab);
    if (n_prompt < 0 || (n_prompt > 0 && !prompt))
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "sampler: bad prompt (n_prompt %lld)",
                         (long long)n_prompt);
    for (int64_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= vocab)
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                             "sampler: prompt token %d at index %lld is outside the vocabulary "
                             "[0, %d)", prompt[i], (long long)i, vocab);

    llmrt_sampler *s = calloc(1, sizeof *s);
    if (!s) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "sampler: allocation failed");
    s->cfg       = *c;
    s->vocab     = vocab;
    s->seed      = c->has_seed ? c->seed : derive_seed();
    uint64_t x   = s->seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
    s->penalized = c->repetition_penalty != 1.0f || c->presence_penalty != 0.0f ||
                   c->frequency_penalty != 0.0f;
    /* Only the repetition penalty looks at the prompt. */
    if (s->penalized && c->repetition_penalty != 1.0f) {
        for (int64_t i = 0; i < n_prompt; i++) {
            llmrt_status st = seen_reserve(s, s->n_seen + 1, err);
            if (st != LLMRT_OK) {
                llmrt_sampler_destroy(s);
                return st;
            }
            seen_get(s, prompt[i])->in_prompt = true;
        }
    }
    *out = s;
    return LLMRT_OK;
}

void llmrt_sampler_destroy(llmrt_sampler *s) {
    if (!s) return;
    free(s->seen);
    free(s->saved);
    free(s->slots);
    free(s->scratch);
    free(s);
}

uint64_t llmrt_sampler_seed(const llmrt_sampler *s) {
    return s->seed;
}

llmrt_status llmrt_sampler_accept(llmrt_sampler *s, int32_t token, llmrt_error *err) {
    if (token < 0 || token >= s->vocab)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "sampler: token %d is outside the vocabulary [0, %d)", token, s->vocab);
    if (!s->penalized) return LLMRT_OK;
    LLMRT_TRY(seen_reserve(s, s->n_seen + 1, err));
    seen_entry *e = seen_get(s, token);
    if (e->out_count < INT32_MAX) e->out_count++;
    return LLMRT_OK;
}

llmrt_status llmrt_sampler_sample(llmrt_sampler *s, float *logits, llmrt_sample_result *res,
                                  llmrt_error *err) {
    const int32_t V       = s->vocab;
    const int32_t n_top   = s->cfg.n_logprobs;
    const bool    want_lp = s->cfg.logprobs || n_top > 0;
    /* The map must not grow after the token is chosen, so the final accept cannot fail. */
    if (s->penalized) LLMRT_TRY(seen_reserve(s, s->n_seen + 1, err));
    memset(res, 0, sizeof *res);

    double lse = 0.0; /* raw log-sum-exp, before anything touches the logits */
    if (want_lp) {
        float m;
        argmax(logits, V, &m);
        if (m > -INFINITY) {
            double sum = 0.0;
            for (int32_t i = 0; i < V; i++) sum += expf(clean(logits[i]) - m);
            lse = (double)m + log(sum);
        }
        if (n_top > 0) {
            cand top[LLMRT_SAMPLER_MAX_LOGPROBS];
            res->n_top = (int32_t)select_top(logits, V, n_top, top);
            for (int32_t i = 0; i < res->n_top; i++) {
                res->top_ids[i]      = top[i].id;
                res->top_logprobs[i] = (float)((double)top[i].l - lse);
            }
        }
    }

    if (s->penalized) apply_penalties(s, logits);
    int32_t      token;
    llmrt_status st = LLMRT_OK;
    if (s->cfg.temperature < LLMRT_SAMPLER_GREEDY_EPS)
        token = argmax(logits, V, NULL);
    else
        st = sample_random(s, logits, &token, err);
    if (s->penalized) restore_logits(s, logits);
    if (st != LLMRT_OK) return st;

    res->token = token;
    if (want_lp) res->logprob = (float)((double)clean(logits[token]) - lse);
    return llmrt_sampler_accept(s, token, err);
}
