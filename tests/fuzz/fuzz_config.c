/* libFuzzer harness: config.json parsing must turn any bytes into a status with a message, never
 * crash, leak or invoke undefined behaviour. An accepted config must satisfy the invariants the
 * rest of the library relies on, and its RoPE table must be computable. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "format/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    llmrt_model_config cfg;
    llmrt_error        err = {0};
    llmrt_status       s   = llmrt_config_parse_hf((const char *)data, size, "fuzz", &cfg, &err);
    if (s != LLMRT_OK) {
        if (err.status != s || err.msg[0] == 0 || !strstr(err.msg, "fuzz")) __builtin_trap();
        return 0;
    }
    if (cfg.vocab_size < 1 || cfg.hidden_size < 1 || cfg.intermediate_size < 1 ||
        cfg.n_layers < 1 || cfg.n_heads < 1 || cfg.n_kv_heads < 1 || cfg.head_dim < 2 ||
        cfg.head_dim % 2 != 0 || cfg.n_heads % cfg.n_kv_heads != 0 || cfg.max_context < 1 ||
        !(cfg.rms_norm_eps > 0) || !(cfg.rope_theta > 0) || cfg.n_eos < 0 ||
        cfg.n_eos > LLMRT_MAX_EOS_IDS || cfg.bos_token_id >= cfg.vocab_size ||
        memchr(cfg.architecture, 0, sizeof cfg.architecture) == NULL)
        __builtin_trap();
    for (int i = 0; i < cfg.n_eos; i++)
        if (cfg.eos_token_ids[i] < 0 || cfg.eos_token_ids[i] >= cfg.vocab_size) __builtin_trap();
    static double inv_freq[2048]; /* head_dim <= 4096 */
    if (cfg.head_dim / 2 > 2048) __builtin_trap();
    llmrt_config_rope_inv_freq(&cfg, inv_freq);
    volatile double sink = 0;
    for (int i = 0; i < cfg.head_dim / 2; i++) sink += inv_freq[i];
    (void)sink;
    return 0;
}
