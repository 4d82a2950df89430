/* tokenizer.json: normalizer, pre_tokenizer, decoder and post_processor sections -> op lists.
 * Sequences are flattened. Each type that is not implemented is rejected by name. */
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tokenizer_hf_parts.h"
#include "unicode.h"

#define MAX_DEPTH 16

static llmrt_status vfail(hf_ctx *c, llmrt_status st, const char *fmt, va_list ap) {
    char msg[LLMRT_ERROR_MSG_MAX];
    vsnprintf(msg, sizeof msg, fmt, ap);
    return llmrt_err(c->err, st, "%s: %s", c->what, msg);
}

llmrt_status hf_bad(hf_ctx *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    llmrt_status st = vfail(c, LLMRT_ERR_FORMAT, fmt, ap);
    va_end(ap);
    return st;
}

llmrt_status hf_unsupported(hf_ctx *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char msg[LLMRT_ERROR_MSG_MAX];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return llmrt_err(c->err, LLMRT_ERR_UNSUPPORTED, "%s: unsupported %s", c->what, msg);
}

llmrt_status hf_oom(hf_ctx *c) {
    return llmrt_err(c->err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", c->what);
}

const cJSON *hf_get(const cJSON *obj, const char *key) {
    if (!cJSON_IsObject(obj)) return NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

llmrt_status hf_str(hf_ctx *c, const cJSON *obj, const char *key, bool required,
                    const char **out, size_t *len, const char *where) {
    const cJSON *v = hf_get(obj, key);
    if (!v) return required ? hf_bad(c, "%s: missing \"%s\"", where, key) : LLMRT_OK;
    if (!cJSON_IsString(v)) return hf_bad(c, "%s: \"%s\" must be a string", where, key);
    *out = v->valuestring;
    *len = strlen(v->valuestring);
    return LLMRT_OK;
}

llmrt_status hf_bool(hf_ctx *c, const cJSON *obj, const char *key, bool *out, const char *where) {
    const cJSON *v = hf_get(obj, key);
    if (!v) return LLMRT_OK;
    if (!cJSON_IsBool(v)) return hf_bad(c, "%s: \"%s\" must be true or false", where, key);
    *out = cJSON_IsTrue(v);
    return LLMRT_OK;
}

llmrt_status hf_int(hf_ctx *c, const cJSON *obj, const char *key, bool required, int64_t min,
                    int64_t max, int64_t *out, const char *where) {
    const cJSON *v = hf_get(obj, key);
    if (!v) return required ? hf_bad(c, "%s: missing \"%s\"", where, key) : LLMRT_OK;
    double d = v->valuedouble;
    if (!cJSON_IsNumber(v) || d != d || d < (double)min || d > (double)max || d != (double)(int64_t)d)
        return hf_bad(c, "%s: \"%s\" must be an integer in [%lld, %lld]", where, key,
                      (long long)min, (long long)max);
    *out = (int64_t)d;
    return LLMRT_OK;
}

/* Grows an op array by one zeroed element. */
static void *push_op(hf_ctx *c, void **arr, int *n, size_t size) {
    if (*n >= 256) {
        hf_unsupported(c, "pipeline with more than 256 steps");
        return NULL;
    }
    char *p = realloc(*arr, (size_t)(*n + 1) * size);
    if (!p) {
        hf_oom(c);
        return NULL;
    }
    *arr = p;
    memset(p + (size_t)*n * size, 0, size);
    return p + (size_t)(*n)++ * size;
}

static const char *type_of(const cJSON *o) {
    const cJSON *t = hf_get(o, "type");
    return t && cJSON_IsString(t) ? t->valuestring : NULL;
}

/* {"String": "..."} or {"Regex": "..."} */
static llmrt_status parse_pattern(hf_ctx *c, const cJSON *obj, const char *where, tk_pattern *out) {
    const cJSON *p = hf_get(obj, "pattern");
    if (!p || !cJSON_IsObject(p)) return hf_bad(c, "%s: missing \"pattern\" object", where);
    const cJSON *s = hf_get(p, "String"), *r = hf_get(p, "Regex");
    if (s && cJSON_IsString(s)) return tk_pattern_init_literal(out, s->valuestring, strlen(s->valuestring), c->err);
    if (r && cJSON_IsString(r)) {
        llmrt_status st = tk_regex_compile(r->valuestring, strlen(r->valuestring), where, &out->re, c->err);
        if (st != LLMRT_OK) llmrt_err_prefix(c->err, "%s", c->what);
        return st;
    }
    return hf_bad(c, "%s: \"pattern\" must be {\"String\": ...} or {\"Regex\": ...}", where);
}

/* A single-character string field (Metaspace replacement, Strip content). */
static llmrt_status parse_char(hf_ctx *c, const cJSON *obj, const char *key, const char *where,
                               char out[8], size_t *len) {
    const char *s = NULL;
    size_t      n = 0;
    LLMRT_TRY(hf_str(c, obj, key, true, &s, &n, where));
    uint32_t cp;
    if (n == 0 || tk_utf8_decode((const uint8_t *)s, n, &cp) != (int)n)
        return hf_bad(c, "%s: \"%s\" must be one character", where, key);
    memcpy(out, s, n);
    out[n] = 0;
    *len   = n;
    return LLMRT_OK;
}

static llmrt_status parse_prepend_scheme(hf_ctx *c, const cJSON *o, const char *where,
                                         tk_prepend_scheme *out) {
    const char *s = NULL;
    size_t      n;
    bool        aps = true;
    LLMRT_TRY(hf_str(c, o, "prepend_scheme", false, &s, &n, where));
    LLMRT_TRY(hf_bool(c, o, "add_prefix_space", &aps, where)); /* the older field */
    if (!s) *out = aps ? TK_PREPEND_ALWAYS : TK_PREPEND_NEVER;
    else if (strcmp(s, "always") == 0) *out = TK_PREPEND_ALWAYS;
    else if (strcmp(s, "first") == 0) *out = TK_PREPEND_FIRST;
    else if (strcmp(s, "never") == 0) *out = TK_PREPEND_NEVER;
    else return hf_unsupported(c, "%s prepend_scheme \"%.40s\"", where, s);
    return LLMRT_OK;
}

/* ---- normalizer ---------------------------------------------------------------------------- */

static llmrt_status normalizer(hf_ctx *c, const cJSON *n, int depth) {
    llmrt_tokenizer *tk = c->tk;
    if (!n) return LLMRT_OK;
    const char *type = type_of(n);
    if (!type) return hf_bad(c, "normalizer without a \"type\"");
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = hf_get(n, "normalizers");
        if (!cJSON_IsArray(list)) return hf_bad(c, "normalizer Sequence: missing \"normalizers\" array");
        if (depth >= MAX_DEPTH) return hf_unsupported(c, "normalizer Sequence nesting deeper than %d", MAX_DEPTH);
        for (const cJSON *e = list->child; e; e = e->next) LLMRT_TRY(normalizer(c, e, depth + 1));
        return LLMRT_OK;
    }
    bool prepend = strcmp(type, "Prepend") == 0, replace = strcmp(type, "Replace") == 0;
    bool nfc     = strcmp(type, "NFC") == 0;
    if (!prepend && !replace && !nfc) return hf_unsupported(c, "normalizer \"%.40s\"", type);
    tk_norm_op *op = push_op(c, (void **)&tk->norm, &tk->n_norm, sizeof *op);
    if (!op) return c->err->status;
    if (nfc) { /* Qwen2 / Qwen2.5 */
        op->type = TK_NORM_NFC;
        return LLMRT_OK;
    }
    const char *s = NULL;
    size_t      len = 0;
    if (prepend) {
        op->type = TK_NORM_PREPEND;
        LLMRT_TRY(hf_str(c, n, "prepend", true, &s, &len, "normalizer Prepend"));
    } else {
        op->type = TK_NORM_REPLACE;
        LLMRT_TRY(parse_pattern(c, n, "normalizer Replace", &op->pat));
        LLMRT_TRY(hf_str(c, n, "content", true, &s, &len, "normalizer Replace"));
    }
    op->content     = tk_strndup(s, len);
    op->content_len = len;
    return op->content ? LLMRT_OK : hf_oom(c);
}

llmrt_status hf_load_normalizer(hf_ctx *c, const cJSON *n) {
    return normalizer(c, n, 0);
}

/* ---- pre-tokenizer ------------------------------------------------------------------------ */

static llmrt_status split_behavior(hf_ctx *c, const cJSON *o, tk_split_behavior *out) {
    static const struct {
        const char       *name;
        tk_split_behavior b;
    } names[] = {{"Removed", TK_SPLIT_REMOVED},
                 {"Isolated", TK_SPLIT_ISOLATED},
                 {"MergedWithPrevious", TK_SPLIT_MERGED_WITH_PREVIOUS},
                 {"MergedWithNext", TK_SPLIT_MERGED_WITH_NEXT},
                 {"Contiguous", TK_SPLIT_CONTIGUOUS}};
    const char *s = NULL;
    size_t      n;
    LLMRT_TRY(hf_str(c, o, "behavior", true, &s, &n, "pre_tokenizer Split"));
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].b;
            return LLMRT_OK;
        }
    return hf_unsupported(c, "pre_tokenizer Split behavior \"%.40s\"", s);
}

