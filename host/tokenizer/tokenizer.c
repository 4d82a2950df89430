/* The tokenizer object: construction helpers shared by the two loaders, final table building,
 * accessors and destruction. */
#include <stdio.h>
#include <string.h>

#include "tok_internal.h"
#include "core/log.h"
#include "template/jinja.h"
#include "unicode.h"

char *tk_strndup(const char *s, size_t len) {
    char *p = malloc(len + 1);
    if (!p) return NULL;
    if (len) memcpy(p, s, len);
    p[len] = 0;
    return p;
}

llmrt_tokenizer *tk_alloc(const char *name) {
    llmrt_tokenizer *tk = calloc(1, sizeof *tk);
    if (!tk) return NULL;
    tk->name = tk_strndup(name ? name : "tokenizer", strlen(name ? name : "tokenizer"));
    if (!tk->name) {
        free(tk);
        return NULL;
    }
    tk->unk_id = tk->bos = tk->eos = tk->eot = tk->pad = -1;
    return tk;
}

llmrt_status tk_set_vocab_size(llmrt_tokenizer *tk, int64_t n_vocab, llmrt_error *err) {
    if (n_vocab < 0 || n_vocab > TK_MAX_VOCAB)
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: %lld token ids exceed the limit of %d",
                         tk->name, (long long)n_vocab, TK_MAX_VOCAB);
    size_t n = (size_t)(n_vocab ? n_vocab : 1);
    tk->pieces    = calloc(n, sizeof *tk->pieces);
    tk->piece_len = calloc(n, sizeof *tk->piece_len);
    tk->attr      = calloc(n, sizeof *tk->attr);
    if (!tk->pieces || !tk->piece_len || !tk->attr ||
        !tk_strmap_init(&tk->vocab, (uint64_t)n) || !tk_strmap_init(&tk->added_map, 16))
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", tk->name);
    tk->n_vocab = (int32_t)n_vocab;
    return LLMRT_OK;
}

llmrt_status tk_set_piece(llmrt_tokenizer *tk, int32_t id, const char *s, size_t len,
                          tk_vocab_mode mode, const char *what, llmrt_error *err) {
    if (id < 0 || id >= tk->n_vocab)
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: %s id %d is out of range [0, %d)", tk->name,
                         what, id, tk->n_vocab);
    if (len > TK_MAX_PIECE)
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: %s id %d is %zu bytes long (limit %d)",
                         tk->name, what, id, len, TK_MAX_PIECE);
    const char *p = tk->pieces[id];
    if (p) {
        if (tk->piece_len[id] != len || memcmp(p, s, len) != 0)
            return llmrt_err(err, LLMRT_ERR_FORMAT,
                             "%s: %s \"%.80s\" has id %d, which already belongs to \"%.80s\"",
                             tk->name, what, s, id, p);
    } else {
        p = tk_arena_strdup(&tk->arena, s, len);
        if (!p) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", tk->name);
        tk->pieces[id]    = p;
        tk->piece_len[id] = (uint32_t)len;
    }
    if (mode == TK_NOT_IN_VOCAB) return LLMRT_OK;
    int32_t old = -1;
    bool    ok  = mode == TK_VOCAB_LAST_WINS ? tk_strmap_set(&tk->vocab, p, len, id)
                                             : tk_strmap_put(&tk->vocab, p, len, id, &old);
    if (!ok) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", tk->name);
    if (old >= 0 && old != id)
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: %s \"%.80s\" has two ids, %d and %d",
                         tk->name, what, s, old, id);
    return LLMRT_OK;
}

