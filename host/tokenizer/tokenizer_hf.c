/* Loading an HF tokenizer.json (+ tokenizer_config.json) into the engine. Every field that
 * changes tokenization is either implemented or rejected with LLMRT_ERR_UNSUPPORTED naming it;
 * padding and truncation are batch-shaping options of HF's encode and are ignored. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_util.h"
#include "tok_internal.h"
#include "tokenizer_hf_parts.h"

/* tokenizer.json files run to tens of MB (Llama 3's is 9 MB) */
#define TK_MAX_JSON_BYTES ((uint64_t)1 << 30)
#define TK_MAX_TEMPLATE_BYTES ((uint64_t)16 << 20) /* chat_template.jinja */

typedef struct pending_added {
    int32_t     id;
    const char *content;
    bool        special, lstrip, rstrip, single_word, normalized;
} pending_added;

static llmrt_status parse_added(hf_ctx *c, const cJSON *arr, pending_added **out, int32_t *n,
                                int64_t *max_id) {
    *out = NULL;
    *n   = 0;
    if (!arr) return LLMRT_OK;
    if (!cJSON_IsArray(arr)) return hf_bad(c, "added_tokens must be an array");
    int count = cJSON_GetArraySize(arr);
    if (count == 0) return LLMRT_OK;
    *out = calloc((size_t)count, sizeof **out);
    if (!*out) return hf_oom(c);
    int i = 0;
    for (const cJSON *t = arr->child; t; t = t->next, i++) {
        pending_added *p = &(*out)[i];
        if (!cJSON_IsObject(t)) return hf_bad(c, "added_tokens[%d] must be an object", i);
        int64_t id;
        size_t  len;
        LLMRT_TRY(hf_int(c, t, "id", true, 0, TK_MAX_VOCAB - 1, &id, "added_tokens[]"));
        LLMRT_TRY(hf_str(c, t, "content", true, &p->content, &len, "added_tokens[]"));
        p->id = (int32_t)id;
        p->normalized = true; /* HF's serde default */
        LLMRT_TRY(hf_bool(c, t, "special", &p->special, "added_tokens[]"));
        LLMRT_TRY(hf_bool(c, t, "lstrip", &p->lstrip, "added_tokens[]"));
        LLMRT_TRY(hf_bool(c, t, "rstrip", &p->rstrip, "added_tokens[]"));
        LLMRT_TRY(hf_bool(c, t, "single_word", &p->single_word, "added_tokens[]"));
        LLMRT_TRY(hf_bool(c, t, "normalized", &p->normalized, "added_tokens[]"));
        if (len == 0) return hf_bad(c, "added_tokens[%d] has empty content", i);
        for (int k = 0; k < i; k++)
            if ((*out)[k].id == p->id)
                return hf_bad(c, "added tokens \"%.80s\" and \"%.80s\" share id %d", (*out)[k].content,
                              p->content, p->id);
        if (id > *max_id) *max_id = id;
    }
    *n = count;
    return LLMRT_OK;
}

static llmrt_status resolve_merge_part(hf_ctx *c, const char *s, size_t len, uint32_t rank,
                                       const char *whole, int32_t *id) {
    *id = tk_strmap_get(&c->tk->vocab, s, len);
    if (*id < 0)
        return hf_bad(c, "model.merges[%u] \"%.100s\" names token \"%.*s\", which is not in the vocabulary",
                      rank, whole, (int)(len > 100 ? 100 : len), s);
    return LLMRT_OK;
}

