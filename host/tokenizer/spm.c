/* SentencePiece-style BPE by scores, as llama.cpp's llm_tokenizer_spm does it for GGUF
 * tokenizer.ggml.model "llama": start from UTF-8 characters, repeatedly merge the adjacent pair
 * whose concatenation is a vocabulary entry with the highest score (ties: leftmost), then emit
 * each symbol's id, or its bytes as <0xNN> tokens when the symbol is not in the vocabulary. */
#include <string.h>

#include "tok_internal.h"
#include "unicode.h"

typedef struct spm_sym {
    uint32_t off, n; /* bytes of the symbol in the word; n == 0: merged away */
    int32_t  prev, next;
} spm_sym;

typedef struct spm_bigram {
    float    score;
    int32_t  left, right;
    uint32_t size;
} spm_bigram;

/* llama.cpp's comparator: higher score first, then smaller left index */
static inline bool bigram_before(const spm_bigram *a, const spm_bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

typedef struct spm_state {
    tk_enc     *e;
    const char *s;
    spm_sym    *sym;
    spm_bigram *heap;
    size_t      nh, cap;
} spm_state;

static bool push(spm_state *st, spm_bigram b) {
    if (st->nh == st->cap) {
        size_t      cap = st->cap ? st->cap * 2 : 64;
        spm_bigram *h   = realloc(st->heap, cap * sizeof *h);
        if (!h) return false;
        st->heap = h;
        st->cap  = cap;
    }
    size_t i = st->nh++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bigram_before(&b, &st->heap[p])) break;
        st->heap[i] = st->heap[p];
        i           = p;
    }
    st->heap[i] = b;
    return true;
}

static spm_bigram pop(spm_state *st) {
    spm_bigram *h = st->heap, top = h[0], last = h[--st->nh];
    size_t      i = 0, n = st->nh;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && bigram_before(&h[c + 1], &h[c])) c++;
        if (!bigram_before(&h[c], &last)) break;
        h[i] = h[c];
        i    = c;
    }
    if (n) h[i] = last;
    return top;
}

static bool try_add_bigram(spm_state *st, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return true;
    const llmrt_tokenizer *tk = st->e->tk;
    uint32_t               size = st->sym[left].n + st->sym[right].n;
    int32_t id = tk_strmap_get(&tk->vocab, st->s + st->sym[left].off, size);
    if (id < 0 || id >= tk->n_vocab) return true;
    return push(st, (spm_bigram){tk->scores[id], left, right, size});
}

static llmrt_status emit(tk_enc *e, const char *s, uint32_t n) {
    const llmrt_tokenizer *tk = e->tk;
    int32_t                id = tk_strmap_get(&tk->vocab, s, n);
    if (id >= 0) return tk_ids_push(&e->out, id) ? LLMRT_OK : LLMRT_ERR_OUT_OF_MEMORY;
    for (uint32_t k = 0; k < n; k++) {
        int32_t b = tk->byte_tokens[(uint8_t)s[k]];
        if (b < 0) b = tk->unk_id;
        if (b < 0)
            return llmrt_err(e->err, LLMRT_ERR_UNSUPPORTED,
                             "%s: no token for byte 0x%02X (no <0x%02X> and no unknown token)",
                             tk->name, (uint8_t)s[k], (uint8_t)s[k]);
        if (!tk_ids_push(&e->out, b)) return LLMRT_ERR_OUT_OF_MEMORY;
    }
    return LLMRT_OK;
}

llmrt_status tk_spm_word(tk_enc *e, const char *s, size_t len) {
    if (len == 0) return LLMRT_OK;
    if (len > UINT32_MAX / 2) return llmrt_err(e->err, LLMRT_ERR_INVALID_ARG, "text too long");
    spm_state    st = {.e = e, .s = s};
    llmrt_status rc = LLMRT_OK;
    st.sym          = malloc(len * sizeof *st.sym);
    if (!st.sym) return llmrt_err(e->err, LLMRT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    int32_t n = 0;
    for (size_t off = 0; off < len;) {
        size_t cl = (size_t)tk_utf8_len((uint8_t)s[off]);
        if (cl > len - off) cl = len - off;
        st.sym[n] = (spm_sym){(uint32_t)off, (uint32_t)cl, n - 1, off + cl == len ? -1 : n + 1};
        off += cl;
        n++;
    }
    for (int32_t i = 1; i < n; i++)
        if (!try_add_bigram(&st, i - 1, i)) goto oom;
    while (st.nh) {
        spm_bigram b = pop(&st);
        spm_sym   *l = &st.sym[b.left], *r = &st.sym[b.right];
        /* a stale entry: one side was merged since (llama.cpp checks only the sizes) */
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue;
        l->n += r->n;
        r->n    = 0;
        l->next = r->next;
        if (r->next >= 0) st.sym[r->next].prev = b.left;
        if (!try_add_bigram(&st, l->prev, b.left) || !try_add_bigram(&st, b.left, l->next)) goto oom;
    }
    for (int32_t i = 0; i != -1 && rc == LLMRT_OK; i = st.sym[i].next)
        rc = emit(e, s + st.sym[i].off, st.sym[i].n);
    if (rc == LLMRT_ERR_OUT_OF_MEMORY) goto oom;
    free(st.sym);
    free(st.heap);
    return rc;
oom:
    free(st.sym);
    free(st.heap);
    return llmrt_err(e->err, LLMRT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
}
