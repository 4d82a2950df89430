/* The model hyper-parameters, from an HF config.json (+ generation_config.json) or from GGUF
 * metadata, validated once so later code can trust them. */
#ifndef LLMRT_MODEL_CONFIG_H
#define LLMRT_MODEL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/error.h"
#include "dtype.h"

#define LLMRT_MAX_EOS_IDS 8

typedef enum llmrt_rope_type {
    LLMRT_ROPE_DEFAULT = 0,
    LLMRT_ROPE_LINEAR,  /* positions divided by factor                        */
    LLMRT_ROPE_LLAMA3,  /* Llama 3.1 frequency-dependent wavelength scaling   */
} llmrt_rope_type;

typedef struct llmrt_model_config {
    char            architecture[32]; /* "LlamaForCausalLM", "MistralForCausalLM",
                                        * "Qwen2ForCausalLM", GGUF "llama" / "qwen2" */
    int32_t         vocab_size;
    int32_t         hidden_size;       /* D */
    int32_t         intermediate_size; /* F */
    int32_t         n_layers;
    int32_t         n_heads;           /* Hq */
    int32_t         n_kv_heads;        /* Hkv; Hq % Hkv == 0 */
    int32_t         head_dim;          /* hd (may differ from D / Hq) */
    int32_t         max_context;
    float           rms_norm_eps;
    double          rope_theta;
    llmrt_rope_type rope_type;
    double          rope_factor;
    double          rope_low_freq_factor;
    double          rope_high_freq_factor;
    int32_t         rope_original_max_pos;
    /* GGUF rope_freqs.weight [head_dim / 2] (llama.cpp bakes Llama 3.1's llama3 scaling into
     * it): inv_freq[i] is divided by factor i. NULL: none. Points into the model's mapped GGUF,
     * valid while the model lives. */
    const float    *rope_freq_factors;
    bool            tie_word_embeddings;
    int32_t         bos_token_id; /* -1 when none */
    int32_t         n_eos;
    int32_t         eos_token_ids[LLMRT_MAX_EOS_IDS];
    llmrt_dtype     torch_dtype; /* declared checkpoint dtype (informational) */
    /* Variants of the Llama layer (issue 16). Each bias flag says the checkpoint must hold the
     * .bias tensors of those projections, and a bias tensor without its flag is an error. */
    bool            qkv_bias;       /* q/k/v_proj.bias: Llama/Mistral attention_bias, Qwen2 */
    bool            o_bias;         /* o_proj.bias: Llama/Mistral attention_bias (not Qwen2)  */
    bool            mlp_bias;       /* gate/up/down_proj.bias: Llama mlp_bias                  */
    int32_t         sliding_window; /* W > 0: a token at position p attends to positions
                                     * (p - W, p] only (HF: kv_idx > q_idx - W); 0: none     */
} llmrt_model_config;

/* Parses config.json text (what = file path for messages). */
llmrt_status llmrt_config_parse_hf(const char *json, uint64_t len, const char *what,
                                   llmrt_model_config *cfg, llmrt_error *err);
/* Reads dir/config.json and, when present, dir/generation_config.json (its bos/eos ids win). */
llmrt_status llmrt_config_load_hf_dir(const char *dir, llmrt_model_config *cfg, llmrt_error *err);
/* Range and consistency checks shared by every source. */
#define LLMRT_MAX_ROPE_THETA  1e12 /* RoPE bases in use reach 1e8; powf(theta) stays finite */
#define LLMRT_MAX_ROPE_FACTOR 1e6  /* context scaling factors (linear, llama3) */

/* A real-valued config field that reaches the math: finite, > lo (or >= lo when lo_closed) and
 * <= hi, checked before any conversion to float; else LLMRT_ERR_FORMAT naming `field` (the key
 * as the file spells it: "rope_theta", "llama.rope.freq_base"). */
llmrt_status llmrt_config_check_real(double v, double lo, bool lo_closed, double hi,
                                     const char *what, const char *field, llmrt_error *err);
/* head_dim from hidden / heads when the file gives no head dimension: the heads must divide the
 * hidden size, else LLMRT_ERR_FORMAT naming the three fields (their names in this file). */
llmrt_status llmrt_config_head_dim(llmrt_model_config *cfg, bool head_dim_given, const char *what,
                                   const char *hidden_field, const char *heads_field,
                                   const char *head_dim_field, llmrt_error *err);
llmrt_status llmrt_config_validate(const llmrt_model_config *cfg, const char *what,
                                   llmrt_error *err);
/* Inverse frequencies of RoPE after scaling: inv_freq[i] for i < head_dim/2 (HF semantics). */
void llmrt_config_rope_inv_freq(const llmrt_model_config *cfg, double *inv_freq);

#endif
