/* Decoders (HF decode_chain semantics, checked against tokenizers 0.23): ids -> token strings
 * (skip_special drops special tokens) -> each op of the chain rewrites the list of strings:
 * ByteLevel (characters back to bytes, then lossy UTF-8 of the whole), ByteFallback (runs of
 * <0xNN> to bytes; an invalid run gives one U+FFFD per byte), Fuse, Strip, Replace, Metaspace.
 * Without a decoder the strings are joined with spaces. The result is always valid UTF-8. */
#include <string.h>

#include "tok_internal.h"
#include "unicode.h"

typedef struct toklist {
    tk_buf  buf;
    size_t *off, *len;
    size_t  n, cap;
} toklist;

static bool tl_begin(toklist *t) {
    /* a buffer always exists, so TOK() of an empty token is a valid pointer */
    if (!tk_buf_reserve(&t->buf, 1)) return false;
    if (t->n == t->cap) {
        size_t  cap = t->cap ? t->cap * 2 : 32;
        size_t *o   = realloc(t->off, cap * sizeof *o);
        if (!o) return false;
        t->off     = o;
        size_t *l  = realloc(t->len, cap * sizeof *l);
        if (!l) return false;
        t->len = l;
        t->cap = cap;
    }
    t->off[t->n] = t->buf.n;
    t->len[t->n] = 0;
    t->n++;
    return true;
}

/* Appends bytes to the last token. */
static bool tl_add(toklist *t, const void *s, size_t len) {
    if (!tk_buf_append(&t->buf, s, len)) return false;
    t->len[t->n - 1] += len;
    return true;
}

static bool tl_push(toklist *t, const void *s, size_t len) {
    return tl_begin(t) && tl_add(t, s, len);
}

static void tl_free(toklist *t) {
    free(t->buf.p);
    free(t->off);
    free(t->len);
}

#define TOK(t, i) ((t)->buf.p + (t)->off[i])

static const char FFFD[] = "\xef\xbf\xbd";

