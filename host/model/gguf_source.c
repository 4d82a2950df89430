/* GGUF files of the llama and qwen2 architectures: config from `llama.*` / `qwen2.*` metadata,
 * weights from the tensor table under llama.cpp's names (biases `blk.N.attn_q.bias`, ...). Q4_0 / Q4_1 matrices load losslessly into the internal 4-bit
 * format (get_q4: group 32; Q4_0 w = d*(q-8) as an INT zero 8, Q4_1 w = d*q + m as a FLOAT
 * offset); Q8_0, Q5_0, Q5_1 and the K-quants (Q2_K..Q6_K, the mixed files llama.cpp writes as
 * Q4_K_M etc.) stay in their GGUF blocks for a backend that reads them (format/ggml_quants.h), and
 * everything else (a backend without those kernels under allow_fallback, dequantize_weights) is
 * dequantized to fp32 at load with each format's reference formula.
 * llama.cpp's converter permutes the rows of Q and K so that RoPE rotates interleaved pairs;
 * we undo that here so the forward uses HF's rotate-half layout for every format. Its qwen2
 * converter (Qwen2Model) does not permute: those rows are used as stored. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/checked_math.h"
#include "../core/half.h"
#include "../format/ggml_quants.h"
#include "model.h"

/* --------------------------------------------------------------------------------------------- */
/* config                                                                                        */
/* --------------------------------------------------------------------------------------------- */

static llmrt_status get_i32(const llmrt_gguf_file *f, const char *key, bool required,
                            int32_t min, int32_t max, int32_t *out, llmrt_error *err) {
    uint64_t v   = 0;
    bool     had = llmrt_gguf_find_kv(f, key) != NULL;
    LLMRT_TRY(llmrt_gguf_get_u64(f, key, required, &v, err));
    if (!had) return LLMRT_OK;
    if (v < (uint64_t)min || v > (uint64_t)max)
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: %s = %llu is outside [%d, %d]", f->path, key,
                         (unsigned long long)v, min, max);
    *out = (int32_t)v;
    return LLMRT_OK;
}

static llmrt_status get_f64(const llmrt_gguf_file *f, const char *key, double *out,
                            llmrt_error *err) {
    return llmrt_gguf_get_f64(f, key, false, out, err);
}

/* arch-prefixed key: "llama.block_count", "qwen2.block_count" */
#define KEY(suffix) (snprintf(key, sizeof key, "%s.%s", cfg->architecture, suffix), key)

