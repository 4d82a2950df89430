/* libFuzzer harness: the request fields of one `llmrt batch` input line (host/cli/batch_request.c,
 * batch_parse_job, after cli_json_parse as cmd_batch.c does) on arbitrary bytes. Besides
 * ASan/UBSan (float-cast-overflow included under clang) and leaks: a refused line says why; an
 * accepted one holds exactly one prompt form (text, messages with string role/content, or token
 * ids in [0, INT32_MAX]), finite sampling floats, at most 16 non-NULL stop strings, stop ids >= 0,
 * 1..64 output choices, and an adapter that is NULL or one of the --lora-module names with a
 * finite non-zero scale in [-1e4, 1e4] (0 = the adapter's own).
 *
 * Input: byte 0 = flags (bit 0: --lora-module a/b given; bit 1: --lora-name a), the rest = line. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/batch_request.h"
#include "cli/cli_json.h"

static void check_accepted(const job_line *j, const cli_common *c) {
    const llmrt_prompt          *p  = &j->prompt;
    const llmrt_sampling_params *sp = &j->sp;
    int forms = (p->text != NULL) + (p->messages != NULL) + (p->tokens != NULL);
    if (forms != 1) __builtin_trap();
    if (p->text && strlen(p->text) != p->text_len) __builtin_trap();
    if (p->messages) {
        if (p->n_messages < 1) __builtin_trap();
        for (int32_t k = 0; k < p->n_messages; k++)
            if (!p->messages[k].role || !p->messages[k].content) __builtin_trap();
    }
    if (p->tokens) {
        if (p->n_tokens < 1) __builtin_trap();
        for (int32_t k = 0; k < p->n_tokens; k++)
            if (p->tokens[k] < 0) __builtin_trap();
    }
    const float fs[] = {sp->temperature, sp->top_p, sp->min_p, sp->presence_penalty,
                        sp->frequency_penalty, sp->repetition_penalty};
    for (size_t k = 0; k < sizeof fs / sizeof fs[0]; k++)
        if (!isfinite(fs[k])) __builtin_trap();
    if (sp->n_stop < 0 || sp->n_stop > MAX_STOPS || (sp->n_stop > 0) != (sp->stop != NULL)) __builtin_trap();
    for (int32_t k = 0; k < sp->n_stop; k++)
        if (!sp->stop[k]) __builtin_trap();
    if (sp->n_stop_token_ids < 0 || (sp->n_stop_token_ids > 0 && !sp->stop_token_ids)) __builtin_trap();
    for (int32_t k = 0; k < sp->n_stop_token_ids; k++)
        if (sp->stop_token_ids[k] < 0) __builtin_trap();
    if (sp->has_seed && sp->seed > (UINT64_C(1) << 53)) __builtin_trap();
    if (j->n_ch < 1 || j->n_ch > 64 || !j->ch) __builtin_trap();
    if (p->lora_adapter && cli_lora_module_find(c, p->lora_adapter) < 0) __builtin_trap();
    if (!isfinite(p->lora_scale) || fabsf(p->lora_scale) > 1e4f) __builtin_trap();
    if (p->lora_scale != 0 && !p->lora_adapter) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0 || size > 4096) return 0;
    cli_common c;
    memset(&c, 0, sizeof c);
    c.model_path = "/models/base/";
    if (data[0] & 1) {
        strcpy(c.lora_modules[0].name, "a");
        c.lora_modules[0].path = "/x/a";
        strcpy(c.lora_modules[1].name, "b");
        c.lora_modules[1].path = "/x/b";
        c.n_lora_modules       = 2;
        if (data[0] & 2) c.lora_name = "a";
    }
    batch_models bm;
    batch_models_init(&bm, &c);
    llmrt_sampling_params defaults = llmrt_sampling_default_params();
    job_line *j = calloc(1, sizeof *j);
    if (!j) return 0;
    char msg[768], jerr[512];
    msg[0] = 0;
    if (cli_json_parse((const char *)data + 1, size - 1, "fuzz.jsonl", &j->root, jerr, sizeof jerr) != 0) {
        if (j->root || !jerr[0]) __builtin_trap();
    } else if (!batch_parse_job(j, &defaults, &bm, msg, sizeof msg)) {
        if (!msg[0] || !memchr(msg, 0, sizeof msg)) __builtin_trap();
    } else {
        check_accepted(j, &c);
    }
    batch_job_free(j);
    return 0;
}
