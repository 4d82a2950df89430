/* libFuzzer harness: the Jinja interpreter (host/template/) on arbitrary template text. Parsing
 * must accept or reject with a status and a message naming the line, never crash, leak, hang or
 * read out of bounds; a template that parses is rendered against a few conversations under small
 * budgets, and whatever comes back (text or an error) must be well-formed: NUL-terminated text,
 * content spans sorted, disjoint, non-empty and inside the text. The same bytes also drive the
 * built-in family renderers (host/tokenizer/chat_template.c, llmrt_chat_render: the
 * --chat-template NAME path) and the family detection: a family, up to 4 messages with roles
 * from system/user/assistant/tool/other and contents cut from the input, rendered or refused
 * with a message, under the same output checks. */
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llmrt.h"
#include "template/jinja.h"
#include "tokenizer/chat_template.h"

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

/* The family renderers on messages cut from the input: byte 0 = family (mod 5, 0 = unknown),
 * byte 1 = messages (1 + mod 4) and generation prompt (bit 7), byte 2.. = roles (3 bits each
 * of byte 2 and 3), contents = the rest, split in equal parts. */
static void render_families(const uint8_t *data, size_t size) {
    static const char *const ROLES[] = {"system", "user", "assistant", "tool", "", "User", "user", "assistant"};
    if (size < 4) return;
    char *text = malloc(size + 1);
    if (!text) return;
    memcpy(text, data, size);
    text[size] = 0;
    (void)llmrt_chat_detect_family(text);
    llmrt_chat_family fam = (llmrt_chat_family)(data[0] % 5);
    int32_t           n   = 1 + data[1] % 4;
    bool              gen = data[1] & 0x80;
    uint16_t          rb  = (uint16_t)(data[2] | data[3] << 8);
    size_t            rest = size - 4, part = rest / (size_t)n;
    char             *body = malloc(rest + (size_t)n + 1); /* each part NUL-terminated */
    if (!body) {
        free(text);
        return;
    }
    llmrt_chat_message msgs[4];
    for (int32_t k = 0; k < n; k++) {
        size_t len = k == n - 1 ? rest - part * (size_t)k : part;
        char  *c   = body + part * (size_t)k + (size_t)k;
        memcpy(c, data + 4 + part * (size_t)k, len);
        c[len]  = 0;
        msgs[k] = (llmrt_chat_message){ROLES[(rb >> (3 * k)) & 7], c};
    }
    llmrt_chat_rendered r   = {0};
    llmrt_error         err = {0};
    if (llmrt_chat_render(fam, msgs, n, gen, "<s>", "</s>", &r, &err) == LLMRT_OK) {
        if (!r.text || r.text[r.len] != '\0') __builtin_trap();
        size_t prev = 0;
        for (int32_t k = 0; k < r.n_spans; k++) {
            const llmrt_chat_span *sp = &r.content_spans[k];
            if (sp->begin >= sp->end || sp->begin < prev || sp->end > r.len) __builtin_trap();
            prev = sp->end;
        }
    } else if (r.text || r.n_spans || !err.msg[0]) {
        __builtin_trap();
    }
    llmrt_chat_rendered_free(&r);
    free(body);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!vars[0])
        for (size_t i = 0; i < sizeof VARS / sizeof VARS[0]; i++) vars[i] = cJSON_Parse(VARS[i]);
    render_families(data, size);
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
