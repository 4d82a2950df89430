/* Sampler: parameter validation, seeded reproducibility, greedy, the filters (top-k, top-p,
 * min-p) against distributions computed independently here in double, the penalties (read off
 * through greedy argmax flips) and raw logprobs. Statistical checks use fixed seeds and a
 * 4-sigma band, so they are deterministic. */
#include <stdint.h>
#include <stdlib.h>

#include "engine/sampler.h"
#include "test_util.h"

#define CHECK_ERR(expr, needle)                                                                    \
    do {                                                                                           \
        llmrt_status st_ = (expr);                                                                 \
        CHECK_MSG(st_ == LLMRT_ERR_INVALID_ARG, "%s returned %s", #expr, llmrt_status_str(st_));   \
        CHECK_MSG(strstr(err.msg, needle) != NULL, "message \"%s\" lacks \"%s\"", err.msg, needle); \
    } while (0)

/* Deterministic test logits: roughly normal with the given spread. */
static uint64_t tl_state;
static float tl_next(float spread) {
    float sum = 0.0f;
    for (int i = 0; i < 4; i++) {
        tl_state = tl_state * 6364136223846793005ull + 1442695040888963407ull;
        sum += (float)(tl_state >> 40) / (float)(1 << 24) - 0.5f;
    }
    return sum * spread;
}
static void fill_logits(float *l, int32_t v, uint64_t seed, float spread) {
    tl_state = seed * 0x9e3779b97f4a7c15ull + 1;
    for (int32_t i = 0; i < v; i++) l[i] = tl_next(spread);
}

static void softmax_d(const float *l, int n, double t, double *p) {
    double m = -INFINITY, z = 0.0;
    for (int i = 0; i < n; i++) m = fmax(m, (double)l[i]);
    for (int i = 0; i < n; i++) z += p[i] = exp(((double)l[i] - m) / t);
    for (int i = 0; i < n; i++) p[i] /= z;
}

static llmrt_sampler *make(llmrt_sampling_config c, int32_t vocab, const int32_t *prompt,
                           int64_t n_prompt) {
    llmrt_error    err = {0};
    llmrt_sampler *s   = NULL;
    llmrt_status   st  = llmrt_sampler_create(&c, vocab, prompt, n_prompt, &s, &err);
    CHECK_MSG(st == LLMRT_OK, "create: %s", err.msg);
    return s;
}

static int32_t draw(llmrt_sampler *s, float *logits) {
    llmrt_error         err = {0};
    llmrt_sample_result r;
    llmrt_status        st = llmrt_sampler_sample(s, logits, &r, &err);
    CHECK_MSG(st == LLMRT_OK, "sample: %s", err.msg);
    return r.token;
}

/* Empirical counts vs probabilities: within 4 sigma each; zero where p is zero. */
static void check_freqs(const int64_t *counts, const double *p, int n, int64_t draws,
                        const char *what) {
    for (int i = 0; i < n; i++) {
        double expect = (double)draws * p[i];
        double sigma  = sqrt((double)draws * p[i] * (1.0 - p[i]));
        CHECK_MSG(fabs((double)counts[i] - expect) <= 4.0 * sigma + 1e-9,
                  "%s: token %d drawn %lld times, expected %.1f (sigma %.1f)", what, i,
                  (long long)counts[i], expect, sigma);
    }
}

/* Draws `n` times from fixed logits; counts per token. */
static void histogram(llmrt_sampling_config c, const float *logits, int32_t v, int64_t n,
                      int64_t *counts) {
    float         *l = malloc((size_t)v * sizeof *l);
    llmrt_sampler *s = make(c, v, NULL, 0);
    memset(counts, 0, (size_t)v * sizeof *counts);
    for (int64_t i = 0; i < n; i++) {
        memcpy(l, logits, (size_t)v * sizeof *l);
        counts[draw(s, l)]++;
    }
    llmrt_sampler_destroy(s);
    free(l);
}

/* Keeps ids sorted by p descending (ties by id) while the mass before them is < top_p. */
static const double *nucleus_p;
static int by_p_desc(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    if (nucleus_p[x] != nucleus_p[y]) return nucleus_p[x] > nucleus_p[y] ? -1 : 1;
    return (x > y) - (x < y);
}
static int *rank_ids(const double *p, int n) {
    int *ids = malloc((size_t)n * sizeof *ids);
    for (int i = 0; i < n; i++) ids[i] = i;
    nucleus_p = p;
    qsort(ids, (size_t)n, sizeof *ids, by_p_desc);
    return ids;
}
static int nucleus(const double *p, int n, double top_p, bool *in) {
    int   *ids = rank_ids(p, n), k = 0;
    double cum = 0.0;
    for (int i = 0; i < n; i++) in[i] = false;
    while (k < n && (k == 0 || cum < top_p)) cum += p[ids[k]], in[ids[k++]] = true;
    free(ids);
    return k;
}

static void test_validation(void) {
    llmrt_error           err = {0};
    llmrt_sampling_config d   = llmrt_sampling_default_config(), c;
    CHECK(llmrt_sampling_validate(&d, &err) == LLMRT_OK);
#define BAD(field, value, needle)                                                                  \
    do {                                                                                           \
        c       = d;                                                                               \
        c.field = value;                                                                           \
        CHECK_ERR(llmrt_sampling_validate(&c, &err), needle);                                      \
    } while (0)
    BAD(temperature, -0.5f, "temperature");
    BAD(temperature, NAN, "temperature");
    BAD(temperature, INFINITY, "temperature");
    BAD(top_p, 0.0f, "top_p");
    BAD(top_p, 1.5f, "top_p");
    BAD(top_p, NAN, "top_p");
    BAD(min_p, -0.1f, "min_p");
    BAD(min_p, 1.1f, "min_p");
    BAD(min_p, NAN, "min_p");
    BAD(top_k, -2, "top_k");
    BAD(repetition_penalty, 0.0f, "repetition_penalty");
    BAD(repetition_penalty, -1.0f, "repetition_penalty");
    BAD(repetition_penalty, NAN, "repetition_penalty");
    BAD(presence_penalty, 2.5f, "presence_penalty");
    BAD(presence_penalty, NAN, "presence_penalty");
    BAD(frequency_penalty, -3.0f, "frequency_penalty");
    BAD(n_logprobs, -1, "n_logprobs");
    BAD(n_logprobs, LLMRT_SAMPLER_MAX_LOGPROBS + 1, "n_logprobs");
#undef BAD
    int32_t ok_k[] = {-1, 0, 1, 1000000};
    for (int i = 0; i < 4; i++) {
        c       = d;
        c.top_k = ok_k[i];
        CHECK(llmrt_sampling_validate(&c, &err) == LLMRT_OK);
    }
    c = d, c.temperature = 0.0f, c.top_p = 1.0f, c.min_p = 1.0f, c.n_logprobs = 20;
    CHECK(llmrt_sampling_validate(&c, &err) == LLMRT_OK);

    llmrt_sampler *s      = NULL;
    int32_t        bad[]  = {1, 7, 10};
    CHECK_ERR(llmrt_sampler_create(&d, 10, bad, 3, &s, &err), "prompt token 10");
    CHECK(s == NULL);
    CHECK_ERR(llmrt_sampler_create(&d, 0, NULL, 0, &s, &err), "vocab");
    c = d, c.top_p = 2.0f;
    CHECK_ERR(llmrt_sampler_create(&c, 10, NULL, 0, &s, &err), "top_p");
    s = make(d, 10, bad, 2);
    CHECK_ERR(llmrt_sampler_accept(s, 10, &err), "token 10");
    CHECK_ERR(llmrt_sampler_accept(s, -1, &err), "token -1");
    llmrt_sampler_destroy(s);
    llmrt_sampler_destroy(NULL);
}

/* 200 tokens; the logits of each step depend on the step and the previous token, like a model. */
static void run_seq(llmrt_sampling_config c, int32_t *out, llmrt_sampler *noise) {
    enum { V = 1000 };
    float          l[V], l2[V];
    llmrt_sampler *s    = make(c, V, NULL, 0);
    int32_t        prev = 0;
    for (int t = 0; t < 200; t++) {
        fill_logits(l, V, (uint64_t)t * 1000003u + (uint64_t)prev, 3.0f);
        out[t] = prev = draw(s, l);
        if (noise) { /* another request sampled in between must not matter */
            fill_logits(l2, V, 77u + (uint64_t)t, 3.0f);
            draw(noise, l2);
        }
    }
    llmrt_sampler_destroy(s);
}

static void test_reproducible(void) {
    llmrt_sampling_config cfgs[5];
    for (int i = 0; i < 5; i++) cfgs[i] = llmrt_sampling_default_config();
    cfgs[1].top_k = 40, cfgs[1].temperature = 0.8f;
    cfgs[2].top_p = 0.9f;
    cfgs[3].min_p = 0.05f, cfgs[3].temperature = 1.3f;
    cfgs[4].top_k = 100, cfgs[4].top_p = 0.7f, cfgs[4].min_p = 0.01f,
    cfgs[4].repetition_penalty = 1.2f, cfgs[4].frequency_penalty = 0.3f;
    for (int i = 0; i < 5; i++) {
        int32_t a[200], b[200], c[200];
        llmrt_sampling_config cf = cfgs[i];
        cf.has_seed = true, cf.seed = 1234;
        run_seq(cf, a, NULL);
        llmrt_sampling_config other = llmrt_sampling_default_config();
        llmrt_sampler        *noise = make(other, 1000, NULL, 0);
        run_seq(cf, b, noise);
        llmrt_sampler_destroy(noise);
        CHECK_MSG(memcmp(a, b, sizeof a) == 0, "config %d: same seed, different tokens", i);
        cf.seed = 1235;
        run_seq(cf, c, NULL);
        int differ = 0;
        for (int t = 0; t < 200; t++) differ += a[t] != c[t];
        CHECK_MSG(differ > 0, "config %d: different seeds gave the same 200 tokens", i);
    }
    /* unseeded samplers get distinct seeds */
    llmrt_sampling_config d  = llmrt_sampling_default_config();
    llmrt_sampler        *s1 = make(d, 10, NULL, 0), *s2 = make(d, 10, NULL, 0);
    CHECK(llmrt_sampler_seed(s1) != llmrt_sampler_seed(s2));
    llmrt_sampler_destroy(s1);
    llmrt_sampler_destroy(s2);
}

static void test_greedy(void) {
    enum { V = 500 };
    float                 l[V];
    llmrt_sampling_config c = llmrt_sampling_default_config();
    float                 temps[] = {0.3f, 1.0f, 2.0f, 50.0f};
    for (int ti = 0; ti < 4; ti++) {
        c.temperature = temps[ti], c.top_k = 1, c.has_seed = true, c.seed = (uint64_t)ti;
        llmrt_sampler *s = make(c, V, NULL, 0);
        int            wrong = 0;
        for (int t = 0; t < 100; t++) {
            fill_logits(l, V, (uint64_t)t + 99, 2.0f);
            int32_t best = 0;
            for (int i = 1; i < V; i++)
                if (l[i] > l[best]) best = i;
            wrong += draw(s, l) != best;
        }
        CHECK_MSG(wrong == 0, "top_k=1 at temperature %g: %d non-argmax tokens", temps[ti], wrong);
        llmrt_sampler_destroy(s);
    }
    float ties[] = {1.0f, 3.0f, NAN, 3.0f, 2.0f, 3.0f};
    float tempz[] = {0.0f, 1e-6f};
    for (int i = 0; i < 2; i++) {
        c = llmrt_sampling_default_config(), c.temperature = tempz[i];
        llmrt_sampler *s = make(c, 6, NULL, 0);
        for (int rep = 0; rep < 5; rep++) CHECK(draw(s, ties) == 1);
        llmrt_sampler_destroy(s);
    }
    /* also top_k=1 on ties picks the lowest id; all -inf gives token 0 */
    c = llmrt_sampling_default_config(), c.top_k = 1;
    llmrt_sampler *s = make(c, 6, NULL, 0);
    CHECK(draw(s, ties) == 1);
    float none[6] = {-INFINITY, NAN, -INFINITY, NAN, NAN, -INFINITY};
    CHECK(draw(s, none) == 0);
    llmrt_sampler_destroy(s);
}

static void test_distributions(void) {
    enum { N = 30000 };
    int64_t               counts[200];
    double                p[200];
    llmrt_sampling_config c = llmrt_sampling_default_config();
    c.has_seed              = true;

    /* plain softmax at temperatures 1 and 0.5 (NaN logit: never drawn) */
    float small[6] = {1.0f, 2.0f, 0.5f, -1.0f, 1.5f, NAN};
    float temps[2] = {1.0f, 0.5f};
    for (int ti = 0; ti < 2; ti++) {
        c.temperature = temps[ti], c.seed = 11;
        histogram(c, small, 6, N, counts);
        softmax_d(small, 5, temps[ti], p);
        p[5] = 0.0;
        check_freqs(counts, p, 6, N, "softmax");
    }

    /* top-k = 2 over 50 tokens: renormalised over the two best */
    float l50[50];
    fill_logits(l50, 50, 5, 2.0f);
    c = llmrt_sampling_default_config(), c.has_seed = true, c.seed = 12, c.top_k = 2;
    histogram(c, l50, 50, N, counts);
    softmax_d(l50, 50, 1.0, p);
    int b0 = 0, b1 = -1;
    for (int i = 1; i < 50; i++)
        if (l50[i] > l50[b0]) b0 = i;
    for (int i = 0; i < 50; i++)
        if (i != b0 && (b1 < 0 || l50[i] > l50[b1])) b1 = i;
    double q[50] = {0};
    q[b0] = p[b0] / (p[b0] + p[b1]), q[b1] = p[b1] / (p[b0] + p[b1]);
    check_freqs(counts, q, 50, N, "top_k=2");

    /* top-p = 0.5 over 200 tokens, alone (histogram path) and under top-k 150 (heap path) */
    float l200[200];
    bool  in[200];
    fill_logits(l200, 200, 6, 3.0f);
    softmax_d(l200, 200, 1.0, p);
    int k = nucleus(p, 200, 0.5, in);
    CHECK(k > 2 && k < 100);
    double mass = 0.0;
    for (int i = 0; i < 200; i++) mass += in[i] ? p[i] : 0.0;
    double qq[200];
    for (int i = 0; i < 200; i++) qq[i] = in[i] ? p[i] / mass : 0.0;
    int32_t ks[2] = {-1, 150};
    for (int i = 0; i < 2; i++) {
        c = llmrt_sampling_default_config(), c.has_seed = true, c.seed = 13, c.top_p = 0.5f;
        c.top_k = ks[i];
        histogram(c, l200, 200, N, counts);
        check_freqs(counts, qq, 200, N, "top_p=0.5");
    }

    /* min-p = 0.2: p >= 0.2 * p_max survives; streaming path and heap path */
    float lm[6] = {2.0f, 2.0f + logf(0.5f), 2.0f + logf(0.25f), 2.0f + logf(0.15f),
                   2.0f + logf(0.05f), 2.0f + logf(0.21f)};
    softmax_d(lm, 6, 1.0, p);
    double pm[6], zm = 0.0;
    for (int i = 0; i < 6; i++) zm += pm[i] = p[i] >= 0.2 * p[0] ? p[i] : 0.0;
    for (int i = 0; i < 6; i++) pm[i] /= zm;
    CHECK(pm[3] == 0.0 && pm[4] == 0.0 && pm[5] > 0.0);
    for (int i = 0; i < 2; i++) {
        c = llmrt_sampling_default_config(), c.has_seed = true, c.seed = 14, c.min_p = 0.2f;
        c.top_k = i ? 5 : -1;
        histogram(c, lm, 6, N, counts);
        check_freqs(counts, pm, 6, N, "min_p=0.2");
    }

    /* flat distribution, top-p 0.5: exactly the lower half of the ids */
    enum { F = 1000 };
    static float flat[F];
    static int64_t fc[F];
    c = llmrt_sampling_default_config(), c.has_seed = true, c.seed = 15, c.top_p = 0.5f;
    histogram(c, flat, F, 3000, fc);
    int64_t outside = 0, used = 0;
    for (int i = 0; i < F; i++) outside += i >= 500 ? fc[i] : 0, used += fc[i] > 0;
    CHECK_MSG(outside == 0 && used > 400, "flat top_p: %lld outside, %lld used", (long long)outside,
              (long long)used);
}

/* A 128k vocabulary: every draw stays inside the independently computed top-k / nucleus. */
static void test_large_vocab(void) {
    enum { V = 128256 };
    float  *l  = malloc(V * sizeof *l);
    double *p  = malloc(V * sizeof *p);
    bool   *in = malloc(V * sizeof *in);
    fill_logits(l, V, 21, 6.0f);
    softmax_d(l, V, 0.9, p);
    int                   k = nucleus(p, V, 0.9, in);
    llmrt_sampling_config c = llmrt_sampling_default_config();
    c.has_seed = true, c.seed = 3, c.temperature = 0.9f, c.top_p = 0.9f;
    llmrt_sampler *s = make(c, V, NULL, 0);
    int            bad = 0;
    for (int t = 0; t < 40; t++) bad += !in[draw(s, l)];
    CHECK_MSG(bad == 0, "top_p=0.9 on 128k: %d draws outside the nucleus of %d", bad, k);
    llmrt_sampler_destroy(s);

    c.top_p = 1.0f, c.top_k = 50;
    s         = make(c, V, NULL, 0);
    int *rank = rank_ids(p, V); /* p is monotone in the logit */
    for (int i = 0; i < V; i++) in[i] = false;
    for (int i = 0; i < 50; i++) in[rank[i]] = true;
    bad = 0;
    for (int t = 0; t < 40; t++) bad += !in[draw(s, l)];
    CHECK_MSG(bad == 0, "top_k=50 on 128k: %d draws outside", bad);
    llmrt_sampler_destroy(s);
    free(rank);
    free(l);
    free(p);
    free(in);
}

/* Greedy token for `logits` (copied) under `c` after the given prompt and accepted outputs. */
static int32_t greedy_after(llmrt_sampling_config c, const float *logits, int32_t v,
                            const int32_t *prompt, int n_prompt, const int32_t *outs, int n_outs) {
    llmrt_error err = {0};
    c.temperature   = 0.0f;
    llmrt_sampler *s = make(c, v, prompt, n_prompt);
    for (int i = 0; i < n_outs; i++) CHECK(llmrt_sampler_accept(s, outs[i], &err) == LLMRT_OK);
    float l[8], before[8];
    memcpy(l, logits, (size_t)v * sizeof *l);
    memcpy(before, l, sizeof before);
    int32_t t = draw(s, l);
    CHECK_MSG(memcmp(l, before, (size_t)v * sizeof *l) == 0, "logits not restored");
    llmrt_sampler_destroy(s);
    return t;
}

static void test_penalties(void) {
    llmrt_sampling_config c     = llmrt_sampling_default_config();
    int32_t               zero[] = {0, 0, 0}, one[] = {1};

    /* repetition: positive logits divided, negative multiplied; prompt and output both count */
    c.repetition_penalty = 1.2f;
    float pos[4] = {2.0f, 1.8f, -1.0f, -1.1f};  /* 2 / 1.2 = 1.67 < 1.8 */
    float pos2[4] = {2.0f, 1.6f, -1.0f, -1.1f}; /* 1.67 > 1.6: no flip */
    float neg[4] = {-1.0f, -1.1f, -3.0f, -4.0f}; /* -1 * 1.2 = -1.2 < -1.1 */
    CHECK(greedy_after(c, pos, 4, NULL, 0, NULL, 0) == 0);
    CHECK(greedy_after(c, pos, 4, zero, 1, NULL, 0) == 1);
    CHECK(greedy_after(c, pos, 4, NULL, 0, zero, 1) == 1);
    CHECK(greedy_after(c, pos2, 4, zero, 3, zero, 3) == 0); /* not compounded by count */
    CHECK(greedy_after(c, neg, 4, zero, 1, NULL, 0) == 1);
    CHECK(greedy_after(c, neg, 4, one, 1, NULL, 0) == 0);
    c.repetition_penalty = 0.5f; /* < 1 rewards repetition */
    float rew[4] = {1.0f, 1.5f, 0.0f, 0.0f};
    CHECK(greedy_after(c, rew, 4, zero, 1, NULL, 0) == 0);

    /* presence: once per generated token, not per occurrence; the prompt does not count */
    c                  = llmrt_sampling_default_config();
    c.presence_penalty = 0.5f;
    float pr[4]        = {1.0f, 0.8f, 0.0f, 0.0f};
    float pr2[4]       = {1.0f, 0.45f, 0.0f, 0.0f};
    CHECK(greedy_after(c, pr, 4, zero, 3, NULL, 0) == 0);
    CHECK(greedy_after(c, pr, 4, NULL, 0, zero, 1) == 1);
    CHECK(greedy_after(c, pr2, 4, NULL, 0, zero, 3) == 0);
    c.presence_penalty = -1.0f; /* negative: encourages */
    float pr3[4]       = {0.5f, 1.0f, 0.0f, 0.0f};
    CHECK(greedy_after(c, pr3, 4, NULL, 0, zero, 1) == 0);

    /* frequency: per occurrence in the output (1 - 0.2 n vs 0.5) */
    c                   = llmrt_sampling_default_config();
    c.frequency_penalty = 0.2f;
    float fr[4]         = {1.0f, 0.5f, 0.0f, 0.0f};
    CHECK(greedy_after(c, fr, 4, zero, 3, NULL, 0) == 0);
    CHECK(greedy_after(c, fr, 4, NULL, 0, zero, 2) == 0);
    CHECK(greedy_after(c, fr, 4, NULL, 0, zero, 3) == 1);

    /* many distinct tokens (map growth) keep exact counts, sampled ones included: every token
     * twice (-0.5), then the last one keeps winning until its own count reaches 5 */
    enum { V = 5000 };
    c                   = llmrt_sampling_default_config();
    c.temperature       = 0.0f;
    c.frequency_penalty = 0.25f;
    llmrt_sampler *s    = make(c, V, NULL, 0);
    llmrt_error    err  = {0};
    for (int i = 0; i < 2 * V; i++) CHECK(llmrt_sampler_accept(s, i % V, &err) == LLMRT_OK);
    static float lv[V];
    lv[V - 1] = 0.6f; /* 0.6 - 0.25 n against -0.5 */
    CHECK(draw(s, lv) == V - 1);
    CHECK(draw(s, lv) == V - 1);
    CHECK(draw(s, lv) == V - 1);
    CHECK(draw(s, lv) == 0);
    llmrt_sampler_destroy(s);
}

static void test_logprobs(void) {
    enum { V = 1000 };
    float  l[V], orig[V];
    double lp[V];
    llmrt_sampling_config c = llmrt_sampling_default_config();
    c.has_seed = true, c.seed = 9, c.temperature = 0.7f, c.n_logprobs = 5;
    c.repetition_penalty = 1.5f, c.presence_penalty = 1.0f; /* must not affect logprobs */
    int32_t        prompt[] = {1, 2, 3};
    llmrt_sampler *s        = make(c, V, prompt, 3);
    llmrt_error    err      = {0};
    for (int t = 0; t < 20; t++) {
        fill_logits(l, V, 300u + (uint64_t)t, 4.0f);
        memcpy(orig, l, sizeof l);
        double m = -INFINITY, z = 0.0;
        for (int i = 0; i < V; i++) m = fmax(m, l[i]);
        for (int i = 0; i < V; i++) z += exp((double)l[i] - m);
        for (int i = 0; i < V; i++) lp[i] = (double)l[i] - m - log(z);
        llmrt_sample_result r;
        CHECK(llmrt_sampler_sample(s, l, &r, &err) == LLMRT_OK);
        CHECK(memcmp(l, orig, sizeof l) == 0);
        CHECK(r.n_top == 5);
        CHECK_MSG(fabs(r.logprob - lp[r.token]) < 1e-5, "chosen logprob %g vs %g", r.logprob,
                  lp[r.token]);
        for (int i = 0; i < r.n_top; i++) {
            CHECK(fabs(r.top_logprobs[i] - lp[r.top_ids[i]]) < 1e-5);
            if (i > 0) CHECK(r.top_logprobs[i] <= r.top_logprobs[i - 1]);
            int above = 0; /* exactly i tokens are more likely than the i-th */
            for (int j = 0; j < V; j++) above += lp[j] > lp[r.top_ids[i]];
            CHECK(above == i);
        }
    }
    llmrt_sampler_destroy(s);

    /* whole vocabulary as top-n: probabilities sum to one */
    float small[7] = {0.1f, -2.0f, 3.0f, 3.0f, 0.0f, -INFINITY, 1.0f};
    c              = llmrt_sampling_default_config();
    c.n_logprobs   = 7;
    s              = make(c, 7, NULL, 0);
    llmrt_sample_result r;
    CHECK(llmrt_sampler_sample(s, small, &r, &err) == LLMRT_OK);
    double sum = 0.0;
    for (int i = 0; i < 7; i++) sum += exp(r.top_logprobs[i]);
    CHECK_MSG(fabs(sum - 1.0) < 1e-6, "sum of probabilities %g", sum);
    CHECK(r.top_ids[0] == 2 && r.top_ids[1] == 3 && r.top_ids[6] == 5); /* ties by id */
    llmrt_sampler_destroy(s);

    /* logprobs without top-n; nothing when not asked */
    c          = llmrt_sampling_default_config();
    c.logprobs = true;
    s          = make(c, 7, NULL, 0);
    CHECK(llmrt_sampler_sample(s, small, &r, &err) == LLMRT_OK);
    CHECK(r.n_top == 0 && r.logprob < 0.0f && r.logprob > -30.0f);
    llmrt_sampler_destroy(s);
    c = llmrt_sampling_default_config();
    s = make(c, 7, NULL, 0);
    CHECK(llmrt_sampler_sample(s, small, &r, &err) == LLMRT_OK);
    CHECK(r.n_top == 0 && r.logprob == 0.0f);
    llmrt_sampler_destroy(s);
}

/* Logit bias: greedy flips computed by hand, added before the penalties, repeated ids adding up,
 * the caller's logits restored and the caller's arrays not needed after create; the biased
 * distribution against softmax(l + bias) computed here; logprobs stay raw; bad entries named. */
static void test_logit_bias(void) {
    llmrt_sampling_config c = llmrt_sampling_default_config();
    c.temperature           = 0.0f;
    float   l[4]            = {2.0f, 1.0f, 0.5f, -1.0f};
    int32_t ids[3]          = {0, 3, 3};
    float   bias[3]         = {-1.5f, 1.0f, 1.75f}; /* 0: 0.5; 3: -1 + 2.75 = 1.75 */
    c.bias_ids = ids, c.bias = bias, c.n_bias = 1;
    CHECK(greedy_after(c, l, 4, NULL, 0, NULL, 0) == 1); /* 0.5 < 1.0 */
    c.n_bias = 2;                                         /* 3: -1 + 1 = 0 */
    CHECK(greedy_after(c, l, 4, NULL, 0, NULL, 0) == 1);
    c.n_bias = 3; /* repeated id adds up: 1.75 beats 1.0 */
    CHECK(greedy_after(c, l, 4, NULL, 0, NULL, 0) == 3);
    bias[0] = -100.0f, c.n_bias = 1; /* a ban */
    float tie[4] = {50.0f, -49.0f, -60.0f, -70.0f};
    CHECK(greedy_after(c, tie, 4, NULL, 0, NULL, 0) == 1);

    /* before the repetition penalty (token 0 seen in the prompt, 1 not): (2 + 0.6) / 2 = 1.3
     * loses to 1.4, where the other order (2 / 2 + 0.6 = 1.6) would win */
    c                      = llmrt_sampling_default_config();
    c.temperature          = 0.0f;
    c.repetition_penalty   = 2.0f;
    float   rp[4]          = {2.0f, 1.4f, 0.0f, 0.0f};
    int32_t zero[1]        = {0};
    float   b06[1]         = {0.6f};
    c.bias_ids = zero, c.bias = b06, c.n_bias = 1;
    CHECK(greedy_after(c, rp, 4, zero, 1, NULL, 0) == 1);

    /* the sampler keeps its own copy */
    llmrt_error err = {0};
    int32_t    *hid = malloc(sizeof *hid);
    float      *hb  = malloc(sizeof *hb);
    *hid = 2, *hb = 10.0f;
    c              = llmrt_sampling_default_config();
    c.temperature  = 0.0f;
    c.bias_ids = hid, c.bias = hb, c.n_bias = 1;
    llmrt_sampler *s = make(c, 4, NULL, 0);
    *hid = 0, *hb = -100.0f; /* changed, then freed: must not matter */
    free(hid), free(hb);
    float l2[4] = {2.0f, 1.0f, 0.5f, -1.0f};
    llmrt_sample_result r;
    CHECK(llmrt_sampler_sample(s, l2, &r, &err) == LLMRT_OK && r.token == 2);
    llmrt_sampler_destroy(s);

    /* distribution at temperature 1 against softmax(l + bias); logprobs of the raw logits */
    enum { V = 6 };
    float   lv[V] = {1.0f, 0.5f, 0.0f, -0.5f, 0.25f, 2.0f}, lb[V];
    int32_t bid[2] = {5, 2};
    float   bb[2]  = {-1.5f, 1.0f};
    c              = llmrt_sampling_default_config();
    c.has_seed = true, c.seed = 7, c.bias_ids = bid, c.bias = bb, c.n_bias = 2;
    c.logprobs     = true;
    memcpy(lb, lv, sizeof lb);
    lb[5] += bb[0], lb[2] += bb[1];
    double p[V], raw[V];
    softmax_d(lb, V, 1.0, p);
    softmax_d(lv, V, 1.0, raw);
    s                = make(c, V, NULL, 0);
    int64_t counts[V] = {0}, draws = 40000;
    bool    raw_lp    = true;
    for (int64_t i = 0; i < draws; i++) {
        float l3[V];
        memcpy(l3, lv, sizeof l3);
        if (llmrt_sampler_sample(s, l3, &r, &err) != LLMRT_OK) break;
        counts[r.token]++;
        raw_lp = raw_lp && fabs(r.logprob - log(raw[r.token])) < 1e-5;
        CHECK(memcmp(l3, lv, sizeof l3) == 0);
    }
    llmrt_sampler_destroy(s);
    check_freqs(counts, p, V, draws, "logit bias");
    CHECK_MSG(raw_lp, "logprobs with a logit bias are not the raw logits'");

    /* validation, each message naming the entry */
    c          = llmrt_sampling_default_config();
    float bad[2] = {1.0f, NAN};
    int32_t two[2] = {1, 2};
    c.bias_ids = two, c.bias = bad, c.n_bias = 2;
    CHECK_ERR(llmrt_sampling_validate(&c, &err), "logit_bias[1] (token 2)");
    bad[1] = 100.5f;
    CHECK_ERR(llmrt_sampling_validate(&c, &err), "[-100, 100]");
    bad[1] = -100.0f;
    CHECK(llmrt_sampling_validate(&c, &err) == LLMRT_OK);
    c.n_bias = -1;
    CHECK_ERR(llmrt_sampling_validate(&c, &err), "entries");
    c.n_bias = LLMRT_SAMPLER_MAX_LOGIT_BIAS + 1;
    CHECK_ERR(llmrt_sampling_validate(&c, &err), "the limit is");
    c.n_bias = 1, c.bias = NULL;
    CHECK_ERR(llmrt_sampling_validate(&c, &err), "NULL");
    c.bias = bad, c.n_bias = 2, two[1] = 4;
    s = NULL;
    CHECK_ERR(llmrt_sampler_create(&c, 4, NULL, 0, &s, &err), "logit_bias[1]: token 4");
    CHECK(s == NULL);
    two[1] = -1;
    CHECK_ERR(llmrt_sampler_create(&c, 4, NULL, 0, &s, &err), "token -1 is outside");
}

/* The AVX2 vocabulary passes against the baseline 4-lane ones (llmrt_sampler_use_avx2): the same
 * token and logprob bits, greedy and at temperatures 0.7 / 1 with min-p, for vocabularies
 * around every block edge (32 lanes of argmax, 4 x 64 logits of the block sums) and SmolLM2's,
 * with NaN, -inf, +-0 and tied maxima mixed in. */
static void test_avx2_same_results(void) {
    if (!llmrt_sampler_use_avx2(true)) {
        printf("no AVX2 on this CPU: the AVX2 sampler passes not compared\n");
        return;
    }
    static const int32_t vocabs[] = {1, 5, 31, 32, 33, 255, 256, 257, 1000, 1055, 49152};
    static const float   temps[]  = {0.0f, 0.7f, 1.0f};
    int64_t              n_cases = 0, n_diff = 0;
    for (size_t vi = 0; vi < sizeof vocabs / sizeof *vocabs; vi++) {
        int32_t V = vocabs[vi];
        float  *l = malloc((size_t)V * sizeof *l);
        CHECK(l != NULL);
        for (size_t ti = 0; ti < sizeof temps / sizeof *temps; ti++)
            for (int rep = 0; rep < 6; rep++) {
                fill_logits(l, V, 1000u * vi + 10u * ti + (uint64_t)rep, 6.0f);
                if (rep >= 2) /* specials: NaN, -inf, +-0 and a tie for the maximum */
                    for (int32_t i = rep; i < V; i += 7 + rep)
                        l[i] = i % 3 == 0 ? NAN : i % 3 == 1 ? -INFINITY : (rep % 2 ? -0.0f : 0.0f);
                if (rep >= 4 && V > 2) l[V - 1] = l[V / 2] = 30.0f;
                llmrt_sample_result r[2];
                for (int path = 0; path < 2; path++) {
                    llmrt_sampling_config c = llmrt_sampling_default_config();
                    c.temperature = temps[ti], c.has_seed = true, c.seed = 77 + (uint64_t)rep;
                    c.logprobs = true, c.min_p = rep == 3 ? 0.01f : 0.0f;
                    llmrt_sampler_use_avx2(path == 1);
                    llmrt_sampler *s   = make(c, V, NULL, 0);
                    llmrt_error    err = {0};
                    CHECK(llmrt_sampler_sample(s, l, &r[path], &err) == LLMRT_OK);
                    llmrt_sampler_destroy(s);
                }
                n_cases++;
                if ((r[0].token != r[1].token ||
                     memcmp(&r[0].logprob, &r[1].logprob, sizeof r[0].logprob) != 0) &&
                    n_diff++ < 5)
                    CHECK_MSG(false, "vocab %d temperature %g rep %d: baseline %d (%a), AVX2 %d (%a)",
                              V, (double)temps[ti], rep, r[0].token, (double)r[0].logprob,
                              r[1].token, (double)r[1].logprob);
            }
        free(l);
    }
    llmrt_sampler_use_avx2(true);
    CHECK(n_diff == 0);
    printf("AVX2 sampler passes: %lld cases, %lld with other tokens or logprob bits than the "
           "baseline\n", (long long)n_cases, (long long)n_diff);
}

int main(void) {
    test_avx2_same_results();
    test_validation();
    test_reproducible();
    test_greedy();
    test_distributions();
    test_large_vocab();
    test_penalties();
    test_logprobs();
    test_logit_bias();
    return test_summary("test_sampler");
}
