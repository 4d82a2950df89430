/* Loading one rank's model, shared by every format: params, the backend, the walk over the Llama
 * weight list (each tensor's shape checked against the config before it goes to the backend),
 * RoPE tables, tokenizer and generation defaults. The public load/destroy/info calls are in
 * api/model_api.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/checked_math.h"
#include "../core/half.h"
#include "../core/log.h"
#include "../format/ggml_quants.h"
#include "../tokenizer/tokenizer.h"
#include "lora_merge.h"
#include "lora_slots.h"
#include "model.h"
#include "shard_slice.h"
#ifdef LLMRT_HAVE_CUDA
#include "../backend/cuda/cuda_backend.h"
#endif

llmrt_status llmrt_model_keep_host(struct llmrt_rank_model *m, void *buf, llmrt_error *err) {
    if (m->n_host_buffers == m->cap_host_buffers) {
        int64_t cap = m->cap_host_buffers ? m->cap_host_buffers * 2 : 64;
        void  **n   = realloc(m->host_buffers, (size_t)cap * sizeof *n);
        if (!n) {
            free(buf);
            return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
        }
        m->host_buffers     = n;
        m->cap_host_buffers = cap;
    }
    m->host_buffers[m->n_host_buffers++] = buf;
    return LLMRT_OK;
}

/* --------------------------------------------------------------------------------------------- */
/* weight walk                                                                                   */
/* --------------------------------------------------------------------------------------------- */

static int64_t dtype_bytes(llmrt_dtype t) {
    return llmrt_dtype_block_bytes(t);
}

/* Adds a matrix format to weight_format ("f32+q4"); "mixed" when the list does not fit. */
static void note_format(struct llmrt_rank_model *m, const char *name) {
    char  *f   = m->weight_format;
    size_t len = strlen(f), nl = strlen(name);
    if (!strcmp(f, "mixed")) return;
    for (const char *p = f; *p;) { /* already listed? */
        size_t seg = strcspn(p, "+");
        if (seg == nl && !strncmp(p, name, nl)) return;
        p += seg + (p[seg] == '+');
    }
    if (len + (len ? 1 : 0) + nl >= sizeof m->weight_format)
        snprintf(f, sizeof m->weight_format, "mixed");
    else
        snprintf(f + len, sizeof m->weight_format - len, "%s%s", len ? "+" : "", name);
}

static const char *dtype_format_name(llmrt_dtype t) {
    switch (t) {
    case LLMRT_DTYPE_F32: return "f32";
    case LLMRT_DTYPE_F16: return "f16";
    case LLMRT_DTYPE_BF16: return "bf16";
    case LLMRT_DTYPE_Q8_0: return "q8_0";
    case LLMRT_DTYPE_Q8_Z: return "q8_z";
    case LLMRT_DTYPE_Q5_0: return "q5_0";
    case LLMRT_DTYPE_Q5_1: return "q5_1";
    case LLMRT_DTYPE_Q2_K: return "q2_k";
    case LLMRT_DTYPE_Q3_K: return "q3_k";
    case LLMRT_DTYPE_Q4_K: return "q4_k";
    case LLMRT_DTYPE_Q5_K: return "q5_k";
    case LLMRT_DTYPE_Q6_K: return "q6_k";
    default: return llmrt_dtype_name(t);
    }
}

/* Uploads the fp32 bias [N] of a matrix (none when bias is NULL). */
static llmrt_status upload_bias(struct llmrt_rank_model *m, const float *bias, int64_t N,
                                llmrt_bweight *out, llmrt_error *err) {
    if (!bias) return LLMRT_OK;
    uint64_t     bytes = (uint64_t)N * sizeof(float);
    llmrt_status s     = m->be->ops->alloc(m->be, bytes, &out->bias, err);
    if (s == LLMRT_OK) s = m->be->ops->upload(m->be, out->bias, bias, bytes, err);
    if (s != LLMRT_OK) return s;
    m->n_params += N;
    m->weight_bytes += N * 4;
    return LLMRT_OK;
}

/* The buffers of a dequantisation at load: f32 [N, Kx] zeroed (owned by the caller until
 * llmrt_model_keep_host) and one stored row of K floats; an error naming the tensor. */
static llmrt_status dequant_buffers(const llmrt_weight_source *src, const char *name, int64_t N,
                                    int64_t Kx, int64_t K, float **f32, float **row,
                                    llmrt_error *err) {
    uint64_t n_el;
    *f32 = *row = NULL;
    if (!ck_mul_u64((uint64_t)N, (uint64_t)Kx, &n_el) || n_el > (uint64_t)SIZE_MAX / 8)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "%s: tensor %s is too large", src->what,
                         name);
    /* 64-byte aligned: a backend that wants aligned rows (the CPU's) then uses them in place */
    void *p = NULL;
    if (posix_memalign(&p, 64, (size_t)(n_el ? n_el : 1) * sizeof(float)) == 0)
        memset(p, 0, (size_t)n_el * sizeof(float)); /* a padded slice's columns stay 0 */
    *f32 = p;
    *row = malloc((size_t)K * sizeof(float));
    if (!*f32 || !*row) {
        free(*f32);
        free(*row);
        *f32 = *row = NULL;
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory dequantising %s",
                         src->what, name);
    }
    return LLMRT_OK;
}

/* An act-order block matrix (stored column j = input column perm[j]) as fp32 [rows, cols] in
 * input order, owned by the model; *t is replaced by it. Counted as a fallback. */
