/* Loading the tokenizer of a GGUF file (tokenizer.ggml.* metadata, llama.cpp's conventions)
 * into the same engine as tokenizer.json, by building the equivalent HF pipeline:
 *  - "llama" (SentencePiece BPE): normalizer Prepend("▁") + Replace(" " -> "▁"), the SPM model
 *    by scores with <0xNN> byte fallback, decoder Replace("▁" -> " ") + ByteFallback + Fuse +
 *    Strip(1 leading space): the pipeline of HF's Llama-2 / Mistral tokenizer.json.
 *  - "gpt2" (byte-level BPE with merges): pre-tokenizer chosen by tokenizer.ggml.pre, ByteLevel
 *    decoder ("qwen2": NFC first, as HF's Qwen2 tokenizer.json; llama.cpp skips it).
 * token_type: 2 unknown and 3 control become special added tokens (parsed only with
 * parse_special), 4 user-defined become non-special added tokens (always parsed), as in
 * llama.cpp's tokenizer_st_partition. */
#include <stdio.h>
#include <string.h>

#include "tok_internal.h"

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };

static llmrt_status fail(const llmrt_gguf_file *f, llmrt_error *err, llmrt_status st, const char *msg,
                         const char *arg) {
    return llmrt_err(err, st, "%s: %s%s", f->path ? f->path : "<gguf>", msg, arg ? arg : "");
}

static llmrt_status add_op_pre(llmrt_tokenizer *tk, tk_pretok_op op, llmrt_error *err) {
    tk_pretok_op *p = realloc(tk->pre, (size_t)(tk->n_pre + 1) * sizeof *p);
    if (!p) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", tk->name);
    tk->pre             = p;
    tk->pre[tk->n_pre++] = op;
    return LLMRT_OK;
}

static llmrt_status regex_op(llmrt_tokenizer *tk, const char *re, tk_pretok_op *op, llmrt_error *err) {
    return tk_regex_compile(re, strlen(re), tk->name, &op->pat.re, err);
}

/* The pre-tokenizer of a byte-level vocabulary, by llama.cpp's tokenizer.ggml.pre names. */
static llmrt_status gpt2_pipeline(const llmrt_gguf_file *f, llmrt_tokenizer *tk, llmrt_error *err) {
    llmrt_gguf_str pre = {"default", 7};
    LLMRT_TRY(llmrt_gguf_get_str(f, "tokenizer.ggml.pre", false, &pre, err));
    char name[64], quoted[128];
    snprintf(name, sizeof name, "%.*s", (int)(pre.len < 63 ? pre.len : 63), pre.ptr);
    snprintf(quoted, sizeof quoted, "\"%s\"", name);
    tk_pretok_op bl = {.type = TK_PRE_BYTELEVEL};
    if (!strcmp(name, "default") || !strcmp(name, "gpt2") || !strcmp(name, "gpt-2")) {
        bl.use_regex = true;
        LLMRT_TRY(regex_op(tk, TK_REGEX_GPT2, &bl, err));
    } else if (!strcmp(name, "smollm")) {
        /* llama.cpp: {"\p{N}", gpt2}; HF SmolLM2: Digits(individual) + ByteLevel(use_regex) */
        tk_pretok_op digits = {.type = TK_PRE_SPLIT, .behavior = TK_SPLIT_ISOLATED};
        LLMRT_TRY(regex_op(tk, "\\p{N}", &digits, err));
        LLMRT_TRY(add_op_pre(tk, digits, err));
        bl.use_regex = true;
        LLMRT_TRY(regex_op(tk, TK_REGEX_GPT2, &bl, err));
    } else if (!strcmp(name, "llama-bpe") || !strcmp(name, "llama3")) {
        /* HF Llama 3: Split(regex, Isolated) + ByteLevel(use_regex=false), ignore_merges */
        tk_pretok_op split = {.type = TK_PRE_SPLIT, .behavior = TK_SPLIT_ISOLATED};
        LLMRT_TRY(regex_op(tk, TK_REGEX_LLAMA3, &split, err));
        LLMRT_TRY(add_op_pre(tk, split, err));
        tk->ignore_merges = true;
    } else if (!strcmp(name, "qwen2")) {
        /* HF Qwen2 / Qwen2.5: NFC + Split(regex, Isolated) + ByteLevel(use_regex=false) */
        tk->norm = calloc(1, sizeof *tk->norm);
        if (!tk->norm) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", tk->name);
        tk->norm[0].type = TK_NORM_NFC;
        tk->n_norm       = 1;
        tk_pretok_op split = {.type = TK_PRE_SPLIT, .behavior = TK_SPLIT_ISOLATED};
        LLMRT_TRY(regex_op(tk, TK_REGEX_QWEN2, &split, err));
        LLMRT_TRY(add_op_pre(tk, split, err));
    } else {
        return fail(f, err, LLMRT_ERR_UNSUPPORTED, "unsupported tokenizer.ggml.pre ",
                    strcat(quoted, " (known: default, gpt2, llama-bpe, llama3, qwen2, smollm)"));
    }
    LLMRT_TRY(add_op_pre(tk, bl, err));
    tk->dec = calloc(1, sizeof *tk->dec);
    if (!tk->dec) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", tk->name);
    tk->dec[0].type = TK_DEC_BYTELEVEL;
    tk->n_dec       = 1;
    return LLMRT_OK;
}

