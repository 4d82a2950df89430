/* CUDA decode graphs (host/backend/cuda/cuda_backend.c, section "decode graphs"), under cusim in
 * CI and on a GPU with `ctest -L gpu`:
 *   1. Bit for bit: two CUDA models of the same random-weight Llama (head dim 64, GQA 2:1: the
 *      flash kernels; and a tiny fixture with head dim 16: the naive attention), one with decode
 *      graphs (the default) and one with enforce_eager, run the same steps through llmrt_forward
 *      on their own KV caches: a prefill of 6 sequences, decode steps of 1..6 sequences (buckets
 *      1, 2, 4 hit exactly; 3, 5 and 6 padded to 4 and 8), a mixed step (one sequence with two
 *      tokens: eager in both), then both KV caches destroyed and created again (the pool is
 *      reallocated: every graph is dropped and captured again) and more decode steps. Every
 *      logits row must have the same bits in both models (memcmp; on a GPU, padded batches
 *      within the fp16 tolerance: cuBLAS may pick another kernel for the padded size), the
 *      graph model must have
 *      captured and replayed graphs and rebuilt them after the reallocation, and the eager
 *      model must have run none. A replay with stale arguments (positions, lengths, tables),
 *      padding that leaks into a real row, or a missed rebuild changes the bits.
 *   1b. Two KV caches of one model used in turn (each step of a bucket records the graph anew for
 *      the other cache's buffers): still bit for bit, and no step fails.
 *   1c. The fused decode ops (matmul_fused: RMSNorm into q/k/v and gate/up, grouped launches,
 *      SwiGLU into down, the residual adds in the epilogues) against a model with them declined
 *      (llmrt_cuda_options.unfused), both eager: the same steps within 2e-2 of max|logit|,
 *      fewer launches.
 *   2. Kernel launches per decode layer, fused and unfused: the graph of a one-sequence decode
 *      step of the same model with 1 and with 3 layers; (nodes(3) - nodes(1)) / 2 is the
 *      per-layer count, and the eager model's launch counter must give the same figure
 *      (printed; the number used by the modelled decode time,
 *      bench/results/cuda_launches_per_layer.md), and the split-KV count a Llama-2-7B layer gets
 *      per bucket on this device (a count > 1 adds the combine kernel to its layer). The counts
 *      are printed for fp16 and for 4-bit (random GPTQ g64) weights.
 * The decode split-KV count follows the bucket in both paths (decode_splits), which is what
 * makes 1 exact; the references for correctness against the CPU are test_cuda_backend's. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api_model.h" /* the public model: its rank's backend */
#include "attention.h"     /* cuda/: the decode split count of a Llama-2-7B layer */
#include "backend/cuda/cuda_backend.h"
#include "llmrt_experimental.h"
#include "model/model.h"
#include "test_util.h"

#define BLOCK    16
#define N_SEQ    6
#define SEQ_BLK  5 /* blocks per sequence: up to 80 tokens */
#define MAX_STEP 16

static char g_dir[256];
static bool g_cusim; /* the simulated device: every comparison bit for bit */
/* > 0: step() compares within this fraction of max|logit| instead of bit for bit (the fused
 * decode ops against the unfused sequence: another summation order than cuBLAS's) */
static double g_tolerance;

/* 4-bit (random GPTQ g64) weights in the configs write_config writes from now on */
static bool g_q4;

/* A random-weight Llama config with n_layers layers (GPTQ 4-bit when g_q4); returns its path
 * (static buffer). */
static const char *write_config(int n_layers) {
    static char path[512];
    snprintf(g_dir, sizeof g_dir, "/tmp/llmrt_test_cuda_graphs_%d", (int)getpid());
    mkdir(g_dir, 0700);
    snprintf(path, sizeof path, "%s/config.json", g_dir);
    FILE *f = fopen(path, "w");
    if (!f) return NULL;
    fprintf(f,
            "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", "
            "\"hidden_size\": 256, \"intermediate_size\": 512, \"num_attention_heads\": 4, "
            "\"num_key_value_heads\": 2, \"head_dim\": 64, \"num_hidden_layers\": %d, "
            "\"vocab_size\": 512, \"max_position_embeddings\": 512, \"rms_norm_eps\": 1e-5, "
            "\"rope_theta\": 10000.0, \"tie_word_embeddings\": true, \"bos_token_id\": 1, "
            "\"eos_token_id\": 2%s}\n",
            n_layers,
            g_q4 ? ", \"quantization_config\": {\"bits\": 4, \"group_size\": 64, \"desc_act\": "
                   "false, \"sym\": true, \"quant_method\": \"gptq\"}"
                 : "");
    fclose(f);
    return path;
}