static llmrt_status unpermute_to_f32(struct llmrt_rank_model *m, const llmrt_weight_source *src,
                                     const char *name, llmrt_host_tensor *t, llmrt_error *err) {
    int64_t  N = t->rows, K = t->cols;
    uint64_t row_bytes;
    if (!ck_mul_u64((uint64_t)(K / llmrt_dtype_block_elems(t->dtype)),
                    (uint64_t)llmrt_dtype_block_bytes(t->dtype), &row_bytes))
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "%s: tensor %s is too large", src->what,
                         name);
    float *f32, *row;
    LLMRT_TRY(dequant_buffers(src, name, N, K, K, &f32, &row, err));
    for (int64_t n = 0; n < N; n++) {
        llmrt_ggml_dequant_row(t->dtype, (const uint8_t *)t->data + (uint64_t)n * row_bytes, row,
                               K);
        for (int64_t j = 0; j < K; j++)
            f32[n * K + t->perm[j]] = row[j];
    }
    free(row);
    LLMRT_TRY(llmrt_model_keep_host(m, f32, err));
    if (m->n_fallbacks++ == 0)
        snprintf(m->fallback_why, sizeof m->fallback_why,
                 "an act-order %s matrix split by input columns at tp %d",
                 llmrt_dtype_name(t->dtype), m->shard.size);
    llmrt_log(LLMRT_LOG_DEBUG, "%s: tensor %s: act-order %s -> f32 dequantised at load (tp %d)",
              src->what, name, llmrt_dtype_name(t->dtype), m->shard.size);
    *t = (llmrt_host_tensor){.dtype = LLMRT_DTYPE_F32, .rows = N, .cols = K, .data = f32};
    return LLMRT_OK;
}

/* Uploads a 4-bit matrix: repacked by the backend when its `supports` accepts the matrix, else
 * (with allow_fallback, or always under dequantize_weights) dequantised to fp32 at load by the
 * reference formula (columns back in input order); without allow_fallback a matrix the backend
 * cannot run fails the load with LLMRT_ERR_UNSUPPORTED naming the tensor, the backend and the
 * reason. Uploads the bias too. */
static llmrt_status load_q4(struct llmrt_rank_model *m, const llmrt_weight_source *src,
                            const char *name, const llmrt_q4_tensor *qt, llmrt_bweight *out,
                            llmrt_error *err) {
    const llmrt_q4_host *q  = &qt->q;
    llmrt_backend       *be = m->be;
    int64_t              N = q->rows, K = q->cols, G = K / q->group_size;
    bool                 done = false;
    bool padded = q->x_cols && q->x_cols != q->cols; /* a padded TP slice (q4.h) */
    if (!m->no_q4) {
        char           why[256] = "";
        llmrt_op_query query    = {.op = LLMRT_BOP_MATMUL, .dtype = LLMRT_DTYPE_Q4, .n = N,
                                   .k = K, .group_size = q->group_size,
                                   .has_perm = q->perm != NULL};
        bool can = be->ops->weight_upload_q4 != NULL;
        if (!can) snprintf(why, sizeof why, "it has no 4-bit kernels");
        else if (be->ops->supports) can = be->ops->supports(be, &query, why, sizeof why);
        if (can) {
            llmrt_status s = be->ops->weight_upload_q4(be, q, out, err);
            if (s != LLMRT_OK) {
                llmrt_err_prefix(err, "%s: tensor %s", src->what, name);
                return s;
            }
            done = true;
            note_format(m, "q4");
            m->weight_bytes += N * (K / 2) +
                               N * G * (q->zero_kind == LLMRT_Q4_ZERO_INT ? 3 : 4) +
                               (q->perm ? K * 4 : 0);
        } else if (!m->allow_fallback) {
            return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                             "%s: tensor %s: the %s backend cannot run this 4-bit matrix "
                             "[%lld, %lld] (group size %lld%s): %s (set allow_fallback in "
                             "llmrt_model_params to dequantise it at load)",
                             src->what, name, be->name, (long long)N, (long long)K,
                             (long long)q->group_size, q->perm ? ", act-order" : "", why);
        } else {
            if (m->n_fallbacks++ == 0)
                snprintf(m->fallback_why, sizeof m->fallback_why, "%s", why);
            llmrt_log(LLMRT_LOG_DEBUG, "%s: tensor %s: 4-bit -> %s dequantised at load: %s",
                      src->what, name, dtype_format_name(be->act_dtype), why);
        }
    }
    if (!done) {
        /* [N, Kx] in input order; a padded TP slice's padding columns (perm -1) add nothing */
        int64_t Kx = q->x_cols ? q->x_cols : K;
        float  *f32, *row;
        LLMRT_TRY(dequant_buffers(src, name, N, Kx, K, &f32, &row, err));
        for (int64_t n = 0; n < N; n++) {
            float *dst = f32 + n * Kx;
            if (q->perm) {
                llmrt_q4_dequant_row(q, n, row);
                for (int64_t j = 0; j < K; j++)
                    if (q->perm[j] >= 0) dst[q->perm[j]] = row[j];
            } else {
                llmrt_q4_dequant_row(q, n, dst);
            }
        }
        free(row);
        LLMRT_TRY(llmrt_model_keep_host(m, f32, err));
        llmrt_status s = be->ops->weight_upload(be, LLMRT_DTYPE_F32, N, Kx, f32, out, err);
        if (s != LLMRT_OK) {
            llmrt_err_prefix(err, "%s: tensor %s", src->what, name);
            return s;
        }
        note_format(m, "f32");
        m->weight_bytes += N * Kx * 4;
    }
    m->n_params += N * (q->x_cols ? q->x_cols : K);
    if (done && padded) out->x_cols = q->x_cols;
    return upload_bias(m, qt->bias, N, out, err);
}