static llmrt_status load_merges(hf_ctx *c, const cJSON *merges) {
    llmrt_tokenizer *tk = c->tk;
    int              n  = cJSON_GetArraySize(merges);
    if (!tk_u64map_init(&tk->merges, (uint64_t)n)) return hf_oom(c);
    uint32_t rank = 0;
    for (const cJSON *m = merges->child; m; m = m->next, rank++) {
        int32_t a, b;
        if (cJSON_IsString(m)) {
            /* the legacy "a b" form: exactly one space (tokens with spaces need the pair form) */
            const char *s  = m->valuestring;
            const char *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' '))
                return hf_bad(c, "model.merges[%u] \"%.100s\" is not two tokens separated by one space", rank, s);
            LLMRT_TRY(resolve_merge_part(c, s, (size_t)(sp - s), rank, s, &a));
            LLMRT_TRY(resolve_merge_part(c, sp + 1, strlen(sp + 1), rank, s, &b));
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
                   cJSON_IsString(m->child->next)) {
            const char *x = m->child->valuestring, *y = m->child->next->valuestring;
            LLMRT_TRY(resolve_merge_part(c, x, strlen(x), rank, x, &a));
            LLMRT_TRY(resolve_merge_part(c, y, strlen(y), rank, y, &b));
        } else {
            return hf_bad(c, "model.merges[%u] must be a string \"a b\" or a pair [\"a\", \"b\"]", rank);
        }
        LLMRT_TRY(tk_add_merge(tk, a, b, rank, c->err));
    }
    return LLMRT_OK;
}

