/* Experimental public text calls (include/llmrt_experimental.h): a standalone tokenizer loaded
 * from a tokenizer.json or a GGUF file's metadata, and a streaming detokenizer over a model's or
 * a standalone tokenizer. Thin wrappers over host/tokenizer: arguments and sizes are checked
 * here, errors go to llmrt_last_error(). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../format/gguf.h"
#include "api_chat.h"
#include "api_model.h"
#include "../tokenizer/tokenizer.h"
#include "../core/regular_file.h"

struct llmrt_text_tokenizer {
    llmrt_tokenizer *tk;
};

struct llmrt_text_detokenizer {
    llmrt_detokenizer *d;
};

/* ---------------------------------------------------------------------------------------- */
/* Standalone tokenizer                                                                     */
/* ---------------------------------------------------------------------------------------- */

/* dir + "/" + name in a malloc'd string (*out); the last error is set on failure. */
static llmrt_status join_path(const char *fn, const char *dir, const char *name, char **out) {
    size_t a = strlen(dir), b = strlen(name);
    *out     = NULL;
    if (a > SIZE_MAX - b - 2) return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "%s: path too long", fn);
    char *p = malloc(a + b + 2);
    if (!p) return llmrt_err_set_last(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    *out = p;
    return LLMRT_OK;
}

/* Whether the regular file at `path` starts with the GGUF magic; -1 (last error set, naming the
 * file) when it cannot be opened or read. */
static int is_gguf_file(const char *fn, const char *path) {
    llmrt_error open_err = {0};
    FILE       *f        = llmrt_fopen_regular_file(path, &open_err);
    if (!f) return llmrt_err_set_last(LLMRT_ERR_IO, "%s: %s", fn, open_err.msg), -1;
    char   magic[4] = {0};
    size_t got      = fread(magic, 1, sizeof magic, f);
    int    bad      = ferror(f);
    fclose(f);
    if (bad) return llmrt_err_set_last(LLMRT_ERR_IO, "%s: cannot read %s", fn, path), -1;
    return got == sizeof magic && !memcmp(magic, "GGUF", 4);
}

static llmrt_status load_tokenizer(const char *fn, const char *path, const char *config_path,
                                   llmrt_tokenizer **tk) {
    llmrt_error err = {0};
    struct stat st;
    if (stat(path, &st) != 0)
        return llmrt_err_set_last(LLMRT_ERR_IO, "%s: cannot open %s: %s", fn, path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        /* a checkpoint directory: tokenizer.json + tokenizer_config.json when present */
        char *json = NULL, *cfg = NULL;
        LLMRT_TRY(join_path(fn, path, "tokenizer.json", &json));
        if (!config_path) {
            llmrt_status js = join_path(fn, path, "tokenizer_config.json", &cfg);
            if (js != LLMRT_OK) {
                free(json);
                return js;
            }
            if (stat(cfg, &st) != 0) {
                free(cfg);
                cfg = NULL;
            }
        }
        llmrt_status s = LLMRT_OK;
        if (stat(json, &st) != 0)
            s = llmrt_err_set_last(LLMRT_ERR_IO, "%s: cannot open %s: %s", fn, json, strerror(errno));
        else if (llmrt_tokenizer_load_hf(json, config_path ? config_path : cfg, tk, &err) != LLMRT_OK)
            s = llmrt_err_publish(&err);
        free(json);
        free(cfg);
        return s;
    }
    int gguf = is_gguf_file(fn, path);
    if (gguf < 0) return LLMRT_ERR_IO;
    if (gguf) {
        if (config_path)
            return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG,
                                      "%s: config_path (%s) applies to tokenizer.json only, and %s "
                                      "is a GGUF file", fn, config_path, path);
        llmrt_gguf_file f;
        memset(&f, 0, sizeof f);
        if (llmrt_gguf_open(path, &f, &err) != LLMRT_OK) return llmrt_err_publish(&err);
        llmrt_status s = llmrt_tokenizer_load_gguf(&f, tk, &err);
        llmrt_gguf_close(&f);
        return s == LLMRT_OK ? LLMRT_OK : llmrt_err_publish(&err);
    }
    if (llmrt_tokenizer_load_hf(path, config_path, tk, &err) != LLMRT_OK) return llmrt_err_publish(&err);
    return LLMRT_OK;
}

llmrt_status llmrt_text_tokenizer_load(const char *path, const char *config_path,
                                       llmrt_text_tokenizer **out) {
    static const char fn[] = "llmrt_text_tokenizer_load";
    if (out) *out = NULL;
    if (!out || !path)
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "%s: %s is NULL", fn, !out ? "out" : "path");
    if (!*path) return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "%s: path is empty", fn);
    llmrt_text_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return llmrt_err_set_last(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    llmrt_status s = load_tokenizer(fn, path, config_path, &t->tk);
    if (s != LLMRT_OK || !t->tk) {
        if (s == LLMRT_OK) s = llmrt_err_set_last(LLMRT_ERR_INTERNAL, "%s: %s: no tokenizer", fn, path);
        llmrt_tokenizer_destroy(t->tk);
        free(t);
        return s;
    }
    *out = t;
    return LLMRT_OK;
}