/* The part of a matrix this rank holds (shard_plan.h). */
typedef enum split_kind {
    SPLIT_NONE, /* the whole matrix (replicated, or no TP)                              */
    SPLIT_ROWS, /* column-parallel: output rows [start, start + count)                  */
    SPLIT_COLS, /* row-parallel: input columns [start, start + count); outputs are partial
                 * sums, so only the rank with keep_bias adds the bias                  */
} split_kind;

typedef struct matrix_split {
    split_kind kind;
    int64_t    start, count;
    bool       keep_bias;
} matrix_split;

static const matrix_split NO_SPLIT = {SPLIT_NONE, 0, 0, true};

/* A row-parallel 4-bit slice, kept 4-bit (padded when its groups hold unequal column counts:
 * shard_slice.h). */
static llmrt_status load_q4_cols(struct llmrt_rank_model *m, const llmrt_weight_source *src,
                                 const char *name, const llmrt_q4_tensor *qt,
                                 const matrix_split *sp, llmrt_bweight *out, llmrt_error *err) {
    llmrt_q4_tensor local = {0};
    llmrt_status    s     = llmrt_q4_slice_cols(qt, sp->start, sp->count, &local, err);
    if (s != LLMRT_OK) {
        llmrt_err_prefix(err, "%s: tensor %s (tp %d, rank %d)", src->what, name, m->shard.size,
                         m->shard.rank);
        return s;
    }
    s = load_q4(m, src, name, &local, out, err);
    llmrt_q4_tensor_release(&local);
    return s;
}

/* A 4-bit matrix as the source returned it (whole), cut to this rank's part and uploaded. */
static llmrt_status load_q4_split(struct llmrt_rank_model *m, const llmrt_weight_source *src,
                                  const char *name, llmrt_q4_tensor *qt, const matrix_split *sp,
                                  llmrt_bweight *out, llmrt_error *err) {
    if (!sp->keep_bias) {
        free(qt->bias);
        qt->bias = NULL;
    }
    switch (sp->kind) {
    case SPLIT_ROWS:
        llmrt_q4_slice_rows(qt, sp->start, sp->count);
        return load_q4(m, src, name, qt, out, err);
    case SPLIT_COLS: return load_q4_cols(m, src, name, qt, sp, out, err);
    default: return load_q4(m, src, name, qt, out, err);
    }
}

/* Layer l's projection `target` when the matrix is one a LoRA may adapt, else l = -1. */
typedef struct lora_site {
    int32_t           layer;
    llmrt_lora_target target;
} lora_site;

static const lora_site NOT_ADAPTED = {-1, LLMRT_LORA_Q};

/* The config flag that says whether layer projection `target` has a bias, and its name. */
static bool bias_expected(const llmrt_model_config *c, llmrt_lora_target target,
                          const char **flag) {
    switch (target) {
    case LLMRT_LORA_Q:
    case LLMRT_LORA_K:
    case LLMRT_LORA_V:
        *flag = "attention_bias (or the Qwen2 architecture)";
        return c->qkv_bias;
    case LLMRT_LORA_O: *flag = "attention_bias"; return c->o_bias;
    default: *flag = "mlp_bias"; return c->mlp_bias;
    }
}

/* The bias of the layer matrix `name` ("....q_proj.weight" -> "....q_proj.bias", [rows] in the
 * source): required when the config's flag says so, an error when present without the flag
 * (never skipped). This rank keeps its rows of a column-parallel bias and, of a row-parallel
 * one, the whole bias on the rank with keep_bias only (the partial sums are added up once). */
static llmrt_status load_bias(struct llmrt_rank_model *m, const llmrt_weight_source *src,
                              const char *name, int64_t rows, const matrix_split *sp,
                              lora_site site, llmrt_bweight *out, llmrt_error *err) {
    const char *flag     = NULL;
    bool        expected = bias_expected(&m->cfg, site.target, &flag);
    char        bname[160];
    size_t      len = strlen(name);
    if (len < 7 || len - 7 + 6 >= sizeof bname || strcmp(name + len - 7, ".weight") != 0)
        return llmrt_err(err, LLMRT_ERR_INTERNAL, "%s: no bias name for %s", src->what, name);
    snprintf(bname, sizeof bname, "%.*s.bias", (int)(len - 7), name);
    llmrt_host_tensor t     = {0};
    bool              found = false;
    LLMRT_TRY(src->get(src->ctx, m, bname, rows, 0, true, &t, &found, err));
    if (!expected && found)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH,
                         "%s: tensor %s is present but the config has no %s (a bias is never "
                         "ignored)", src->what, bname, flag);
    if (!expected) return LLMRT_OK;
    if (!found)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "%s: tensor %s is missing (the config "
                         "sets %s)", src->what, bname, flag);
    if (t.rows != rows || t.cols != 0)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "%s: tensor %s must have shape [%lld]",
                         src->what, bname, (long long)rows);
    if (!sp->keep_bias) return LLMRT_OK;
    if (t.dtype != LLMRT_DTYPE_F32 && t.dtype != LLMRT_DTYPE_F16 && t.dtype != LLMRT_DTYPE_BF16)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED, "%s: tensor %s has dtype %s (supported: "
                         "F32, F16, BF16)", src->what, bname, llmrt_dtype_name(t.dtype));
    int64_t r0 = sp->kind == SPLIT_ROWS ? sp->start : 0;
    int64_t n  = sp->kind == SPLIT_ROWS ? sp->count : rows;
    float  *f32 = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (!f32) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        int64_t j = r0 + i;
        if (t.dtype == LLMRT_DTYPE_F32) f32[i] = ((const float *)t.data)[j];
        else if (t.dtype == LLMRT_DTYPE_F16) f32[i] = llmrt_f16_to_f32(((const uint16_t *)t.data)[j]);
        else f32[i] = llmrt_bf16_to_f32(((const uint16_t *)t.data)[j]);
    }
    llmrt_status s = upload_bias(m, f32, n, out, err);
    free(f32);
    if (s != LLMRT_OK) llmrt_err_prefix(err, "%s: tensor %s", src->what, bname);
    return s;
}