static llmrt_model *load(const char *path, bool random, bool eager) {
    llmrt_model_params p = llmrt_model_default_params();
    p.device = LLMRT_DEVICE_CUDA;
    p.load_format = random ? LLMRT_LOAD_RANDOM : LLMRT_LOAD_AUTO;
    p.random_seed = 11;
    p.n_threads = 1;
    p.enforce_eager = eager;
    llmrt_model *m = NULL;
    llmrt_status s = llmrt_model_load(path, &p, &m);
    CHECK_MSG(s == LLMRT_OK, "load %s: %s %s", path, llmrt_status_str(s), llmrt_last_error());
    return m;
}

static llmrt_kv_cache *make_kv(llmrt_model *m) {
    llmrt_kv_cache_params kp = llmrt_kv_cache_default_params();
    kp.block_size = BLOCK;
    kp.n_blocks = N_SEQ * SEQ_BLK + 3;
    llmrt_kv_cache *kv = NULL;
    llmrt_status s = llmrt_kv_cache_create(m, &kp, &kv);
    CHECK_MSG(s == LLMRT_OK, "kv cache: %s %s", llmrt_status_str(s), llmrt_last_error());
    return kv;
}

static llmrt_cuda_backend_stats stats_of(llmrt_model *m) {
    llmrt_cuda_backend_stats st;
    memset(&st, 0, sizeof st);
    CHECK(llmrt_backend_cuda_stats(m->rank->be, &st));
    return st;
}

/* The state of the N_SEQ sequences: blocks (scrambled, disjoint), tokens in the cache, next
 * token. */
typedef struct seqs {
    int32_t table[N_SEQ][SEQ_BLK];
    int32_t len[N_SEQ];
    int32_t next[N_SEQ];
} seqs;

/* One step on both models: `n_new[i]` tokens of sequence order[i] (i < k); the graph model's and
 * the eager model's logits must match bit for bit. The next tokens come from the eager run. */
static bool step(llmrt_kv_cache *kg, llmrt_kv_cache *ke, seqs *S, const int32_t *order, int32_t k,
                 const int32_t *n_new, int32_t V, const char *what) {
    int32_t tok[256], pos[256], sid[256], table[N_SEQ * SEQ_BLK], T = 0;
    for (int32_t i = 0; i < k; i++) {
        int32_t s = order[i];
        memcpy(table + i * SEQ_BLK, S->table[s], sizeof S->table[s]);
        for (int32_t j = 0; j < n_new[i]; j++, T++) {
            tok[T] = (S->next[s] + 7 * j) % V;
            pos[T] = S->len[s] + j;
            sid[T] = i;
        }
    }
    llmrt_batch b = {.n_tokens = T,
                     .tokens = tok,
                     .positions = pos,
                     .seq_ids = sid,
                     .n_seqs = k,
                     .max_blocks_per_seq = SEQ_BLK,
                     .block_tables = table};
    float *lg = malloc((size_t)k * V * sizeof(float)), *le = malloc((size_t)k * V * sizeof(float));
    llmrt_status sg = llmrt_forward(kg, &b, lg, (int64_t)k * V);
    CHECK_MSG(sg == LLMRT_OK, "%s (graphs): %s %s", what, llmrt_status_str(sg), llmrt_last_error());
    llmrt_status se = llmrt_forward(ke, &b, le, (int64_t)k * V);
    CHECK_MSG(se == LLMRT_OK, "%s (eager): %s %s", what, llmrt_status_str(se), llmrt_last_error());
    bool same = sg == LLMRT_OK && se == LLMRT_OK;
    /* On a GPU a padded batch may make cuBLAS pick another kernel than the eager batch's size
     * (other rounding): exact where the padded size equals the batch's, else within the fp16
     * tolerance of test_cuda_backend. Under cusim every step is exact. */
    bool   exact = g_tolerance == 0 && (g_cusim || T != k || (k & (k - 1)) == 0);
    double tol   = g_tolerance > 0 ? g_tolerance : 3e-2;
    for (int32_t i = 0; i < k && same; i++) {
        const float *a = lg + (int64_t)i * V, *r = le + (int64_t)i * V;
        bool eq = memcmp(a, r, (size_t)V * sizeof(float)) == 0;
        if (!exact) {
            double e = 0, m = 0;
            for (int32_t v = 0; v < V; v++) {
                e = fabs(a[v] - r[v]) > e ? fabs(a[v] - r[v]) : e;
                m = fabs(r[v]) > m ? fabs(r[v]) : m;
            }
            eq = e <= tol * m;
        }
        CHECK_MSG(eq, "%s: logits of sequence %d differ between the two models", what, order[i]);
        same = eq;
    }
    for (int32_t i = 0; i < k && same; i++) { /* greedy next token, from the eager logits */
        int32_t s = order[i], best = 0;
        for (int32_t v = 1; v < V; v++)
            if (le[(int64_t)i * V + v] > le[(int64_t)i * V + best]) best = v;
        S->len[s] += n_new[i];
        S->next[s] = best;
    }
    free(lg);
    free(le);
    return same;
}

