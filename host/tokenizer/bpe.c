/* The BPE model of HF tokenizers (models/bpe/model.rs + word.rs), reproduced step for step so
 * that ids match: characters -> vocabulary ids (byte_fallback to <0xNN>, else unk, fused when
 * fuse_unk), then merges applied lowest rank first (ties: leftmost) through a binary heap with
 * lazy invalidation: O(n log n) per pre-token. ignore_merges returns a pre-token found whole in
 * the vocabulary as one id. Byte-level pre-tokens arrive as raw bytes and are mapped to their
 * byte-level characters' ids by table. */
#include <string.h>

#include "tok_internal.h"
#include "unicode.h"

struct tk_bpe_sym {
    int32_t id;
    int32_t prev, next; /* -1: none */
    uint32_t len;       /* bytes; 0 = merged away */
};

struct tk_bpe_merge {
    uint32_t rank;
    uint32_t pos;
    int32_t  new_id;
};

static llmrt_status oom(tk_enc *e) {
    return llmrt_err(e->err, LLMRT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
}

void tk_model_scratch_free(tk_enc *e) {
    free(e->syms);
    free(e->heap);
    e->syms = NULL;
    e->heap = NULL;
    e->syms_cap = e->heap_cap = 0;
}

static bool reserve_syms(tk_enc *e, size_t n) {
    if (n <= e->syms_cap) return true;
    size_t cap = e->syms_cap ? e->syms_cap : 64;
    while (cap < n) cap *= 2;
    if (cap > SIZE_MAX / sizeof(tk_bpe_sym)) return false;
    tk_bpe_sym *s = realloc(e->syms, cap * sizeof *s);
    if (!s) return false;
    e->syms     = s;
    e->syms_cap = cap;
    return true;
}

/* ---- min-heap on (rank, pos) ------------------------------------------------------------- */

static inline bool merge_less(const tk_bpe_merge *a, const tk_bpe_merge *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static bool heap_push(tk_enc *e, size_t *n, tk_bpe_merge m) {
    if (*n == e->heap_cap) {
        size_t cap = e->heap_cap ? e->heap_cap * 2 : 64;
        if (cap > SIZE_MAX / sizeof(tk_bpe_merge)) return false;
        tk_bpe_merge *h = realloc(e->heap, cap * sizeof *h);
        if (!h) return false;
        e->heap     = h;
        e->heap_cap = cap;
    }
    tk_bpe_merge *h = e->heap;
    size_t        i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!merge_less(&m, &h[p])) break;
        h[i] = h[p];
        i    = p;
    }
    h[i] = m;
    return true;
}

static tk_bpe_merge heap_pop(tk_enc *e, size_t *n) {
    tk_bpe_merge *h   = e->heap;
    tk_bpe_merge  top = h[0];
    tk_bpe_merge  last = h[--(*n)];
    size_t        i = 0, cnt = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= cnt) break;
        if (c + 1 < cnt && merge_less(&h[c + 1], &h[c])) c++;
        if (!merge_less(&h[c], &last)) break;
        h[i] = h[c];
        i    = c;
    }
    if (cnt) h[i] = last;
    return top;
}

static inline bool lookup_merge(const llmrt_tokenizer *tk, int32_t a, int32_t b, uint32_t *rank,
                                int32_t *new_id) {
    uint64_t v;
    if (!tk_u64map_get(&tk->merges, ((uint64_t)(uint32_t)a << 32) | (uint32_t)b, &v)) return false;
    *rank   = (uint32_t)(v >> 32);
    *new_id = (int32_t)(uint32_t)v;
    return true;
}

/* Word::merge_all */
static llmrt_status merge_all(tk_enc *e, size_t nsym) {
    const llmrt_tokenizer *tk   = e->tk;
    tk_bpe_sym            *sym  = e->syms;
    size_t                 nh   = 0;
    uint32_t               rank;
    int32_t                nid;
    for (size_t i = 0; i + 1 < nsym; i++) {
        if (lookup_merge(tk, sym[i].id, sym[i + 1].id, &rank, &nid) &&
            !heap_push(e, &nh, (tk_bpe_merge){rank, (uint32_t)i, nid}))
            return oom(e);
    }
    while (nh) {
        tk_bpe_merge top = heap_pop(e, &nh);
        sym              = e->syms;
        tk_bpe_sym *cur  = &sym[top.pos];
        if (cur->len == 0 || cur->next == -1) continue;
        int32_t    next_pos = cur->next;
        tk_bpe_sym right    = sym[next_pos];
        /* an expired entry: the pair at pos no longer yields this merge */
        if (!lookup_merge(tk, cur->id, right.id, &rank, &nid) || nid != top.new_id) continue;
        cur->id = top.new_id;
        cur->len += right.len;
        cur->next          = right.next;
        sym[next_pos].len  = 0;
        if (right.next > -1 && (size_t)right.next < nsym) sym[right.next].prev = (int32_t)top.pos;
        if (cur->prev >= 0 &&
            lookup_merge(tk, sym[cur->prev].id, cur->id, &rank, &nid) &&
            !heap_push(e, &nh, (tk_bpe_merge){rank, (uint32_t)cur->prev, nid}))
            return oom(e);
        sym = e->syms;
        cur = &sym[top.pos];
        if (cur->next >= 0 && (size_t)cur->next < nsym &&
            lookup_merge(tk, cur->id, sym[cur->next].id, &rank, &nid) &&
            !heap_push(e, &nh, (tk_bpe_merge){rank, top.pos, nid}))
            return oom(e);
    }
    if (!tk_ids_reserve(&e->out, (int64_t)nsym)) return oom(e);
    for (size_t i = 0; i < nsym; i++)
        if (e->syms[i].len) e->out.v[e->out.n++] = e->syms[i].id;
    return LLMRT_OK;
}