void llmrt_text_tokenizer_destroy(llmrt_text_tokenizer *tok) {
    if (!tok) return;
    llmrt_tokenizer_destroy(tok->tk);
    free(tok);
}

int32_t llmrt_text_tokenizer_vocab_size(const llmrt_text_tokenizer *tok) {
    return tok && tok->tk ? llmrt_tokenizer_vocab_size(tok->tk) : 0;
}

llmrt_status llmrt_text_tokenizer_encode(const llmrt_text_tokenizer *tok, const char *text,
                                         size_t len, bool add_special, bool parse_special,
                                         int32_t *ids, int32_t capacity, int32_t *n) {
    static const char fn[] = "llmrt_text_tokenizer_encode";
    if (!tok || !tok->tk) return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "%s: tokenizer is NULL", fn);
    if (!n || (len && !text) || capacity < 0 || (capacity > 0 && !ids))
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG,
                                  "%s: n is required; text and ids must be set when their sizes "
                                  "are non-zero (capacity %d)", fn, capacity);
    llmrt_error err = {0};
    int32_t    *out = NULL;
    int64_t     cnt = 0;
    if (llmrt_tokenizer_encode(tok->tk, text ? text : "", len, add_special, parse_special, &out,
                               &cnt, &err) != LLMRT_OK)
        return llmrt_err_publish(&err);
    llmrt_status s = LLMRT_OK;
    if (cnt < 0 || cnt > INT32_MAX) {
        s = llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "%s: more than 2^31 tokens", fn);
    } else {
        *n = (int32_t)cnt;
        if (cnt > capacity)
            s = llmrt_err_set_last(LLMRT_ERR_BUFFER_TOO_SMALL, "%s: %lld tokens do not fit in %d",
                                   fn, (long long)cnt, capacity);
        else if (cnt) memcpy(ids, out, (size_t)cnt * sizeof *ids);
    }
    free(out);
    return s;
}

llmrt_status llmrt_text_tokenizer_decode(const llmrt_text_tokenizer *tok, const int32_t *ids,
                                         int32_t n_ids, bool skip_special, char *text,
                                         size_t capacity, size_t *len) {
    static const char fn[] = "llmrt_text_tokenizer_decode";
    if (!tok || !tok->tk) return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "%s: tokenizer is NULL", fn);
    if (!len || n_ids < 0 || (n_ids && !ids) || (capacity && !text))
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG,
                                  "%s: len is required, n_ids (%d) must be >= 0, and ids / text "
                                  "must be set when their sizes are non-zero", fn, n_ids);
    llmrt_error err = {0};
    char       *out = NULL;
    size_t      cnt = 0;
    if (llmrt_tokenizer_decode(tok->tk, ids, n_ids, skip_special, &out, &cnt, &err) != LLMRT_OK) {
        llmrt_err_prefix(&err, "%s", fn);
        return llmrt_err_publish(&err);
    }
    *len           = cnt;
    llmrt_status s = LLMRT_OK;
    if (cnt >= capacity) { /* the text and its NUL must fit */
        s = llmrt_err_set_last(LLMRT_ERR_BUFFER_TOO_SMALL, "%s: %zu bytes and a NUL do not fit in %zu",
                               fn, cnt, capacity);
    } else {
        memcpy(text, out, cnt);
        text[cnt] = 0;
    }
    free(out);
    return s;
}

int32_t llmrt_text_tokenizer_bos(const llmrt_text_tokenizer *tok) {
    return tok && tok->tk ? llmrt_tokenizer_bos(tok->tk) : -1;
}

int32_t llmrt_text_tokenizer_eos(const llmrt_text_tokenizer *tok) {
    return tok && tok->tk ? llmrt_tokenizer_eos(tok->tk) : -1;
}

const char *llmrt_text_tokenizer_token_piece(const llmrt_text_tokenizer *tok, int32_t id) {
    if (!tok || !tok->tk || id < 0 || id >= llmrt_tokenizer_vocab_size(tok->tk)) return NULL;
    return llmrt_tokenizer_piece(tok->tk, id);
}

const char *llmrt_text_tokenizer_chat_template(const llmrt_text_tokenizer *tok) {
    return tok && tok->tk ? llmrt_tokenizer_chat_template(tok->tk) : NULL;
}

