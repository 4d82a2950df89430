/* Per-rank loading of a tensor-parallel split (llmrt_model_load_rank, host/model/shard_slice.c).
 *
 * For the tiny models of tests/data/tiny (HF f32 / bf16 sharded + tied / f16, GQA 4/2 and 4/1
 * heads; GGUF f32, f16, Q8_0, Q4_0, Q4_1) and every GPTQ fixture of tests/data/gptq (group 32,
 * 128, -1; act-order on and off; sym/asym; v1/v2), every rank of tp 2 and tp 4 is loaded on the
 * CPU backend and each of its matrices is checked with the backend's own matmul on random x:
 *   column-parallel (q, k, v, gate, up): rank r's output = the full model's (tp 1) output
 *     columns of its slice (the shard plan's heads / FFN range);
 *   row-parallel (o, down): the sum over ranks of W_r · x[:, slice_r] = the full output.
 * Tolerance 1e-5 * max |full output| (sums reorder; row slices are in fact exact). Biases of
 * row-parallel matrices only on rank 0; lm_head only on rank 0 (tied: the embedding everywhere);
 * embedding and norms replicated; each rank counts fewer parameters than the whole model.
 * tp 1 through llmrt_model_load_rank is the public load. Errors name the tensor and the tp. */
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_model.h" /* the public model: its rank and executor */
#include "model/model.h"
#include "test_util.h"

#define T_TOKENS 3
#define REL_TOL  1e-5
#define MAX_TP   4

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float    frand(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) / 8388608.0 - 1.0); /* [-1, 1) */
}

static struct llmrt_rank_model *load(const char *path, int32_t tp, int32_t rank, llmrt_error *err) {
    llmrt_model_params p = llmrt_model_default_params();
    p.n_threads          = 1;
    struct llmrt_rank_model *m = NULL;
    memset(err, 0, sizeof *err);
    if (llmrt_model_load_rank(path, &p, tp, rank, 0, &m, err) != LLMRT_OK) return NULL;
    return m;
}

/* The input width of w: its columns, or fewer for a padded 4-bit slice (x_cols). */
static int64_t in_cols(const llmrt_bweight *w) {
    return w->x_cols ? w->x_cols : w->cols;
}

/* out[T, w->rows] = x[T, in_cols(w)] · Wᵀ through the backend (alloc, upload, matmul,
 * download). */
static void run_matmul(struct llmrt_rank_model *m, const llmrt_bweight *w, const float *x,
                       float *out) {
    llmrt_backend *be = m->be;
    int32_t        tok[T_TOKENS], pos[T_TOKENS], seq[T_TOKENS], table[1] = {0}, outs[1] = {0};
    int64_t        slots[T_TOKENS];
    for (int32_t t = 0; t < T_TOKENS; t++) tok[t] = 0, pos[t] = t, seq[t] = 0, slots[t] = t;
    llmrt_batch_plan plan = {.n_tokens = T_TOKENS, .tokens = tok, .positions = pos,
                             .seq_of = seq, .slots = slots, .n_seqs = 1, .max_blocks = 1,
                             .block_tables = table, .n_outputs = 1, .output_rows = outs};
    llmrt_error err = {0};
    void       *dx = NULL, *dout = NULL;
    uint64_t    xb = (uint64_t)T_TOKENS * (uint64_t)in_cols(w) * sizeof(float);
    uint64_t    ob = (uint64_t)T_TOKENS * (uint64_t)w->rows * sizeof(float);
    CHECK(be->ops->begin_batch(be, &plan, &err) == LLMRT_OK);
    CHECK(be->ops->alloc(be, xb, &dx, &err) == LLMRT_OK);
    CHECK(be->ops->alloc(be, ob, &dout, &err) == LLMRT_OK);
    if (!dx || !dout) return;
    CHECK(be->ops->upload(be, dx, x, xb, &err) == LLMRT_OK);
    be->ops->matmul(be, dout, dx, T_TOKENS, w);
    CHECK(be->ops->download_f32(be, out, dout, T_TOKENS * w->rows, &err) == LLMRT_OK);
    be->ops->free(be, dx);
    be->ops->free(be, dout);
}

static float max_abs(const float *v, int64_t n) {
    float m = 0;
    for (int64_t i = 0; i < n; i++) m = fabsf(v[i]) > m ? fabsf(v[i]) : m;
    return m;
}

typedef enum { COLUMN_PARALLEL, ROW_PARALLEL } split_kind;

/* The vocab-parallel lm_head: the ranks' row ranges tile the vocabulary in order, and each
 * rank's logits are exactly the full model's logits of its rows. */
