/* Streaming detokenizer. Decoders are not token-local (Strip and Metaspace treat the first token
 * specially, ByteLevel/ByteFallback join bytes across tokens), so each step decodes a short
 * window: a few already-emitted context tokens plus the pending ones, and emits what the window
 * decodes to beyond the context's own text (the scheme of HF's DecodeStream and vLLM's
 * incremental detokenizer). The window is decoded in hold_tail mode: bytes at its end that are
 * an incomplete UTF-8 sequence (a character split across byte tokens) are left out rather than
 * turned into U+FFFD, and come out with the token that completes them, or at flush() (as U+FFFD,
 * exactly like the one-shot decode). So deltas never carry half a character or a U+FFFD that the
 * one-shot decode does not have; a U+FFFD that is really there (invalid bytes) is not delayed.
 *
 * One case cannot stream: an HF ByteFallback run that later turns out invalid makes *every* byte
 * of the run U+FFFD, including characters already emitted. Tokens encoded from text never do
 * this; for such garbage ids the stream goes on after what it emitted, always valid UTF-8. */
#include <string.h>

#include "tok_internal.h"

#define TK_CONTEXT_TOKENS 4
#define TK_MAX_CONTEXT    12
/* tokens that add no text (held bytes, empty pieces) make the window grow; past this many the
 * window is emitted and restarted anyway, to keep each step O(1) */
#define TK_MAX_PENDING    64

struct llmrt_detokenizer {
    const llmrt_tokenizer *tk;
    bool                   skip_special;
    tk_ids                 win;    /* [0, n_ctx): context, already emitted; then pending ids */
    int64_t                n_ctx;
    tk_buf                 prefix; /* decode(win[0, n_ctx)) */
    tk_buf                 cur;
    tk_buf                 delta;
};

llmrt_status llmrt_detokenizer_create(const llmrt_tokenizer *tk, bool skip_special,
                                      llmrt_detokenizer **out, llmrt_error *err) {
    if (!tk || !out) return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "detokenizer: NULL argument");
    *out = calloc(1, sizeof **out);
    if (!*out) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "detokenizer: out of memory");
    (*out)->tk           = tk;
    (*out)->skip_special = skip_special;
    return LLMRT_OK;
}

void llmrt_detokenizer_destroy(llmrt_detokenizer *d) {
    if (!d) return;
    free(d->win.v);
    free(d->prefix.p);
    free(d->cur.p);
    free(d->delta.p);
    free(d);
}

static llmrt_status decode_into(llmrt_detokenizer *d, const int32_t *ids, int64_t n, bool hold,
                                tk_buf *b, llmrt_error *err) {
    b->n = 0;
    if (!tk_buf_reserve(b, 1)) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "detokenizer: out of memory");
    b->p[0] = 0;
    return tk_decode(d->tk, ids, n, d->skip_special, hold, b, err);
}

/* Sets the delta to cur[from..). */
static llmrt_status set_delta(llmrt_detokenizer *d, size_t from, llmrt_error *err) {
    d->delta.n = 0;
    size_t n   = d->cur.n > from ? d->cur.n - from : 0;
    if (!tk_buf_append(&d->delta, d->cur.p + from, n) || !tk_buf_reserve(&d->delta, 1))
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "detokenizer: out of memory");
    d->delta.p[d->delta.n] = 0;
    return LLMRT_OK;
}

static llmrt_status emit(llmrt_detokenizer *d, llmrt_error *err) {
    /* The context decodes inside the window as it did alone, except when a later token changes
     * the past: an HF ByteFallback run that turns out invalid makes every byte of the run
     * U+FFFD. What was emitted cannot be taken back; go on after it, on a char boundary. */
    size_t from = d->prefix.n < d->cur.n ? d->prefix.n : d->cur.n;
    while (from > 0 && from < d->cur.n && ((uint8_t)d->cur.p[from] & 0xc0) == 0x80) from--;
    LLMRT_TRY(set_delta(d, from, err));
    /* Keep the last few tokens as context. A context that decodes to nothing would give the
     * next token the decoders' first-token treatment (Strip, Metaspace); one that starts inside
     * a character (a continuation <0xNN> byte) would make its ByteFallback run invalid. Extend
     * it to the left until it decodes to text that does not start with U+FFFD. */
    int64_t keep = d->win.n < TK_CONTEXT_TOKENS ? d->win.n : TK_CONTEXT_TOKENS;
    for (;;) {
        LLMRT_TRY(decode_into(d, d->win.v + d->win.n - keep, keep, true, &d->prefix, err));
        bool good = d->prefix.n > 0 && !(d->prefix.n >= 3 && !memcmp(d->prefix.p, "\xef\xbf\xbd", 3));
        if (good || keep == d->win.n || keep >= TK_MAX_CONTEXT) break;
        keep++;
    }
    memmove(d->win.v, d->win.v + d->win.n - keep, (size_t)keep * sizeof *d->win.v);
    d->win.n = keep;
    d->n_ctx = keep;
    return LLMRT_OK;
}

llmrt_status llmrt_detokenizer_push(llmrt_detokenizer *d, int32_t id, const char **delta,
                                    size_t *delta_len, llmrt_error *err) {
    if (!d || !delta) return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "detokenizer: NULL argument");
    const llmrt_tokenizer *tk = d->tk;
    *delta = "";
    if (delta_len) *delta_len = 0;
    if (id < 0 || id >= tk->n_vocab || !tk->pieces[id])
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "detokenizer: id %d is not a token of %s (vocabulary size %d)", id,
                         tk->name, tk->n_vocab);
    /* a skipped special token contributes nothing, not even as context */
    if (d->skip_special && (tk->attr[id] & TK_ATTR_SPECIAL)) return LLMRT_OK;
    if (!tk_ids_push(&d->win, id)) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "detokenizer: out of memory");
    LLMRT_TRY(decode_into(d, d->win.v, d->win.n, true, &d->cur, err));
    if (d->cur.n <= d->prefix.n && d->win.n - d->n_ctx < TK_MAX_PENDING) return LLMRT_OK;
    LLMRT_TRY(emit(d, err));
    *delta = d->delta.p;
    if (delta_len) *delta_len = d->delta.n;
    return LLMRT_OK;
}

llmrt_status llmrt_detokenizer_flush(llmrt_detokenizer *d, const char **delta, size_t *delta_len,
                                     llmrt_error *err) {
    if (!d || !delta) return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "detokenizer: NULL argument");
    *delta = "";
    if (delta_len) *delta_len = 0;
    llmrt_status st = LLMRT_OK;
    if (d->win.n > 0) { /* even a pure context may hold an incomplete tail */
        st = decode_into(d, d->win.v, d->win.n, false, &d->cur, err);
        bool emitted = false;
        if (st == LLMRT_OK && d->cur.n > d->prefix.n) {
            st      = emit(d, err);
            emitted = st == LLMRT_OK;
        }
        if (emitted) {
            *delta = d->delta.p;
            if (delta_len) *delta_len = d->delta.n;
        }
    }
    /* a new stream starts from scratch */
    d->win.n    = 0;
    d->n_ctx    = 0;
    d->prefix.n = 0;
    return st;
}
