/* LoRA adapter files, read into one host form checked against a model's config:
 *   - PEFT directories: adapter_config.json + adapter_model.safetensors
 *     (tensors "base_model.model.model.layers.L.self_attn.q_proj.lora_A.weight" [r, in] and
 *     "...lora_B.weight" [out, r]; r, lora_alpha, use_rslora, target_modules as a list or a
 *     regex, rank_pattern / alpha_pattern, layers_to_transform, fan_in_fan_out, bias "none");
 *   - llama.cpp GGUF adapters (general.type = "adapter", adapter.type = "lora",
 *     adapter.lora.alpha; tensors "blk.L.attn_q.weight.lora_a" [r, in] and ".lora_b" [out, r]
 *     in row-major terms, F32/F16/BF16; q/k B rows un-permuted to HF order as the model's own
 *     GGUF q/k weights are).
 * Anything else (DoRA, modules_to_save, adapters on embeddings or the lm_head, a bias, .bin
 * pickles, other GGUF adapter types) is LLMRT_ERR_UNSUPPORTED naming the field or tensor; a
 * shape that disagrees with the model is LLMRT_ERR_MODEL_MISMATCH naming the tensor and both
 * shapes. Every size read from a file is checked with overflow-safe math. */
#ifndef LLMRT_FORMAT_LORA_FILE_H
#define LLMRT_FORMAT_LORA_FILE_H

#include <stdint.h>

#include "../core/error.h"
#include "config.h"

/* The seven projections of a Llama layer an adapter may target, in forward order. */
typedef enum llmrt_lora_target {
    LLMRT_LORA_Q    = 0, /* self_attn.q_proj [Hq*hd, D]  */
    LLMRT_LORA_K    = 1, /* self_attn.k_proj [Hkv*hd, D] */
    LLMRT_LORA_V    = 2, /* self_attn.v_proj [Hkv*hd, D] */
    LLMRT_LORA_O    = 3, /* self_attn.o_proj [D, Hq*hd]  */
    LLMRT_LORA_GATE = 4, /* mlp.gate_proj [F, D]         */
    LLMRT_LORA_UP   = 5, /* mlp.up_proj [F, D]           */
    LLMRT_LORA_DOWN = 6, /* mlp.down_proj [D, F]         */
    LLMRT_LORA_N_TARGETS = 7,
} llmrt_lora_target;

/* Largest rank accepted (also never more than min(out, in) of the projection). */
#define LLMRT_LORA_MAX_RANK 1024

/* One projection's adapter: delta W [N, K] = scale * B · A. */
typedef struct llmrt_lora_pair {
    int32_t rank;  /* r; 0 = this projection has no adapter (a, b NULL) */
    float   scale; /* lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora (per-module
                    * rank_pattern / alpha_pattern applied); GGUF: adapter.lora.alpha / r */
    float  *a;     /* fp32 [r, K] (lora_A.weight as PEFT stores it) */
    float  *b;     /* fp32 [N, r] (lora_B.weight) */
} llmrt_lora_pair;

typedef struct llmrt_lora_file {
    int32_t          n_layers;  /* = the model's */
    llmrt_lora_pair *pairs;     /* [n_layers * LLMRT_LORA_N_TARGETS]: layer l, target t at
                                 * l * LLMRT_LORA_N_TARGETS + t */
    int32_t          max_rank;  /* largest rank of any pair (>= 1: a file with none is an error) */
    int32_t          n_pairs;   /* pairs with rank > 0 */
    uint64_t         bytes;     /* fp32 bytes of every A and B */
    char             format[8]; /* "peft" or "gguf" */
    void            *mem;       /* owned storage of pairs' arrays (free with llmrt_lora_file_free) */
} llmrt_lora_file;

/* Reads the adapter at `path` (a PEFT directory, or a .gguf file recognised by its magic) for a
 * model of config `cfg`. On failure *out is zeroed and err names the file and the field. */
llmrt_status llmrt_lora_file_load(const char *path, const llmrt_model_config *cfg,
                                  llmrt_lora_file *out, llmrt_error *err);

/* Frees what llmrt_lora_file_load allocated (zeroed or NULL: no-op). */
void llmrt_lora_file_free(llmrt_lora_file *f);

/* The full (unsplit) shape [N = out, K = in] of target t in cfg. */
void llmrt_lora_target_shape(const llmrt_model_config *cfg, llmrt_lora_target t, int64_t *n,
                             int64_t *k);

/* "q_proj", "k_proj", ... "down_proj". */
const char *llmrt_lora_target_name(llmrt_lora_target t);

#endif