static llmrt_status load_model(hf_ctx *c, const cJSON *root) {
    llmrt_tokenizer *tk    = c->tk;
    const cJSON     *model = hf_get(root, "model");
    if (!model) return hf_bad(c, "missing \"model\"");
    if (!cJSON_IsObject(model)) return hf_bad(c, "\"model\" must be an object");
    const char *type = NULL;
    size_t      tlen;
    LLMRT_TRY(hf_str(c, model, "type", false, &type, &tlen, "model"));
    if (type && strcmp(type, "BPE") != 0)
        return hf_unsupported(c, "model type \"%.40s\" (only BPE is implemented)", type);
    const cJSON *vocab  = hf_get(model, "vocab");
    const cJSON *merges = hf_get(model, "merges");
    if (!vocab) return hf_bad(c, "missing model.vocab");
    if (!cJSON_IsObject(vocab)) return hf_bad(c, "model.vocab must be an object");
    if (!merges) return hf_bad(c, "missing model.merges");
    if (!cJSON_IsArray(merges)) return hf_bad(c, "model.merges must be an array");
    const cJSON *dropout = hf_get(model, "dropout");
    if (dropout && (!cJSON_IsNumber(dropout) || dropout->valuedouble != 0.0))
        return hf_unsupported(c, "BPE dropout (sampling); set it to null");
    const char *pfx = NULL, *sfx = NULL;
    size_t      pl = 0, sl = 0;
    LLMRT_TRY(hf_str(c, model, "continuing_subword_prefix", false, &pfx, &pl, "model"));
    LLMRT_TRY(hf_str(c, model, "end_of_word_suffix", false, &sfx, &sl, "model"));
    if (pl) return hf_unsupported(c, "BPE continuing_subword_prefix \"%.40s\"", pfx);
    if (sl) return hf_unsupported(c, "BPE end_of_word_suffix \"%.40s\"", sfx);
    LLMRT_TRY(hf_bool(c, model, "byte_fallback", &tk->byte_fallback, "model"));
    LLMRT_TRY(hf_bool(c, model, "ignore_merges", &tk->ignore_merges, "model"));
    LLMRT_TRY(hf_bool(c, model, "fuse_unk", &tk->fuse_unk, "model"));

    /* ids: vocabulary plus added tokens, sized by the highest id */
    pending_added *added = NULL;
    int32_t        n_added = 0;
    int64_t        max_id = -1, n_entries = 0;
    llmrt_status   st = parse_added(c, hf_get(root, "added_tokens"), &added, &n_added, &max_id);
    for (const cJSON *v = vocab->child; v && st == LLMRT_OK; v = v->next, n_entries++) {
        double d = v->valuedouble;
        if (!cJSON_IsNumber(v) || !isfinite(d) || d != floor(d) || d < 0 || d >= TK_MAX_VOCAB)
            st = hf_bad(c, "model.vocab[\"%.80s\"] must be an integer id in [0, %d)", v->string, TK_MAX_VOCAB);
        else if (d > max_id) max_id = (int64_t)d;
    }
    /* a sparse id space would let a tiny file allocate a huge table */
    if (st == LLMRT_OK && max_id >= 4 * (n_entries + n_added) + 1024)
        st = hf_bad(c, "id %lld is far beyond the %lld vocabulary entries", (long long)max_id,
                    (long long)(n_entries + n_added));
    if (st == LLMRT_OK) st = tk_set_vocab_size(tk, max_id + 1, c->err);
    for (const cJSON *v = vocab->child; v && st == LLMRT_OK; v = v->next)
        st = tk_set_piece(tk, (int32_t)v->valuedouble, v->string, strlen(v->string), TK_VOCAB_UNIQUE,
                          "model.vocab entry", c->err);
    if (st == LLMRT_OK && n_added) {
        tk->added = calloc((size_t)n_added, sizeof *tk->added);
        if (!tk->added) st = hf_oom(c);
    }
    for (int32_t i = 0; i < n_added && st == LLMRT_OK; i++) {
        pending_added *p      = &added[i];
        size_t         len    = strlen(p->content);
        int32_t        in_voc = tk_strmap_get(&tk->vocab, p->content, len);
        if (in_voc >= 0 && in_voc != p->id) {
            st = hf_bad(c, "added token \"%.80s\" has id %d but model.vocab gives it %d", p->content,
                        p->id, in_voc);
            break;
        }
        st = tk_set_piece(tk, p->id, p->content, len, TK_NOT_IN_VOCAB, "added token", c->err);
        if (st != LLMRT_OK) break;
        tk_added_token *t = &tk->added[tk->n_added++];
        *t = (tk_added_token){.id = p->id, .content = (char *)tk->pieces[p->id], .len = len,
                              .special = p->special, .lstrip = p->lstrip, .rstrip = p->rstrip,
                              .single_word = p->single_word, .normalized = p->normalized};
    }
    free(added);
    LLMRT_TRY(st);
    LLMRT_TRY(load_merges(c, merges));
    const char *unk = NULL;
    size_t      ul  = 0;
    LLMRT_TRY(hf_str(c, model, "unk_token", false, &unk, &ul, "model"));
    if (unk) {
        tk->unk_id = tk_strmap_get(&tk->vocab, unk, ul);
        /* HF only fails when an unknown character needs it: so do we */
        if (tk->unk_id < 0 && !(tk->unk_missing = tk_strndup(unk, ul))) return hf_oom(c);
    }
    tk->model = TK_MODEL_BPE;
    return LLMRT_OK;
}

/* tokenizer_config.json: a token given as "text" or as {"content": "text", ...} */
static llmrt_status config_token(hf_ctx *c, const cJSON *cfg, const char *key, int32_t *id) {
    const cJSON *v = hf_get(cfg, key);
    if (!v) return LLMRT_OK;
    if (cJSON_IsObject(v)) v = hf_get(v, "content");
    if (!v || !cJSON_IsString(v)) return hf_bad(c, "\"%s\" must be a string or {\"content\": ...}", key);
    /* a name that is no token leaves the id alone (configs carry stale pad tokens); add_bos
     * and add_eos then insist on having one */
    int32_t t = llmrt_tokenizer_token_id(c->tk, v->valuestring);
    if (t >= 0) *id = t;
    return LLMRT_OK;
}

static llmrt_status set_ids(hf_ctx *c, int32_t **dst, int32_t *n, int32_t id) {
    free(*dst);
    *dst = NULL;
    *n   = 0;
    if (id < 0) return LLMRT_OK;
    *dst = malloc(sizeof **dst);
    if (!*dst) return hf_oom(c);
    (*dst)[0] = id;
    *n        = 1;
    return LLMRT_OK;
}

