/* libFuzzer harness: GPTQ / AWQ quantization configs (host/model/gptq.c, awq.c, gptq_dynamic.c:
 * config.json "quantization_config" or quantize_config.json) must turn any bytes into a status
 * with a message naming the source, never crash, leak or invoke undefined behaviour. An accepted
 * config must satisfy what the loaders rely on, and resolving any module name through its
 * "dynamic" rules must give a config that does too. */
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "model/gptq.h"

static void check(const llmrt_gptq_config *c) {
    if (!c->enabled || (c->bits != 4 && c->bits != 8) ||
        (c->group_size != -1 && (c->group_size <= 0 || c->group_size > (1 << 24))) ||
        (c->awq && c->bits != 4) || c->n_dynamic < 0 || c->n_dynamic > LLMRT_GPTQ_MAX_DYNAMIC ||
        !memchr(c->weights_file, 0, sizeof c->weights_file) || strchr(c->weights_file, '/'))
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cJSON *root = cJSON_ParseWithLength((const char *)data, size);
    if (!root) return 0;
    static llmrt_gptq_config cfg, mod;
    llmrt_error err = {0};
    llmrt_status s = llmrt_gptq_config_parse(root, "fuzz", &cfg, &err);
    cJSON_Delete(root);
    if (s != LLMRT_OK) {
        if (err.status != s || err.msg[0] == 0 || !strstr(err.msg, "fuzz")) __builtin_trap();
        return 0;
    }
    check(&cfg);
    static const char *const names[] = {"lm_head", "model.layers.0.mlp.down_proj",
                                        "model.layers.17.self_attn.q_proj", ""};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        bool excluded = false;
        llmrt_gptq_config_for(&cfg, names[i], &mod, &excluded);
        if (!excluded) check(&mod);
    }
    return 0;
}
