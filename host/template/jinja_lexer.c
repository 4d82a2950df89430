/* Jinja lexer: template data and the tokens inside {{ }} / {% %}, with jinja2's whitespace rules
 * applied to the data as its lexer does (jinja2/lexer.py, environment as HF configures it):
 *   - the source's newlines are normalised to "\n" and one trailing newline is dropped
 *     (keep_trailing_newline=False);
 *   - "{%-", "{{-", "{#-" strip all whitespace before the tag; "-%}", "-}}", "-#}" all after;
 *   - trim_blocks: the first newline after a block or comment tag is removed ("+%}" keeps it);
 *   - lstrip_blocks: spaces and tabs from the start of a line up to a block or comment tag are
 *     removed ("{%+" keeps them), when only whitespace stands between the line start and the tag.
 * Whitespace is Python's (str.isspace), as jinja2's `\s` and rstrip() are on str. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/checked_math.h"
#include "jinja_internal.h"

size_t jinja_ws_len_at(const unsigned char *s, size_t n);
size_t jinja_ws_len_before(const unsigned char *s, size_t n);

typedef struct lexer {
    ja_arena   *arena;
    const char *src;
    size_t      len, pos;
    int         line;
    jtok       *toks;
    size_t      n, cap;
} lexer;

_Noreturn static void lex_fail(lexer *lx, const char *fmt, const char *what) {
    llmrt_err(lx->arena->err, LLMRT_ERR_FORMAT, fmt, lx->line, what);
    longjmp(*lx->arena->fail, 1);
}

static jtok *push(lexer *lx, jtok_kind k) {
    if (lx->n == lx->cap) {
        size_t cap = lx->cap ? lx->cap * 2 : 64;
        jtok  *t   = ja_alloc_array(lx->arena, cap, sizeof *t);
        if (lx->n) memcpy(t, lx->toks, lx->n * sizeof *t);
        lx->toks = t, lx->cap = cap;
    }
    jtok *t = &lx->toks[lx->n++];
    memset(t, 0, sizeof *t);
    t->kind = k, t->line = lx->line;
    return t;
}

static void count_lines(lexer *lx, size_t from, size_t to) {
    for (size_t i = from; i < to; i++)
        if (lx->src[i] == '\n') lx->line++;
}

/* Skips whitespace from pos; returns the new position. */
static size_t skip_ws(const char *s, size_t len, size_t pos) {
    size_t w;
    while (pos < len && (w = jinja_ws_len_at((const unsigned char *)s + pos, len - pos)) > 0)
        pos += w;
    return pos;
}

/* ------------------------------------------------------------------------------------------ */
/* String literals: Python's unicode-escape decoding of the quoted text                        */
/* ------------------------------------------------------------------------------------------ */

static size_t put_utf8(char *o, uint32_t cp) {
    if (cp < 0x80) return o[0] = (char)cp, 1;
    if (cp < 0x800) return o[0] = (char)(0xc0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3f)), 2;
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12), o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18), o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