llmrt_status tk_add_merge(llmrt_tokenizer *tk, int32_t a, int32_t b, uint32_t rank,
                          llmrt_error *err) {
    size_t la = tk->piece_len[a], lb = tk->piece_len[b];
    char   stackbuf[256];
    char  *buf = la + lb <= sizeof stackbuf ? stackbuf : malloc(la + lb);
    if (!buf) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", tk->name);
    memcpy(buf, tk->pieces[a], la);
    memcpy(buf + la, tk->pieces[b], lb);
    int32_t nid = tk_strmap_get(&tk->vocab, buf, la + lb);
    llmrt_status st = LLMRT_OK;
    if (nid < 0)
        st = llmrt_err(err, LLMRT_ERR_FORMAT,
                       "%s: merge #%u \"%.60s %.60s\" makes \"%.60s%.60s\", which is not in the vocabulary",
                       tk->name, rank, tk->pieces[a], tk->pieces[b], tk->pieces[a], tk->pieces[b]);
    if (buf != stackbuf) free(buf);
    if (st != LLMRT_OK) return st;
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    if (!tk_u64map_put(&tk->merges, key, ((uint64_t)rank << 32) | (uint32_t)nid))
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", tk->name);
    return LLMRT_OK;
}

llmrt_status tk_pattern_init_literal(tk_pattern *p, const char *s, size_t len, llmrt_error *err) {
    p->re  = NULL;
    p->str = tk_strndup(s, len);
    p->len = len;
    if (!p->str) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    return LLMRT_OK;
}

void tk_pattern_free(tk_pattern *p) {
    tk_regex_free(p->re);
    free(p->str);
    p->re  = NULL;
    p->str = NULL;
}

llmrt_status tk_finalize(llmrt_tokenizer *tk, llmrt_error *err) {
    /* the model vocabulary's single-character and byte tokens, for table lookups in BPE */
    char one[4];
    for (int c = 0; c < 128; c++) {
        one[0]         = (char)c;
        tk->ascii_ids[c] = tk_strmap_get(&tk->vocab, one, 1);
    }
    tk->byte_ids_complete = true;
    for (int b = 0; b < 256; b++) {
        int n          = tk_utf8_encode(tk_byte_to_cp[b], one);
        tk->byte_ids[b] = tk_strmap_get(&tk->vocab, one, (size_t)n);
        if (tk->byte_ids[b] < 0) tk->byte_ids_complete = false;
        char hex[8];
        snprintf(hex, sizeof hex, "<0x%02X>", b);
        tk->byte_tokens[b] = tk_strmap_get(&tk->vocab, hex, 6);
    }
    /* the post-processor may only add ids that decode (vocabularies can have holes) */
    for (int k = 0; k < tk->n_prefix + tk->n_suffix; k++) {
        int32_t id = k < tk->n_prefix ? tk->prefix_ids[k] : tk->suffix_ids[k - tk->n_prefix];
        if (id < 0 || id >= tk->n_vocab || !tk->pieces[id])
            return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: the post-processor adds id %d, which is no token",
                             tk->name, id);
    }
    for (int32_t i = 0; i < tk->n_added; i++) {
        const tk_added_token *t = &tk->added[i];
        int32_t               old;
        if (!tk_strmap_put(&tk->added_map, t->content, t->len, t->id, &old))
            return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", tk->name);
        if (old >= 0)
            return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: added token \"%.80s\" is listed twice (ids %d and %d)",
                             tk->name, t->content, old, t->id);
        tk->attr[t->id] |= TK_ATTR_ADDED | (t->special ? TK_ATTR_SPECIAL : 0);
    }
    return tk_added_build(tk, err);
}

void llmrt_tokenizer_destroy(llmrt_tokenizer *tk) {
    if (!tk) return;
    tk_added_free(tk);
    for (int i = 0; i < tk->n_norm; i++) {
        tk_pattern_free(&tk->norm[i].pat);
        free(tk->norm[i].content);
    }
    for (int i = 0; i < tk->n_pre; i++) tk_pattern_free(&tk->pre[i].pat);
    for (int i = 0; i < tk->n_dec; i++) {
        tk_pattern_free(&tk->dec[i].pat);
        free(tk->dec[i].content);
    }
    free(tk->norm);
    free(tk->pre);
    free(tk->dec);
    free(tk->added);
    free(tk->pieces);
    free(tk->piece_len);
    free(tk->attr);
    free(tk->scores);
    free(tk->prefix_ids);
    free(tk->suffix_ids);
    free(tk->chat_template);
    llmrt_jinja_template_free(tk->chat_jinja);
    free(tk->unk_missing);
    free(tk->name);
    tk_strmap_free(&tk->vocab);
    tk_strmap_free(&tk->added_map);
    tk_u64map_free(&tk->merges);
    tk_arena_free(&tk->arena);
    free(tk);
}