/* Prefill of all sequences (prompt lengths 5, 8, 11, ...), in one batch. */
static bool prefill(llmrt_kv_cache *kg, llmrt_kv_cache *ke, seqs *S, int32_t V) {
    int32_t order[N_SEQ], n_new[N_SEQ];
    for (int32_t i = 0; i < N_SEQ; i++) {
        order[i] = i;
        n_new[i] = 5 + 3 * i;
        S->len[i] = 0;
        S->next[i] = (17 * i + 3) % V;
    }
    return step(kg, ke, S, order, N_SEQ, n_new, V, "prefill");
}

static void test_bit_exact(const char *path, bool random, const char *name) {
    llmrt_model *mg = load(path, random, false), *me = load(path, random, true);
    if (!mg || !me) {
        llmrt_model_destroy(mg);
        llmrt_model_destroy(me);
        return;
    }
    llmrt_model_info info = {.struct_size = sizeof info};
    llmrt_model_get_info(mg, &info);
    CHECK(info.cuda_graphs);
    g_cusim = strstr(info.device_name, "(cusim)") != NULL;
    int32_t V = info.vocab_size;
    llmrt_model_info ie = {.struct_size = sizeof ie};
    llmrt_model_get_info(me, &ie);
    CHECK(!ie.cuda_graphs);
    seqs S;
    for (int32_t s = 0; s < N_SEQ; s++) /* disjoint, scrambled blocks */
        for (int32_t b = 0; b < SEQ_BLK; b++)
            S.table[s][b] = (b * N_SEQ + (s * 5 + 2) % N_SEQ);
    llmrt_kv_cache *kg = make_kv(mg), *ke = make_kv(me);
    bool ok = kg && ke && prefill(kg, ke, &S, V);
    /* decode steps: batch sizes hitting and missing the buckets, different sequence subsets */
    static const int32_t sizes[] = {1, 2, 3, 4, 5, 6, 3, 1, 6, 4, 2, 5};
    int32_t ones[N_SEQ] = {1, 1, 1, 1, 1, 1}, order[N_SEQ];
    for (size_t i = 0; ok && i < sizeof sizes / sizeof sizes[0]; i++) {
        for (int32_t j = 0; j < sizes[i]; j++)
            order[j] = (int32_t)(j + i) % N_SEQ;
        char what[64];
        snprintf(what, sizeof what, "%s: decode step %zu (%d sequences)", name, i, sizes[i]);
        ok = step(kg, ke, &S, order, sizes[i], ones, V, what);
    }
    /* a mixed step: sequence 0 with two tokens, others one (eager in both) */
    int32_t mixed[3] = {2, 1, 1}, mixed_order[3] = {0, 1, 2};
    if (ok) ok = step(kg, ke, &S, mixed_order, 3, mixed, V, "mixed step");
    llmrt_cuda_backend_stats g1 = stats_of(mg), e1 = stats_of(me);
    printf("%s: %lld graphs captured, %lld replays, %lld eager decode steps; eager model: %lld "
           "eager decode steps, %lld graphs\n",
           name, (long long)g1.graph_captures, (long long)g1.graph_replays,
           (long long)g1.graph_eager, (long long)e1.graph_eager,
           (long long)(e1.graph_captures + e1.graph_replays));
    CHECK_MSG(g1.graph_captures == 4, "%lld captures (buckets 1, 2, 4, 8 expected)",
              (long long)g1.graph_captures);
    CHECK(g1.graph_replays == (int64_t)(sizeof sizes / sizeof sizes[0]) - 4);
    CHECK(e1.graph_captures == 0 && e1.graph_replays == 0 && e1.graph_eager >= 12);
    /* KV reallocation: both caches destroyed and created again, prompts recomputed */
    llmrt_kv_cache_destroy(kg);
    llmrt_kv_cache_destroy(ke);
    kg = make_kv(mg);
    ke = make_kv(me);
    ok = ok && kg && ke && prefill(kg, ke, &S, V);
    static const int32_t after[] = {3, 3, 1, 6};
    for (size_t i = 0; ok && i < sizeof after / sizeof after[0]; i++) {
        for (int32_t j = 0; j < after[i]; j++)
            order[j] = (int32_t)(N_SEQ - 1 - j);
        char what[64];
        snprintf(what, sizeof what, "%s: after the KV reallocation, step %zu", name, i);
        ok = step(kg, ke, &S, order, after[i], ones, V, what);
    }
    llmrt_cuda_backend_stats g2 = stats_of(mg);
    CHECK_MSG(g2.graph_rebuilds >= 1 && g2.graph_captures == g1.graph_captures + 3,
              "after the reallocation: %lld rebuilds, %lld captures (before: %lld)",
              (long long)g2.graph_rebuilds, (long long)g2.graph_captures,
              (long long)g1.graph_captures);
    CHECK(g2.graph_replays == g1.graph_replays + 1);
    llmrt_model_get_info(mg, &info);
    CHECK(info.cuda_graph_replays == g2.graph_replays + g2.graph_captures);
    printf("%s: %s; %lld graph rebuilds after the KV reallocation\n", name,
           ok ? "graph replay == eager decode, bit for bit, at every step" : "MISMATCH",
           (long long)g2.graph_rebuilds);
    llmrt_kv_cache_destroy(kg);
    llmrt_kv_cache_destroy(ke);
    llmrt_model_destroy(mg);
    llmrt_model_destroy(me);
}

