/* Added tokens (HF AddedVocabulary): split out of the text before the model, leftmost-longest
 * over all added tokens, in two passes: tokens with normalized=false on the raw text, then
 * tokens with normalized=true (matched by their normalized form) on each normalized segment.
 * A special token is kept only with parse_special; a skipped match is not re-searched inside,
 * as in HF (its find_iter has already consumed it). single_word / lstrip / rstrip follow
 * added_vocabulary.rs: word characters = Rust regex \w, spaces = Unicode White_Space. */
#include <string.h>

#include "tok_internal.h"
#include "unicode.h"

/* Rust regex's Unicode \w (UTS#18 Annex C): Alphabetic, marks, decimal numbers, connector
 * punctuation, joiners. PCRE2 10.42's UCP \w lacks the marks and adds other numbers. */
static const char WORD_CHAR_RE[] = "^[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}]";

static int cmp_candidates(const void *a, const void *b, void *ctx) {
    const llmrt_tokenizer *tk = ctx;
    const tk_added_token  *x = &tk->added[*(const int32_t *)a], *y = &tk->added[*(const int32_t *)b];
    uint8_t                fx = (uint8_t)x->match[0], fy = (uint8_t)y->match[0];
    if (fx != fy) return fx < fy ? -1 : 1;
    if (x->match_len != y->match_len) return x->match_len > y->match_len ? -1 : 1;
    /* same first byte and length: keep file order (special tokens came first in HF's list) */
    return *(const int32_t *)a < *(const int32_t *)b ? -1 : 1;
}

static llmrt_status build_matcher(llmrt_tokenizer *tk, bool normalized, tk_added_matcher *m,
                                  llmrt_error *err) {
    memset(m, 0, sizeof *m);
    for (int32_t i = 0; i < tk->n_added; i++)
        if (tk->added[i].normalized == normalized && tk->added[i].match_len) m->n++;
    if (!m->n) return LLMRT_OK;
    m->order = malloc(m->n * sizeof *m->order);
    if (!m->order) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", tk->name);
    uint32_t k = 0;
    for (int32_t i = 0; i < tk->n_added; i++)
        if (tk->added[i].normalized == normalized && tk->added[i].match_len) m->order[k++] = i;
    qsort_r(m->order, m->n, sizeof *m->order, cmp_candidates, tk);
    for (uint32_t i = 0; i < m->n; i++) m->bucket[(uint8_t)tk->added[m->order[i]].match[0] + 1]++;
    for (int b = 0; b < 256; b++) m->bucket[b + 1] += m->bucket[b];
    return LLMRT_OK;
}

llmrt_status tk_added_build(llmrt_tokenizer *tk, llmrt_error *err) {
    bool any_single_word = false;
    if (tk->n_added) {
        /* normalized tokens are searched for by their normalized form */
        tk_enc e;
        tk_enc_init(&e, tk, err);
        if (!tk_enc_ready(&e)) {
            tk_enc_free(&e);
            return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", tk->name);
        }
        llmrt_status st = LLMRT_OK;
        for (int32_t i = 0; i < tk->n_added && st == LLMRT_OK; i++) {
            tk_added_token *t = &tk->added[i];
            any_single_word |= t->single_word;
            t->match     = t->content;
            t->match_len = t->len;
            if (!t->normalized || tk->n_norm == 0) continue;
            tk_buf nb = {0};
            st        = tk_normalize(&e, t->content, t->len, &nb);
            if (st == LLMRT_OK) {
                t->match = tk_arena_strdup(&tk->arena, nb.p ? nb.p : "", nb.n);
                t->match_len = nb.n;
                if (!t->match) st = llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", tk->name);
            }
            free(nb.p);
        }
        tk_enc_free(&e);
        LLMRT_TRY(st);
    }
    LLMRT_TRY(build_matcher(tk, false, &tk->raw_match, err));
    LLMRT_TRY(build_matcher(tk, true, &tk->norm_match, err));
    if (any_single_word)
        LLMRT_TRY(tk_regex_compile(WORD_CHAR_RE, sizeof WORD_CHAR_RE - 1, "single_word check", &tk->word_re, err));
    return LLMRT_OK;
}

