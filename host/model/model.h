/* One rank's model: configuration, the backend that runs it and the weights of its shard (the
 * whole model when the shard spec says 1 rank). It knows nothing of tensor parallel: which
 * rows and columns it holds comes from its shard spec (shard_plan.h); running ranks together
 * is the executor's job (exec/). The public llmrt_model (api/) wraps the rank this process
 * drives and the executor that runs it. */
#ifndef LLMRT_MODEL_MODEL_H
#define LLMRT_MODEL_MODEL_H

#include <pthread.h>
#include <stdbool.h>

#include "../backend/backend.h"
#include "../format/config.h"
#include "../format/gguf.h"
#include "../format/safetensors.h"
#include "shard_plan.h" /* llmrt_tp_shard */

typedef struct llmrt_rank_model llmrt_rank_model;

/* One rank's weights of a layer. Hq, Hkv and F are this rank's (m->shard: n_heads, n_kv_heads,
 * ffn; the whole model without TP). wo and w_down are row-parallel: their outputs are partial
 * sums to all-reduce, so only rank 0 holds their biases. Their input width is the rank's Hq*hd
 * and F; a padded 4-bit slice stores more columns (cols) than it reads (x_cols, shard_slice.h). */
typedef struct llmrt_layer_weights {
    void         *attn_norm; /* backend fp32 [D] */
    llmrt_bweight wq;        /* [Hq*hd, D]  */
    llmrt_bweight wk;        /* [Hkv*hd, D] */
    llmrt_bweight wv;        /* [Hkv*hd, D] */
    llmrt_bweight wo;        /* [D, Hq*hd]  */
    void         *ffn_norm;  /* backend fp32 [D] */
    llmrt_bweight w_gate;    /* [F, D] */
    llmrt_bweight w_up;      /* [F, D] */
    llmrt_bweight w_down;    /* [D, F] */
} llmrt_layer_weights;

struct llmrt_rank_model {
    llmrt_model_config   cfg;
    llmrt_backend       *be;
    llmrt_bweight        tok_embd;    /* [V, D] */
    llmrt_layer_weights *layers;      /* [n_layers] */
    void                *output_norm; /* backend fp32 [D] */
    llmrt_bweight        lm_head;     /* [V, D], or this rank's rows [vocab, D] (shard); tied:
                                       * a view of tok_embd (lm_head_borrowed) */
    bool                 lm_head_borrowed; /* lm_head shares tok_embd's memory: not freed */
    llmrt_tp_shard       shard;       /* this rank's part (size 1 without TP) */

    /* what the weights point into: kept open for the model's lifetime */
    llmrt_st_file  *st_files;
    int32_t         n_st_files;
    llmrt_gguf_file gguf;
    void          **host_buffers; /* converted / generated host tensors owned by the model */
    int64_t         n_host_buffers, cap_host_buffers;

    struct llmrt_tokenizer *tokenizer;   /* NULL when the checkpoint has none */
    int32_t                *special_ids; /* special tokens, longest piece first (chat splitting) */
    int32_t                 n_special;
    llmrt_sampling_params   gen_defaults; /* library defaults + generation_config.json */

    char    source_path[1024];
    char    weight_format[16]; /* the distinct formats of the matrices, "+"-joined: "f32+q4" */
    bool    no_q4;             /* params.dequantize_weights: 4-bit matrices dequantised to f32 at load */
    int64_t n_params;
    int64_t weight_bytes;

    /* load options and what they caused (model_load.c; added by the params/fallback work, kept
     * in one block) */
    bool    allow_fallback;    /* llmrt_model_params.allow_fallback */
    llmrt_dtype kv_dtype;      /* the KV pool's storage (kv_cache_dtype): the activation dtype,
                                * or I8 / F8_E4M3 / BF16 (format/kv_quant.h)                 */
    int32_t n_fallbacks;       /* 4-bit matrices dequantised because the backend cannot run them */
    char    fallback_why[112]; /* the backend's reason for the first of them */

    /* LoRA adapters served per request: this rank's slots (lora_slots.h), NULL until the
     * engine asks for them */
    struct llmrt_rank_lora *lora;

    /* LoRA adapters of the load params (lora_merge.h): merged into the weights while they
     * load, or kept whole (a quantised base) for the engine to apply to every request */
    struct llmrt_lora_merge *merge;
    const char *const       *load_lora_paths; /* the load params' (borrowed during the load) */
    const float             *load_lora_scales;
    int32_t                  load_n_loras;
};

/* Takes ownership of a malloc'd host buffer (freed with the model). Frees it on failure. */
llmrt_status llmrt_model_keep_host(struct llmrt_rank_model *m, void *buf, llmrt_error *err);

/* A tensor as a source provides it: host memory in F32, F16 or BF16, row-major [rows, cols]
 * (cols == 0 for 1-D); or Q8_0 (GGUF blocks) for a matrix when the backend's supports_weight
 * says it reads Q8_0. */