static llmrt_status spm_pipeline(const llmrt_gguf_file *f, llmrt_tokenizer *tk, llmrt_error *err) {
    static const char SP[] = "\xe2\x96\x81"; /* U+2581 "▁" */
    bool add_space_prefix  = true;
    LLMRT_TRY(llmrt_gguf_get_bool(f, "tokenizer.ggml.add_space_prefix", false, &add_space_prefix, err));
    tk->norm = calloc(2, sizeof *tk->norm);
    tk->dec  = calloc(4, sizeof *tk->dec);
    if (!tk->norm || !tk->dec) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", tk->name);
    if (add_space_prefix) {
        tk_norm_op *p = &tk->norm[tk->n_norm++];
        p->type        = TK_NORM_PREPEND;
        p->content     = tk_strndup(SP, 3);
        p->content_len = 3;
        if (!p->content) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", tk->name);
    }
    tk_norm_op *r = &tk->norm[tk->n_norm++];
    r->type        = TK_NORM_REPLACE;
    r->content     = tk_strndup(SP, 3);
    r->content_len = 3;
    if (!r->content) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", tk->name);
    LLMRT_TRY(tk_pattern_init_literal(&r->pat, " ", 1, err));

    tk_dec_op *d = &tk->dec[tk->n_dec++];
    d->type        = TK_DEC_REPLACE;
    d->content     = tk_strndup(" ", 1);
    d->content_len = 1;
    if (!d->content) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", tk->name);
    LLMRT_TRY(tk_pattern_init_literal(&d->pat, SP, 3, err));
    tk->dec[tk->n_dec++].type = TK_DEC_BYTEFALLBACK;
    tk->dec[tk->n_dec++].type = TK_DEC_FUSE;
    if (add_space_prefix) {
        d          = &tk->dec[tk->n_dec++];
        d->type    = TK_DEC_STRIP;
        d->chr[0]  = ' ';
        d->chr_len = 1;
        d->start   = 1;
    }
    return LLMRT_OK;
}

static llmrt_status special_id(const llmrt_gguf_file *f, const llmrt_tokenizer *tk, const char *key,
                               int32_t *out, llmrt_error *err) {
    int64_t v = -1;
    LLMRT_TRY(llmrt_gguf_get_i64(f, key, false, &v, err));
    if (v == -1 || (v == 0xffffffffll)) return LLMRT_OK; /* absent or LLAMA_TOKEN_NULL */
    if (v < 0 || v >= tk->n_vocab) return fail(f, err, LLMRT_ERR_FORMAT, "token id out of range in ", key);
    *out = (int32_t)v;
    return LLMRT_OK;
}

