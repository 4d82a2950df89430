/* PLACEHOLDER until the loader lands (branch lorafile): shapes and names only. */
#include "lora_file.h"

#include <string.h>

void llmrt_lora_target_shape(const llmrt_model_config *cfg, llmrt_lora_target t, int64_t *n,
                             int64_t *k) {
    int64_t D = cfg->hidden_size, F = cfg->intermediate_size, hd = cfg->head_dim;
    int64_t qw = (int64_t)cfg->n_heads * hd, kw = (int64_t)cfg->n_kv_heads * hd;
    switch (t) {
    case LLMRT_LORA_Q: *n = qw, *k = D; break;
    case LLMRT_LORA_K:
    case LLMRT_LORA_V: *n = kw, *k = D; break;
    case LLMRT_LORA_O: *n = D, *k = qw; break;
    case LLMRT_LORA_DOWN: *n = D, *k = F; break;
    default: *n = F, *k = D; break;
    }
}

const char *llmrt_lora_target_name(llmrt_lora_target t) {
    static const char *const names[] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                        "gate_proj", "up_proj", "down_proj"};
    return (unsigned)t < LLMRT_LORA_N_TARGETS ? names[t] : "?";
}

llmrt_status llmrt_lora_file_load(const char *path, const llmrt_model_config *cfg,
                                  llmrt_lora_file *out, llmrt_error *err) {
    (void)cfg;
    memset(out, 0, sizeof *out);
    return llmrt_err(err, LLMRT_ERR_UNSUPPORTED, "%s: adapter files not yet readable", path);
}

void llmrt_lora_file_free(llmrt_lora_file *f) {
    (void)f;
}