static llmrt_status load_matrix(struct llmrt_rank_model *m, const llmrt_weight_source *src,
                                const char *name, int64_t rows, int64_t cols, bool allow_q4,
                                const matrix_split *sp, lora_site site, llmrt_bweight *out,
                                llmrt_error *err) {
    bool adapted = site.layer >= 0 && llmrt_lora_merge_targets(m, site.layer, site.target);
    if (allow_q4 && src->get_q4) {
        llmrt_q4_tensor qt    = {0};
        bool            found = false;
        LLMRT_TRY(src->get_q4(src->ctx, m, name, rows, cols, &qt, &found, err));
        if (found) {
            llmrt_status s = adapted ? llmrt_lora_merge_check(m, name, true, err) : LLMRT_OK;
            if (s == LLMRT_OK &&
                (qt.q.rows != rows || (qt.q.x_cols ? qt.q.x_cols : qt.q.cols) != cols))
                s = llmrt_err(err, LLMRT_ERR_INTERNAL, "%s: tensor %s: 4-bit shape mismatch",
                              src->what, name);
            /* a GPTQ Linear carries its own bias (P.bias, used as stored); otherwise the bias
             * is a tensor of its own (GGUF blk.N.*.bias) */
            bool own_bias = qt.bias != NULL;
            if (s == LLMRT_OK) s = load_q4_split(m, src, name, &qt, sp, out, err);
            llmrt_q4_tensor_release(&qt);
            if (s == LLMRT_OK && !own_bias && site.layer >= 0)
                s = load_bias(m, src, name, rows, sp, site, out, err);
            return s;
        }
    }
    llmrt_host_tensor t = {0};
    bool              found = false;
    LLMRT_TRY(src->get(src->ctx, m, name, rows, cols, false, &t, &found, err));
    if (t.rows != rows || t.cols != cols)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH,
                         "%s: tensor %s has shape [%lld, %lld], config expects [%lld, %lld]",
                         src->what, name, (long long)t.rows, (long long)t.cols, (long long)rows,
                         (long long)cols);
    llmrt_status s = LLMRT_OK;
    /* an act-order block matrix (GPTQ-8 Q8_Z) split by input columns would need each group's
     * columns of the slice padded to whole blocks: not kept packed (column-parallel slices keep
     * perm); dequantised to fp32 in input order under allow_fallback, else refused */
    if (t.perm && sp->kind == SPLIT_COLS) {
        if (!m->allow_fallback)
            return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                             "%s: tensor %s: an act-order (g_idx) %s matrix cannot be split by "
                             "input columns (row-parallel) at tp %d and stay packed; load it with "
                             "tp 1, or set allow_fallback (or dequantize_weights) to dequantise it",
                             src->what, name, llmrt_dtype_name(t.dtype), m->shard.size);
        LLMRT_TRY(unpermute_to_f32(m, src, name, &t, err));
    }
    if (sp->kind == SPLIT_ROWS) s = llmrt_slice_host_rows(&t, sp->start, sp->count, &t, err);
    else if (sp->kind == SPLIT_COLS) s = llmrt_slice_host_cols(m, &t, sp->start, sp->count, &t, err);
    if (s != LLMRT_OK) {
        llmrt_err_prefix(err, "%s: tensor %s (tp %d, rank %d)", src->what, name, m->shard.size,
                         m->shard.rank);
        return s;
    }
    if (adapted) {
        bool quantised = t.dtype != LLMRT_DTYPE_F32 && t.dtype != LLMRT_DTYPE_F16 &&
                         t.dtype != LLMRT_DTYPE_BF16;
        s = llmrt_lora_merge_check(m, name, quantised, err);
        if (s == LLMRT_OK && m->merge->mode == 1)
            s = llmrt_lora_merge_tensor(m, site.layer, site.target, &t, err);
        if (s != LLMRT_OK) {
            llmrt_err_prefix(err, "%s: tensor %s: merging LoRA adapters", src->what, name);
            return s;
        }
    }
    if (t.perm && !m->be->ops->weight_upload_permuted)
        return llmrt_err(err, LLMRT_ERR_INTERNAL, "%s: tensor %s: act-order %s without "
                         "weight_upload_permuted", src->what, name, llmrt_dtype_name(t.dtype));
    s = t.perm ? m->be->ops->weight_upload_permuted(m->be, t.dtype, t.rows, t.cols, t.data, t.perm,
                                                    out, err)
               : m->be->ops->weight_upload(m->be, t.dtype, t.rows, t.cols, t.data, out, err);
    if (s != LLMRT_OK) {
        llmrt_err_prefix(err, "%s: tensor %s", src->what, name);
        return s;
    }
    note_format(m, dtype_format_name(t.dtype));
    m->n_params += t.rows * t.cols;
    m->weight_bytes += t.rows * (t.cols / llmrt_dtype_block_elems(t.dtype)) * dtype_bytes(t.dtype) +
                       (t.perm ? t.cols * 4 : 0);
    return site.layer >= 0 ? load_bias(m, src, name, rows, sp, site, out, err) : LLMRT_OK;
}