llmrt_status llmrt_text_tokenizer_apply_chat_template(
    const llmrt_text_tokenizer *tok, const char *template_name, const llmrt_chat_message *messages,
    int32_t n_messages, bool add_generation_prompt, char *text, size_t capacity, size_t *len) {
    static const char fn[] = "llmrt_text_tokenizer_apply_chat_template";
    if (!tok || !tok->tk || !len || (capacity && !text))
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "%s: %s is NULL", fn,
                                  !tok || !tok->tk ? "tokenizer"
                                  : !len           ? "len"
                                                   : "text");
    return llmrt_api_chat_render(tok->tk, fn, template_name, messages, n_messages, NULL, NULL,
                                 add_generation_prompt, text, capacity, len);
}

llmrt_status llmrt_text_tokenizer_apply_chat_template_json(
    const llmrt_text_tokenizer *tok, const char *template_name, const char *messages_json,
    const char *tools_json, bool add_generation_prompt, char *text, size_t capacity, size_t *len) {
    static const char fn[] = "llmrt_text_tokenizer_apply_chat_template_json";
    if (!tok || !tok->tk || !len || (capacity && !text) || !messages_json)
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "%s: %s is NULL", fn,
                                  !tok || !tok->tk ? "tokenizer"
                                  : !len           ? "len"
                                  : !messages_json ? "messages_json"
                                                   : "text");
    return llmrt_api_chat_render(tok->tk, fn, template_name, NULL, 0, messages_json, tools_json,
                                 add_generation_prompt, text, capacity, len);
}

/* ---------------------------------------------------------------------------------------- */
/* Streaming detokenizer                                                                    */
/* ---------------------------------------------------------------------------------------- */

static llmrt_status make_detok(const char *fn, const llmrt_tokenizer *tk, bool skip_special,
                               llmrt_text_detokenizer **out) {
    llmrt_text_detokenizer *d = calloc(1, sizeof *d);
    if (!d) return llmrt_err_set_last(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    llmrt_error err = {0};
    if (llmrt_detokenizer_create(tk, skip_special, &d->d, &err) != LLMRT_OK) {
        free(d);
        llmrt_err_prefix(&err, "%s", fn);
        return llmrt_err_publish(&err);
    }
    *out = d;
    return LLMRT_OK;
}

llmrt_status llmrt_text_detokenizer_create(const llmrt_model *model, bool skip_special,
                                           llmrt_text_detokenizer **out) {
    static const char fn[] = "llmrt_text_detokenizer_create";
    if (out) *out = NULL;
    if (!model || !out)
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "%s: %s is NULL", fn, !model ? "model" : "out");
    if (!model->rank->tokenizer)
        return llmrt_err_set_last(LLMRT_ERR_UNSUPPORTED, "%s: the model (%s) has no tokenizer", fn,
                                  model->rank->source_path);
    return make_detok(fn, model->rank->tokenizer, skip_special, out);
}

llmrt_status llmrt_text_detokenizer_create_from_tokenizer(const llmrt_text_tokenizer *tok,
                                                          bool skip_special,
                                                          llmrt_text_detokenizer **out) {
    static const char fn[] = "llmrt_text_detokenizer_create_from_tokenizer";
    if (out) *out = NULL;
    if (!tok || !tok->tk || !out)
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "%s: %s is NULL", fn,
                                  !out ? "out" : "tokenizer");
    return make_detok(fn, tok->tk, skip_special, out);
}

llmrt_status llmrt_text_detokenizer_push(llmrt_text_detokenizer *detok, int32_t token,
                                         const char **text, size_t *len) {
    static const char fn[] = "llmrt_text_detokenizer_push";
    if (text) *text = "";
    if (len) *len = 0;
    if (!detok || !detok->d || !text)
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "%s: %s is NULL", fn,
                                  !text ? "text" : "detokenizer");
    llmrt_error err = {0};
    if (llmrt_detokenizer_push(detok->d, token, text, len, &err) != LLMRT_OK) {
        *text = "";
        if (len) *len = 0;
        llmrt_err_prefix(&err, "%s", fn);
        return llmrt_err_publish(&err);
    }
    return LLMRT_OK;
}

llmrt_status llmrt_text_detokenizer_flush(llmrt_text_detokenizer *detok, const char **text,
                                          size_t *len) {
    static const char fn[] = "llmrt_text_detokenizer_flush";
    if (text) *text = "";
    if (len) *len = 0;
    if (!detok || !detok->d || !text)
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "%s: %s is NULL", fn,
                                  !text ? "text" : "detokenizer");
    llmrt_error err = {0};
    if (llmrt_detokenizer_flush(detok->d, text, len, &err) != LLMRT_OK) {
        *text = "";
        if (len) *len = 0;
        llmrt_err_prefix(&err, "%s", fn);
        return llmrt_err_publish(&err);
    }
    return LLMRT_OK;
}

void llmrt_text_detokenizer_destroy(llmrt_text_detokenizer *detok) {
    if (!detok) return;
    llmrt_detokenizer_destroy(detok->d);
    free(detok);
}
