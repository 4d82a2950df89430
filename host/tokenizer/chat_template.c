/* Chat templates in C: one renderer per family, each a transcription of the family's reference
 * Jinja template (quoted above each renderer; full text and origin in
 * python/tools/make_chat_golden.py). Output and content spans are checked byte for byte against
 * HF transformers' apply_chat_template in tests/unit/test_chat_template.c. */
#include "chat_template.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FAMILY_HINT "choose one with --chat-template chatml|llama2|llama3|mistral"

/* ------------------------------------------------------------------------------------------ */
/* Family names and detection                                                                  */
/* ------------------------------------------------------------------------------------------ */

static const char *const FAMILY_NAMES[] = {"unknown", "chatml", "llama2", "llama3", "mistral"};

const char *llmrt_chat_family_name(llmrt_chat_family f) {
    if ((int)f < 0 || (size_t)f >= sizeof FAMILY_NAMES / sizeof FAMILY_NAMES[0]) return "unknown";
    return FAMILY_NAMES[f];
}

llmrt_chat_family llmrt_chat_family_from_name(const char *name) {
    if (name == NULL) return LLMRT_CHAT_UNKNOWN;
    for (int f = LLMRT_CHAT_CHATML; f <= LLMRT_CHAT_MISTRAL; f++)
        if (strcasecmp(name, FAMILY_NAMES[f]) == 0) return (llmrt_chat_family)f;
    return LLMRT_CHAT_UNKNOWN;
}

llmrt_chat_family llmrt_chat_detect_family(const char *tpl) {
    if (tpl == NULL) return LLMRT_CHAT_UNKNOWN;
    /* The header-token families first: their templates may mention [INST] in comments or tool
     * prompts, never the other way round. */
    if (strstr(tpl, "<|im_start|>") != NULL) return LLMRT_CHAT_CHATML;
    if (strstr(tpl, "<|start_header_id|>") != NULL) return LLMRT_CHAT_LLAMA3;
    if (strstr(tpl, "[INST]") != NULL)
        return strstr(tpl, "<<SYS>>") != NULL ? LLMRT_CHAT_LLAMA2 : LLMRT_CHAT_MISTRAL;
    return LLMRT_CHAT_UNKNOWN;
}

/* ------------------------------------------------------------------------------------------ */
/* Python str.strip() on UTF-8                                                                 */
/* ------------------------------------------------------------------------------------------ */

/* The templates strip with Python's str.strip() (Jinja's `trim` filter is the same call), which
 * removes every code point for which str.isspace() is true, not only ASCII whitespace:
 * U+0009..000D, U+001C..001F, U+0020, U+0085, U+00A0, U+1680, U+2000..200A, U+2028, U+2029,
 * U+202F, U+205F, U+3000. These helpers recognise their UTF-8 encodings. */
static bool is_ws1(unsigned char c) {
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20);
}

static bool is_ws2(unsigned char a, unsigned char b) {
    return a == 0xc2 && (b == 0x85 || b == 0xa0);
}

static bool is_ws3(unsigned char a, unsigned char b, unsigned char c) {
    if (a == 0xe1) return b == 0x9a && c == 0x80;
    if (a == 0xe2 && b == 0x80)
        return c <= 0x8a ? c >= 0x80 : (c == 0xa8 || c == 0xa9 || c == 0xaf);
    if (a == 0xe2) return b == 0x81 && c == 0x9f;
    return a == 0xe3 && b == 0x80 && c == 0x80;
}

/* Byte length of the whitespace code point starting s[0] (n bytes available), or 0. */
static size_t ws_len_at(const unsigned char *s, size_t n) {
    if (n >= 1 && is_ws1(s[0])) return 1;
    if (n >= 2 && is_ws2(s[0], s[1])) return 2;
    if (n >= 3 && is_ws3(s[0], s[1], s[2])) return 3;
    return 0;
}

/* Byte length of the whitespace code point ending at s[n-1], or 0. The sequences above start
 * with a lead byte, so a suffix match is a whole code point in valid UTF-8. */