/* 1b: two caches per model, decode steps alternating between them. */
static void test_two_caches(const char *path) {
    llmrt_model *mg = load(path, true, false), *me = load(path, true, true);
    if (mg && me) {
        seqs S[2];
        for (int32_t c = 0; c < 2; c++)
            for (int32_t s = 0; s < N_SEQ; s++)
                for (int32_t b = 0; b < SEQ_BLK; b++)
                    S[c].table[s][b] = s * SEQ_BLK + b;
        llmrt_kv_cache *kg[2] = {make_kv(mg), make_kv(mg)}, *ke[2] = {make_kv(me), make_kv(me)};
        bool ok = kg[0] && kg[1] && ke[0] && ke[1] && prefill(kg[0], ke[0], &S[0], 512) &&
                  prefill(kg[1], ke[1], &S[1], 512);
        int32_t ones[N_SEQ] = {1, 1, 1, 1, 1, 1}, order[N_SEQ] = {0, 1, 2, 3, 4, 5};
        static const int32_t sizes[] = {3, 3, 2, 2, 3, 3};
        for (size_t i = 0; ok && i < sizeof sizes / sizeof sizes[0]; i++)
            ok = step(kg[i % 2], ke[i % 2], &S[i % 2], order, sizes[i], ones, 512,
                      "two caches in turn");
        llmrt_cuda_backend_stats st = stats_of(mg);
        printf("two KV caches in turn: %s (%lld captures, %lld replays)\n",
               ok ? "bit for bit" : "MISMATCH", (long long)st.graph_captures,
               (long long)st.graph_replays);
        CHECK(st.graph_captures == 6 && st.graph_replays == 0);
        for (int32_t c = 0; c < 2; c++) {
            llmrt_kv_cache_destroy(kg[c]);
            llmrt_kv_cache_destroy(ke[c]);
        }
    }
    llmrt_model_destroy(mg);
    llmrt_model_destroy(me);
}

/* The CUDA backend of `m` declines the fused decode ops (the unfused sequence: "before"). */
static void set_unfused(llmrt_model *m) {
    llmrt_cuda_options o = {.unfused = true};
    CHECK(llmrt_backend_cuda_set_test_options(m->rank->be, &o));
}