static void check_lm_head(const char *path, int32_t tp, struct llmrt_rank_model *full,
                          struct llmrt_rank_model **ranks) {
    int64_t V = full->lm_head.rows, K = full->lm_head.cols, next = 0;
    float  *x   = malloc((size_t)(T_TOKENS * K) * sizeof *x);
    float  *ref = malloc((size_t)(T_TOKENS * V) * sizeof *ref);
    float  *out = malloc((size_t)(T_TOKENS * V) * sizeof *out);
    for (int64_t i = 0; i < T_TOKENS * K; i++) x[i] = frand();
    run_matmul(full, &full->lm_head, x, ref);
    for (int32_t r = 0; r < tp; r++) {
        const llmrt_tp_shard *s = &ranks[r]->shard;
        CHECK_MSG(s->vocab0 == next && s->vocab >= 1, "%s tp %d rank %d: vocab [%lld, +%lld)",
                  path, tp, r, (long long)s->vocab0, (long long)s->vocab);
        next = s->vocab0 + s->vocab;
        run_matmul(ranks[r], &ranks[r]->lm_head, x, out);
        int64_t bad = 0;
        for (int64_t t = 0; t < T_TOKENS; t++)
            for (int64_t n = 0; n < s->vocab; n++)
                bad += out[t * s->vocab + n] != ref[t * V + s->vocab0 + n];
        CHECK_MSG(bad == 0, "%s tp %d rank %d: %lld lm_head outputs differ from the full model's",
                  path, tp, r, (long long)bad);
    }
    CHECK(next == V);
    free(x), free(ref), free(out);
}

/* One matrix of layer l in every rank against the full model. */
static void check_matrix(const char *path, int32_t tp, struct llmrt_rank_model *full,
                         struct llmrt_rank_model **ranks, int32_t l, const char *what,
                         size_t offset, split_kind kind) {
    const llmrt_bweight *fw = (const llmrt_bweight *)((const char *)&full->layers[l] + offset);
    int64_t              N = fw->rows, K = fw->cols, hd = full->cfg.head_dim;
    float *x   = malloc((size_t)(T_TOKENS * K) * sizeof *x);
    float *ref = malloc((size_t)(T_TOKENS * N) * sizeof *ref);
    float *sum = calloc((size_t)(T_TOKENS * N), sizeof *sum);
    float *xs  = malloc((size_t)(T_TOKENS * K) * sizeof *xs);
    float *out = malloc((size_t)(T_TOKENS * (N > K ? N : K)) * sizeof *out);
    for (int64_t i = 0; i < T_TOKENS * K; i++) x[i] = frand();
    run_matmul(full, fw, x, ref);
    float   scale = max_abs(ref, T_TOKENS * N);
    float   tol   = (float)REL_TOL * (scale > 1e-30f ? scale : 1.0f);
    int64_t covered = 0;
    for (int32_t r = 0; r < tp; r++) {
        const llmrt_tp_shard *s = &ranks[r]->shard;
        const llmrt_bweight  *w = (const llmrt_bweight *)((const char *)&ranks[r]->layers[l] + offset);
        int64_t start, count;
        if (!strcmp(what, "q_proj") || !strcmp(what, "o_proj"))
            start = s->q_head0 * hd, count = s->n_heads * hd;
        else if (!strcmp(what, "k_proj") || !strcmp(what, "v_proj"))
            start = s->kv_head0 * hd, count = s->n_kv_heads * hd;
        else
            start = s->ffn0, count = s->ffn;
        if (kind == COLUMN_PARALLEL) {
            CHECK_MSG(w->rows == count && w->cols == K, "%s tp %d rank %d layer %d %s: [%lld, %lld]",
                      path, tp, r, l, what, (long long)w->rows, (long long)w->cols);
            if (w->rows != count || w->cols != K) continue;
            run_matmul(ranks[r], w, x, out);
            float worst = 0;
            for (int64_t t = 0; t < T_TOKENS; t++)
                for (int64_t n = 0; n < count; n++) {
                    float d = fabsf(out[t * count + n] - ref[t * N + start + n]);
                    worst   = d > worst ? d : worst;
                }
            CHECK_MSG(worst <= tol, "%s tp %d rank %d layer %d %s: max |diff| %g > %g", path, tp,
                      r, l, what, (double)worst, (double)tol);
            CHECK((w->bias != NULL) == (fw->bias != NULL));
            covered += count;
        } else {
            CHECK_MSG(w->rows == N && in_cols(w) == count,
                      "%s tp %d rank %d layer %d %s: [%lld, %lld] input %lld", path, tp, r, l,
                      what, (long long)w->rows, (long long)w->cols, (long long)in_cols(w));
            if (w->rows != N || in_cols(w) != count) continue;
            for (int64_t t = 0; t < T_TOKENS; t++)
                memcpy(xs + t * count, x + t * K + start, (size_t)count * sizeof *xs);
            run_matmul(ranks[r], w, xs, out);
            for (int64_t i = 0; i < T_TOKENS * N; i++) sum[i] += out[i];
            /* the partial sums are all-reduced: the bias is added on rank 0 only */
            CHECK(r == 0 ? (w->bias != NULL) == (fw->bias != NULL) : w->bias == NULL);
            covered += count;
        }
    }
    if (kind == ROW_PARALLEL) {
        float worst = 0;
        for (int64_t i = 0; i < T_TOKENS * N; i++) {
            float d = fabsf(sum[i] - ref[i]);
            worst   = d > worst ? d : worst;
        }
        CHECK_MSG(worst <= tol, "%s tp %d layer %d %s: sum over ranks off by %g > %g", path, tp, l,
                  what, (double)worst, (double)tol);
    }
    (void)covered;
    free(x), free(ref), free(sum), free(xs), free(out);
}