/* Norm weights are tiny: converted to fp32 and copied into backend memory. */
static llmrt_status load_norm(struct llmrt_rank_model *m, const llmrt_weight_source *src,
                              const char *name, int64_t D, void **out, llmrt_error *err) {
    llmrt_host_tensor t = {0};
    bool              found = false;
    LLMRT_TRY(src->get(src->ctx, m, name, D, 0, false, &t, &found, err));
    if (t.rows != D || t.cols != 0)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH,
                         "%s: tensor %s must have shape [%lld]", src->what, name, (long long)D);
    float *f32 = malloc((size_t)D * sizeof(float));
    if (!f32) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    for (int64_t i = 0; i < D; i++) {
        if (t.dtype == LLMRT_DTYPE_F32) f32[i] = ((const float *)t.data)[i];
        else if (t.dtype == LLMRT_DTYPE_F16) f32[i] = llmrt_f16_to_f32(((const uint16_t *)t.data)[i]);
        else f32[i] = llmrt_bf16_to_f32(((const uint16_t *)t.data)[i]);
    }
    llmrt_status s = m->be->ops->alloc(m->be, (uint64_t)D * sizeof(float), out, err);
    if (s == LLMRT_OK) s = m->be->ops->upload(m->be, *out, f32, (uint64_t)D * sizeof(float), err);
    free(f32);
    m->n_params += D;
    m->weight_bytes += D * (int64_t)sizeof(float);
    return s;
}

/* Rows [r0, r0 + n) of the embedding table as a weight sharing its memory (the tied lm_head of
 * a vocab-parallel rank; the whole table without TP). Dense and block dtypes store rows
 * contiguously, so the view is an offset. */
static llmrt_status embedding_rows_view(struct llmrt_rank_model *m, int64_t r0, int64_t n,
                                        llmrt_bweight *out, llmrt_error *err) {
    const llmrt_bweight *t = &m->tok_embd;
    if (r0 == 0 && n == t->rows) {
        *out = *t;
        return LLMRT_OK;
    }
    int64_t be = llmrt_dtype_block_elems(t->dtype), bb = llmrt_dtype_block_bytes(t->dtype);
    /* checked before *out is filled: on failure the caller frees out as its own */
    if (t->aux || be < 1 || bb < 1 || t->cols % be != 0)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "tied lm_head: the embedding table (%s) cannot be split by rows",
                         llmrt_dtype_name(t->dtype));
    *out = *t;
    out->data = (char *)t->data + r0 * (t->cols / be) * bb;
    out->rows = n;
    return LLMRT_OK;
}

llmrt_status llmrt_model_load_weights(struct llmrt_rank_model *m, const llmrt_weight_source *src,
                                      llmrt_error *err) {
    const llmrt_model_config *c  = &m->cfg;
    int64_t                   D  = c->hidden_size, F = c->intermediate_size, V = c->vocab_size;
    int64_t                   hd = c->head_dim;
    int64_t                   qw = (int64_t)c->n_heads * hd;
    int64_t                   kw = (int64_t)c->n_kv_heads * hd;
    int32_t                   tp = m->shard.size ? m->shard.size : 1, rank = m->shard.rank;
    llmrt_status              s  = llmrt_shard_plan(c, tp, rank, &m->shard, err);
    if (s != LLMRT_OK) {
        llmrt_err_prefix(err, "%s", src->what);
        return s;
    }
    const llmrt_tp_shard *sh = &m->shard;
    /* without TP every matrix is whole: the load is exactly the unsplit one */
    split_kind   rows = tp > 1 ? SPLIT_ROWS : SPLIT_NONE, cols = tp > 1 ? SPLIT_COLS : SPLIT_NONE;
    matrix_split q_split  = {rows, sh->q_head0 * hd, sh->n_heads * hd, true};
    matrix_split kv_split = {rows, sh->kv_head0 * hd, sh->n_kv_heads * hd, true};
    matrix_split o_split  = {cols, sh->q_head0 * hd, sh->n_heads * hd, rank == 0};
    matrix_split up_split = {rows, sh->ffn0, sh->ffn, true};
    matrix_split dn_split = {cols, sh->ffn0, sh->ffn, rank == 0};

    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->layers) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");

    /* the embedding table is read by rows (embed): never 4-bit; replicated on every rank */
    LLMRT_TRY(llmrt_lora_merge_open(m, m->load_lora_paths, m->load_lora_scales, m->load_n_loras,
                                    err));
    LLMRT_TRY(load_matrix(m, src, "model.embed_tokens.weight", V, D, false, &NO_SPLIT,
                          NOT_ADAPTED, &m->tok_embd, err));
    char name[128];
    for (int32_t l = 0; l < c->n_layers; l++) {
        llmrt_layer_weights *L = &m->layers[l];
#define LAYER_NAME(suffix) (snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix), name)
#define LINEAR(suffix, rows, cols, split, target, out)                                             \
    load_matrix(m, src, LAYER_NAME(suffix), rows, cols, true, split, (lora_site){l, target}, out, err)
        LLMRT_TRY(load_norm(m, src, LAYER_NAME("input_layernorm.weight"), D, &L->attn_norm, err));
        LLMRT_TRY(LINEAR("self_attn.q_proj.weight", qw, D, &q_split, LLMRT_LORA_Q, &L->wq));
        LLMRT_TRY(LINEAR("self_attn.k_proj.weight", kw, D, &kv_split, LLMRT_LORA_K, &L->wk));
        LLMRT_TRY(LINEAR("self_attn.v_proj.weight", kw, D, &kv_split, LLMRT_LORA_V, &L->wv));
        LLMRT_TRY(LINEAR("self_attn.o_proj.weight", D, qw, &o_split, LLMRT_LORA_O, &L->wo));
        LLMRT_TRY(load_norm(m, src, LAYER_NAME("post_attention_layernorm.weight"), D, &L->ffn_norm,
                            err));
        LLMRT_TRY(LINEAR("mlp.gate_proj.weight", F, D, &up_split, LLMRT_LORA_GATE, &L->w_gate));
        LLMRT_TRY(LINEAR("mlp.up_proj.weight", F, D, &up_split, LLMRT_LORA_UP, &L->w_up));
        LLMRT_TRY(LINEAR("mlp.down_proj.weight", D, F, &dn_split, LLMRT_LORA_DOWN, &L->w_down));
#undef LINEAR
#undef LAYER_NAME
    }
    /* the output norm is tiny and loaded everywhere; the lm_head is vocab-parallel: each rank
     * makes the logits of its rows [vocab0, vocab0 + vocab) and rank 0 gathers them (tied: a
     * view of those rows of the embedding table) */
    LLMRT_TRY(load_norm(m, src, "model.norm.weight", D, &m->output_norm, err));
    if (c->tie_word_embeddings) {
        LLMRT_TRY(embedding_rows_view(m, sh->vocab0, sh->vocab, &m->lm_head, err));
        m->lm_head_borrowed = true;
    } else {
        matrix_split lm_split = {rows, sh->vocab0, sh->vocab, true};
        LLMRT_TRY(load_matrix(m, src, "lm_head.weight", V, D, true, &lm_split, NOT_ADAPTED,
                              &m->lm_head, err));
    }
    return LLMRT_OK;
}