llmrt_status llmrt_config_from_gguf(const llmrt_gguf_file *f, llmrt_model_config *cfg,
                                    llmrt_error *err) {
    memset(cfg, 0, sizeof *cfg);
    llmrt_gguf_str arch = {0};
    char           key[96];
    LLMRT_TRY(llmrt_gguf_get_str(f, "general.architecture", true, &arch, err));
    bool llama = arch.len == 5 && memcmp(arch.ptr, "llama", 5) == 0;
    bool qwen2 = arch.len == 5 && memcmp(arch.ptr, "qwen2", 5) == 0;
    if (!llama && !qwen2)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "%s: general.architecture \"%.*s\" is not supported (supported: llama, "
                         "qwen2)", f->path, (int)(arch.len > 64 ? 64 : arch.len), arch.ptr);
    snprintf(cfg->architecture, sizeof cfg->architecture, "%s", llama ? "llama" : "qwen2");
    LLMRT_TRY(get_i32(f, KEY("embedding_length"), true, 1, 1 << 20, &cfg->hidden_size, err));
    LLMRT_TRY(get_i32(f, KEY("feed_forward_length"), true, 1, 1 << 20, &cfg->intermediate_size, err));
    LLMRT_TRY(get_i32(f, KEY("block_count"), true, 1, 1024, &cfg->n_layers, err));
    LLMRT_TRY(get_i32(f, KEY("attention.head_count"), true, 1, 1024, &cfg->n_heads, err));
    cfg->n_kv_heads = cfg->n_heads;
    LLMRT_TRY(get_i32(f, KEY("attention.head_count_kv"), false, 1, 1024, &cfg->n_kv_heads, err));
    cfg->max_context = 2048;
    LLMRT_TRY(get_i32(f, KEY("context_length"), false, 1, INT32_MAX, &cfg->max_context, err));
    LLMRT_TRY(get_i32(f, KEY("attention.key_length"), false, 1, 4096, &cfg->head_dim, err));
    {
        char hidden_key[96], heads_key[96];
        snprintf(hidden_key, sizeof hidden_key, "%s.embedding_length", cfg->architecture);
        snprintf(heads_key, sizeof heads_key, "%s.attention.head_count", cfg->architecture);
        LLMRT_TRY(llmrt_config_head_dim(cfg, cfg->head_dim > 0, f->path, hidden_key, heads_key,
                                        KEY("attention.key_length"), err));
    }
    int32_t rope_dims = cfg->head_dim;
    LLMRT_TRY(get_i32(f, KEY("rope.dimension_count"), false, 1, 4096, &rope_dims, err));
    if (rope_dims != cfg->head_dim)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "%s: %s.rope.dimension_count %d != head dim %d (partial RoPE) is not "
                         "supported", f->path, cfg->architecture, rope_dims, cfg->head_dim);
    double eps = 1e-5;
    LLMRT_TRY(get_f64(f, KEY("attention.layer_norm_rms_epsilon"), &eps, err));
    LLMRT_TRY(llmrt_config_check_real(eps, 0, false, 1, f->path, key, err));
    cfg->rms_norm_eps = (float)eps; /* in (0, 1]: checked */
    cfg->rope_theta   = 10000.0;
    LLMRT_TRY(get_f64(f, KEY("rope.freq_base"), &cfg->rope_theta, err));
    LLMRT_TRY(llmrt_config_check_real(cfg->rope_theta, 0, false, LLMRT_MAX_ROPE_THETA, f->path,
                                      key, err));

    llmrt_gguf_str scaling = {0};
    LLMRT_TRY(llmrt_gguf_get_str(f, KEY("rope.scaling.type"), false, &scaling, err));
    if (scaling.len == 6 && memcmp(scaling.ptr, "linear", 6) == 0) {
        cfg->rope_type = LLMRT_ROPE_LINEAR;
        LLMRT_TRY(llmrt_gguf_get_f64(f, KEY("rope.scaling.factor"), true, &cfg->rope_factor, err));
        LLMRT_TRY(llmrt_config_check_real(cfg->rope_factor, 0, false, LLMRT_MAX_ROPE_FACTOR,
                                          f->path, key, err));
    } else if (scaling.len && !(scaling.len == 4 && memcmp(scaling.ptr, "none", 4) == 0)) {
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "%s: %s.rope.scaling.type \"%.*s\" is not supported", f->path,
                         cfg->architecture, (int)(scaling.len > 64 ? 64 : scaling.len), scaling.ptr);
    }
    /* Llama 3.1+ (llama3 rope scaling): llama.cpp's converter writes the per-pair divisors
     * 1 / ((1 - smooth) / factor + smooth) (1 for fast pairs, factor for slow ones) as a tensor;
     * llama.cpp divides each pair's angle by it, which is HF's llama3 inverse frequency */
    const llmrt_gguf_tensor *rf = llmrt_gguf_find_tensor(f, "rope_freqs.weight");
    if (rf) {
        int32_t half = cfg->head_dim / 2;
        if (rf->dtype != LLMRT_DTYPE_F32 || rf->n_dims != 1 || rf->ne[0] != (uint64_t)half ||
            rf->nbytes < (uint64_t)half * 4)
            return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH,
                             "%s: tensor rope_freqs.weight must be F32 [%d] (head_dim / 2)",
                             f->path, half);
        if (cfg->rope_type != LLMRT_ROPE_DEFAULT)
            return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                             "%s: tensor rope_freqs.weight with %s.rope.scaling.type is not "
                             "supported", f->path, cfg->architecture);
        const float *ff = (const float *)rf->data;
        for (int32_t i = 0; i < half; i++)
            if (!(ff[i] > 0) || !isfinite(ff[i]))
                return llmrt_err(err, LLMRT_ERR_FORMAT,
                                 "%s: rope_freqs.weight[%d] = %g must be finite and > 0",
                                 f->path, i, (double)ff[i]);
        cfg->rope_freq_factors = ff;
    }
    /* llama (Mistral v0.1): a window smaller than the context restricts attention; llama.cpp's
     * qwen2 has no window (HF: use_sliding_window false) */
    if (llama) {
        int32_t window = 0;
        LLMRT_TRY(get_i32(f, KEY("attention.sliding_window"), false, 0, INT32_MAX, &window, err));
        if (window > 0 && window < cfg->max_context) cfg->sliding_window = window;
    }
    /* biases: qwen2 always has q/k/v ones (and no others); llama has whichever the checkpoint
     * had (llama.cpp's loader takes them when present), read from layer 0's tensors. The loader
     * then requires them in every layer and refuses any bias outside these flags. */
    cfg->qkv_bias = qwen2 || llmrt_gguf_find_tensor(f, "blk.0.attn_q.bias");
    cfg->o_bias   = llama && llmrt_gguf_find_tensor(f, "blk.0.attn_output.bias");
    cfg->mlp_bias = llama && (llmrt_gguf_find_tensor(f, "blk.0.ffn_gate.bias") ||
                              llmrt_gguf_find_tensor(f, "blk.0.ffn_up.bias") ||
                              llmrt_gguf_find_tensor(f, "blk.0.ffn_down.bias"));

    /* vocabulary size: the key, else the embedding's row count */
    const llmrt_gguf_tensor *embd = llmrt_gguf_find_tensor(f, "token_embd.weight");
    if (!embd)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "%s: tensor token_embd.weight is missing",
                         f->path);
    cfg->vocab_size = embd->n_dims == 2 && embd->ne[1] <= (1u << 22) ? (int32_t)embd->ne[1] : 0;
    LLMRT_TRY(get_i32(f, KEY("vocab_size"), false, 1, 1 << 22, &cfg->vocab_size, err));
    cfg->tie_word_embeddings = llmrt_gguf_find_tensor(f, "output.weight") == NULL;

    cfg->bos_token_id = -1;
    LLMRT_TRY(get_i32(f, "tokenizer.ggml.bos_token_id", false, 0, 1 << 22, &cfg->bos_token_id, err));
    int32_t eos = -1;
    LLMRT_TRY(get_i32(f, "tokenizer.ggml.eos_token_id", false, 0, 1 << 22, &eos, err));
    if (eos >= 0) cfg->eos_token_ids[cfg->n_eos++] = eos;
    int32_t eot = -1;
    LLMRT_TRY(get_i32(f, "tokenizer.ggml.eot_token_id", false, 0, 1 << 22, &eot, err));
    if (eot >= 0 && eot != eos) cfg->eos_token_ids[cfg->n_eos++] = eot;
    /* a layer's tensors past block_count would be left out of the forward: the file does not
     * hold the model its metadata describes */
    for (int64_t i = 0; i < f->n_tensors; i++) {
        const char *name = f->tensors[i].name;
        if (strncmp(name, "blk.", 4) != 0 || name[4] < '0' || name[4] > '9') continue;
        char *end;
        long  layer = strtol(name + 4, &end, 10);
        if (*end == '.' && layer >= cfg->n_layers)
            return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH,
                             "%s: tensor %s belongs to layer %ld, but %s is %d (layers 0..%d)",
                             f->path, name, layer, KEY("block_count"), cfg->n_layers,
                             cfg->n_layers - 1);
    }
    return llmrt_config_validate(cfg, f->path, err);
}
#undef KEY