static void lex_string(lexer *lx) {
    char   q     = lx->src[lx->pos];
    size_t start = lx->pos + 1, i = start;
    while (i < lx->len && lx->src[i] != q) i += (lx->src[i] == '\\' && i + 1 < lx->len) ? 2 : 1;
    if (i >= lx->len) lex_fail(lx, "line %d: unterminated string literal%s", "");
    /* decoded text is never longer than the quoted text */
    char  *o = ja_alloc(lx->arena, i - start + 1);
    size_t n = 0;
    for (size_t k = start; k < i;) {
        char ch = lx->src[k];
        if (ch != '\\') {
            o[n++] = ch, k++;
            continue;
        }
        char e = lx->src[k + 1];
        k += 2;
        switch (e) {
        case 'n': o[n++] = '\n'; break;
        case 't': o[n++] = '\t'; break;
        case 'r': o[n++] = '\r'; break;
        case '\\': o[n++] = '\\'; break;
        case '\'': o[n++] = '\''; break;
        case '"': o[n++] = '"'; break;
        case 'a': o[n++] = '\a'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'v': o[n++] = '\v'; break;
        case '\n': break; /* line continuation */
        case 'x': case 'u': case 'U': {
            int      digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            uint32_t cp     = 0;
            for (int d = 0; d < digits; d++) {
                int h = k + (size_t)d < i ? hexval(lx->src[k + d]) : -1;
                if (h < 0) lex_fail(lx, "line %d: truncated \\%s escape in a string", "x/u/U");
                cp = cp * 16 + (uint32_t)h;
            }
            if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                lex_fail(lx, "line %d: escape is not a valid code point%s", "");
            k += (size_t)digits;
            /* \xhh and \u are at most 3 UTF-8 bytes for 4 or 6 source bytes: fits */
            n += put_utf8(o + n, cp);
            break;
        }
        default:
            if (e >= '0' && e <= '7') {
                uint32_t cp = (uint32_t)(e - '0');
                for (int d = 0; d < 2 && k < i && lx->src[k] >= '0' && lx->src[k] <= '7'; d++)
                    cp = cp * 8 + (uint32_t)(lx->src[k++] - '0');
                n += put_utf8(o + n, cp);
            } else { /* Python keeps an unknown escape as written */
                o[n++] = '\\', o[n++] = e;
            }
        }
    }
    o[n]    = '\0';
    jtok *t = push(lx, T_STRING);
    t->s = o, t->len = n;
    count_lines(lx, lx->pos, i);
    lx->pos = i + 1;
}

/* ------------------------------------------------------------------------------------------ */
/* Inside {{ }} and {% %}                                                                      */
/* ------------------------------------------------------------------------------------------ */

static const char *const OPS2[] = {"//", "**", "==", "!=", "<=", ">="};
static const char OPS1[] = "+-*/%~<>=.,:|()[]{}";

/* Lexes tokens up to the closing "}}" / "%}" (is_block) at bracket depth 0. Returns the
 * whitespace-control sign before it ('-', '+' or 0) and leaves pos after the closer. */