/* --------------------------------------------------------------------------------------------- */
/* public API                                                                                    */
/* --------------------------------------------------------------------------------------------- */

int32_t llmrt_version(void) {
    return LLMRT_VERSION_NUMBER;
}

llmrt_model_params llmrt_model_default_params(void) {
    return (llmrt_model_params){
        .struct_size = sizeof(llmrt_model_params),
        .load_format = LLMRT_LOAD_AUTO,
        .device      = LLMRT_DEVICE_CPU,
        .n_threads   = 0,
        .random_seed = 0,
        .tensor_parallel    = 0,
        .tp_timeout_s       = 0,  /* the communicators' default, 120 s */
        .tp_spin_us         = -1, /* the communicators' default, 1000 us */
        .activation_dtype   = LLMRT_ACTIVATION_AUTO,
        .cpu_isa            = LLMRT_CPU_ISA_AUTO,
        .dequantize_weights = false,
        .allow_fallback     = false,
        .cpu_matmul         = LLMRT_CPU_MATMUL_EXACT,
        .enforce_eager      = false, /* CUDA decode graphs on */
        .kv_cache_dtype     = LLMRT_KV_CACHE_AUTO,
    };
}

/* Copies the caller's params over the defaults, honouring a smaller struct_size (older header). */
llmrt_status llmrt_model_read_params(const llmrt_model_params *in, llmrt_model_params *out,
                                     llmrt_error *err) {
    *out = llmrt_model_default_params();
    if (!in) return LLMRT_OK;
    if (in->struct_size < offsetof(llmrt_model_params, load_format) + sizeof(in->load_format) ||
        in->struct_size > sizeof(llmrt_model_params))
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "llmrt_model_load: params->struct_size %u is invalid (use "
                         "llmrt_model_default_params())", in->struct_size);
    memcpy(out, in, in->struct_size);
    out->struct_size = sizeof(llmrt_model_params);
    return LLMRT_OK;
}

static bool is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

void llmrt_rank_model_destroy(struct llmrt_rank_model *m) {
    if (!m) return;
    if (m->be) {
        llmrt_rank_lora_free(m);
        llmrt_lora_merge_free(m);
        if (m->layers) {
            for (int32_t l = 0; l < m->cfg.n_layers; l++) {
                llmrt_layer_weights *L = &m->layers[l];
                llmrt_bweight *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
                for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) {
                    if (ws[i]->bias) m->be->ops->free(m->be, ws[i]->bias);
                    ws[i]->bias = NULL;
                    if (ws[i]->data) m->be->ops->weight_free(m->be, ws[i]);
                }
                if (L->attn_norm) m->be->ops->free(m->be, L->attn_norm);
                if (L->ffn_norm) m->be->ops->free(m->be, L->ffn_norm);
            }
        }
        if (m->lm_head.data && !m->lm_head_borrowed) {
            if (m->lm_head.bias) m->be->ops->free(m->be, m->lm_head.bias);
            m->lm_head.bias = NULL;
            m->be->ops->weight_free(m->be, &m->lm_head);
        }
        if (m->tok_embd.data) m->be->ops->weight_free(m->be, &m->tok_embd);
        if (m->output_norm) m->be->ops->free(m->be, m->output_norm);
        m->be->ops->destroy(m->be);
    }
    free(m->layers);
    for (int32_t i = 0; i < m->n_st_files; i++) llmrt_safetensors_close(&m->st_files[i]);
    free(m->st_files);
    llmrt_tokenizer_destroy(m->tokenizer);
    free(m->special_ids);
    llmrt_gguf_close(&m->gguf);
    for (int64_t i = 0; i < m->n_host_buffers; i++) free(m->host_buffers[i]);
    free(m->host_buffers);
    free(m);
}