/* 1c: the fused decode ops (backend op matmul_fused) against the unfused sequence, both eager
 * (so the launch counters count every step): the same steps as 1 within 2e-2 of max|logit|
 * (fp16 projections summed in another order than cuBLAS's; the kernel-level bit-identity of
 * each fusion is cuda/tests/test_fused_gemv.cu's and test_q4_matmul.cu's), and fewer launches
 * per decode step. 4-bit weights: bit for bit (as 1 compares), since the unfused decode runs
 * the same q4 GEMV, one launch per weight, where the fused one groups q, k, v and gate, up. */
static void test_fused_vs_unfused(const char *path, bool random, const char *name) {
    llmrt_model *mf = load(path, random, true), *mu = load(path, random, true);
    if (mf && mu) set_unfused(mu);
    llmrt_kv_cache *kf = mf ? make_kv(mf) : NULL, *ku = mu ? make_kv(mu) : NULL;
    llmrt_model_info info = {.struct_size = sizeof info};
    if (mf) llmrt_model_get_info(mf, &info);
    seqs S;
    for (int32_t s = 0; s < N_SEQ; s++)
        for (int32_t b = 0; b < SEQ_BLK; b++)
            S.table[s][b] = s * SEQ_BLK + b;
    g_tolerance = g_q4 ? 0 : 2e-2;
    bool ok = kf && ku && prefill(kf, ku, &S, info.vocab_size);
    static const int32_t sizes[] = {1, 3, 6, 2, 5, 4};
    int32_t ones[N_SEQ] = {1, 1, 1, 1, 1, 1}, order[N_SEQ];
    int64_t lf = kf ? stats_of(mf).launches : 0, lu = ku ? stats_of(mu).launches : 0;
    for (size_t i = 0; ok && i < sizeof sizes / sizeof sizes[0]; i++) {
        for (int32_t j = 0; j < sizes[i]; j++) order[j] = (int32_t)(j + 2 * i) % N_SEQ;
        char what[80];
        snprintf(what, sizeof what, "%s fused vs unfused: decode step %zu (%d sequences)", name, i,
                 sizes[i]);
        ok = step(kf, ku, &S, order, sizes[i], ones, info.vocab_size, what);
    }
    g_tolerance = 0;
    if (ok) {
        lf = stats_of(mf).launches - lf;
        lu = stats_of(mu).launches - lu;
        CHECK_MSG(lf < lu, "fused decode steps launched %lld kernels, unfused %lld", (long long)lf,
                  (long long)lu);
        printf("%s: fused decode == unfused %s at 6 steps; launches %lld (fused) vs %lld "
               "(unfused)\n",
               name, g_q4 ? "as step() compares (bit for bit under cusim)" : "within 2e-2 of max|logit|",
               (long long)lf, (long long)lu);
    }
    llmrt_kv_cache_destroy(kf);
    llmrt_kv_cache_destroy(ku);
    llmrt_model_destroy(mf);
    llmrt_model_destroy(mu);
}

/* Launches of one decode step of one sequence: (graph nodes, eager launcher calls); `unfused`:
 * with the fused decode ops declined (the sequence before them). */
static void decode_launches(int n_layers, bool unfused, int64_t *nodes, int64_t *launches) {
    *nodes = *launches = -1;
    const char *path = write_config(n_layers);
    llmrt_model *mg = path ? load(path, true, false) : NULL,
                *me = path ? load(path, true, true) : NULL;
    if (mg && me && unfused) {
        set_unfused(mg);
        set_unfused(me);
    }
    if (mg && me) {
        seqs S;
        for (int32_t s = 0; s < N_SEQ; s++)
            for (int32_t b = 0; b < SEQ_BLK; b++)
                S.table[s][b] = s * SEQ_BLK + b;
        llmrt_kv_cache *kg = make_kv(mg), *ke = make_kv(me);
        int32_t one = 1, seq0 = 0;
        if (kg && ke && prefill(kg, ke, &S, 512)) {
            int64_t before = stats_of(me).launches;
            if (step(kg, ke, &S, &seq0, 1, &one, 512, "one decode step")) {
                *nodes = stats_of(mg).graph_nodes;
                *launches = stats_of(me).launches - before;
            }
        }
        llmrt_kv_cache_destroy(kg);
        llmrt_kv_cache_destroy(ke);
    }
    llmrt_model_destroy(mg);
    llmrt_model_destroy(me);
}