static llmrt_status apply_config(hf_ctx *c, const cJSON *cfg) {
    llmrt_tokenizer *tk = c->tk;
    LLMRT_TRY(config_token(c, cfg, "bos_token", &tk->bos));
    LLMRT_TRY(config_token(c, cfg, "eos_token", &tk->eos));
    LLMRT_TRY(config_token(c, cfg, "pad_token", &tk->pad));
    /* add_bos_token / add_eos_token rebuild the template, as transformers' Llama tokenizers do */
    const cJSON *ab = hf_get(cfg, "add_bos_token"), *ae = hf_get(cfg, "add_eos_token");
    if (ab) {
        if (!cJSON_IsBool(ab)) return hf_bad(c, "add_bos_token must be true or false");
        if (cJSON_IsTrue(ab) && tk->bos < 0) return hf_bad(c, "add_bos_token is true but there is no bos_token");
        LLMRT_TRY(set_ids(c, &tk->prefix_ids, &tk->n_prefix, cJSON_IsTrue(ab) ? tk->bos : -1));
    }
    if (ae) {
        if (!cJSON_IsBool(ae)) return hf_bad(c, "add_eos_token must be true or false");
        if (cJSON_IsTrue(ae) && tk->eos < 0) return hf_bad(c, "add_eos_token is true but there is no eos_token");
        LLMRT_TRY(set_ids(c, &tk->suffix_ids, &tk->n_suffix, cJSON_IsTrue(ae) ? tk->eos : -1));
    }
    const cJSON *ct = hf_get(cfg, "chat_template");
    if (ct && cJSON_IsArray(ct)) {
        /* [{"name": "default", "template": "..."}, ...] */
        const cJSON *pick = NULL;
        for (const cJSON *e = ct->child; e; e = e->next) {
            const cJSON *name = hf_get(e, "name");
            if (!pick || (name && cJSON_IsString(name) && strcmp(name->valuestring, "default") == 0)) pick = e;
        }
        ct = pick ? hf_get(pick, "template") : NULL;
    }
    if (ct) {
        if (!cJSON_IsString(ct)) return hf_bad(c, "chat_template must be a string");
        if (!(tk->chat_template = tk_strndup(ct->valuestring, strlen(ct->valuestring)))) return hf_oom(c);
    }
    return LLMRT_OK;
}

static llmrt_status load_root(hf_ctx *c, const cJSON *root, const cJSON *cfg) {
    if (!cJSON_IsObject(root)) return hf_bad(c, "the top level must be an object");
    LLMRT_TRY(load_model(c, root));
    LLMRT_TRY(hf_load_normalizer(c, hf_get(root, "normalizer")));
    LLMRT_TRY(hf_load_pre_tokenizer(c, hf_get(root, "pre_tokenizer")));
    LLMRT_TRY(hf_load_decoder(c, hf_get(root, "decoder")));
    LLMRT_TRY(hf_load_post_processor(c, hf_get(root, "post_processor")));
    LLMRT_TRY(tk_finalize(c->tk, c->err));
    /* BOS/EOS from the template when the config does not name them */
    llmrt_tokenizer *tk = c->tk;
    if (tk->n_prefix) tk->bos = tk->prefix_ids[0];
    if (tk->n_suffix) tk->eos = tk->suffix_ids[tk->n_suffix - 1];
    if (cfg) {
        c->what = c->config_what;
        if (!cJSON_IsObject(cfg)) return hf_bad(c, "the top level must be an object");
        LLMRT_TRY(apply_config(c, cfg));
    }
    return LLMRT_OK;
}