static size_t ws_len_before(const unsigned char *s, size_t n) {
    if (n >= 1 && is_ws1(s[n - 1])) return 1;
    if (n >= 2 && is_ws2(s[n - 2], s[n - 1])) return 2;
    if (n >= 3 && is_ws3(s[n - 3], s[n - 2], s[n - 1])) return 3;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Output builder: text plus content spans                                                     */
/* ------------------------------------------------------------------------------------------ */

typedef struct builder {
    char *buf;
    size_t len, cap;
    llmrt_chat_span *spans;
    int32_t n_spans, cap_spans;
    bool oom; /* sticky: checked once at the end */
} builder;

static void put(builder *b, const char *s, size_t n) {
    if (b->oom || n == 0) return;
    if (n > SIZE_MAX - 1 - b->len) {
        b->oom = true;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap = cap > SIZE_MAX / 2 ? b->len + n + 1 : cap * 2;
        char *p = realloc(b->buf, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->buf = p, b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

/* Template text: tokenized with special-token parsing on. */
static void scaffold(builder *b, const char *s) {
    put(b, s, strlen(s));
}

/* Message text: recorded as a span so the tokenizer treats "<|im_end|>" in it as plain text. */
static void content_n(builder *b, const char *s, size_t n) {
    if (b->oom || n == 0) return;
    if (b->n_spans == b->cap_spans) {
        int32_t cap = b->cap_spans ? b->cap_spans * 2 : 16;
        if (cap <= b->cap_spans) {
            b->oom = true;
            return;
        }
        llmrt_chat_span *p = realloc(b->spans, (size_t)cap * sizeof *p);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->spans = p, b->cap_spans = cap;
    }
    size_t begin = b->len;
    put(b, s, n);
    if (b->oom) return;
    b->spans[b->n_spans++] = (llmrt_chat_span){begin, b->len};
}

static void content(builder *b, const char *s) {
    content_n(b, s, strlen(s));
}

/* Jinja `content | trim` / `content.strip()` on a message alone. */
static void content_stripped(builder *b, const char *s) {
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s), i = 0, w;
    while (i < n && (w = ws_len_at(u + i, n - i)) > 0)
        i += w;
    while (n > i && (w = ws_len_before(u, n)) > 0)
        n -= w;
    content_n(b, s + i, n - i);
}

/* Python-strips the output from byte `start` on, as a template that strips a string it built
 * from scaffolding and content (Llama 2's `content.strip()` with the system block folded in).
 * Spans from index `first_span` on are clipped to what remains; emptied ones are dropped. */
static void strip_from(builder *b, size_t start, int32_t first_span) {
    if (b->oom) return;
    const unsigned char *u = (const unsigned char *)b->buf;
    size_t s = start, e = b->len, w;
    while (s < e && (w = ws_len_at(u + s, e - s)) > 0)
        s += w;
    while (e > s && (w = ws_len_before(u + s, e - s)) > 0)
        e -= w;
    memmove(b->buf + start, b->buf + s, e - s);
    b->len = start + (e - s);
    b->buf[b->len] = '\0';
    int32_t kept = first_span;
    for (int32_t k = first_span; k < b->n_spans; k++) {
        size_t lo = b->spans[k].begin < s ? s : b->spans[k].begin;
        size_t hi = b->spans[k].end > e ? e : b->spans[k].end;
        if (lo >= hi) continue;
        b->spans[kept++] = (llmrt_chat_span){lo - (s - start), hi - (s - start)};
    }
    b->n_spans = kept;
}

/* ------------------------------------------------------------------------------------------ */
/* Validation                                                                                  */
/* ------------------------------------------------------------------------------------------ */

typedef enum { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT } chat_role;

static llmrt_status parse_roles(const llmrt_chat_message *msgs, int32_t n, chat_role *roles,
                                llmrt_error *err) {
    for (int32_t i = 0; i < n; i++) {
        const char *r = msgs[i].role;
        if (r == NULL)
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "chat message %d: role is NULL", i);
        if (msgs[i].content == NULL)
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "chat message %d (%.40s): content is NULL",
                             i, r);
        if (strcmp(r, "system") == 0)
            roles[i] = ROLE_SYSTEM;
        else if (strcmp(r, "user") == 0)
            roles[i] = ROLE_USER;
        else if (strcmp(r, "assistant") == 0)
            roles[i] = ROLE_ASSISTANT;
        else
            return llmrt_err(
                err, LLMRT_ERR_INVALID_ARG,
                "chat message %d: role \"%.40s\" is not one of system, user, assistant", i, r);
    }
    return LLMRT_OK;
}

/* Llama 2 and Mistral: an optional leading system message, then user/assistant alternating from
 * a user message. Both templates raise_exception on a broken alternation. A later system message
 * at an odd position passes their alternation test: Mistral then raises, Llama 2 silently drops
 * it; we reject both, as we reject a lone system message that either template would drop. */
static llmrt_status check_alternation(llmrt_chat_family fam, const chat_role *roles, int32_t n,
                                      const llmrt_chat_message *msgs, llmrt_error *err) {
    const char *name = llmrt_chat_family_name(fam);
    int32_t first = roles[0] == ROLE_SYSTEM ? 1 : 0;
    if (first == n)
        return llmrt_err(
            err, LLMRT_ERR_INVALID_ARG,
            "chat message 0: the %s template needs a user message after the system message", name);
    for (int32_t i = first; i < n; i++) {
        if (roles[i] == ROLE_SYSTEM)
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                             "chat message %d: the %s template allows a system message only as the "
                             "first message",
                             i, name);
        bool want_user = (i - first) % 2 == 0;
        if ((roles[i] == ROLE_USER) != want_user)
            return llmrt_err(
                err, LLMRT_ERR_INVALID_ARG,
                "chat message %d: role \"%s\" where \"%s\" is expected; the %s template "
                "needs user/assistant/user/... after an optional system message",
                i, msgs[i].role, want_user ? "user" : "assistant", name);
    }
    return LLMRT_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Renderers                                                                                   */
/* ------------------------------------------------------------------------------------------ */

/* Plain ChatML, as teknium/OpenHermes-2.5-Mistral-7B publishes it
 * (tests/data/chat_templates/teknium-OpenHermes-2.5-Mistral-7B.jinja):
 *   {% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' +
 *   message['content'] + '<|im_end|>' + '\n'}}{% endfor %}
 *   {% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}
 * No system turn is added when the conversation has none: this renderer serves any ChatML model
 * (llama.cpp's and vLLM's "chatml" add none either). SmolLM2's template, which inserts its own
 * default system prompt, ships in its GGUF and runs in the Jinja interpreter. Any role order is
 * accepted; contents are not stripped. */
static void render_chatml(builder *b, const llmrt_chat_message *msgs, int32_t n, bool agp) {
    for (int32_t i = 0; i < n; i++) {
        scaffold(b, "<|im_start|>");
        scaffold(b, msgs[i].role);
        scaffold(b, "\n");
        content(b, msgs[i].content);
        scaffold(b, "<|im_end|>\n");
    }
    if (agp) scaffold(b, "<|im_start|>assistant\n");
}

/* Llama 3 (tests/data/tokenizers/llama3/tokenizer_config.json):
 *   {% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] +
 *   '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}
 *   {% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}
 *   {{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
 * The filter binds tighter than '+', so only the content is trimmed. This template appends the
 * assistant header unconditionally (add_generation_prompt is not consulted). */
static void render_llama3(builder *b, const llmrt_chat_message *msgs, int32_t n, const char *bos) {
    for (int32_t i = 0; i < n; i++) {
        if (i == 0) scaffold(b, bos);
        scaffold(b, "<|start_header_id|>");
        scaffold(b, msgs[i].role);
        scaffold(b, "<|end_header_id|>\n\n");
        content_stripped(b, msgs[i].content);
        scaffold(b, "<|eot_id|>");
    }
    scaffold(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

/* Llama 2 chat (meta-llama/Llama-2-7b-chat-hf):
 *   system = messages[0] if it is a system message; for each remaining message:
 *   content = (first and system ? '<<SYS>>\n' + system + '\n<</SYS>>\n\n' : '') + message;
 *   user: bos_token + '[INST] ' + content.strip() + ' [/INST]'
 *   assistant: ' ' + content.strip() + ' ' + eos_token
 * The strip applies to the combined string: the system text keeps its own edge whitespace, the
 * user text loses only its trailing whitespace, and an all-whitespace user text lets the strip
 * eat the "\n\n" after <</SYS>>. An empty system message still produces the <<SYS>> block. */
static void render_llama2(builder *b, const llmrt_chat_message *msgs, const chat_role *roles,
                          int32_t n, const char *bos, const char *eos) {
    int32_t first = roles[0] == ROLE_SYSTEM ? 1 : 0;
    for (int32_t i = first; i < n; i++) {
        bool user = roles[i] == ROLE_USER;
        scaffold(b, user ? bos : " ");
        if (user) scaffold(b, "[INST] ");
        size_t start = b->len;
        int32_t first_span = b->n_spans;
        if (i == first && first == 1) {
            scaffold(b, "<<SYS>>\n");
            content(b, msgs[0].content);
            scaffold(b, "\n<</SYS>>\n\n");
        }
        content(b, msgs[i].content);
        strip_from(b, start, first_span);
        if (user) {
            scaffold(b, " [/INST]");
        } else {
            scaffold(b, " ");
            scaffold(b, eos);
        }
    }
}

/* Mistral-7B-Instruct v0.1/v0.2 (2024 Hub revision, see make_chat_golden.py):
 *   bos_token; for each message after an optional system message:
 *   user: ' [INST] ' + (first and system ? system + '\n\n' : '') + content + ' [/INST]'
 *   assistant: ' ' + content + eos_token
 * Nothing is stripped; there is no generation prompt. */
static void render_mistral(builder *b, const llmrt_chat_message *msgs, const chat_role *roles,
                           int32_t n, const char *bos, const char *eos) {
    int32_t first = roles[0] == ROLE_SYSTEM ? 1 : 0;
    scaffold(b, bos);
    for (int32_t i = first; i < n; i++) {
        if (roles[i] == ROLE_USER) {
            scaffold(b, " [INST] ");
            if (i == first && first == 1) {
                content(b, msgs[0].content);
                scaffold(b, "\n\n");
            }
            content(b, msgs[i].content);
            scaffold(b, " [/INST]");
        } else {
            scaffold(b, " ");
            content(b, msgs[i].content);
            scaffold(b, eos);
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Entry points                                                                                */
/* ------------------------------------------------------------------------------------------ */

llmrt_status llmrt_chat_render(llmrt_chat_family family, const llmrt_chat_message *msgs,
                               int32_t n_msgs, bool add_generation_prompt, const char *bos_token,
                               const char *eos_token, llmrt_chat_rendered *out, llmrt_error *err) {
    if (out == NULL) return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "chat render: out is NULL");
    memset(out, 0, sizeof *out);
    if (family <= LLMRT_CHAT_UNKNOWN || family > LLMRT_CHAT_MISTRAL)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED, "chat template not recognised; " FAMILY_HINT);
    /* Every reference template either fails on an empty list (messages[0] is undefined) or
     * renders a prompt with nothing to answer; neither is useful. */
    if (n_msgs <= 0 || msgs == NULL)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "chat render: no messages (n_msgs = %d)",
                         n_msgs);
    const char *bos = bos_token ? bos_token : "";
    const char *eos = eos_token ? eos_token : "";

    chat_role *roles = malloc((size_t)n_msgs * sizeof *roles);
    if (roles == NULL) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "chat render: out of memory");
    llmrt_status st = parse_roles(msgs, n_msgs, roles, err);
    if (st == LLMRT_OK && (family == LLMRT_CHAT_LLAMA2 || family == LLMRT_CHAT_MISTRAL))
        st = check_alternation(family, roles, n_msgs, msgs, err);
    if (st != LLMRT_OK) {
        free(roles);
        return st;
    }

    builder b = {0};
    switch (family) {
    case LLMRT_CHAT_CHATML:
        render_chatml(&b, msgs, n_msgs, add_generation_prompt);
        break;
    case LLMRT_CHAT_LLAMA3:
        render_llama3(&b, msgs, n_msgs, bos);
        break;
    case LLMRT_CHAT_LLAMA2:
        render_llama2(&b, msgs, roles, n_msgs, bos, eos);
        break;
    case LLMRT_CHAT_MISTRAL:
        render_mistral(&b, msgs, roles, n_msgs, bos, eos);
        break;
    default:
        break;
    }
    free(roles);
    if (!b.oom && b.buf == NULL) { /* nothing emitted: still hand back a valid empty string */
        b.buf = malloc(1);
        if (b.buf == NULL)
            b.oom = true;
        else
            b.buf[0] = '\0';
    }
    if (b.oom) {
        free(b.buf);
        free(b.spans);
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "chat render: out of memory");
    }
    out->text = b.buf;
    out->len = b.len;
    out->content_spans = b.spans;
    out->n_spans = b.n_spans;
    return LLMRT_OK;
}

void llmrt_chat_rendered_free(llmrt_chat_rendered *r) {
    if (r == NULL) return;
    free(r->text);
    free(r->content_spans);
    memset(r, 0, sizeof *r);
}