static bool byte_level(const toklist *in, toklist *out, bool hold_tail) {
    tk_buf raw = {0};
    bool   ok  = true;
    for (size_t i = 0; i < in->n && ok; i++) {
        const char *s = TOK(in, i);
        size_t      n = in->len[i], mark = raw.n;
        bool        mapped = true;
        for (size_t k = 0; k < n && ok;) {
            uint32_t cp;
            int      cl = tk_utf8_decode((const uint8_t *)s + k, n - k, &cp);
            int      b  = cl ? tk_cp_to_byte(cp) : -1;
            if (b < 0) {
                mapped = false;
                break;
            }
            ok = tk_buf_push(&raw, (char)b);
            k += (size_t)cl;
        }
        if (!mapped) {
            /* a character with no byte: the token's own UTF-8 */
            raw.n = mark;
            ok    = tk_buf_append(&raw, s, n);
        }
    }
    ok = ok && tl_begin(out);
    if (ok) {
        tk_buf clean = {0};
        if (hold_tail) raw.n -= tk_utf8_incomplete_tail(raw.p, raw.n);
        ok = tk_utf8_sanitize(raw.p ? raw.p : "", raw.n, &clean) && tl_add(out, clean.p ? clean.p : "", clean.n);
        free(clean.p);
    }
    free(raw.p);
    return ok;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* "<0xNN>" -> byte; Rust's u8::from_str_radix also takes "+N" */
static int byte_token(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    if (s[3] == '+') return hexval(s[4]);
    int hi = hexval(s[3]), lo = hexval(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

static bool flush_bytes(tk_buf *run, toklist *out, bool at_end, bool hold_tail) {
    if (!run->n) return true;
    bool ok;
    /* streaming: a run that ends the text in the middle of a character may still complete */
    size_t tail = at_end && hold_tail ? tk_utf8_incomplete_tail(run->p, run->n) : 0;
    if (tail && tk_utf8_valid_prefix(run->p, run->n - tail) == run->n - tail) {
        ok = tl_push(out, run->p, run->n - tail);
    } else if (tk_utf8_valid_prefix(run->p, run->n) == run->n) {
        ok = tl_push(out, run->p, run->n);
    } else {
        ok = true;
        for (size_t k = 0; k < run->n && ok; k++) ok = tl_push(out, FFFD, 3);
    }
    run->n = 0;
    return ok;
}

static bool byte_fallback(const toklist *in, toklist *out, bool hold_tail) {
    tk_buf run = {0};
    bool   ok  = true;
    for (size_t i = 0; i < in->n && ok; i++) {
        int b = byte_token(TOK(in, i), in->len[i]);
        if (b >= 0) {
            ok = tk_buf_push(&run, (char)b);
        } else {
            ok = flush_bytes(&run, out, false, hold_tail) && tl_push(out, TOK(in, i), in->len[i]);
        }
    }
    ok = ok && flush_bytes(&run, out, true, hold_tail);
    free(run.p);
    return ok;
}

static bool fuse(const toklist *in, toklist *out) {
    if (!tl_begin(out)) return false;
    for (size_t i = 0; i < in->n; i++)
        if (!tl_add(out, TOK(in, i), in->len[i])) return false;
    return true;
}

static bool strip(const tk_dec_op *op, const toklist *in, toklist *out) {
    const char *c  = op->chr;
    size_t      cl = op->chr_len;
    for (size_t i = 0; i < in->n; i++) {
        const char *s = TOK(in, i);
        size_t      a = 0, b = in->len[i];
        for (int64_t k = 0; k < op->start && b - a >= cl && memcmp(s + a, c, cl) == 0; k++) a += cl;
        for (int64_t k = 0; k < op->stop && b - a >= cl && memcmp(s + b - cl, c, cl) == 0; k++) b -= cl;
        if (!tl_push(out, s + a, b - a)) return false;
    }
    return true;
}

/* Replace with a literal pattern: no regex machinery (this runs on every streaming step). */
static bool replace_literal(const tk_dec_op *op, const toklist *in, toklist *out) {
    const char *pat = op->pat.str;
    size_t      pl  = op->pat.len;
    for (size_t i = 0; i < in->n; i++) {
        const char *s = TOK(in, i);
        size_t      n = in->len[i], at = 0;
        if (!tl_begin(out)) return false;
        while (pl && at < n) {
            const char *hit = memmem(s + at, n - at, pat, pl);
            if (!hit) break;
            if (!tl_add(out, s + at, (size_t)(hit - s) - at) || !tl_add(out, op->content, op->content_len))
                return false;
            at = (size_t)(hit - s) + pl;
        }
        if (!tl_add(out, s + at, n - at)) return false;
    }
    return true;
}

static llmrt_status replace(const llmrt_tokenizer *tk, const tk_dec_op *op, const toklist *in,
                            toklist *out, llmrt_error *err) {
    if (!op->pat.re)
        return replace_literal(op, in, out) ? LLMRT_OK
                                            : llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "tokenizer decode: out of memory");
    tk_enc       e;
    llmrt_status st = LLMRT_OK;
    tk_enc_init(&e, tk, err);
    if (!tk_enc_ready(&e)) st = LLMRT_ERR_OUT_OF_MEMORY;
    tk_buf clean = {0};
    for (size_t i = 0; i < in->n && st == LLMRT_OK; i++) {
        const char *s = TOK(in, i);
        size_t      n = in->len[i];
        if (op->pat.re && tk_utf8_valid_prefix(s, n) != n) {
            /* the regex engine needs valid UTF-8 */
            clean.n = 0;
            if (!tk_utf8_sanitize(s, n, &clean)) {
                st = LLMRT_ERR_OUT_OF_MEMORY;
                break;
            }
            s = clean.p;
            n = clean.n;
        }
        st = tk_pattern_find(&e, &op->pat, s, n);
        if (st != LLMRT_OK) break;
        if (!tl_begin(out)) st = LLMRT_ERR_OUT_OF_MEMORY;
        for (size_t k = 0; k < e.spans.n && st == LLMRT_OK; k++) {
            tk_span sp = e.spans.v[k];
            bool    ok = sp.is_match ? tl_add(out, op->content, op->content_len)
                                     : tl_add(out, s + sp.start, sp.end - sp.start);
            if (!ok) st = LLMRT_ERR_OUT_OF_MEMORY;
        }
    }
    free(clean.p);
    tk_enc_free(&e);
    if (st == LLMRT_ERR_OUT_OF_MEMORY) return llmrt_err(err, st, "tokenizer decode: out of memory");
    return st;
}

static bool metaspace(const tk_dec_op *op, const toklist *in, toklist *out) {
    for (size_t i = 0; i < in->n; i++) {
        const char *s = TOK(in, i);
        size_t      n = in->len[i];
        if (!tl_begin(out)) return false;
        /* HF drops every replacement char of the first token (unless the scheme is never) */
        bool drop = i == 0 && op->prepend_scheme != TK_PREPEND_NEVER;
        for (size_t k = 0; k < n;) {
            if (n - k >= op->chr_len && memcmp(s + k, op->chr, op->chr_len) == 0) {
                if (!drop && !tl_add(out, " ", 1)) return false;
                k += op->chr_len;
            } else {
                size_t cl = (size_t)tk_utf8_len((uint8_t)s[k]);
                if (cl > n - k) cl = n - k;
                if (!tl_add(out, s + k, cl)) return false;
                k += cl;
            }
        }
    }
    return true;
}

llmrt_status tk_decode(const llmrt_tokenizer *tk, const int32_t *ids, int64_t n,
                       bool skip_special, bool hold_tail, tk_buf *out, llmrt_error *err) {
    if (n < 0 || (n > 0 && !ids)) return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "tokenizer decode: bad id array");
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= tk->n_vocab || !tk->pieces[ids[i]])
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                             "tokenizer decode: id %d at index %lld is not a token of %s (vocabulary size %d)",
                             ids[i], (long long)i, tk->name, tk->n_vocab);
    }
    toklist      a = {0}, b = {0};
    llmrt_status st = LLMRT_OK;
    bool         ok = true;
    for (int64_t i = 0; i < n && ok; i++) {
        int32_t id = ids[i];
        if (skip_special && (tk->attr[id] & TK_ATTR_SPECIAL)) continue;
        ok = tl_push(&a, tk->pieces[id], tk->piece_len[id]);
    }
    if (ok && !tk->has_decoder) {
        ok = tl_begin(&b);
        for (size_t i = 0; i < a.n && ok; i++)
            ok = (i == 0 || tl_add(&b, " ", 1)) && tl_add(&b, TOK(&a, i), a.len[i]);
        toklist t = a;
        a         = b;
        b         = t;
    }
    for (int k = 0; k < tk->n_dec && ok && st == LLMRT_OK; k++) {
        const tk_dec_op *op = &tk->dec[k];
        b.n                 = 0;
        b.buf.n             = 0;
        switch (op->type) {
        case TK_DEC_BYTELEVEL: ok = byte_level(&a, &b, hold_tail); break;
        case TK_DEC_BYTEFALLBACK: ok = byte_fallback(&a, &b, hold_tail); break;
        case TK_DEC_FUSE: ok = fuse(&a, &b); break;
        case TK_DEC_STRIP: ok = strip(op, &a, &b); break;
        case TK_DEC_REPLACE: st = replace(tk, op, &a, &b, err); break;
        case TK_DEC_METASPACE: ok = metaspace(op, &a, &b); break;
        }
        toklist t = a;
        a         = b;
        b         = t;
    }
    if (ok && st == LLMRT_OK) {
        /* GGUF pieces may hold any bytes: the result is made valid UTF-8 */
        for (size_t i = 0; i < a.n && ok; i++) ok = tk_utf8_sanitize(TOK(&a, i), a.len[i], out);
        if (ok && !tk_buf_reserve(out, 1)) ok = false;
        if (ok) out->p[out->n] = 0;
    }
    tl_free(&a);
    tl_free(&b);
    if (!ok) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "tokenizer decode: out of memory");
    return st;
}

llmrt_status llmrt_tokenizer_decode(const llmrt_tokenizer *tk, const int32_t *ids, int64_t n,
                                    bool skip_special, char **text, size_t *len, llmrt_error *err) {
    if (!tk || !text) return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "tokenizer decode: NULL argument");
    *text = NULL;
    if (len) *len = 0;
    tk_buf out = {0};
    llmrt_status st = tk_decode(tk, ids, n, skip_special, false, &out, err);
    if (st == LLMRT_OK && !out.p && !tk_buf_reserve(&out, 1))
        st = llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "tokenizer decode: out of memory");
    if (st != LLMRT_OK) {
        free(out.p);
        return st;
    }
    out.p[out.n] = 0;
    *text = out.p;
    if (len) *len = out.n;
    return LLMRT_OK;
}