static llmrt_status load_vocab(const llmrt_gguf_file *f, llmrt_tokenizer *tk, bool spm, llmrt_error *err) {
    const llmrt_gguf_kv *tokens = NULL, *scores = NULL, *types = NULL;
    LLMRT_TRY(llmrt_gguf_get_arr(f, "tokenizer.ggml.tokens", LLMRT_GGUF_STRING, true, &tokens, err));
    LLMRT_TRY(llmrt_gguf_get_arr(f, "tokenizer.ggml.scores", LLMRT_GGUF_FLOAT32, false, &scores, err));
    LLMRT_TRY(llmrt_gguf_get_arr(f, "tokenizer.ggml.token_type", LLMRT_GGUF_INT32, false, &types, err));
    uint64_t n = tokens->arr_n;
    if (n == 0) return fail(f, err, LLMRT_ERR_FORMAT, "tokenizer.ggml.tokens is empty", NULL);
    if (n > TK_MAX_VOCAB) return fail(f, err, LLMRT_ERR_FORMAT, "tokenizer.ggml.tokens is too long", NULL);
    if (scores && scores->arr_n != n)
        return fail(f, err, LLMRT_ERR_FORMAT, "tokenizer.ggml.scores length differs from tokens", NULL);
    if (types && types->arr_n != n)
        return fail(f, err, LLMRT_ERR_FORMAT, "tokenizer.ggml.token_type length differs from tokens", NULL);
    LLMRT_TRY(tk_set_vocab_size(tk, (int64_t)n, err));
    if (spm) {
        tk->scores = calloc(n, sizeof *tk->scores);
        if (!tk->scores) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", tk->name);
    }
    tk->added = calloc(n, sizeof *tk->added);
    if (!tk->added) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", tk->name);
    for (uint64_t i = 0; i < n; i++) {
        llmrt_gguf_str s = tokens->arr_strs[i];
        LLMRT_TRY(tk_set_piece(tk, (int32_t)i, s.ptr, s.len, TK_VOCAB_LAST_WINS, "tokenizer.ggml.tokens entry", err));
        if (spm && scores) memcpy(&tk->scores[i], scores->arr_data + 4 * i, 4);
        int32_t type = TT_NORMAL;
        if (types) memcpy(&type, types->arr_data + 4 * i, 4);
        if (type < TT_NORMAL || type > TT_BYTE) {
            char msg[64];
            snprintf(msg, sizeof msg, "%d of token %llu", type, (unsigned long long)i);
            return fail(f, err, LLMRT_ERR_FORMAT, "invalid tokenizer.ggml.token_type ", msg);
        }
        if ((type == TT_UNKNOWN || type == TT_CONTROL || type == TT_USER) && s.len > 0) {
            tk_added_token *t = &tk->added[tk->n_added++];
            *t = (tk_added_token){.id = (int32_t)i, .content = (char *)tk->pieces[i], .len = s.len,
                                  .special = type != TT_USER};
        }
        if (type == TT_UNKNOWN && tk->unk_id < 0 && spm) tk->unk_id = (int32_t)i;
    }
    /* keep only the added tokens (the table was sized for the worst case) */
    tk_added_token *shrunk = realloc(tk->added, (size_t)(tk->n_added ? tk->n_added : 1) * sizeof *shrunk);
    if (shrunk) tk->added = shrunk;
    return LLMRT_OK;
}

static llmrt_status load_merges(const llmrt_gguf_file *f, llmrt_tokenizer *tk, llmrt_error *err) {
    const llmrt_gguf_kv *merges = NULL;
    LLMRT_TRY(llmrt_gguf_get_arr(f, "tokenizer.ggml.merges", LLMRT_GGUF_STRING, true, &merges, err));
    if (merges->arr_n > UINT32_MAX / 2) return fail(f, err, LLMRT_ERR_FORMAT, "too many merges", NULL);
    if (!tk_u64map_init(&tk->merges, merges->arr_n))
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", tk->name);
    for (uint64_t r = 0; r < merges->arr_n; r++) {
        llmrt_gguf_str m = merges->arr_strs[r];
        /* llama.cpp splits at the first space after the first byte */
        const char *sp = m.len > 1 ? memchr(m.ptr + 1, ' ', m.len - 1) : NULL;
        int32_t     a = -1, b = -1;
        if (sp) {
            a = tk_strmap_get(&tk->vocab, m.ptr, (size_t)(sp - m.ptr));
            b = tk_strmap_get(&tk->vocab, sp + 1, m.len - (size_t)(sp - m.ptr) - 1);
        }
        if (a < 0 || b < 0) {
            char msg[200];
            snprintf(msg, sizeof msg, "#%llu \"%.*s\" (not two vocabulary tokens)", (unsigned long long)r,
                     (int)(m.len > 120 ? 120 : m.len), m.ptr);
            return fail(f, err, LLMRT_ERR_FORMAT, "bad tokenizer.ggml.merges entry ", msg);
        }
        LLMRT_TRY(tk_add_merge(tk, a, b, (uint32_t)r, err));
    }
    return LLMRT_OK;
}