int32_t llmrt_tokenizer_vocab_size(const llmrt_tokenizer *tk) {
    return tk ? tk->n_vocab : 0;
}

const char *llmrt_tokenizer_piece(const llmrt_tokenizer *tk, int32_t id) {
    if (!tk || id < 0 || id >= tk->n_vocab) return NULL;
    return tk->pieces[id];
}

bool llmrt_tokenizer_is_special(const llmrt_tokenizer *tk, int32_t id) {
    return tk && id >= 0 && id < tk->n_vocab && (tk->attr[id] & TK_ATTR_SPECIAL);
}

int32_t llmrt_tokenizer_bos(const llmrt_tokenizer *tk) { return tk ? tk->bos : -1; }
int32_t llmrt_tokenizer_eos(const llmrt_tokenizer *tk) { return tk ? tk->eos : -1; }
int32_t llmrt_tokenizer_eot(const llmrt_tokenizer *tk) { return tk ? tk->eot : -1; }
int32_t llmrt_tokenizer_pad(const llmrt_tokenizer *tk) { return tk ? tk->pad : -1; }

bool llmrt_tokenizer_adds_bos(const llmrt_tokenizer *tk) {
    return tk && tk->bos >= 0 && tk->n_prefix > 0 && tk->prefix_ids[0] == tk->bos;
}

bool llmrt_tokenizer_adds_eos(const llmrt_tokenizer *tk) {
    return tk && tk->eos >= 0 && tk->n_suffix > 0 && tk->suffix_ids[tk->n_suffix - 1] == tk->eos;
}

int32_t llmrt_tokenizer_token_id(const llmrt_tokenizer *tk, const char *piece) {
    if (!tk || !piece) return -1;
    size_t  len = strlen(piece);
    int32_t id  = tk_strmap_get(&tk->added_map, piece, len);
    return id >= 0 ? id : tk_strmap_get(&tk->vocab, piece, len);
}

const char *llmrt_tokenizer_chat_template(const llmrt_tokenizer *tk) {
    return tk ? tk->chat_template : NULL;
}

llmrt_status tk_parse_chat_template(llmrt_tokenizer *tk, llmrt_error *err) {
    if (!tk->chat_template) return LLMRT_OK;
    llmrt_error  perr = {0};
    char         what[256];
    snprintf(what, sizeof what, "%s: chat_template", tk->name);
    llmrt_status st = llmrt_jinja_parse(tk->chat_template, strlen(tk->chat_template), what,
                                        &tk->chat_jinja, &perr);
    if (st == LLMRT_ERR_OUT_OF_MEMORY) return llmrt_err(err, st, "%s", perr.msg);
    if (st != LLMRT_OK) {
        tk->chat_template_error = perr;
        llmrt_log(LLMRT_LOG_WARN, "%s (chats need --chat-template NAME)", perr.msg);
    }
    return LLMRT_OK;
}

llmrt_status llmrt_tokenizer_chat_jinja(const llmrt_tokenizer *tk,
                                        const struct llmrt_jinja_template **tpl,
                                        llmrt_error *err) {
    *tpl = NULL;
    if (!tk || !tk->chat_template)
        return llmrt_err(err, LLMRT_ERR_NOT_FOUND, "%s: the model has no chat template",
                         tk ? tk->name : "tokenizer");
    if (!tk->chat_jinja)
        return llmrt_err(err, tk->chat_template_error.status, "%s", tk->chat_template_error.msg);
    *tpl = tk->chat_jinja;
    return LLMRT_OK;
}