static char lex_tag(lexer *lx, bool is_block) {
    const char close = is_block ? '%' : '}';
    int        depth = 0;
    for (;;) {
        size_t p = skip_ws(lx->src, lx->len, lx->pos);
        count_lines(lx, lx->pos, p);
        lx->pos = p;
        if (p >= lx->len)
            lex_fail(lx, "line %d: template ends inside a %s tag", is_block ? "{% %}" : "{{ }}");
        const char *s = lx->src + p;
        size_t      r = lx->len - p;
        if (depth == 0) {
            if (r >= 2 && s[0] == close && s[1] == '}') {
                lx->pos = p + 2;
                return 0;
            }
            if (r >= 3 && (s[0] == '-' || s[0] == '+') && s[1] == close && s[2] == '}') {
                lx->pos = p + 3;
                return s[0];
            }
        }
        unsigned char ch = (unsigned char)s[0];
        if (ch == '\'' || ch == '"') {
            lex_string(lx);
        } else if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_') {
            size_t k = 1;
            while (k < r && ((s[k] >= 'a' && s[k] <= 'z') || (s[k] >= 'A' && s[k] <= 'Z') ||
                             (s[k] >= '0' && s[k] <= '9') || s[k] == '_'))
                k++;
            jtok *t = push(lx, T_NAME);
            t->s = ja_strndup(lx->arena, s, k), t->len = k;
            lx->pos += k;
        } else if (ch >= '0' && ch <= '9') {
            size_t k = 0;
            while (k < r && ((s[k] >= '0' && s[k] <= '9') || s[k] == '_')) k++;
            bool is_float = false;
            if (k + 1 < r && s[k] == '.' && s[k + 1] >= '0' && s[k + 1] <= '9') {
                is_float = true, k++;
                while (k < r && ((s[k] >= '0' && s[k] <= '9') || s[k] == '_')) k++;
            }
            if (k < r && (s[k] == 'e' || s[k] == 'E')) {
                size_t e = k + 1;
                if (e < r && (s[e] == '+' || s[e] == '-')) e++;
                if (e < r && s[e] >= '0' && s[e] <= '9') {
                    is_float = true, k = e;
                    while (k < r && s[k] >= '0' && s[k] <= '9') k++;
                }
            }
            char  *digits = ja_alloc(lx->arena, k + 1);
            size_t nd     = 0;
            for (size_t d = 0; d < k; d++)
                if (s[d] != '_') digits[nd++] = s[d];
            jtok *t = push(lx, is_float ? T_FLOAT : T_INT);
            if (is_float) {
                t->f = strtod(digits, NULL);
            } else {
                int64_t v = 0;
                for (size_t d = 0; d < nd; d++)
                    if (!ck_mul_i64(v, 10, &v) || !ck_add_i64(v, digits[d] - '0', &v))
                        lex_fail(lx, "line %d: integer literal too large%s", "");
                t->i = v;
            }
            lx->pos += k;
        } else {
            size_t k = 0;
            for (size_t o = 0; o < sizeof OPS2 / sizeof OPS2[0]; o++)
                if (r >= 2 && memcmp(s, OPS2[o], 2) == 0) k = 2;
            if (k == 0 && strchr(OPS1, ch) != NULL && ch != '\0') k = 1;
            if (k == 0) {
                char shown[8];
                snprintf(shown, sizeof shown, "%c", ch >= 0x20 && ch < 0x7f ? ch : '?');
                lex_fail(lx, "line %d: unexpected character '%s' in a tag", shown);
            }
            if (k == 1 && (ch == '(' || ch == '[' || ch == '{')) depth++;
            if (k == 1 && (ch == ')' || ch == ']' || ch == '}')) {
                if (depth == 0) lex_fail(lx, "line %d: unbalanced '%s'", (char[]){(char)ch, 0});
                depth--;
            }
            jtok *t = push(lx, T_OP);
            t->s = s, t->len = k;
            lx->pos += k;
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Data and tags                                                                               */
/* ------------------------------------------------------------------------------------------ */

/* Whether text[l..n) is one or more whitespace characters (jinja2's whitespace_re.fullmatch). */
static bool all_ws(const char *text, size_t l, size_t n) {
    return l < n && skip_ws(text, n, l) == n;
}

static void emit_text(lexer *lx, const char *s, size_t n, int line) {
    if (n == 0) return;
    jtok *t = push(lx, T_TEXT);
    t->s = ja_strndup(lx->arena, s, n), t->len = n, t->line = line;
}

/* After a block/comment end: "-" strips all following whitespace, trim_blocks one newline. */
static bool after_tag_end(lexer *lx, char sign, bool trim_newline) {
    size_t p = lx->pos;
    if (sign == '-') {
        p = skip_ws(lx->src, lx->len, p);
    } else if (sign != '+' && trim_newline && p < lx->len && lx->src[p] == '\n') {
        p++;
    }
    count_lines(lx, lx->pos, p);
    bool line_starting = p > 0 && lx->src[p - 1] == '\n' && p > lx->pos;
    lx->pos = p;
    return line_starting;
}

void jinja_lex(ja_arena *arena, const char *src_in, size_t len_in, jlexed *out) {
    /* newlines normalised, one trailing newline dropped */
    char  *src = ja_alloc(arena, len_in + 1);
    size_t len = 0;
    for (size_t i = 0; i < len_in; i++) {
        if (src_in[i] == '\r') {
            src[len++] = '\n';
            if (i + 1 < len_in && src_in[i + 1] == '\n') i++;
        } else {
            src[len++] = src_in[i];
        }
    }
    if (len > 0 && src[len - 1] == '\n') len--;
    src[len] = '\0';

    lexer lx = {.arena = arena, .src = src, .len = len, .line = 1};
    bool  line_starting = true;
    while (lx.pos < len) {
        /* next tag start */
        size_t t = lx.pos;
        char   kind = 0;
        for (; t + 1 < len; t++) {
            if (src[t] == '{' && (src[t + 1] == '{' || src[t + 1] == '%' || src[t + 1] == '#')) {
                kind = src[t + 1];
                break;
            }
        }
        if (kind == 0) {
            emit_text(&lx, src + lx.pos, len - lx.pos, lx.line);
            break;
        }
        const char *text      = src + lx.pos;
        size_t      text_len  = t - lx.pos;
        int         text_line = lx.line;
        char        sign      = (t + 2 < len && (src[t + 2] == '-' || src[t + 2] == '+')) ? src[t + 2] : 0;
        /* "{{+" is not a sign for variables in jinja2: only '-' is */
        if (kind == '{' && sign == '+') sign = 0;
        size_t kept = text_len;
        if (sign == '-') {
            kept = 0;
            size_t n = text_len, w;
            while (n > 0 && (w = jinja_ws_len_before((const unsigned char *)text, n)) > 0) n -= w;
            kept = n;
        } else if (sign != '+' && kind != '{') {
            size_t l_pos = 0;
            for (size_t k = text_len; k > 0; k--)
                if (text[k - 1] == '\n') {
                    l_pos = k;
                    break;
                }
            if ((l_pos > 0 || line_starting) && all_ws(text, l_pos, text_len)) kept = l_pos;
        }
        emit_text(&lx, text, kept, text_line);
        count_lines(&lx, lx.pos, t);
        lx.pos = t + 2 + (sign ? 1 : 0);

        if (kind == '#') {
            size_t e = lx.pos;
            while (e + 1 < len && !(src[e] == '#' && src[e + 1] == '}')) e++;
            if (e + 1 >= len) lex_fail(&lx, "line %d: unterminated comment%s", "");
            char end_sign = (e > lx.pos && (src[e - 1] == '-' || src[e - 1] == '+')) ? src[e - 1] : 0;
            count_lines(&lx, lx.pos, e);
            lx.pos        = e + 2;
            line_starting = after_tag_end(&lx, end_sign, true);
            continue;
        }
        /* {% raw %}: everything up to {% endraw %} is data */
        if (kind == '%') {
            size_t p = skip_ws(src, len, lx.pos);
            if (p + 3 <= len && memcmp(src + p, "raw", 3) == 0) {
                size_t q = skip_ws(src, len, p + 3);
                char   rs = 0;
                if (q < len && (src[q] == '-' || src[q] == '+')) rs = src[q++];
                if (q + 1 < len && src[q] == '%' && src[q + 1] == '}') {
                    lx.pos = q + 2;
                    if (rs == '-') lx.pos = skip_ws(src, len, lx.pos);
                    size_t body = lx.pos, e = body;
                    for (;; e++) {
                        if (e + 1 >= len) lex_fail(&lx, "line %d: {%% raw %%} without {%% endraw %%}%s", "");
                        if (src[e] != '{' || src[e + 1] != '%') continue;
                        size_t k = e + 2;
                        char   bs = (k < len && (src[k] == '-' || src[k] == '+')) ? src[k++] : 0;
                        k = skip_ws(src, len, k);
                        if (k + 6 > len || memcmp(src + k, "endraw", 6) != 0) continue;
                        k = skip_ws(src, len, k + 6);
                        char es = 0;
                        if (k < len && (src[k] == '-' || src[k] == '+')) es = src[k++];
                        if (k + 1 >= len || src[k] != '%' || src[k + 1] != '}') continue;
                        size_t kept_raw = e - body;
                        if (bs == '-') {
                            size_t w;
                            while (kept_raw > 0 && (w = jinja_ws_len_before((const unsigned char *)src + body, kept_raw)) > 0)
                                kept_raw -= w;
                        }
                        emit_text(&lx, src + body, kept_raw, lx.line);
                        count_lines(&lx, body, k + 2);
                        lx.pos        = k + 2;
                        line_starting = after_tag_end(&lx, es, true);
                        break;
                    }
                    continue;
                }
            }
        }
        push(&lx, kind == '{' ? T_VAR_BEGIN : T_BLOCK_BEGIN);
        char end_sign = lex_tag(&lx, kind == '%');
        push(&lx, kind == '{' ? T_VAR_END : T_BLOCK_END);
        line_starting = after_tag_end(&lx, end_sign, kind == '%');
    }
    push(&lx, T_EOF);
    out->toks = lx.toks, out->n = lx.n;
}
