/* Normalizers (HF semantics): Prepend (only to non-empty text), Replace (every
 * non-overlapping occurrence of a literal or regex pattern) and NFC (Qwen2; unicode_nfc.c). A
 * Sequence is a flat op list. The other normalization forms (NFD, NFKC, NFKD) are not
 * implemented; the loader rejects them. */
#include <string.h>

#include "tok_internal.h"
#include "unicode.h"

static llmrt_status oom(tk_enc *e) {
    return llmrt_err(e->err, LLMRT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
}

static llmrt_status apply(tk_enc *e, const tk_norm_op *op, const char *s, size_t len, tk_buf *dst) {
    if (op->type == TK_NORM_NFC) return tk_nfc(s, len, dst) ? LLMRT_OK : oom(e);
    if (op->type == TK_NORM_PREPEND) {
        if (len && !tk_buf_append(dst, op->content, op->content_len)) return oom(e);
        return tk_buf_append(dst, s, len) ? LLMRT_OK : oom(e);
    }
    LLMRT_TRY(tk_pattern_find(e, &op->pat, s, len));
    for (size_t i = 0; i < e->spans.n; i++) {
        tk_span sp = e->spans.v[i];
        bool    ok = sp.is_match ? tk_buf_append(dst, op->content, op->content_len)
                                 : tk_buf_append(dst, s + sp.start, sp.end - sp.start);
        if (!ok) return oom(e);
    }
    return LLMRT_OK;
}

llmrt_status tk_normalize(tk_enc *e, const char *s, size_t len, tk_buf *out) {
    const llmrt_tokenizer *tk = e->tk;
    if (tk->n_norm == 0) return tk_buf_append(out, s, len) ? LLMRT_OK : oom(e);
    tk_buf       a = {0}, b = {0};
    llmrt_status st = LLMRT_OK;
    const char  *cur = s;
    size_t       cur_len = len;
    for (int k = 0; k < tk->n_norm && st == LLMRT_OK; k++) {
        tk_buf *dst = (k % 2 == 0) ? &a : &b;
        dst->n = 0;
        if (!tk_buf_reserve(dst, 1)) {
            st = oom(e);
            break;
        }
        st = apply(e, &tk->norm[k], cur, cur_len, dst);
        cur     = dst->p;
        cur_len = dst->n;
    }
    if (st == LLMRT_OK && !tk_buf_append(out, cur, cur_len)) st = oom(e);
    free(a.p);
    free(b.p);
    return st;
}