static void test_launches_per_layer(bool unfused) {
    int64_t n1, l1, n3, l3;
    decode_launches(1, unfused, &n1, &l1);
    decode_launches(3, unfused, &n3, &l3);
    CHECK(n1 > 0 && n3 > n1 && (n3 - n1) % 2 == 0);
    /* cusim runs one node per launcher call (a cuBLAS GEMM is one); on a GPU cuBLAS may add
     * kernels of its own (split-K), which only the graph sees */
    CHECK_MSG(g_cusim ? n3 - n1 == l3 - l1 && n1 == l1 : n1 >= l1 && n3 - n1 >= l3 - l1,
              "graph nodes (%lld, %lld) and eager launches (%lld, %lld) disagree", (long long)n1,
              (long long)n3, (long long)l1, (long long)l3);
    printf("eager launcher calls of the same steps: %lld with 1 layer, %lld with 3\n",
           (long long)l1, (long long)l3);
    printf("kernel launches per decode layer (%s, head dim 64, GQA 2:1, one sequence, %s): "
           "%lld; outside the layers: %lld (graph nodes of a decode step: %lld with 1 layer, %lld "
           "with 3)\n",
           g_q4 ? "4-bit" : "fp16", unfused ? "unfused" : "fused", (long long)(n3 - n1) / 2,
           (long long)(n1 - (n3 - n1) / 2), (long long)n1, (long long)n3);
    if (!unfused)
        CHECK_MSG((n3 - n1) / 2 <= 7, "fused decode layer: %lld launches",
                  (long long)(n3 - n1) / 2);
}

/* The decode split count of a Llama-2-7B layer (32 KV heads of 128, a 4096-token capacity) for
 * some buckets, as decode_splits asks attention.h: > 1 adds the combine kernel to a layer. */
static void print_llama2_7b_splits(void) {
    static int32_t buf[64] __attribute__((aligned(256))); /* never dereferenced: a count only */
    char line[256] = "";
    static const int32_t buckets[] = {1, 8, 32, 64};
    for (size_t i = 0; i < sizeof buckets / sizeof buckets[0]; i++) {
        llmrt_cuda_attn_args a = {.q = buf,
                                  .out = buf,
                                  .k_cache = buf,
                                  .v_cache = buf,
                                  .block_tables = buf,
                                  .q_start = buf,
                                  .q_len = buf,
                                  .ctx_len = buf,
                                  .seq_slot = buf,
                                  .n_seqs = buckets[i],
                                  .n_tokens = buckets[i],
                                  .n_heads = 32,
                                  .n_kv_heads = 32,
                                  .head_dim = 128,
                                  .block_size = 16,
                                  .max_blocks = 256,
                                  .max_ctx_len = 4096,
                                  .scale = 0.08838834764f,
                                  .dtype = LLMRT_CUDA_ATTN_F16,
                                  .workspace = buf,
                                  .workspace_bytes =
                                      llmrt_cuda_attention_decode_workspace_bytes(64, 32, 128, 16)};
        char err[256] = "";
        int n = llmrt_cuda_attention_decode_num_splits(&a, err, sizeof err);
        CHECK_MSG(n >= 1, "decode splits: %s", err);
        size_t used = strlen(line);
        snprintf(line + used, sizeof line - used, "%sbucket %d: %d", i ? ", " : "", buckets[i], n);
    }
    printf("Llama-2-7B layer decode splits (capacity 4096): %s\n", line);
}

int main(void) {
    if (llmrt_backend_cuda_device_count() == 0) {
        printf("SKIP: no CUDA device\n");
        return 77;
    }
    const char *path = write_config(2);
    if (path) test_bit_exact(path, true, "random hd64 (flash kernels)");
    if (path) test_two_caches(path);
    test_bit_exact(LLMRT_TEST_DATA_DIR "/tiny/llama_f16.gguf", false,
                   "tiny llama_f16.gguf (naive)");
    if (path) test_fused_vs_unfused(path, true, "random hd64");
    test_fused_vs_unfused(LLMRT_TEST_DATA_DIR "/tiny/llama_f16.gguf", false, "tiny llama_f16.gguf");
    test_launches_per_layer(true);
    test_launches_per_layer(false);
    g_q4 = true; /* the same counts with 4-bit weights, and fused vs unfused on them */
    if (write_config(2)) test_fused_vs_unfused(write_config(2), true, "random hd64 4-bit");
    test_launches_per_layer(true);
    test_launches_per_layer(false);
    g_q4 = false;
    print_llama2_7b_splits();
    char cfg[512];
    snprintf(cfg, sizeof cfg, "%s/config.json", g_dir);
    remove(cfg);
    rmdir(g_dir);
    return test_summary("test_cuda_graphs");
}
