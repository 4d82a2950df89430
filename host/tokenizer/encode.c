/* llmrt_tokenizer_encode: runs the pipeline described in tokenizer.h over one text. All scratch
 * lives in a tk_enc owned by the call, so a tokenizer can encode on many threads at once. */
#include <string.h>

#include "tok_internal.h"
#include "unicode.h"

/* Inputs above this are refused rather than risk size arithmetic near the limits. */
#define TK_MAX_TEXT ((size_t)1 << 30)

void tk_enc_init(tk_enc *e, const llmrt_tokenizer *tk, llmrt_error *err) {
    memset(e, 0, sizeof *e);
    e->tk  = tk;
    e->err = err;
    e->ms  = tk_match_scratch_create();
}

bool tk_enc_ready(const tk_enc *e) {
    return e->ms != NULL;
}

void tk_enc_free(tk_enc *e) {
    free(e->text.p);
    free(e->tmp.p);
    free(e->pa.v);
    free(e->pb.v);
    free(e->spans.v);
    free(e->out.v);
    tk_match_scratch_free(e->ms);
    tk_model_scratch_free(e);
    memset(e, 0, sizeof *e);
}

static llmrt_status oom(tk_enc *e) {
    return llmrt_err(e->err, LLMRT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
}

/* Pre-tokenizes and runs the model over text[off..off+len) of e->text. */
static llmrt_status encode_text(tk_enc *e, size_t off, size_t len, bool at_origin) {
    const llmrt_tokenizer *tk = e->tk;
    if (len == 0) return LLMRT_OK;
    LLMRT_TRY(tk_pretokenize(e, off, len, at_origin));
    for (size_t i = 0; i < e->pa.n; i++) {
        tk_piece pc = e->pa.v[i];
        /* pieces index e->text, which the model does not grow: the pointer stays valid */
        const char *s = e->text.p + pc.off;
        if (tk->model == TK_MODEL_SPM) LLMRT_TRY(tk_spm_word(e, s, pc.len));
        else LLMRT_TRY(tk_bpe_word(e, s, pc.len, (pc.flags & TK_PIECE_BYTES) != 0));
    }
    return LLMRT_OK;
}

/* One segment between raw-matched added tokens: normalize, split out normalized added tokens,
 * encode the rest. */
static llmrt_status encode_segment(tk_enc *e, const char *seg, size_t len, bool at_origin,
                                   bool parse_special) {
    const llmrt_tokenizer *tk = e->tk;
    /* normalized text goes to the end of e->text; earlier pieces are no longer needed */
    e->text.n = 0;
    LLMRT_TRY(tk_normalize(e, seg, len, &e->text));
    size_t nlen = e->text.n;
    if (tk->norm_match.n == 0) return encode_text(e, 0, nlen, at_origin);
    tk_spans spans = {0};
    tk_ids   ids   = {0};
    /* the split reads e->text.p, which encode_text may grow: split first, then encode */
    llmrt_status st = tk_added_split(e, &tk->norm_match, e->text.p, nlen, parse_special, &spans, &ids);
    for (size_t k = 0; k < spans.n && st == LLMRT_OK; k++) {
        if (ids.v[k] >= 0) st = tk_ids_push(&e->out, ids.v[k]) ? LLMRT_OK : oom(e);
        else st = encode_text(e, spans.v[k].start, spans.v[k].end - spans.v[k].start,
                              at_origin && spans.v[k].start == 0);
    }
    free(spans.v);
    free(ids.v);
    return st;
}

static llmrt_status encode(tk_enc *e, const char *text, size_t len, bool add_special,
                           bool parse_special) {
    const llmrt_tokenizer *tk = e->tk;
    if (add_special && tk->n_prefix) {
        if (!tk_ids_reserve(&e->out, tk->n_prefix)) return oom(e);
        memcpy(e->out.v + e->out.n, tk->prefix_ids, (size_t)tk->n_prefix * sizeof(int32_t));
        e->out.n += tk->n_prefix;
    }
    /* invalid UTF-8 becomes U+FFFD first: every later step then sees valid UTF-8 */
    tk_buf clean = {0};
    const char *src = text;
    size_t      n   = len;
    if (tk_utf8_valid_prefix(text, len) != len) {
        if (!tk_utf8_sanitize(text, len, &clean)) {
            free(clean.p);
            return oom(e);
        }
        src = clean.p;
        n   = clean.n;
    }
    tk_spans     spans = {0};
    tk_ids       ids   = {0};
    llmrt_status st = tk_added_split(e, &tk->raw_match, src, n, parse_special, &spans, &ids);
    for (size_t k = 0; k < spans.n && st == LLMRT_OK; k++) {
        if (ids.v[k] >= 0) {
            st = tk_ids_push(&e->out, ids.v[k]) ? LLMRT_OK : oom(e);
        } else if (spans.v[k].end > spans.v[k].start) {
            st = encode_segment(e, src + spans.v[k].start, spans.v[k].end - spans.v[k].start,
                                spans.v[k].start == 0, parse_special);
        }
    }
    free(spans.v);
    free(ids.v);
    free(clean.p);
    LLMRT_TRY(st);
    if (add_special && tk->n_suffix) {
        if (!tk_ids_reserve(&e->out, tk->n_suffix)) return oom(e);
        memcpy(e->out.v + e->out.n, tk->suffix_ids, (size_t)tk->n_suffix * sizeof(int32_t));
        e->out.n += tk->n_suffix;
    }
    return LLMRT_OK;
}

llmrt_status llmrt_tokenizer_encode(const llmrt_tokenizer *tk, const char *text, size_t len,
                                    bool add_special, bool parse_special, int32_t **ids,
                                    int64_t *n_ids, llmrt_error *err) {
    if (!tk || !ids || !n_ids || (!text && len))
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "tokenizer encode: NULL argument");
    if (len > TK_MAX_TEXT)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "tokenizer encode: text of %zu bytes exceeds the %zu-byte limit",
                         len, TK_MAX_TEXT);
    if (*n_ids < 0 || (*n_ids > 0 && !*ids))
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "tokenizer encode: bad output vector");
    tk_enc e;
    tk_enc_init(&e, tk, err);
    if (!tk_enc_ready(&e)) {
        tk_enc_free(&e);
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    }
    llmrt_status st = encode(&e, text ? text : "", len, add_special, parse_special);
    if (st == LLMRT_OK) {
        /* append to the caller's vector */
        int64_t  total = *n_ids + e.out.n;
        int32_t *v     = realloc(*ids, (size_t)(total ? total : 1) * sizeof *v);
        if (!v) {
            st = oom(&e);
        } else {
            if (e.out.n) memcpy(v + *n_ids, e.out.v, (size_t)e.out.n * sizeof *v);
            *ids   = v;
            *n_ids = total;
        }
    }
    tk_enc_free(&e);
    return st;
}