/* --------------------------------------------------------------------------------------------- */
/* tensors                                                                                       */
/* --------------------------------------------------------------------------------------------- */

/* HF name -> GGUF name, e.g. model.layers.3.mlp.up_proj.weight -> blk.3.ffn_up.weight (and
 * model.layers.3.self_attn.q_proj.bias -> blk.3.attn_q.bias).
 * Returns the number of KV/Q heads whose rows need un-permuting (0 for none), or -1 unknown. */
static int gguf_name_of(const llmrt_model_config *c, const char *hf, char *out, size_t n) {
    static const struct {
        const char *hf_suffix, *gguf_suffix;
    } layer_map[] = {
        {"input_layernorm.weight", "attn_norm.weight"},
        {"self_attn.q_proj.weight", "attn_q.weight"},
        {"self_attn.k_proj.weight", "attn_k.weight"},
        {"self_attn.v_proj.weight", "attn_v.weight"},
        {"self_attn.o_proj.weight", "attn_output.weight"},
        {"post_attention_layernorm.weight", "ffn_norm.weight"},
        {"mlp.gate_proj.weight", "ffn_gate.weight"},
        {"mlp.up_proj.weight", "ffn_up.weight"},
        {"mlp.down_proj.weight", "ffn_down.weight"},
        /* biases: the q/k ones are permuted like their weights' rows (llama.cpp's LlamaModel
         * permutes q_proj.bias and k_proj.bias too) */
        {"self_attn.q_proj.bias", "attn_q.bias"},
        {"self_attn.k_proj.bias", "attn_k.bias"},
        {"self_attn.v_proj.bias", "attn_v.bias"},
        {"self_attn.o_proj.bias", "attn_output.bias"},
        {"mlp.gate_proj.bias", "ffn_gate.bias"},
        {"mlp.up_proj.bias", "ffn_up.bias"},
        {"mlp.down_proj.bias", "ffn_down.bias"},
    };
    /* llama.cpp permutes Q/K rows for the llama architecture only; qwen2 (NEOX RoPE) keeps
     * HF's rotate-half order */
    bool permuted = strcmp(c->architecture, "llama") == 0;
    if (!strcmp(hf, "model.embed_tokens.weight")) return snprintf(out, n, "token_embd.weight"), 0;
    if (!strcmp(hf, "model.norm.weight")) return snprintf(out, n, "output_norm.weight"), 0;
    if (!strcmp(hf, "lm_head.weight")) return snprintf(out, n, "output.weight"), 0;
    int layer = -1, used = 0;
    if (sscanf(hf, "model.layers.%d.%n", &layer, &used) == 1 && used > 0) {
        for (size_t i = 0; i < sizeof layer_map / sizeof layer_map[0]; i++) {
            if (strcmp(hf + used, layer_map[i].hf_suffix) != 0) continue;
            snprintf(out, n, "blk.%d.%s", layer, layer_map[i].gguf_suffix);
            if (!permuted) return 0;
            if (i == 1 || i == 9) return c->n_heads;
            if (i == 2 || i == 10) return c->n_kv_heads;
            return 0;
        }
    }
    return -1;
}