static llmrt_status upload_rope(struct llmrt_rank_model *m, llmrt_error *err) {
    int32_t half = m->cfg.head_dim / 2;
    double *inv  = malloc((size_t)half * sizeof(double));
    float  *f    = malloc((size_t)half * sizeof(float));
    if (!inv || !f) {
        free(inv);
        free(f);
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    }
    llmrt_config_rope_inv_freq(&m->cfg, inv);
    for (int32_t i = 0; i < half; i++) f[i] = (float)inv[i];
    llmrt_status s = m->be->ops->rope_init(m->be, f, half, err);
    free(inv);
    free(f);
    return s;
}

/* The backend of params->device. CUDA: device index `device` (0 unless a TP driver places
 * ranks; CUDA_VISIBLE_DEVICES selects what 0 is), fp16 activations unless activation_dtype says
 * bf16 (or f32: a reference mode for tests). CPU: the kernel set of cpu_isa. */
static llmrt_status create_backend(const llmrt_model_params *p, int device, llmrt_backend **be,
                                   llmrt_error *err) {
#ifdef LLMRT_HAVE_CUDA
    if (p->device == LLMRT_DEVICE_CUDA) {
        llmrt_cuda_options o = {.act_dtype = LLMRT_DTYPE_F16, .enforce_eager = p->enforce_eager};
        if (p->activation_dtype == LLMRT_ACTIVATION_BF16) o.act_dtype = LLMRT_DTYPE_BF16;
        else if (p->activation_dtype == LLMRT_ACTIVATION_F32) o.act_dtype = LLMRT_DTYPE_F32;
        llmrt_status s = llmrt_backend_cuda_create(device, &o, be, err);
        if (s != LLMRT_OK && device == 0) llmrt_err_prefix(err, "llmrt_model_load: LLMRT_DEVICE_CUDA");
        else if (s != LLMRT_OK)
            llmrt_err_prefix(err, "llmrt_model_load: LLMRT_DEVICE_CUDA device %d", device);
        return s;
    }
#else
    (void)device;
#endif
    static const char *const isa[] = {NULL, "avx512", "avx2", "generic"};
    llmrt_cpu_options        o     = {.matmul_mode      = p->cpu_matmul,
                                      .bf16_activations = p->activation_dtype == LLMRT_ACTIVATION_BF16,
                                      .pin_threads      = p->cpu_pin_threads};
    return llmrt_backend_cpu_create_opts(p->n_threads, isa[p->cpu_isa], &o, be, err);
}

/* The KV pool's storage for kv_cache_dtype on the model's backend: the activation dtype (AUTO, or
 * BF16 with bf16 activations) or a type the backend's attention supports (asked before any weight
 * is read, so a backend without the kernels fails fast and by name). On the CPU, AUTO is BF16 when
 * the matmuls are not exact (cpu_matmul INT8, or bf16 activations): those modes already trade
 * bits for speed, and half the fp32 cache's bytes is what llama.cpp (f16) and vLLM's CPU build
 * (the model's bf16) keep; EXACT keeps fp32. */
static llmrt_status choose_kv_dtype(struct llmrt_rank_model *m, const llmrt_model_params *p,
                                    llmrt_error *err) {
    static const char *const name[] = {"auto", "int8", "fp8_e4m3", "bf16", "fp32"};
    static const llmrt_dtype dts[]  = {LLMRT_DTYPE_INVALID, LLMRT_DTYPE_I8, LLMRT_DTYPE_F8_E4M3,
                                       LLMRT_DTYPE_BF16, LLMRT_DTYPE_F32};
    llmrt_kv_cache_dtype kv = p->kv_cache_dtype;
    if (kv == LLMRT_KV_CACHE_AUTO && p->device == LLMRT_DEVICE_CPU &&
        (p->cpu_matmul == LLMRT_CPU_MATMUL_INT8 || p->activation_dtype == LLMRT_ACTIVATION_BF16))
        kv = LLMRT_KV_CACHE_BF16;
    m->kv_dtype = m->be->act_dtype;
    if (kv == LLMRT_KV_CACHE_AUTO || dts[kv] == m->be->act_dtype) return LLMRT_OK;
    llmrt_dtype    dt = dts[kv];
    llmrt_op_query q  = {.op = LLMRT_BOP_ATTENTION, .dtype = m->be->act_dtype, .head_dim = 64,
                         .n_heads = 1, .n_kv_heads = 1, .kv_dtype = dt};
    char           why[160] = "";
    if (!m->be->ops->supports(m->be, &q, why, sizeof why))
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "llmrt_model_load: kv_cache_dtype %s: the %s backend declines it (%s)",
                         name[kv], m->be->name, why);
    m->kv_dtype = dt;
    return LLMRT_OK;
}

/* Checks everything about the arguments that needs no file. */
static llmrt_status check_load_args(const llmrt_model_params *p,
                                    int32_t tp_size, int32_t tp_rank, int device,
                                    llmrt_error *err) {
    if (p->cpu_pin_threads && tp_size > 1)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "llmrt_model_load: cpu_pin_threads with tensor_parallel %d: the ranks' "
                         "pools would be bound to the same CPUs", (int)tp_size);
    if (p->device != LLMRT_DEVICE_CPU && p->device != LLMRT_DEVICE_CUDA)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "llmrt_model_load: device %d is unknown",
                         (int)p->device);
#ifndef LLMRT_HAVE_CUDA
    if (p->device == LLMRT_DEVICE_CUDA)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "llmrt_model_load: LLMRT_DEVICE_CUDA: this build has no CUDA "
                         "backend (configure with -DLLMRT_CUDA=nvcc)");