/* Loads every rank of tp and checks it against the full model; false when the plan refuses. */
static void check_split(const char *path, struct llmrt_rank_model *full, int32_t tp) {
    struct llmrt_rank_model *ranks[MAX_TP] = {0};
    llmrt_tp_shard      plan;
    llmrt_error         err = {0};
    if (llmrt_shard_plan(&full->cfg, tp, 0, &plan, &err) != LLMRT_OK) return; /* heads refuse */
    for (int32_t r = 0; r < tp; r++) {
        ranks[r] = load(path, tp, r, &err);
        CHECK_MSG(ranks[r] != NULL, "%s tp %d rank %d: %s", path, tp, r, err.msg);
        if (!ranks[r]) goto done;
    }
    static const struct {
        const char *name;
        size_t      offset;
        split_kind  kind;
    } mats[] = {
        {"q_proj", offsetof(llmrt_layer_weights, wq), COLUMN_PARALLEL},
        {"k_proj", offsetof(llmrt_layer_weights, wk), COLUMN_PARALLEL},
        {"v_proj", offsetof(llmrt_layer_weights, wv), COLUMN_PARALLEL},
        {"o_proj", offsetof(llmrt_layer_weights, wo), ROW_PARALLEL},
        {"gate_proj", offsetof(llmrt_layer_weights, w_gate), COLUMN_PARALLEL},
        {"up_proj", offsetof(llmrt_layer_weights, w_up), COLUMN_PARALLEL},
        {"down_proj", offsetof(llmrt_layer_weights, w_down), ROW_PARALLEL},
    };
    for (int32_t l = 0; l < full->cfg.n_layers; l++)
        for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++)
            check_matrix(path, tp, full, ranks, l, mats[i].name, mats[i].offset, mats[i].kind);
    check_lm_head(path, tp, full, ranks);
    for (int32_t r = 0; r < tp; r++) {
        struct llmrt_rank_model *m = ranks[r];
        CHECK(m->shard.size == tp && m->shard.rank == r); /* a rank model has no TP state at all */
        CHECK(m->tok_embd.data && m->tok_embd.rows == full->tok_embd.rows &&
              m->tok_embd.cols == full->tok_embd.cols);
        CHECK(m->output_norm && m->layers[0].attn_norm && m->layers[0].ffn_norm);
        /* vocab-parallel lm_head: rows [vocab0, +vocab), a view of the table when tied */
        CHECK(m->lm_head.data && m->lm_head.rows == m->shard.vocab &&
              m->lm_head.cols == full->lm_head.cols);
        CHECK(m->lm_head_borrowed == (bool)full->cfg.tie_word_embeddings);
        /* fewer bytes too, unless 4-bit slices had to be dequantised (act-order) */
        bool dequantised = strstr(m->weight_format, "f32") && !strstr(full->weight_format, "f32");
        CHECK_MSG(m->n_params < full->n_params &&
                      (dequantised || m->weight_bytes < full->weight_bytes),
                  "%s tp %d rank %d: %lld params / %lld bytes vs %lld / %lld", path, tp, r,
                  (long long)m->n_params, (long long)m->weight_bytes, (long long)full->n_params,
                  (long long)full->weight_bytes);
        /* every GPTQ slice stays 4-bit: group-aligned, within one group, or padded (act-order;
         * the CPU backend reads 0 for the padding columns) */
        if (strstr(path, "/gptq/"))
            for (int32_t l = 0; l < m->cfg.n_layers; l++)
                CHECK_MSG(m->layers[l].wo.dtype == LLMRT_DTYPE_Q4 &&
                              m->layers[l].w_down.dtype == LLMRT_DTYPE_Q4,
                          "%s tp %d rank %d layer %d: o_proj %s, down_proj %s", path, tp, r, l,
                          llmrt_dtype_name(m->layers[l].wo.dtype),
                          llmrt_dtype_name(m->layers[l].w_down.dtype));
    }