/* Finds the GGUF tensor of `hf_name` and checks its shape; *t = NULL when absent. */
static llmrt_status find_checked(struct llmrt_rank_model *m, const char *hf_name, int64_t rows,
                                 int64_t cols, const llmrt_gguf_tensor **t, int *permute_heads,
                                 char *name, size_t name_size, llmrt_error *err) {
    const llmrt_gguf_file *f = &m->gguf;
    *permute_heads           = gguf_name_of(&m->cfg, hf_name, name, name_size);
    if (*permute_heads < 0)
        return llmrt_err(err, LLMRT_ERR_INTERNAL, "%s: no GGUF name for %s", f->path, hf_name);
    *t = llmrt_gguf_find_tensor(f, name);
    if (!*t) return LLMRT_OK;
    int want_dims = cols ? 2 : 1;
    if ((*t)->n_dims != want_dims || (*t)->ne[0] != (uint64_t)(cols ? cols : rows) ||
        (cols && (*t)->ne[1] != (uint64_t)rows))
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH,
                         "%s: tensor %s has shape ne=[%llu, %llu] (%d dims), config expects "
                         "[%lld, %lld]", f->path, name, (unsigned long long)(*t)->ne[0],
                         (unsigned long long)((*t)->n_dims > 1 ? (*t)->ne[1] : 1), (*t)->n_dims,
                         (long long)(cols ? cols : rows), (long long)(cols ? rows : 1));
    if ((*t)->dtype == LLMRT_DTYPE_INVALID)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "%s: tensor %s: %s is not supported (supported: F32, F16, BF16, Q8_0, "
                         "Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)", f->path, name,
                         llmrt_gguf_ggml_type_name((*t)->ggml_type));
    if (*permute_heads > 0 && rows % ((int64_t)*permute_heads * 2) != 0)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "%s: tensor %s rows %lld do not split "
                         "into %d heads of even size", f->path, name, (long long)rows,
                         *permute_heads);
    return LLMRT_OK;
}