#endif
    if ((int)p->activation_dtype < LLMRT_ACTIVATION_AUTO ||
        (int)p->activation_dtype > LLMRT_ACTIVATION_F32)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "llmrt_model_load: activation_dtype %d is unknown", (int)p->activation_dtype);
    if ((int)p->cpu_isa < LLMRT_CPU_ISA_AUTO || (int)p->cpu_isa > LLMRT_CPU_ISA_GENERIC)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "llmrt_model_load: cpu_isa %d is unknown",
                         (int)p->cpu_isa);
    if ((int)p->cpu_matmul < LLMRT_CPU_MATMUL_EXACT || (int)p->cpu_matmul > LLMRT_CPU_MATMUL_INT8)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "llmrt_model_load: cpu_matmul %d is unknown",
                         (int)p->cpu_matmul);
    if ((int)p->kv_cache_dtype < LLMRT_KV_CACHE_AUTO ||
        (int)p->kv_cache_dtype > LLMRT_KV_CACHE_FP32)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "llmrt_model_load: kv_cache_dtype %d is unknown (0 auto, 1 int8, "
                         "2 fp8_e4m3, 3 bf16, 4 fp32)", (int)p->kv_cache_dtype);
    if (p->tp_spin_us < -1 || p->tp_spin_us > 10000000)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "llmrt_model_load: tp_spin_us %d is out of range (-1 = default, 0..10^7)",
                         p->tp_spin_us);
    if (p->tp_timeout_s != p->tp_timeout_s || p->tp_timeout_s > 1e9)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "llmrt_model_load: tp_timeout_s %g is out of range (<= 0 = default)",
                         p->tp_timeout_s);
    if (p->n_threads < 0 || p->n_threads > 1024)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "llmrt_model_load: n_threads %d is out of range", p->n_threads);
    if (tp_size < 1 || tp_rank < 0 || tp_rank >= tp_size)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "llmrt_model_load: tp %d rank %d is invalid (rank in [0, tp), tp >= 1)",
                         tp_size, tp_rank);
    if (device < 0)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "llmrt_model_load: device index %d < 0",
                         device);
    return LLMRT_OK;
}

llmrt_status llmrt_model_load_rank(const char *path, const llmrt_model_params *params,
                                   int32_t tp_size, int32_t tp_rank, int device,
                                   struct llmrt_rank_model **out, llmrt_error *err) {
    if (!out) return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "llmrt_model_load: out is NULL");
    *out = NULL;
    if (!path || !*path)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "llmrt_model_load: path is empty");
    llmrt_model_params p;
    LLMRT_TRY(llmrt_model_read_params(params, &p, err));
    LLMRT_TRY(check_load_args(&p, tp_size, tp_rank, device, err));

    struct llmrt_rank_model *m = calloc(1, sizeof *m);
    if (!m) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "llmrt_model_load: out of memory");
    snprintf(m->source_path, sizeof m->source_path, "%s", path);
    m->no_q4          = p.dequantize_weights;
    m->load_lora_paths  = p.lora_paths;
    m->load_lora_scales = p.lora_scales;
    m->load_n_loras     = p.n_loras;
    m->allow_fallback = p.allow_fallback;
    m->shard.size = tp_size; /* the weight walk computes the rest of the plan */
    m->shard.rank = tp_rank;

    llmrt_status s = create_backend(&p, device, &m->be, err);
    if (s == LLMRT_OK) s = choose_kv_dtype(m, &p, err);
    if (s == LLMRT_OK) {
        llmrt_load_format fmt = p.load_format;
        if (fmt == LLMRT_LOAD_AUTO) fmt = is_dir(path) ? LLMRT_LOAD_HF : LLMRT_LOAD_GGUF;
        switch (fmt) {
        case LLMRT_LOAD_HF: s = llmrt_model_open_hf(m, path, err); break;
        case LLMRT_LOAD_GGUF: s = llmrt_model_open_gguf(m, path, err); break;
        case LLMRT_LOAD_RANDOM: s = llmrt_model_open_random(m, path, p.random_seed, err); break;
        default:
            s = llmrt_err(err, LLMRT_ERR_INVALID_ARG, "llmrt_model_load: load_format %d unknown",
                          (int)fmt);
        }
    }
    if (s == LLMRT_OK && m->n_fallbacks > 0)
        llmrt_log(LLMRT_LOG_WARN, "%s: q4->%s dequantised at load: %d matrices (the %s backend: %s)",
                  path, dtype_format_name(m->be->act_dtype), m->n_fallbacks, m->be->name,
                  m->fallback_why);
    if (s == LLMRT_OK) llmrt_lora_merge_done(m);
    m->load_lora_paths  = NULL; /* the caller's: not kept past the load */
    m->load_lora_scales = NULL;
    if (s == LLMRT_OK) s = upload_rope(m, err);
    if (s == LLMRT_OK && p.load_format != LLMRT_LOAD_RANDOM) {
        bool gguf = m->gguf.file.data != NULL;
        s         = llmrt_model_load_tokenizer(m, path, gguf, err);
        if (s == LLMRT_OK) s = llmrt_model_load_generation_defaults(m, gguf ? NULL : path, err);
    } else if (s == LLMRT_OK) {
        m->gen_defaults = llmrt_sampling_default_params();
    }
    if (s != LLMRT_OK) {
        llmrt_rank_model_destroy(m);
        return s;
    }
    *out = m;
    return LLMRT_OK;
}

void llmrt_rank_model_fallback_summary(const struct llmrt_rank_model *m, char *buf, size_t cap) {
    if (cap == 0) return;
    buf[0] = 0;
    if (m->n_fallbacks > 0)
        snprintf(buf, cap, "q4->%s dequantised: %d matrices (%.80s)",
                 dtype_format_name(m->be->act_dtype), m->n_fallbacks, m->fallback_why);
}