static llmrt_status pre_tokenizer(hf_ctx *c, const cJSON *p, int depth) {
    llmrt_tokenizer *tk = c->tk;
    if (!p) return LLMRT_OK;
    const char *type = type_of(p);
    if (!type) return hf_bad(c, "pre_tokenizer without a \"type\"");
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = hf_get(p, "pretokenizers");
        if (!cJSON_IsArray(list)) return hf_bad(c, "pre_tokenizer Sequence: missing \"pretokenizers\" array");
        if (depth >= MAX_DEPTH) return hf_unsupported(c, "pre_tokenizer Sequence nesting deeper than %d", MAX_DEPTH);
        for (const cJSON *e = list->child; e; e = e->next) LLMRT_TRY(pre_tokenizer(c, e, depth + 1));
        return LLMRT_OK;
    }
    int kind = strcmp(type, "Split") == 0       ? 0
               : strcmp(type, "ByteLevel") == 0 ? 1
               : strcmp(type, "Metaspace") == 0 ? 2
               : strcmp(type, "Digits") == 0    ? 3
                                                : -1;
    if (kind < 0) return hf_unsupported(c, "pre_tokenizer \"%.40s\"", type);
    tk_pretok_op *op = push_op(c, (void **)&tk->pre, &tk->n_pre, sizeof *op);
    if (!op) return c->err->status;
    switch (kind) {
    case 0:
        op->type = TK_PRE_SPLIT;
        LLMRT_TRY(parse_pattern(c, p, "pre_tokenizer Split", &op->pat));
        LLMRT_TRY(split_behavior(c, p, &op->behavior));
        LLMRT_TRY(hf_bool(c, p, "invert", &op->invert, "pre_tokenizer Split"));
        return LLMRT_OK;
    case 1:
        op->type             = TK_PRE_BYTELEVEL;
        op->add_prefix_space = true; /* HF defaults */
        op->use_regex        = true;
        LLMRT_TRY(hf_bool(c, p, "add_prefix_space", &op->add_prefix_space, "pre_tokenizer ByteLevel"));
        LLMRT_TRY(hf_bool(c, p, "use_regex", &op->use_regex, "pre_tokenizer ByteLevel"));
        if (!op->use_regex) return LLMRT_OK;
        return tk_regex_compile(TK_REGEX_GPT2, strlen(TK_REGEX_GPT2), "ByteLevel regex", &op->pat.re, c->err);
    case 2:
        op->type  = TK_PRE_METASPACE;
        op->split = true;
        LLMRT_TRY(parse_char(c, p, "replacement", "pre_tokenizer Metaspace", op->replacement, &op->rep_len));
        LLMRT_TRY(parse_prepend_scheme(c, p, "pre_tokenizer Metaspace", &op->prepend_scheme));
        LLMRT_TRY(hf_bool(c, p, "split", &op->split, "pre_tokenizer Metaspace"));
        return tk_pattern_init_literal(&op->pat, op->replacement, op->rep_len, c->err);
    default: {
        /* Digits splits on Rust's char::is_numeric (Nd, Nl, No) = \p{N}, one match per char */
        bool individual = false;
        LLMRT_TRY(hf_bool(c, p, "individual_digits", &individual, "pre_tokenizer Digits"));
        op->type     = TK_PRE_SPLIT;
        op->behavior = individual ? TK_SPLIT_ISOLATED : TK_SPLIT_CONTIGUOUS;
        return tk_regex_compile("\\p{N}", 5, "Digits regex", &op->pat.re, c->err);
    }
    }
}