static llmrt_status load(const llmrt_gguf_file *f, llmrt_tokenizer *tk, llmrt_error *err) {
    llmrt_gguf_str model;
    LLMRT_TRY(llmrt_gguf_get_str(f, "tokenizer.ggml.model", true, &model, err));
    bool spm  = model.len == 5 && memcmp(model.ptr, "llama", 5) == 0;
    bool gpt2 = model.len == 4 && memcmp(model.ptr, "gpt2", 4) == 0;
    if (!spm && !gpt2) {
        char name[64];
        snprintf(name, sizeof name, "\"%.*s\"", (int)(model.len < 60 ? model.len : 60), model.ptr);
        return fail(f, err, LLMRT_ERR_UNSUPPORTED, "unsupported tokenizer.ggml.model ", name);
    }
    tk->model = spm ? TK_MODEL_SPM : TK_MODEL_BPE;
    LLMRT_TRY(load_vocab(f, tk, spm, err));
    if (gpt2) {
        LLMRT_TRY(load_merges(f, tk, err));
        LLMRT_TRY(gpt2_pipeline(f, tk, err));
    } else {
        LLMRT_TRY(spm_pipeline(f, tk, err));
        tk->byte_fallback = true;
    }
    tk->has_decoder = true;
    LLMRT_TRY(special_id(f, tk, "tokenizer.ggml.bos_token_id", &tk->bos, err));
    LLMRT_TRY(special_id(f, tk, "tokenizer.ggml.eos_token_id", &tk->eos, err));
    LLMRT_TRY(special_id(f, tk, "tokenizer.ggml.eot_token_id", &tk->eot, err));
    LLMRT_TRY(special_id(f, tk, "tokenizer.ggml.padding_token_id", &tk->pad, err));
    if (spm) LLMRT_TRY(special_id(f, tk, "tokenizer.ggml.unknown_token_id", &tk->unk_id, err));
    bool add_bos = spm, add_eos = false;
    LLMRT_TRY(llmrt_gguf_get_bool(f, "tokenizer.ggml.add_bos_token", false, &add_bos, err));
    LLMRT_TRY(llmrt_gguf_get_bool(f, "tokenizer.ggml.add_eos_token", false, &add_eos, err));
    if (add_bos && tk->bos < 0) return fail(f, err, LLMRT_ERR_FORMAT, "add_bos_token is set but there is no bos_token_id", NULL);
    if (add_eos && tk->eos < 0) return fail(f, err, LLMRT_ERR_FORMAT, "add_eos_token is set but there is no eos_token_id", NULL);
    tk->prefix_ids = malloc(sizeof(int32_t));
    tk->suffix_ids = malloc(sizeof(int32_t));
    if (!tk->prefix_ids || !tk->suffix_ids) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", tk->name);
    if (add_bos) tk->prefix_ids[tk->n_prefix++] = tk->bos;
    if (add_eos) tk->suffix_ids[tk->n_suffix++] = tk->eos;
    llmrt_gguf_str tmpl = {NULL, 0};
    LLMRT_TRY(llmrt_gguf_get_str(f, "tokenizer.chat_template", false, &tmpl, err));
    if (tmpl.ptr && !(tk->chat_template = tk_strndup(tmpl.ptr, tmpl.len)))
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", tk->name);
    return tk_finalize(tk, err);
}

llmrt_status llmrt_tokenizer_load_gguf(const llmrt_gguf_file *f, llmrt_tokenizer **out,
                                       llmrt_error *err) {
    if (!f || !out) return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "tokenizer: NULL argument");
    *out = NULL;
    llmrt_error local;
    if (!err) err = &local;
    llmrt_tokenizer *tk = tk_alloc(f->path ? f->path : "<gguf>");
    if (!tk) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    llmrt_status st = load(f, tk, err);
    if (st != LLMRT_OK) {
        llmrt_tokenizer_destroy(tk);
        return st;
    }
    if ((st = tk_parse_chat_template(tk, err)) != LLMRT_OK) {
        llmrt_tokenizer_destroy(tk);
        return st;
    }
    *out = tk;
    return LLMRT_OK;
}