done:
    for (int32_t r = 0; r < tp; r++) llmrt_rank_model_destroy(ranks[r]);
}

static void check_model(const char *path) {
    llmrt_error         err  = {0};
    struct llmrt_rank_model *full = load(path, 1, 0, &err);
    CHECK_MSG(full != NULL, "%s: %s", path, err.msg);
    if (!full) return;
    /* tp 1 is the whole model, loaded as the public call loads it */
    const llmrt_tp_shard *s = &full->shard;
    CHECK(s->size == 1 && s->rank == 0 && s->n_heads == full->cfg.n_heads &&
          s->n_kv_heads == full->cfg.n_kv_heads && s->q_head0 == 0 && s->kv_head0 == 0 &&
          s->ffn0 == 0 && s->ffn == full->cfg.intermediate_size);
    llmrt_model_params p = llmrt_model_default_params();
    p.n_threads          = 1;
    llmrt_model *pub     = NULL;
    CHECK(llmrt_model_load(path, &p, &pub) == LLMRT_OK);
    if (pub) {
        CHECK(pub->rank->n_params == full->n_params &&
              pub->rank->weight_bytes == full->weight_bytes);
        CHECK(!strcmp(pub->rank->weight_format, full->weight_format));
        CHECK(pub->rank->shard.size == 1 && pub->exec->tp_size == 1);
        llmrt_model_destroy(pub);
    }
    for (int32_t tp = 2; tp <= MAX_TP; tp *= 2) check_split(path, full, tp);
    llmrt_rank_model_destroy(full);
}

static void test_errors(void) {
    llmrt_error         err = {0};
    llmrt_model_params  p   = llmrt_model_default_params();
    struct llmrt_rank_model *m   = NULL;
    const char         *dir = LLMRT_TEST_DATA_DIR "/tiny/llama_f32";
    CHECK_ERROR(llmrt_model_load_rank(dir, &p, 8, 0, 0, &m, &err), err, LLMRT_ERR_INVALID_ARG,
                "tp 8 exceeds the 4 attention heads of model.layers.*.self_attn.q_proj");
    CHECK(m == NULL);
    CHECK_ERROR(llmrt_model_load_rank(dir, &p, 2, 2, 0, &m, &err), err, LLMRT_ERR_INVALID_ARG,
                "tp 2 rank 2");
    CHECK_ERROR(llmrt_model_load_rank(dir, &p, 0, 0, 0, &m, &err), err, LLMRT_ERR_INVALID_ARG,
                "tp 0");
    /* GGUF Q4_1 at tp 4: 16-column o_proj slices inside 32-column groups are padded to a
     * group of 32 (16 columns reading input 0), still 4-bit */
    m = load(LLMRT_TEST_DATA_DIR "/tiny/llama_q4_1.gguf", 4, 1, &err);
    CHECK_MSG(m != NULL, "%s", err.msg);
    if (m) {
        CHECK(m->layers[0].wo.dtype == LLMRT_DTYPE_Q4 && m->layers[0].wq.dtype == LLMRT_DTYPE_Q4);
        CHECK(m->layers[0].wo.cols == 32 && m->layers[0].wo.x_cols == 16);
        llmrt_rank_model_destroy(m);
    }
}

int main(void) {
    static const char *tiny[] = {"llama_f32",       "llama3_bf16_sharded", "llama_linear_f16",
                                 "mistral_f32",     "llama_f32.gguf",      "llama_f16.gguf",
                                 "llama_q8_0.gguf", "llama_q4_0.gguf",     "llama_q4_1.gguf"};
    char path[4096];
    for (size_t i = 0; i < sizeof tiny / sizeof tiny[0]; i++) {
        snprintf(path, sizeof path, "%s/tiny/%s", LLMRT_TEST_DATA_DIR, tiny[i]);
        check_model(path);
    }
    DIR *d = opendir(LLMRT_TEST_DATA_DIR "/gptq");
    CHECK(d != NULL);
    int n_gptq = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] != 'g' || !strchr(e->d_name, '_')) continue; /* g32_act_sym_v1 ... */
        snprintf(path, sizeof path, "%s/gptq/%s", LLMRT_TEST_DATA_DIR, e->d_name);
        check_model(path);
        n_gptq++;
    }
    if (d) closedir(d);
    CHECK_MSG(n_gptq >= 24, "only %d GPTQ fixtures", n_gptq);
    test_errors();
    return test_summary("test_shard_load");
}
