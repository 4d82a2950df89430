/* Pre-tokenizers (HF semantics): Split (regex or literal pattern, five delimiter behaviours,
 * invert), Digits (a Split on \p{N}), ByteLevel (prefix space, GPT-2 regex, byte -> character
 * mapping) and Metaspace (space -> "▁", prepend scheme, split). A Sequence is a flat op list
 * applied in order to every piece. Pieces are offset ranges into enc->text; ops that rewrite
 * text append the new text there. */
#include <string.h>

#include "tok_internal.h"
#include "unicode.h"

bool tk_pieces_push(tk_pieces *p, size_t off, size_t len, uint8_t flags) {
    if (p->n == p->cap) {
        size_t    cap = p->cap ? p->cap * 2 : 64;
        tk_piece *v   = realloc(p->v, cap * sizeof *v);
        if (!v) return false;
        p->v   = v;
        p->cap = cap;
    }
    p->v[p->n++] = (tk_piece){off, len, flags};
    return true;
}

bool tk_spans_push(tk_spans *s, size_t start, size_t end, bool is_match) {
    if (s->n == s->cap) {
        size_t   cap = s->cap ? s->cap * 2 : 64;
        tk_span *v   = realloc(s->v, cap * sizeof *v);
        if (!v) return false;
        s->v   = v;
        s->cap = cap;
    }
    s->v[s->n++] = (tk_span){start, end, is_match};
    return true;
}