/* Why the backend does not take a `dtype` block matrix [rows, cols]: its own reason when it
 * gives one (the CUDA backend's block kernels take fp16 activations only), else that it has no
 * kernels for the type. */
static void block_refusal(struct llmrt_rank_model *m, llmrt_dtype dtype, int64_t rows,
                          int64_t cols, char *why, size_t cap) {
    char           reason[128] = "";
    llmrt_op_query q = {.op = LLMRT_BOP_MATMUL, .dtype = dtype, .n = rows, .k = cols};
    if (m->be->ops->supports && !m->be->ops->supports(m->be, &q, reason, sizeof reason) &&
        reason[0])
        snprintf(why, cap, "the %s backend cannot run %s matrices: %s", m->be->name,
                 llmrt_dtype_name(dtype), reason);
    else
        snprintf(why, cap, "the %s backend has no %s kernels", m->be->name,
                 llmrt_dtype_name(dtype));
}

static llmrt_status gguf_get(void *ctx, struct llmrt_rank_model *m, const char *hf_name, int64_t rows,
                             int64_t cols, bool optional, llmrt_host_tensor *out, bool *found,
                             llmrt_error *err) {
    const llmrt_gguf_file   *f = &m->gguf;
    char                     name[128];
    const llmrt_gguf_tensor *t;
    int                      permute_heads;
    LLMRT_TRY(find_checked(m, hf_name, rows, cols, &t, &permute_heads, name, sizeof name, err));
    *found = t != NULL;
    if (!t) {
        if (optional) return LLMRT_OK;
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "%s: tensor %s is missing", f->path, name);
    }
    int64_t ncols = cols ? cols : rows, nrows = cols ? rows : 1;
    int64_t head_dim  = permute_heads > 0 ? rows / permute_heads : 0;
    bool    quantized = llmrt_dtype_block_elems(t->dtype) > 1;
    out->rows         = rows;
    out->cols         = cols;
    /* Q8_0, Q5_0/Q5_1 and K-quant matrices stay in their GGUF blocks when the backend reads
     * them (the lm_head of SmolLM2: 4x fewer bytes per decode step than fp32); same values as
     * the reference dequantisation (format/ggml_quants.h) */
    bool packed  = llmrt_ggml_is_packed(t->dtype);
    bool keep_blocks = (t->dtype == LLMRT_DTYPE_Q8_0 || packed) && cols != 0 && !m->no_q4 &&
                   m->be->ops->supports_weight(m->be, t->dtype);
    /* a backend without kernels for a packed type: dequantised only when asked to (the
     * embedding table, read by rows, always may be) */
    char why[160] = "";
    if (packed && cols != 0 && !keep_blocks && !m->no_q4)
        block_refusal(m, t->dtype, rows, cols, why, sizeof why);
    if (packed && cols != 0 && !keep_blocks && !m->no_q4 && !m->allow_fallback &&
        strcmp(name, "token_embd.weight") != 0)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "%s: tensor %s: %s (set allow_fallback or dequantize_weights in "
                         "llmrt_model_params to dequantise it at load)",
                         f->path, name, why);
    if (packed && cols != 0 && !keep_blocks && !m->no_q4 && strcmp(name, "token_embd.weight") != 0 &&
        m->n_fallbacks++ == 0)
        snprintf(m->fallback_why, sizeof m->fallback_why, "%s", why);
    if ((!quantized || keep_blocks) && permute_heads == 0) { /* used in place from the mapping */
        out->dtype = t->dtype;
        out->data  = t->data;
        return LLMRT_OK;
    }
    if (cols == 0 && permute_heads > 0) { /* a Q/K bias: its elements move like the rows */
        if (quantized)
            return llmrt_err(err, LLMRT_ERR_UNSUPPORTED, "%s: tensor %s: a quantized bias is not "
                             "supported", f->path, name);
        uint64_t es  = (uint64_t)llmrt_dtype_block_bytes(t->dtype);
        uint8_t *buf = malloc((size_t)rows * es);
        if (!buf)
            return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory converting %s",
                             f->path, name);
        for (int64_t r = 0; r < rows; r++)
            memcpy(buf + (uint64_t)r * es, t->data + (uint64_t)llmrt_gguf_qk_row(r, head_dim) * es,
                   (size_t)es);
        LLMRT_TRY(llmrt_model_keep_host(m, buf, err));
        out->dtype = t->dtype;
        out->data  = buf;
        return LLMRT_OK;
    }
    uint64_t row_src = t->nbytes / (uint64_t)nrows; /* bytes of one source row */
    uint64_t elem    = quantized && !keep_blocks ? 4 : (uint64_t)llmrt_dtype_block_bytes(t->dtype);
    uint64_t bytes;
    if (keep_blocks) bytes = (uint64_t)nrows * row_src; /* permuted copy of whole rows */
    else if (!ck_mul_u64((uint64_t)nrows * (uint64_t)ncols, elem, &bytes))
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: tensor %s is too large", f->path, name);
    uint8_t *buf = malloc(bytes ? (size_t)bytes : 1);
    if (!buf)
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory converting %s", f->path,
                         name);
    for (int64_t r = 0; r < nrows; r++) {
        int64_t        src_row = permute_heads > 0 ? llmrt_gguf_qk_row(r, head_dim) : r;
        const uint8_t *src     = t->data + (uint64_t)src_row * row_src;
        uint8_t       *dst     = keep_blocks ? buf + (uint64_t)r * row_src
                                         : buf + (uint64_t)r * (uint64_t)ncols * elem;
        if (quantized && !keep_blocks) llmrt_ggml_dequant_row(t->dtype, src, (float *)dst, ncols);
        else memcpy(dst, src, (size_t)row_src);
    }
    LLMRT_TRY(llmrt_model_keep_host(m, buf, err));
    out->dtype = quantized && !keep_blocks ? LLMRT_DTYPE_F32 : t->dtype;
    out->data  = buf;
    return LLMRT_OK;
}