static llmrt_status load(const cJSON *root, const cJSON *cfg, const char *what,
                         const char *config_what, char *template_file, llmrt_tokenizer **out,
                         llmrt_error *err) {
    llmrt_tokenizer *tk = tk_alloc(what);
    if (!tk) {
        free(template_file);
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    }
    hf_ctx       c  = {.tk = tk, .what = what, .config_what = config_what, .err = err};
    llmrt_status st = load_root(&c, root, cfg);
    if (st != LLMRT_OK) {
        free(template_file);
        llmrt_tokenizer_destroy(tk);
        return st;
    }
    if (template_file) { /* chat_template.jinja wins over tokenizer_config.json, as in HF */
        free(tk->chat_template);
        tk->chat_template = template_file;
    }
    if ((st = tk_parse_chat_template(tk, err)) != LLMRT_OK) {
        llmrt_tokenizer_destroy(tk);
        return st;
    }
    *out = tk;
    return LLMRT_OK;
}

llmrt_status llmrt_tokenizer_load_hf_text(const char *json, size_t len, const char *what,
                                          llmrt_tokenizer **out, llmrt_error *err) {
    if (!out || (!json && len)) return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "tokenizer: NULL argument");
    *out = NULL;
    llmrt_error local;
    if (!err) err = &local;
    what = what ? what : "tokenizer.json";
    cJSON *root;
    LLMRT_TRY(llmrt_json_parse(json ? json : "", len, what, &root, err));
    llmrt_status st = load(root, NULL, what, NULL, NULL, out, err);
    cJSON_Delete(root);
    return st;
}

/* Newer HF checkpoints keep the chat template in chat_template.jinja next to tokenizer.json
 * (transformers prefers it over tokenizer_config.json's chat_template). *out: its text, or NULL
 * when there is no such file. */
static llmrt_status read_template_file(const char *tokenizer_json_path, char **out,
                                       llmrt_error *err) {
    *out = NULL;
    const char *slash = strrchr(tokenizer_json_path, '/');
    size_t      dir   = slash ? (size_t)(slash - tokenizer_json_path) + 1 : 0;
    char        path[4096];
    if (dir + sizeof "chat_template.jinja" > sizeof path) return LLMRT_OK;
    memcpy(path, tokenizer_json_path, dir);
    memcpy(path + dir, "chat_template.jinja", sizeof "chat_template.jinja");
    FILE *f = fopen(path, "rb");
    if (!f) return LLMRT_OK;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n < 0 || (uint64_t)n > TK_MAX_TEMPLATE_BYTES || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: unreadable or larger than %llu bytes", path,
                         (unsigned long long)TK_MAX_TEMPLATE_BYTES);
    }
    char *text = malloc((size_t)n + 1);
    if (!text) {
        fclose(f);
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    size_t got = fread(text, 1, (size_t)n, f);
    fclose(f);
    if (got != (size_t)n || memchr(text, '\0', (size_t)n)) {
        free(text);
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: short read or a NUL byte", path);
    }
    text[n] = '\0';
    *out    = text;
    return LLMRT_OK;
}

llmrt_status llmrt_tokenizer_load_hf(const char *tokenizer_json_path,
                                     const char *tokenizer_config_path, llmrt_tokenizer **out,
                                     llmrt_error *err) {
    if (!out || !tokenizer_json_path)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "tokenizer: NULL argument");
    *out = NULL;
    llmrt_error local;
    if (!err) err = &local;
    cJSON *root = NULL, *cfg = NULL;
    LLMRT_TRY(llmrt_json_parse_file(tokenizer_json_path, TK_MAX_JSON_BYTES, &root, err));
    llmrt_status st = LLMRT_OK;
    char        *template_file = NULL;
    if (tokenizer_config_path)
        st = llmrt_json_parse_file(tokenizer_config_path, TK_MAX_JSON_BYTES, &cfg, err);
    if (st == LLMRT_OK) st = read_template_file(tokenizer_json_path, &template_file, err);
    if (st == LLMRT_OK)
        st = load(root, cfg, tokenizer_json_path, tokenizer_config_path, template_file, out, err);
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    return st;
}