static llmrt_status oom(tk_enc *e) {
    return llmrt_err(e->err, LLMRT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
}

llmrt_status tk_pattern_find(tk_enc *e, const tk_pattern *p, const char *s, size_t len) {
    e->spans.n = 0;
    if (len == 0) return tk_spans_push(&e->spans, 0, 0, false) ? LLMRT_OK : oom(e);
    if (!p->re && p->len == 0) return tk_spans_push(&e->spans, 0, len, false) ? LLMRT_OK : oom(e);
    size_t prev = 0, from = 0;
    while (from <= len) {
        bool   found = false;
        size_t ms = 0, me = 0;
        if (p->re) {
            LLMRT_TRY(tk_regex_find(p->re, e->ms, s, len, from, &found, &ms, &me, e->err));
        } else if (len - from >= p->len) {
            const char *hit = memmem(s + from, len - from, p->str, p->len);
            if (hit) {
                found = true;
                ms    = (size_t)(hit - s);
                me    = ms + p->len;
            }
        }
        if (!found) break;
        if (prev != ms && !tk_spans_push(&e->spans, prev, ms, false)) return oom(e);
        if (!tk_spans_push(&e->spans, ms, me, true)) return oom(e);
        prev = me;
        if (me > ms) {
            from = me;
        } else {
            /* an empty match: step over one character so the search advances */
            if (me >= len) break;
            from = me + (size_t)tk_utf8_len((uint8_t)s[me]);
        }
    }
    if (prev != len && !tk_spans_push(&e->spans, prev, len, false)) return oom(e);
    return LLMRT_OK;
}

/* Rewrites e->spans (the matches of one piece) into the pieces that `behavior` keeps, exactly as
 * NormalizedString::split in HF tokenizers does; removed spans get is_match = true. */
static void apply_behavior(tk_spans *sp, tk_split_behavior behavior) {
    size_t n = sp->n, k = 0;
    bool   prev_match = false;
    switch (behavior) {
    case TK_SPLIT_ISOLATED:
        for (size_t i = 0; i < n; i++) sp->v[i].is_match = false;
        return;
    case TK_SPLIT_REMOVED:
        return;
    case TK_SPLIT_MERGED_WITH_PREVIOUS:
        for (size_t i = 0; i < n; i++) {
            tk_span s = sp->v[i];
            if (s.is_match && !prev_match && k > 0) sp->v[k - 1].end = s.end;
            else sp->v[k++] = (tk_span){s.start, s.end, false};
            prev_match = s.is_match;
        }
        break;
    case TK_SPLIT_MERGED_WITH_NEXT: {
        /* walk backwards, collecting at the end of the array, then move to the front */
        size_t w = n;
        for (size_t i = n; i-- > 0;) {
            tk_span s = sp->v[i];
            if (s.is_match && !prev_match && w < n) sp->v[w].start = s.start;
            else sp->v[--w] = (tk_span){s.start, s.end, false};
            prev_match = s.is_match;
        }
        k = n - w;
        memmove(sp->v, sp->v + w, k * sizeof *sp->v);
        break;
    }
    case TK_SPLIT_CONTIGUOUS:
        for (size_t i = 0; i < n; i++) {
            tk_span s = sp->v[i];
            if (s.is_match == prev_match && k > 0) sp->v[k - 1].end = s.end;
            else sp->v[k++] = (tk_span){s.start, s.end, false};
            prev_match = s.is_match;
        }
        break;
    }
    sp->n = k;
}

static llmrt_status split_piece(tk_enc *e, tk_piece pc, const tk_pattern *pat,
                                tk_split_behavior behavior, bool invert, tk_pieces *out) {
    LLMRT_TRY(tk_pattern_find(e, pat, e->text.p + pc.off, pc.len));
    if (invert)
        for (size_t i = 0; i < e->spans.n; i++) e->spans.v[i].is_match = !e->spans.v[i].is_match;
    apply_behavior(&e->spans, behavior);
    for (size_t i = 0; i < e->spans.n; i++) {
        tk_span s = e->spans.v[i];
        if (s.is_match || s.end == s.start) continue;
        uint8_t flags = (uint8_t)(pc.flags & ~TK_PIECE_ORIGIN);
        if (s.start == 0) flags |= pc.flags & TK_PIECE_ORIGIN;
        if (!tk_pieces_push(out, pc.off + s.start, s.end - s.start, flags)) return oom(e);
    }
    return LLMRT_OK;
}

/* Byte-level pieces stay raw bytes as long as possible (the model maps them by table); a later
 * op that needs their text gets the mapped characters. */
static llmrt_status materialize(tk_enc *e, tk_piece *pc) {
    if (!(pc->flags & TK_PIECE_BYTES)) return LLMRT_OK;
    size_t off = e->text.n;
    /* the source may move when text grows: copy through tmp */
    e->tmp.n = 0;
    if (!tk_buf_append(&e->tmp, e->text.p + pc->off, pc->len)) return oom(e);
    if (!tk_bytelevel_encode(e->tmp.p, e->tmp.n, &e->text)) return oom(e);
    pc->off = off;
    pc->len = e->text.n - off;
    pc->flags &= (uint8_t)~TK_PIECE_BYTES;
    return LLMRT_OK;
}

static llmrt_status bytelevel(tk_enc *e, const tk_pretok_op *op, tk_piece pc, tk_pieces *out) {
    if (op->add_prefix_space && (pc.len == 0 || e->text.p[pc.off] != ' ')) {
        size_t off = e->text.n;
        if (!tk_buf_reserve(&e->text, pc.len + 2)) return oom(e);
        e->text.p[e->text.n++] = ' ';
        memmove(e->text.p + e->text.n, e->text.p + pc.off, pc.len);
        e->text.n += pc.len;
        e->text.p[e->text.n] = 0;
        pc.off = off;
        pc.len++;
    }
    size_t first = out->n;
    if (op->use_regex) {
        LLMRT_TRY(split_piece(e, pc, &op->pat, TK_SPLIT_ISOLATED, false, out));
    } else if (pc.len && !tk_pieces_push(out, pc.off, pc.len, pc.flags)) {
        return oom(e);
    }
    for (size_t i = first; i < out->n; i++) out->v[i].flags |= TK_PIECE_BYTES;
    return LLMRT_OK;
}

static llmrt_status metaspace(tk_enc *e, const tk_pretok_op *op, tk_piece pc, tk_pieces *out) {
    const char *rep = op->replacement;
    size_t      rl  = op->rep_len;
    /* worst case every byte is a space */
    if (pc.len > (SIZE_MAX - 16) / (rl + 1)) return oom(e);
    if (!tk_buf_reserve(&e->text, pc.len * rl + rl + 1)) return oom(e);
    const char *src = e->text.p + pc.off;
    /* HF replaces spaces first, then prepends unless the text now starts with the replacement */
    bool starts_rep = (pc.len >= rl && memcmp(src, rep, rl) == 0) || (pc.len > 0 && src[0] == ' ');
    size_t off = e->text.n;
    char  *dst = e->text.p + e->text.n;
    bool   prepend = false;
    if (!starts_rep) {
        if (op->prepend_scheme == TK_PREPEND_ALWAYS) prepend = true;
        if (op->prepend_scheme == TK_PREPEND_FIRST && (pc.flags & TK_PIECE_ORIGIN)) prepend = true;
    }
    if (prepend) {
        memcpy(dst, rep, rl);
        dst += rl;
    }
    for (size_t i = 0; i < pc.len; i++) {
        if (src[i] == ' ') {
            memcpy(dst, rep, rl);
            dst += rl;
        } else {
            *dst++ = src[i];
        }
    }
    e->text.n = (size_t)(dst - e->text.p);
    e->text.p[e->text.n] = 0;
    tk_piece np = {off, e->text.n - off, pc.flags};
    if (!op->split) return np.len ? (tk_pieces_push(out, np.off, np.len, np.flags) ? LLMRT_OK : oom(e)) : LLMRT_OK;
    return split_piece(e, np, &op->pat, TK_SPLIT_MERGED_WITH_NEXT, false, out);
}

llmrt_status tk_pretokenize(tk_enc *e, size_t off, size_t len, bool at_origin) {
    const llmrt_tokenizer *tk = e->tk;
    e->pa.n = 0;
    if (len == 0) return LLMRT_OK;
    if (!tk_pieces_push(&e->pa, off, len, at_origin ? TK_PIECE_ORIGIN : 0)) return oom(e);
    for (int k = 0; k < tk->n_pre; k++) {
        const tk_pretok_op *op = &tk->pre[k];
        e->pb.n = 0;
        for (size_t i = 0; i < e->pa.n; i++) {
            tk_piece pc = e->pa.v[i];
            LLMRT_TRY(materialize(e, &pc));
            switch (op->type) {
            case TK_PRE_SPLIT:
                LLMRT_TRY(split_piece(e, pc, &op->pat, op->behavior, op->invert, &e->pb));
                break;
            case TK_PRE_BYTELEVEL: LLMRT_TRY(bytelevel(e, op, pc, &e->pb)); break;
            case TK_PRE_METASPACE: LLMRT_TRY(metaspace(e, op, pc, &e->pb)); break;
            }
        }
        tk_pieces t = e->pa;
        e->pa       = e->pb;
        e->pb       = t;
    }
    return LLMRT_OK;
}