/* Q4_0 / Q4_1 matrices into the internal format, rows in HF order (GGUF's Q/K permutation moves
 * whole rows, i.e. whole blocks, so it is undone exactly). A ggml block of 32 holds element j
 * (0..15) in the low nibble of byte j and element j+16 in the high nibble. */
static llmrt_status gguf_get_q4(void *ctx, struct llmrt_rank_model *m, const char *hf_name,
                                int64_t rows, int64_t cols, llmrt_q4_tensor *out, bool *found,
                                llmrt_error *err) {
    *found = false;
    if (m->no_q4 || cols == 0) return LLMRT_OK;
    const llmrt_gguf_file   *f = &m->gguf;
    char                     name[128];
    const llmrt_gguf_tensor *t;
    int                      permute_heads;
    LLMRT_TRY(find_checked(m, hf_name, rows, cols, &t, &permute_heads, name, sizeof name, err));
    if (!t || (t->dtype != LLMRT_DTYPE_Q4_0 && t->dtype != LLMRT_DTYPE_Q4_1)) return LLMRT_OK;
    bool     q41 = t->dtype == LLMRT_DTYPE_Q4_1;
    int64_t  G   = cols / 32, head_dim = permute_heads > 0 ? rows / permute_heads : 0;
    uint64_t block = (uint64_t)llmrt_dtype_block_bytes(t->dtype), row_src, qs_b, g_b, total;
    if (cols % 32 != 0 || !ck_mul_u64((uint64_t)G, block, &row_src) ||
        !ck_mul_u64((uint64_t)rows, row_src, &total) || total > t->nbytes)
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: tensor %s: size does not match its shape",
                         f->path, name);
    if (!ck_mul_u64((uint64_t)rows, (uint64_t)cols / 2, &qs_b) ||
        !ck_mul_u64((uint64_t)rows, (uint64_t)G, &g_b) || !ck_add_u64(qs_b, 4 * g_b + 8, &total) ||
        total > (uint64_t)SIZE_MAX / 2)
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: tensor %s is too large", f->path, name);
    uint8_t *mem = malloc((size_t)total);
    if (!mem)
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory converting %s", f->path,
                         name);
    uint8_t  *qs     = mem;
    uint16_t *scales = (uint16_t *)(mem + ((qs_b + 1) & ~(uint64_t)1));
    uint16_t *offs   = scales + g_b; /* Q4_1 offsets m */
    uint8_t  *zeros  = (uint8_t *)offs; /* Q4_0: zero points 8 */
    for (int64_t r = 0; r < rows; r++) {
        int64_t        src_row = permute_heads > 0 ? llmrt_gguf_qk_row(r, head_dim) : r;
        const uint8_t *src     = t->data + (uint64_t)src_row * row_src;
        uint8_t       *dst     = qs + (uint64_t)r * (uint64_t)(cols / 2);
        for (int64_t b = 0; b < G; b++, src += block, dst += 16) {
            const uint8_t *q = src + (q41 ? 4 : 2);
            memcpy(&scales[r * G + b], src, 2);
            if (q41) memcpy(&offs[r * G + b], src + 2, 2);
            else zeros[r * G + b] = 8;
            /* internal order: column 2c in the low nibble of byte c, 2c+1 in the high one */
            for (int c = 0; c < 8; c++) {
                dst[c]     = (uint8_t)((q[2 * c] & 0x0f) | (q[2 * c + 1] & 0x0f) << 4);
                dst[c + 8] = (uint8_t)((q[2 * c] >> 4) | (q[2 * c + 1] >> 4) << 4);
            }
        }
    }
    out->mem = mem;
    out->q   = (llmrt_q4_host){
          .rows       = rows,
          .cols       = cols,
          .group_size = 32,
          .zero_kind  = q41 ? LLMRT_Q4_ZERO_FLOAT : LLMRT_Q4_ZERO_INT,
          .qs         = qs,
          .scales     = scales,
          .zeros      = q41 ? NULL : zeros,
          .offsets    = q41 ? offs : NULL,
          .perm       = NULL,
    };
    *found = true;
    return LLMRT_OK;
}

llmrt_status llmrt_model_open_gguf(struct llmrt_rank_model *m, const char *path, llmrt_error *err) {
    LLMRT_TRY(llmrt_gguf_open(path, &m->gguf, err));
    LLMRT_TRY(llmrt_config_from_gguf(&m->gguf, &m->cfg, err));
    llmrt_weight_source src = {.ctx = NULL, .what = path, .get = gguf_get, .get_q4 = gguf_get_q4};
    return llmrt_model_load_weights(m, &src, err);
}