llmrt_status hf_load_pre_tokenizer(hf_ctx *c, const cJSON *p) {
    return pre_tokenizer(c, p, 0);
}

/* ---- decoder --------------------------------------------------------------------------------- */

static llmrt_status decoder(hf_ctx *c, const cJSON *d, int depth) {
    llmrt_tokenizer *tk = c->tk;
    const char      *type = type_of(d);
    if (!type) return hf_bad(c, "decoder without a \"type\"");
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = hf_get(d, "decoders");
        if (!cJSON_IsArray(list)) return hf_bad(c, "decoder Sequence: missing \"decoders\" array");
        if (depth >= MAX_DEPTH) return hf_unsupported(c, "decoder Sequence nesting deeper than %d", MAX_DEPTH);
        for (const cJSON *e = list->child; e; e = e->next) LLMRT_TRY(decoder(c, e, depth + 1));
        return LLMRT_OK;
    }
    static const char *const names[] = {"ByteLevel", "ByteFallback", "Fuse", "Strip", "Replace", "Metaspace"};
    int kind = -1;
    for (int i = 0; i < 6; i++)
        if (strcmp(type, names[i]) == 0) kind = i;
    if (kind < 0) return hf_unsupported(c, "decoder \"%.40s\"", type);
    tk_dec_op *op = push_op(c, (void **)&tk->dec, &tk->n_dec, sizeof *op);
    if (!op) return c->err->status;
    switch (kind) {
    case 0: op->type = TK_DEC_BYTELEVEL; return LLMRT_OK;
    case 1: op->type = TK_DEC_BYTEFALLBACK; return LLMRT_OK;
    case 2: op->type = TK_DEC_FUSE; return LLMRT_OK;
    case 3:
        op->type = TK_DEC_STRIP;
        LLMRT_TRY(parse_char(c, d, "content", "decoder Strip", op->chr, &op->chr_len));
        LLMRT_TRY(hf_int(c, d, "start", false, 0, 1 << 30, &op->start, "decoder Strip"));
        return hf_int(c, d, "stop", false, 0, 1 << 30, &op->stop, "decoder Strip");
    case 4: {
        op->type = TK_DEC_REPLACE;
        const char *s = NULL;
        size_t      n = 0;
        LLMRT_TRY(parse_pattern(c, d, "decoder Replace", &op->pat));
        LLMRT_TRY(hf_str(c, d, "content", true, &s, &n, "decoder Replace"));
        op->content     = tk_strndup(s, n);
        op->content_len = n;
        return op->content ? LLMRT_OK : hf_oom(c);
    }
    default:
        op->type = TK_DEC_METASPACE;
        LLMRT_TRY(parse_char(c, d, "replacement", "decoder Metaspace", op->chr, &op->chr_len));
        return parse_prepend_scheme(c, d, "decoder Metaspace", &op->prepend_scheme);
    }
}