static inline void add_sym(tk_bpe_sym *sym, size_t *n, int32_t id, uint32_t len) {
    size_t k = (*n)++;
    sym[k]   = (tk_bpe_sym){id, (int32_t)k - 1, -1, len};
    if (k) sym[k - 1].next = (int32_t)k;
}

static llmrt_status unk_id(tk_enc *e, int32_t *id) {
    const llmrt_tokenizer *tk = e->tk;
    if (tk->unk_missing)
        return llmrt_err(e->err, LLMRT_ERR_FORMAT,
                         "%s: model.unk_token \"%.100s\" is not in the vocabulary", tk->name,
                         tk->unk_missing);
    *id = tk->unk_id;
    return LLMRT_OK;
}

/* BPE::merge_word on text characters (not byte-level raw bytes). */
static llmrt_status word_from_chars(tk_enc *e, const char *s, size_t len, size_t *nsym) {
    const llmrt_tokenizer *tk = e->tk;
    if (!reserve_syms(e, len + 1)) return oom(e);
    tk_bpe_sym *sym = e->syms;
    size_t      n   = 0;
    int32_t     pending_unk = -1;
    uint32_t    pending_len = 0;
    for (size_t i = 0; i < len;) {
        size_t  cl = (size_t)tk_utf8_len((uint8_t)s[i]);
        if (cl > len - i) cl = len - i;
        int32_t id = (cl == 1 && (uint8_t)s[i] < 0x80) ? tk->ascii_ids[(uint8_t)s[i]]
                                                      : tk_strmap_get(&tk->vocab, s + i, cl);
        if (id >= 0) {
            if (pending_unk >= 0) {
                add_sym(sym, &n, pending_unk, pending_len);
                pending_unk = -1;
            }
            add_sym(sym, &n, id, (uint32_t)cl);
            i += cl;
            continue;
        }
        if (tk->byte_fallback) {
            bool all = true;
            for (size_t k = 0; k < cl; k++) all = all && tk->byte_tokens[(uint8_t)s[i + k]] >= 0;
            if (all) {
                /* HF adds the bytes without first flushing a pending unk: keep that order */
                for (size_t k = 0; k < cl; k++) add_sym(sym, &n, tk->byte_tokens[(uint8_t)s[i + k]], 1);
                i += cl;
                continue;
            }
        }
        if (tk->unk_id >= 0 || tk->unk_missing) {
            int32_t u = -1; /* set by unk_id on success */
            LLMRT_TRY(unk_id(e, &u));
            if (pending_unk >= 0 && tk->fuse_unk) {
                pending_len += (uint32_t)cl;
            } else {
                if (pending_unk >= 0) add_sym(sym, &n, pending_unk, pending_len);
                pending_unk = u;
                pending_len = (uint32_t)cl;
            }
        }
        /* no unk token: HF drops the character */
        i += cl;
    }
    if (pending_unk >= 0) add_sym(sym, &n, pending_unk, pending_len);
    *nsym = n;
    return LLMRT_OK;
}

llmrt_status tk_bpe_word(tk_enc *e, const char *s, size_t len, bool bytes) {
    const llmrt_tokenizer *tk = e->tk;
    if (len == 0) return LLMRT_OK;
    if (bytes && (tk->ignore_merges || !tk->byte_ids_complete)) {
        /* the vocabulary holds byte-level characters: look up / split the mapped text */
        e->tmp.n = 0;
        if (!tk_bytelevel_encode(s, len, &e->tmp)) return oom(e);
        if (tk->byte_ids_complete) {
            int32_t id = tk_strmap_get(&tk->vocab, e->tmp.p, e->tmp.n);
            if (id >= 0) return tk_ids_push(&e->out, id) ? LLMRT_OK : oom(e);
        } else {
            /* copy: word_from_chars may not alias e->tmp with later lookups */
            char *copy = tk_strndup(e->tmp.p, e->tmp.n);
            if (!copy) return oom(e);
            llmrt_status st = tk_bpe_word(e, copy, e->tmp.n, false);
            free(copy);
            return st;
        }
    } else if (!bytes && tk->ignore_merges) {
        int32_t id = tk_strmap_get(&tk->vocab, s, len);
        if (id >= 0) return tk_ids_push(&e->out, id) ? LLMRT_OK : oom(e);
    }
    size_t nsym = 0;
    if (bytes) {
        if (!reserve_syms(e, len)) return oom(e);
        for (size_t i = 0; i < len; i++) add_sym(e->syms, &nsym, tk->byte_ids[(uint8_t)s[i]], 1);
    } else {
        LLMRT_TRY(word_from_chars(e, s, len, &nsym));
    }
    if (nsym == 1) return tk_ids_push(&e->out, e->syms[0].id) ? LLMRT_OK : oom(e);
    return merge_all(e, nsym);
}