typedef struct llmrt_host_tensor {
    llmrt_dtype    dtype;
    int64_t        rows, cols;
    const void    *data;
    const int32_t *perm; /* [cols] act-order: stored column j holds input column perm[j] (a
                          * GPTQ-8 Q8_Z matrix, gptq8.h; uploaded by weight_upload_permuted),
                          * or NULL */
} llmrt_host_tensor;

/* A 4-bit matrix as a source provides it: the internal format (q4.h, rows = N, cols = K) plus an
 * optional bias. Released with llmrt_q4_tensor_release once uploaded (the backend repacks it). */
typedef struct llmrt_q4_tensor {
    llmrt_q4_host q;
    void         *mem;  /* malloc'd storage of q's arrays */
    float        *bias; /* malloc'd fp32 [rows], or NULL */
} llmrt_q4_tensor;

void llmrt_q4_tensor_release(llmrt_q4_tensor *t);

/* A source of weights under their HF names ("model.layers.0.self_attn.q_proj.weight"). `get`
 * must return the tensor in HF layout (GGUF's Q/K row permutation undone) with the expected
 * shape, or an error naming the tensor. `*found` = false (and LLMRT_OK) when absent and
 * `optional`. */
typedef struct llmrt_weight_source {
    void        *ctx;
    const char  *what; /* path for messages */
    llmrt_status (*get)(void *ctx, struct llmrt_rank_model *m, const char *hf_name, int64_t rows,
                        int64_t cols, bool optional, llmrt_host_tensor *out, bool *found,
                        llmrt_error *err);
    /* (optional) The matrix `hf_name` ("...q_proj.weight") when the source stores it 4-bit
     * (GPTQ qweight/qzeros/scales/g_idx, GGUF Q4_0/Q4_1), converted losslessly with every shape
     * and value checked. *found = false (and LLMRT_OK) when it is not stored 4-bit; the loader
     * then asks `get`. */
    llmrt_status (*get_q4)(void *ctx, struct llmrt_rank_model *m, const char *hf_name, int64_t rows,
                           int64_t cols, llmrt_q4_tensor *out, bool *found, llmrt_error *err);
} llmrt_weight_source;

/* Loads every weight of m->cfg from `src` into m->be (shared by all formats): the slice of
 * rank m->shard.rank of a split into m->shard.size ranks (size 0 is taken as 1), whose plan it
 * computes into m->shard from m->cfg. */
llmrt_status llmrt_model_load_weights(struct llmrt_rank_model *m, const llmrt_weight_source *src,
                                      llmrt_error *err);

/* Loads rank `tp_rank` of a split of the model at `path` into `tp_size` ranks, into a backend
 * of its own (CUDA: device index `device`; CPU: params->n_threads threads). (1, 0, 0) is the
 * whole model. */
llmrt_status llmrt_model_load_rank(const char *path, const llmrt_model_params *params,
                                   int32_t tp_size, int32_t tp_rank, int device,
                                   struct llmrt_rank_model **out, llmrt_error *err);

/* The 4-bit matrices dequantised at load because the backend cannot run them (allow_fallback),
 * as one line for llmrt_model_info ("" when none). */
void llmrt_rank_model_fallback_summary(const struct llmrt_rank_model *m, char *buf, size_t cap);

/* Frees a rank model (NULL: no-op). */
void llmrt_rank_model_destroy(struct llmrt_rank_model *m);

/* Checks a caller's llmrt_model_params (struct_size, fields) into *out, defaults filled. */
llmrt_status llmrt_model_read_params(const llmrt_model_params *in, llmrt_model_params *out,
                                     llmrt_error *err);

/* Per-format openers: fill m->cfg and the sources, then call llmrt_model_load_weights. */
llmrt_status llmrt_model_open_hf(struct llmrt_rank_model *m, const char *dir, llmrt_error *err);
llmrt_status llmrt_model_open_gguf(struct llmrt_rank_model *m, const char *path, llmrt_error *err);
llmrt_status llmrt_model_open_random(struct llmrt_rank_model *m, const char *path, uint64_t seed,
                                     llmrt_error *err);
/* Loads the tokenizer next to the weights (tokenizer.json / GGUF metadata) when there is one. */
llmrt_status llmrt_model_load_tokenizer(struct llmrt_rank_model *m, const char *path, bool is_gguf,
                                        llmrt_error *err);
/* Reads temperature / top_p / top_k / repetition_penalty / do_sample of generation_config.json. */
llmrt_status llmrt_model_load_generation_defaults(struct llmrt_rank_model *m, const char *dir,
                                                  llmrt_error *err);

/* Reads the model config of a GGUF file's metadata. */
llmrt_status llmrt_config_from_gguf(const llmrt_gguf_file *f, llmrt_model_config *cfg,
                                    llmrt_error *err);

#endif