llmrt_status hf_load_decoder(hf_ctx *c, const cJSON *d) {
    c->tk->has_decoder = d != NULL;
    return d ? decoder(c, d, 0) : LLMRT_OK;
}

/* ---- post-processor --------------------------------------------------------------------- */

static llmrt_status append_id(hf_ctx *c, int32_t **v, int32_t *n, int64_t id, const char *where) {
    if (id < 0 || id >= c->tk->n_vocab)
        return hf_bad(c, "%s: token id %lld is out of range", where, (long long)id);
    if (*n >= 64) return hf_unsupported(c, "%s with more than 64 special tokens", where);
    int32_t *p = realloc(*v, (size_t)(*n + 1) * sizeof *p);
    if (!p) return hf_oom(c);
    p[(*n)++] = (int32_t)id;
    *v        = p;
    return LLMRT_OK;
}

/* append_id of a JSON number: integral and in range before the conversion (a double out of an
 * int64's range converts with undefined behaviour) */
static llmrt_status append_json_id(hf_ctx *c, int32_t **v, int32_t *n, const cJSON *id,
                                   const char *where) {
    double d = id->valuedouble;
    if (!cJSON_IsNumber(id) || !isfinite(d) || d != floor(d) || d < 0 || d > 2147483647.0)
        return hf_bad(c, "%s: token id %g is not an integer in [0, 2147483647]", where, d);
    return append_id(c, v, n, (int64_t)d, where);
}