void tk_added_free(llmrt_tokenizer *tk) {
    free(tk->raw_match.order);
    free(tk->norm_match.order);
    tk_regex_free(tk->word_re);
    tk->raw_match.order = tk->norm_match.order = NULL;
    tk->word_re = NULL;
}

/* Whether the character at s[i] (a char boundary) is a word character. */
static llmrt_status is_word_at(tk_enc *e, const char *s, size_t len, size_t i, bool *word) {
    size_t cl = (size_t)tk_utf8_len((uint8_t)s[i]);
    if (cl > len - i) cl = len - i;
    bool   found;
    size_t ms, me;
    LLMRT_TRY(tk_regex_find(e->tk->word_re, e->ms, s + i, cl, 0, &found, &ms, &me, e->err));
    *word = found;
    return LLMRT_OK;
}

/* Start of the character that ends at s[..end). */
static size_t prev_char(const char *s, size_t end) {
    size_t i = end - 1;
    while (i > 0 && ((uint8_t)s[i] & 0xc0) == 0x80) i--;
    return i;
}

static llmrt_status push(tk_enc *e, tk_spans *spans, tk_ids *ids, size_t a, size_t b, int32_t id) {
    if (!tk_spans_push(spans, a, b, id >= 0) || !tk_ids_push(ids, id))
        return llmrt_err(e->err, LLMRT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    return LLMRT_OK;
}

llmrt_status tk_added_split(tk_enc *e, const tk_added_matcher *m, const char *s, size_t len,
                            bool parse_special, tk_spans *spans, tk_ids *span_ids) {
    const llmrt_tokenizer *tk = e->tk;
    spans->n = 0;
    span_ids->n = 0;
    if (len == 0 || m->n == 0) return push(e, spans, span_ids, 0, len, -1);
    size_t start_offset = 0;
    for (size_t i = 0; i < len;) {
        uint8_t  b = (uint8_t)s[i];
        uint32_t lo = m->bucket[b], hi = m->bucket[b + 1];
        const tk_added_token *hit = NULL;
        for (uint32_t k = lo; k < hi; k++) {
            const tk_added_token *t = &tk->added[m->order[k]];
            if (t->match_len <= len - i && memcmp(s + i, t->match, t->match_len) == 0) {
                hit = t;
                break;
            }
        }
        if (!hit) {
            i++;
            continue;
        }
        size_t start = i, stop = i + hit->match_len;
        i = stop; /* matches never overlap, even when this one is then discarded */
        if (hit->special && !parse_special) continue;
        if (hit->single_word) {
            bool before = false, after = false;
            if (start > 0) LLMRT_TRY(is_word_at(e, s, len, prev_char(s, start), &before));
            if (stop < len) LLMRT_TRY(is_word_at(e, s, len, stop, &after));
            if (before || after) continue;
        }
        if (hit->lstrip) {
            size_t ns = start;
            while (ns > 0) {
                size_t   p = prev_char(s, ns);
                uint32_t cp;
                if (!tk_utf8_decode((const uint8_t *)s + p, ns - p, &cp) || !tk_is_whitespace(cp)) break;
                ns = p;
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (hit->rstrip) {
            uint32_t cp;
            int      cl;
            while (stop < len && (cl = tk_utf8_decode((const uint8_t *)s + stop, len - stop, &cp)) &&
                   tk_is_whitespace(cp))
                stop += (size_t)cl;
        }
        /* a previous rstrip may have swallowed the start of this match */
        if (start < start_offset) start = start_offset;
        if (stop <= start) continue;
        if (start_offset < start) LLMRT_TRY(push(e, spans, span_ids, start_offset, start, -1));
        LLMRT_TRY(push(e, spans, span_ids, start, stop, hit->id));
        start_offset = stop;
        if (i < stop) i = stop;
    }
    if (start_offset != len) LLMRT_TRY(push(e, spans, span_ids, start_offset, len, -1));
    return LLMRT_OK;
}
