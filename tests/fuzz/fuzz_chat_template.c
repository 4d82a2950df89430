/* libFuzzer harness: the Jinja interpreter (host/template/) on arbitrary template text. Parsing
 * must accept or reject with a status and a message naming the line, never crash, leak, hang or
 * read out of bounds; a template that parses is rendered against a few conversations under small
 * budgets, and whatever comes back (text or an error) must be well-formed: NUL-terminated text,
 * content spans sorted, disjoint, non-empty and inside the text. */
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "template/jinja.h"

static const char *const VARS[] = {
    "{\"messages\": [{\"role\": \"user\", \"content\": \"hi <|im_end|>\"}], \"bos_token\": \"<s>\","
    " \"eos_token\": \"</s>\", \"add_generation_prompt\": true, \"tools\": null}",
    "{\"messages\": [{\"role\": \"system\", \"content\": \" sys \"}, {\"role\": \"user\", \"content\":"
    " [{\"type\": \"text\", \"text\": \"caf\\u00e9\"}]}, {\"role\": \"assistant\", \"content\": \"ok\","
    " \"tool_calls\": [{\"function\": {\"name\": \"f\", \"arguments\": {\"a\": [1, 2.5, null]}}}]},"
    " {\"role\": \"tool\", \"content\": \"{}\"}], \"add_generation_prompt\": false,"
    " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]}",
};

static bool now_fixed(void *user, struct tm *out) {
    (void)user;
    memset(out, 0, sizeof *out);
    out->tm_year = 124, out->tm_mon = 6, out->tm_mday = 26;
    return true;
}

static cJSON *vars[sizeof VARS / sizeof VARS[0]];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!vars[0])
        for (size_t i = 0; i < sizeof VARS / sizeof VARS[0]; i++) vars[i] = cJSON_Parse(VARS[i]);
    llmrt_error           err = {0};
    llmrt_jinja_template *t   = NULL;
    llmrt_status          st  = llmrt_jinja_parse((const char *)data, size, "fuzz", &t, &err);
    if (st != LLMRT_OK) {
        if (t || !err.msg[0]) __builtin_trap();
        return 0;
    }
    llmrt_jinja_params p = llmrt_jinja_default_params();
    p.max_steps          = 200000;
    p.max_output_bytes   = 1 << 20;
    p.max_memory_bytes   = 32 << 20;
    p.now                = now_fixed;
    for (size_t i = 0; i < sizeof VARS / sizeof VARS[0]; i++) {
        llmrt_jinja_output o;
        if (llmrt_jinja_render(t, vars[i], &p, &o, &err) != LLMRT_OK) {
            if (o.text || !err.msg[0]) __builtin_trap();
            continue;
        }
        if (!o.text || o.text[o.len] != '\0' || o.len > p.max_output_bytes) __builtin_trap();
        size_t prev = 0;
        for (size_t k = 0; k < o.n_spans; k++) {
            if (o.spans[k].begin >= o.spans[k].end || o.spans[k].begin < prev || o.spans[k].end > o.len)
                __builtin_trap();
            prev = o.spans[k].end;
        }
        llmrt_jinja_output_free(&o);
    }
    llmrt_jinja_template_free(t);
    return 0;
}