static llmrt_status template_processing(hf_ctx *c, const cJSON *p) {
    llmrt_tokenizer *tk      = c->tk;
    const cJSON     *single  = hf_get(p, "single");
    const cJSON     *special = hf_get(p, "special_tokens");
    const char      *where   = "post_processor TemplateProcessing";
    if (!cJSON_IsArray(single)) return hf_bad(c, "%s: missing \"single\" array", where);
    bool seen_a = false;
    for (const cJSON *item = single->child; item; item = item->next) {
        const cJSON *seq = hf_get(item, "Sequence"), *sp = hf_get(item, "SpecialToken");
        if (seq) {
            const char *id = NULL;
            size_t      n;
            LLMRT_TRY(hf_str(c, seq, "id", true, &id, &n, where));
            if (strcmp(id, "A") != 0 || seen_a) return hf_bad(c, "%s: \"single\" must hold sequence A once", where);
            seen_a = true;
            continue;
        }
        if (!sp) return hf_bad(c, "%s: items must be Sequence or SpecialToken", where);
        const char *name = NULL;
        size_t      n;
        LLMRT_TRY(hf_str(c, sp, "id", true, &name, &n, where));
        const cJSON *tok = hf_get(special, name);
        const cJSON *ids = hf_get(tok, "ids");
        if (!cJSON_IsArray(ids)) return hf_bad(c, "%s: special token \"%.80s\" has no \"ids\"", where, name);
        for (const cJSON *id = ids->child; id; id = id->next) {
            if (!cJSON_IsNumber(id)) return hf_bad(c, "%s: ids of \"%.80s\" must be numbers", where, name);
            if (seen_a) LLMRT_TRY(append_json_id(c, &tk->suffix_ids, &tk->n_suffix, id, where));
            else LLMRT_TRY(append_json_id(c, &tk->prefix_ids, &tk->n_prefix, id, where));
        }
    }
    if (!seen_a) return hf_bad(c, "%s: \"single\" lacks sequence A", where);
    return LLMRT_OK;
}

/* RobertaProcessing / BertProcessing: cls A sep, with "cls": ["<s>", 0] */
static llmrt_status cls_sep(hf_ctx *c, const cJSON *p, const char *type) {
    llmrt_tokenizer *tk = c->tk;
    const cJSON     *cls = hf_get(p, "cls"), *sep = hf_get(p, "sep");
    if (!cJSON_IsArray(cls) || cJSON_GetArraySize(cls) != 2 || !cJSON_IsNumber(cls->child->next) ||
        !cJSON_IsArray(sep) || cJSON_GetArraySize(sep) != 2 || !cJSON_IsNumber(sep->child->next))
        return hf_bad(c, "post_processor %s: \"cls\" and \"sep\" must be [token, id]", type);
    LLMRT_TRY(append_json_id(c, &tk->prefix_ids, &tk->n_prefix, cls->child->next, type));
    return append_json_id(c, &tk->suffix_ids, &tk->n_suffix, sep->child->next, type);
}

static llmrt_status post_processor(hf_ctx *c, const cJSON *p, int depth) {
    const char *type = type_of(p);
    if (!type) return hf_bad(c, "post_processor without a \"type\"");
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = hf_get(p, "processors");
        if (!cJSON_IsArray(list)) return hf_bad(c, "post_processor Sequence: missing \"processors\" array");
        if (depth >= MAX_DEPTH) return hf_unsupported(c, "post_processor Sequence nesting deeper than %d", MAX_DEPTH);
        for (const cJSON *e = list->child; e; e = e->next) LLMRT_TRY(post_processor(c, e, depth + 1));
        return LLMRT_OK;
    }
    /* ByteLevel's post-processing only trims offsets, which we do not report */
    if (strcmp(type, "ByteLevel") == 0) return LLMRT_OK;
    if (strcmp(type, "TemplateProcessing") == 0) return template_processing(c, p);
    if (strcmp(type, "RobertaProcessing") == 0 || strcmp(type, "BertProcessing") == 0) return cls_sep(c, p, type);
    return hf_unsupported(c, "post_processor \"%.40s\"", type);
}

llmrt_status hf_load_post_processor(hf_ctx *c, const cJSON *p) {
    return p ? post_processor(c, p, 0) : LLMRT_OK;
}
