/* Jinja values: the arena, constructors, Python truthiness/equality/ordering, str()/repr(),
 * HF's tojson, conversion from JSON, and text sinks that carry taint spans. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/checked_math.h"
#include "jinja_internal.h"

/* ------------------------------------------------------------------------------------------ */
/* Arena                                                                                       */
/* ------------------------------------------------------------------------------------------ */

struct ja_chunk {
    ja_chunk *next;
    size_t    size, used;
    max_align_t data[];
};

#define JA_CHUNK_MIN ((size_t)64 * 1024)

void *ja_alloc(ja_arena *a, size_t n) {
    if (n > SIZE_MAX / 2) { /* no rounding overflow below; far beyond any cap anyway */
        llmrt_err(a->err, LLMRT_ERR_ABORTED, "chat template: an allocation of %zu bytes is too large", n);
        longjmp(*a->fail, 1);
    }
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    ja_chunk *c = a->head;
    if (c == NULL || c->size - c->used < n) {
        size_t size = n > JA_CHUNK_MIN ? n : JA_CHUNK_MIN;
        uint64_t total;
        if (!ck_add_u64(a->used, size + sizeof(ja_chunk), &total) || (a->cap && total > a->cap)) {
            llmrt_err(a->err, LLMRT_ERR_ABORTED,
                      "chat template: the render needs more than its memory cap of %zu bytes",
                      a->cap);
            longjmp(*a->fail, 1);
        }
        c = malloc(sizeof(ja_chunk) + size);
        if (c == NULL) {
            llmrt_err(a->err, LLMRT_ERR_OUT_OF_MEMORY, "chat template: out of memory");
            longjmp(*a->fail, 1);
        }
        c->next = a->head, c->size = size, c->used = 0;
        a->head = c;
        a->used = (size_t)total;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

void *ja_alloc_array(ja_arena *a, size_t n, size_t sz) {
    uint64_t bytes;
    if (!ck_mul_u64(n, sz, &bytes) || bytes > SIZE_MAX / 2) {
        llmrt_err(a->err, LLMRT_ERR_ABORTED, "chat template: an array of %zu items is too large", n);
        longjmp(*a->fail, 1);
    }
    return ja_alloc(a, (size_t)bytes);
}

char *ja_strndup(ja_arena *a, const char *s, size_t n) {
    if (n >= SIZE_MAX / 2) {
        llmrt_err(a->err, LLMRT_ERR_ABORTED, "chat template: a string is too large");
        longjmp(*a->fail, 1);
    }
    char *d = ja_alloc(a, n + 1);
    if (n) memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void ja_free_all(ja_arena *a) {
    ja_chunk *c = a->head;
    while (c) {
        ja_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL, a->used = 0;
}

_Noreturn void jinja_fail(jctx *c, llmrt_status st, const char *fmt, ...) {
    char    msg[LLMRT_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    llmrt_err(c->err, st, "chat template line %d: %s", c->line, msg);
    longjmp(c->fail, 1);
}

/* ------------------------------------------------------------------------------------------ */
/* Whitespace (Python str.isspace) and UTF-8                                                   */
/* ------------------------------------------------------------------------------------------ */

static bool is_ws1(unsigned char c) { return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20); }
static bool is_ws2(unsigned char a, unsigned char b) { return a == 0xc2 && (b == 0x85 || b == 0xa0); }
static bool is_ws3(unsigned char a, unsigned char b, unsigned char c) {
    if (a == 0xe1) return b == 0x9a && c == 0x80;
    if (a == 0xe2 && b == 0x80) return c <= 0x8a ? c >= 0x80 : (c == 0xa8 || c == 0xa9 || c == 0xaf);
    if (a == 0xe2) return b == 0x81 && c == 0x9f;
    return a == 0xe3 && b == 0x80 && c == 0x80;
}

size_t jinja_ws_len_at(const unsigned char *s, size_t n) {
    if (n >= 1 && is_ws1(s[0])) return 1;
    if (n >= 2 && is_ws2(s[0], s[1])) return 2;
    if (n >= 3 && is_ws3(s[0], s[1], s[2])) return 3;
    return 0;
}

size_t jinja_ws_len_before(const unsigned char *s, size_t n) {
    if (n >= 1 && is_ws1(s[n - 1])) return 1;
    if (n >= 2 && is_ws2(s[n - 2], s[n - 1])) return 2;
    if (n >= 3 && is_ws3(s[n - 3], s[n - 2], s[n - 1])) return 3;
    return 0;
}

size_t jv_utf8_count(const char *s, size_t len) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80) n++;
    return n;
}

size_t jv_utf8_offset(const char *s, size_t len, size_t cp) {
    size_t i = 0, k = 0;
    while (i < len) {
        if (((unsigned char)s[i] & 0xc0) != 0x80) {
            if (k == cp) return i;
            k++;
        }
        i++;
    }
    return len;
}

/* ------------------------------------------------------------------------------------------ */
/* Sinks                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static void sink_reserve(jctx *c, jsink *s, size_t more) {
    uint64_t need;
    if (!ck_add_u64(s->len, more, &need) || !ck_add_u64(need, 1, &need))
        jinja_fail(c, LLMRT_ERR_ABORTED, "a string is too large");
    if (need <= s->cap) return;
    uint64_t cap = s->cap ? s->cap : 64;
    while (cap < need)
        if (!ck_mul_u64(cap, 2, &cap)) jinja_fail(c, LLMRT_ERR_ABORTED, "a string is too large");
    char *b = ja_alloc(&c->arena, (size_t)cap);
    if (s->len) memcpy(b, s->buf, s->len);
    s->buf = b, s->cap = (size_t)cap;
}

static void sink_span(jctx *c, jsink *s, size_t b, size_t e) {
    if (b >= e) return;
    if (s->nsp && s->sp[s->nsp - 1].e == b) { /* adjacent: merge */
        s->sp[s->nsp - 1].e = e;
        return;
    }
    if (s->nsp == s->cap_sp) {
        size_t cap = s->cap_sp ? s->cap_sp * 2 : 8;
        jspan *sp  = ja_alloc_array(&c->arena, cap, sizeof *sp);
        if (s->nsp) memcpy(sp, s->sp, s->nsp * sizeof *sp);
        s->sp = sp, s->cap_sp = cap;
    }
    s->sp[s->nsp++] = (jspan){b, e};
}

void jsink_put(jctx *c, jsink *s, const char *p, size_t n, bool tainted) {
    if (n == 0) return;
    sink_reserve(c, s, n);
    memcpy(s->buf + s->len, p, n);
    size_t b = s->len;
    s->len += n;
    s->buf[s->len] = '\0';
    if (tainted) sink_span(c, s, b, s->len);
}

void jsink_put_sub(jctx *c, jsink *s, const jval *str, size_t b, size_t e) {
    if (e <= b) return;
    size_t base = s->len;
    jsink_put(c, s, str->u.str.s + b, e - b, false);
    for (size_t k = 0; k < str->u.str.nsp; k++) {
        size_t lo = str->u.str.sp[k].b < b ? b : str->u.str.sp[k].b;
        size_t hi = str->u.str.sp[k].e > e ? e : str->u.str.sp[k].e;
        if (lo < hi) sink_span(c, s, base + (lo - b), base + (hi - b));
    }
}

void jsink_put_str(jctx *c, jsink *s, const jval *str) {
    jsink_put_sub(c, s, str, 0, str->u.str.len);
}

jval *jsink_to_str(jctx *c, jsink *s) {
    jval *v = ja_alloc(&c->arena, sizeof *v);
    v->t    = JV_STR;
    if (s->buf == NULL) {
        v->u.str.s = "";
        return v;
    }
    v->u.str.s = s->buf, v->u.str.len = s->len;
    v->u.str.sp = s->sp, v->u.str.nsp = s->nsp;
    return v;
}

/* ------------------------------------------------------------------------------------------ */
/* Constructors                                                                                */
/* ------------------------------------------------------------------------------------------ */

static jval NONE_V = {.t = JV_NONE}, TRUE_V = {.t = JV_BOOL, .u.b = true},
            FALSE_V = {.t = JV_BOOL, .u.b = false};

jval *jv_none(void) { return &NONE_V; }
jval *jv_bool(bool b) { return b ? &TRUE_V : &FALSE_V; }

jval *jv_undef(jctx *c, const char *name) {
    jval *v         = ja_alloc(&c->arena, sizeof *v);
    v->t            = JV_UNDEF;
    v->u.undef_name = name;
    return v;
}
jval *jv_int(jctx *c, int64_t i) {
    jval *v = ja_alloc(&c->arena, sizeof *v);
    v->t = JV_INT, v->u.i = i;
    return v;
}
jval *jv_float(jctx *c, double f) {
    jval *v = ja_alloc(&c->arena, sizeof *v);
    v->t = JV_FLOAT, v->u.f = f;
    return v;
}
jval *jv_str(jctx *c, const char *s, size_t len) {
    jval *v = ja_alloc(&c->arena, sizeof *v);
    v->t = JV_STR;
    v->u.str.s = ja_strndup(&c->arena, s, len), v->u.str.len = len;
    return v;
}
jval *jv_str_tainted(jctx *c, const char *s, size_t len) {
    jval *v = jv_str(c, s, len);
    if (len) {
        jspan *sp = ja_alloc(&c->arena, sizeof *sp);
        *sp = (jspan){0, len};
        v->u.str.sp = sp, v->u.str.nsp = 1;
    }
    return v;
}
jval *jv_list(jctx *c, size_t n) {
    jval *v = ja_alloc(&c->arena, sizeof *v);
    v->t = JV_LIST;
    v->u.list.items = ja_alloc_array(&c->arena, n ? n : 1, sizeof(jval *));
    v->u.list.n = n;
    return v;
}
jval *jv_dict(jctx *c, size_t cap) {
    jval *v = ja_alloc(&c->arena, sizeof *v);
    v->t = JV_DICT;
    if (cap < 4) cap = 4;
    v->u.dict.keys = ja_alloc_array(&c->arena, cap, sizeof(jval *));
    v->u.dict.vals = ja_alloc_array(&c->arena, cap, sizeof(jval *));
    v->u.dict.cap = cap;
    return v;
}

jval *jv_dict_get_v(const jval *d, const jval *key) {
    for (size_t i = 0; i < d->u.dict.n; i++)
        if (jv_equal(d->u.dict.keys[i], key)) return d->u.dict.vals[i];
    return NULL;
}

jval *jv_dict_get(const jval *d, const char *key, size_t klen) {
    for (size_t i = 0; i < d->u.dict.n; i++) {
        const jval *k = d->u.dict.keys[i];
        if (k->t == JV_STR && k->u.str.len == klen && memcmp(k->u.str.s, key, klen) == 0)
            return d->u.dict.vals[i];
    }
    return NULL;
}

void jv_dict_set(jctx *c, jval *d, jval *key, jval *val) {
    for (size_t i = 0; i < d->u.dict.n; i++)
        if (jv_equal(d->u.dict.keys[i], key)) {
            d->u.dict.vals[i] = val;
            return;
        }
    if (d->u.dict.n == d->u.dict.cap) {
        size_t cap = d->u.dict.cap * 2;
        jval **k = ja_alloc_array(&c->arena, cap, sizeof *k), **v = ja_alloc_array(&c->arena, cap, sizeof *v);
        memcpy(k, d->u.dict.keys, d->u.dict.n * sizeof *k);
        memcpy(v, d->u.dict.vals, d->u.dict.n * sizeof *v);
        d->u.dict.keys = k, d->u.dict.vals = v, d->u.dict.cap = cap;
    }
    d->u.dict.keys[d->u.dict.n] = key;
    d->u.dict.vals[d->u.dict.n++] = val;
}

jval *jv_from_json(jctx *c, const cJSON *j, bool tainted) {
    jinja_step(c);
    if (cJSON_IsNull(j) || j == NULL) return jv_none();
    if (cJSON_IsBool(j)) return jv_bool(cJSON_IsTrue(j));
    if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        /* JSON integers become Python ints (cJSON keeps them as doubles) */
        if (d == floor(d) && fabs(d) < 9007199254740992.0 && !strpbrk(j->valuestring ? j->valuestring : "", ".eE"))
            return jv_int(c, (int64_t)d);
        return jv_float(c, d);
    }
    if (cJSON_IsString(j)) {
        const char *s = j->valuestring ? j->valuestring : "";
        return tainted ? jv_str_tainted(c, s, strlen(s)) : jv_str(c, s, strlen(s));
    }
    if (cJSON_IsArray(j)) {
        size_t n = (size_t)cJSON_GetArraySize(j), i = 0;
        jval  *l = jv_list(c, n);
        for (const cJSON *e = j->child; e && i < n; e = e->next) l->u.list.items[i++] = jv_from_json(c, e, tainted);
        return l;
    }
    if (cJSON_IsObject(j)) {
        jval *d = jv_dict(c, (size_t)cJSON_GetArraySize(j));
        for (const cJSON *e = j->child; e; e = e->next) {
            const char *k = e->string ? e->string : "";
            jv_dict_set(c, d, jv_str(c, k, strlen(k)), jv_from_json(c, e, tainted));
        }
        return d;
    }
    return jv_none();
}

/* ------------------------------------------------------------------------------------------ */
/* Python semantics                                                                            */
/* ------------------------------------------------------------------------------------------ */

const char *jv_type_name(const jval *v) {
    if (v->t == JV_LIST && v->u.list.gen) return "generator";
    if (v->t == JV_LIST && v->u.list.tuple) return "tuple";
    static const char *const names[] = {"Undefined", "NoneType", "bool", "int", "float", "str",
                                        "list", "dict", "Namespace", "function"};
    return names[v->t];
}

bool jv_truthy(const jval *v) {
    switch (v->t) {
    case JV_UNDEF: case JV_NONE: return false;
    case JV_BOOL: return v->u.b;
    case JV_INT: return v->u.i != 0;
    case JV_FLOAT: return v->u.f != 0.0;
    case JV_STR: return v->u.str.len > 0;
    case JV_LIST: return v->u.list.gen || v->u.list.n > 0;
    case JV_DICT: return v->u.dict.n > 0;
    default: return true;
    }
}

bool jv_is_number(const jval *v) { return v->t == JV_INT || v->t == JV_FLOAT || v->t == JV_BOOL; }

double jv_as_double(const jval *v) {
    return v->t == JV_FLOAT ? v->u.f : v->t == JV_INT ? (double)v->u.i : v->t == JV_BOOL ? (double)v->u.b : 0.0;
}

static bool equal_at(const jval *a, const jval *b, int depth);

bool jv_equal(const jval *a, const jval *b) { return equal_at(a, b, 0); }

/* Nested beyond 512 levels (only a template building lists in a loop gets there) compares
 * unequal rather than recursing without bound. */
static bool equal_at(const jval *a, const jval *b, int depth) {
    if (depth > 512) return false;
    if (jv_is_number(a) && jv_is_number(b)) {
        if (a->t != JV_FLOAT && b->t != JV_FLOAT)
            return (a->t == JV_INT ? a->u.i : a->u.b) == (b->t == JV_INT ? b->u.i : b->u.b);
        return jv_as_double(a) == jv_as_double(b);
    }
    if (a->t != b->t) return false;
    if (a->t == JV_LIST && (a->u.list.gen || b->u.list.gen)) return a == b;
    switch (a->t) {
    case JV_UNDEF: case JV_NONE: return true;
    case JV_STR: return a->u.str.len == b->u.str.len && memcmp(a->u.str.s, b->u.str.s, a->u.str.len) == 0;
    case JV_LIST:
        if (a->u.list.n != b->u.list.n) return false;
        for (size_t i = 0; i < a->u.list.n; i++)
            if (!equal_at(a->u.list.items[i], b->u.list.items[i], depth + 1)) return false;
        return true;
    case JV_DICT:
        if (a->u.dict.n != b->u.dict.n) return false;
        for (size_t i = 0; i < a->u.dict.n; i++) {
            const jval *o = jv_dict_get_v(b, a->u.dict.keys[i]);
            if (!o || !equal_at(a->u.dict.vals[i], o, depth + 1)) return false;
        }
        return true;
    default: return a == b;
    }
}

static int compare_at(jctx *c, const jval *a, const jval *b, int depth);

int jv_compare(jctx *c, const jval *a, const jval *b) { return compare_at(c, a, b, 0); }

static int compare_at(jctx *c, const jval *a, const jval *b, int depth) {
    if (depth > 512) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "values nested too deeply to compare");
    if (jv_is_number(a) && jv_is_number(b)) {
        if (a->t == JV_INT && b->t == JV_INT) return (a->u.i > b->u.i) - (a->u.i < b->u.i);
        double x = jv_as_double(a), y = jv_as_double(b);
        return (x > y) - (x < y);
    }
    if (a->t == JV_STR && b->t == JV_STR) { /* code point order = UTF-8 byte order */
        size_t n = a->u.str.len < b->u.str.len ? a->u.str.len : b->u.str.len;
        int    r = memcmp(a->u.str.s, b->u.str.s, n);
        if (r) return r < 0 ? -1 : 1;
        return (a->u.str.len > b->u.str.len) - (a->u.str.len < b->u.str.len);
    }
    if (a->t == JV_LIST && b->t == JV_LIST) {
        for (size_t i = 0; i < a->u.list.n && i < b->u.list.n; i++) {
            if (jv_equal(a->u.list.items[i], b->u.list.items[i])) continue;
            return compare_at(c, a->u.list.items[i], b->u.list.items[i], depth + 1);
        }
        return (a->u.list.n > b->u.list.n) - (a->u.list.n < b->u.list.n);
    }
    jinja_fail(c, LLMRT_ERR_INVALID_ARG, "'<' not supported between instances of '%s' and '%s'",
               jv_type_name(a), jv_type_name(b));
}

/* Python repr(float): the shortest digits that round-trip, positional for exponents in
 * [-4, 16), scientific otherwise, always with a '.0' or exponent. */
static void float_repr(double f, char *out, size_t cap) {
    if (isnan(f)) { snprintf(out, cap, "nan"); return; }
    if (isinf(f)) { snprintf(out, cap, f < 0 ? "-inf" : "inf"); return; }
    char e[40];
    int  prec = 1;
    for (; prec <= 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec - 1, f);
        if (strtod(e, NULL) == f) break;
    }
    /* e = [-]d.ddde[+-]XX */
    char  digits[24];
    size_t nd = 0;
    const char *q = e;
    bool neg = *q == '-';
    if (neg) q++;
    for (; *q && *q != 'e'; q++)
        if (*q != '.') digits[nd++] = *q;
    int exp = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = '\0';
    char *o = out;
    size_t left = cap;
#define PUT(...) do { int w_ = snprintf(o, left, __VA_ARGS__); if (w_ < 0 || (size_t)w_ >= left) return; o += w_, left -= (size_t)w_; } while (0)
    if (neg) PUT("-");
    if (exp < -4 || exp >= 16) {
        PUT("%c", digits[0]);
        if (nd > 1) PUT(".%s", digits + 1);
        PUT("e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    } else if (exp < 0) {
        PUT("0.");
        for (int k = 0; k < -exp - 1; k++) PUT("0");
        PUT("%s", digits);
    } else {
        for (int k = 0; k <= exp; k++) PUT("%c", (size_t)k < nd ? digits[k] : '0');
        PUT(".");
        if ((size_t)exp + 1 < nd) PUT("%s", digits + exp + 1);
        else PUT("0");
    }
#undef PUT
}

static void put_cstr(jctx *c, jsink *s, const char *p) { jsink_put(c, s, p, strlen(p), false); }

/* Code points Python's str.isprintable() rejects beyond ASCII (a subset of categories Cc, Cf,
 * Zs, Zl, Zp that text actually contains): repr() escapes them. */
static bool unprintable_cp(uint32_t cp) {
    return (cp >= 0x80 && cp <= 0xa0) || cp == 0xad || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200f) ||
           (cp >= 0x2028 && cp <= 0x202f) || (cp >= 0x205f && cp <= 0x2064) || cp == 0x3000 ||
           cp == 0xfeff;
}

static uint32_t utf8_cp(const unsigned char *p, size_t n, size_t *len);

/* Python repr(str): single quotes unless the text has ' and no ". */
static void str_repr(jctx *c, jsink *s, const jval *v) {
    const char *p = v->u.str.s;
    size_t      n = v->u.str.len;
    bool        has_sq = memchr(p, '\'', n) != NULL, has_dq = memchr(p, '"', n) != NULL;
    char        q = (has_sq && !has_dq) ? '"' : '\'';
    jsink_put(c, s, &q, 1, false);
    size_t run = 0; /* copy runs of plain bytes with their taint */
    for (size_t i = 0; i <= n; i++) {
        unsigned char ch = i < n ? (unsigned char)p[i] : 0;
        const char   *esc = NULL;
        char          buf[16];
        size_t        skip = 1;
        if (i < n) {
            if (ch == '\\') esc = "\\\\";
            else if (ch == '\n') esc = "\\n";
            else if (ch == '\r') esc = "\\r";
            else if (ch == '\t') esc = "\\t";
            else if (ch == (unsigned char)q) esc = q == '\'' ? "\\'" : "\\\"";
            else if (ch < 0x20 || ch == 0x7f) {
                snprintf(buf, sizeof buf, "\\x%02x", ch);
                esc = buf;
            } else if (ch >= 0xc2) {
                uint32_t cp = utf8_cp((const unsigned char *)p + i, n - i, &skip);
                if (unprintable_cp(cp)) {
                    snprintf(buf, sizeof buf, cp < 0x100 ? "\\x%02x" : "\\u%04x", cp);
                    esc = buf;
                } else {
                    skip = 1;
                }
            }
        }
        if (i == n || esc) {
            jsink_put_sub(c, s, v, run, i);
            if (esc) jsink_put(c, s, esc, strlen(esc), v->u.str.nsp > 0);
            i += skip - 1;
            run = i + 1;
        }
    }
    jsink_put(c, s, &q, 1, false);
}

static void repr_at(jctx *c, jsink *s, const jval *v, int depth);

void jv_repr(jctx *c, jsink *s, const jval *v) { repr_at(c, s, v, 0); }

static void repr_at(jctx *c, jsink *s, const jval *v, int depth) {
    jinja_step(c);
    if (depth > 512) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "value nested too deeply to print");
    char buf[64];
    switch (v->t) {
    case JV_UNDEF: return;
    case JV_NONE: put_cstr(c, s, "None"); return;
    case JV_BOOL: put_cstr(c, s, v->u.b ? "True" : "False"); return;
    case JV_INT: snprintf(buf, sizeof buf, "%lld", (long long)v->u.i); put_cstr(c, s, buf); return;
    case JV_FLOAT: float_repr(v->u.f, buf, sizeof buf); put_cstr(c, s, buf); return;
    case JV_STR: str_repr(c, s, v); return;
    case JV_LIST:
        if (v->u.list.gen) { /* Python prints an address here; no template relies on it */
            put_cstr(c, s, "<generator object>");
            return;
        }
        put_cstr(c, s, v->u.list.tuple ? "(" : "[");
        for (size_t i = 0; i < v->u.list.n; i++) {
            if (i) put_cstr(c, s, ", ");
            repr_at(c, s, v->u.list.items[i], depth + 1);
        }
        if (v->u.list.tuple && v->u.list.n == 1) put_cstr(c, s, ",");
        put_cstr(c, s, v->u.list.tuple ? ")" : "]");
        return;
    case JV_DICT:
        put_cstr(c, s, "{");
        for (size_t i = 0; i < v->u.dict.n; i++) {
            if (i) put_cstr(c, s, ", ");
            repr_at(c, s, v->u.dict.keys[i], depth + 1);
            put_cstr(c, s, ": ");
            repr_at(c, s, v->u.dict.vals[i], depth + 1);
        }
        put_cstr(c, s, "}");
        return;
    case JV_NS: put_cstr(c, s, "<Namespace>"); return;
    case JV_FUNC: put_cstr(c, s, "<function>"); return;
    }
}

jval *jv_to_str(jctx *c, jval *v) {
    if (v->t == JV_STR) return v;
    jsink s = {0};
    jv_repr(c, &s, v);
    return jsink_to_str(c, &s);
}

/* ------------------------------------------------------------------------------------------ */
/* tojson: Python json.dumps(x, ensure_ascii=False, indent, separators, sort_keys)             */
/* ------------------------------------------------------------------------------------------ */

/* Decodes the UTF-8 code point at p[0..n) (valid input: JSON/template strings are UTF-8). */
static uint32_t utf8_cp(const unsigned char *p, size_t n, size_t *len) {
    unsigned char b = p[0];
    size_t        k = b < 0x80 ? 1 : b < 0xe0 ? 2 : b < 0xf0 ? 3 : 4;
    if (k > n) k = n;
    uint32_t cp = k == 1 ? b : k == 2 ? (b & 0x1fu) : k == 3 ? (b & 0x0fu) : (b & 0x07u);
    for (size_t i = 1; i < k; i++) cp = (cp << 6) | (p[i] & 0x3fu);
    *len = k;
    return cp;
}

static void json_string(jctx *c, jsink *s, const jval *v, bool ensure_ascii) {
    put_cstr(c, s, "\"");
    const char *p   = v->u.str.s;
    size_t      n   = v->u.str.len, run = 0;
    bool        any = v->u.str.nsp > 0;
    for (size_t i = 0; i <= n; i++) {
        unsigned char ch  = i < n ? (unsigned char)p[i] : 0;
        const char   *esc = NULL;
        char          buf[16];
        size_t        skip = 1;
        if (i < n && ensure_ascii && ch >= 0x80) { /* \uXXXX, surrogate pairs above U+FFFF */
            uint32_t cp = utf8_cp((const unsigned char *)p + i, n - i, &skip);
            if (cp >= 0x10000) {
                cp -= 0x10000;
                snprintf(buf, sizeof buf, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
            } else {
                snprintf(buf, sizeof buf, "\\u%04x", cp);
            }
            esc = buf;
        } else if (i < n) {
            if (ch == '"') esc = "\\\"";
            else if (ch == '\\') esc = "\\\\";
            else if (ch == '\n') esc = "\\n";
            else if (ch == '\r') esc = "\\r";
            else if (ch == '\t') esc = "\\t";
            else if (ch == '\b') esc = "\\b";
            else if (ch == '\f') esc = "\\f";
            else if (ch < 0x20) {
                snprintf(buf, sizeof buf, "\\u%04x", ch);
                esc = buf;
            }
        }
        if (i == n || esc) {
            jsink_put_sub(c, s, v, run, i);
            /* an escape of content bytes is content too */
            if (esc) jsink_put(c, s, esc, strlen(esc), any);
            i += skip - 1;
            run = i + 1;
        }
    }
    put_cstr(c, s, "\"");
}

static void newline_indent(jctx *c, jsink *s, int64_t indent, int level) {
    put_cstr(c, s, "\n");
    for (int64_t k = 0; k < indent * level; k++) {
        jinja_step(c);
        put_cstr(c, s, " ");
    }
}

void jv_tojson(jctx *c, jsink *s, const jval *v, int64_t indent, bool has_indent,
               const char *item_sep, const char *key_sep, bool sort_keys, bool ensure_ascii,
               int level) {
    jinja_step(c);
    if (level > 512) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "tojson: nesting too deep");
    char buf[64];
    switch (v->t) {
    case JV_NONE: put_cstr(c, s, "null"); return;
    case JV_BOOL: put_cstr(c, s, v->u.b ? "true" : "false"); return;
    case JV_INT: snprintf(buf, sizeof buf, "%lld", (long long)v->u.i); put_cstr(c, s, buf); return;
    case JV_FLOAT:
        if (isnan(v->u.f)) put_cstr(c, s, "NaN");
        else if (isinf(v->u.f)) put_cstr(c, s, v->u.f < 0 ? "-Infinity" : "Infinity");
        else { float_repr(v->u.f, buf, sizeof buf); put_cstr(c, s, buf); }
        return;
    case JV_STR: json_string(c, s, v, ensure_ascii); return;
    case JV_LIST:
        if (v->u.list.gen) break; /* not JSON serializable in Python either */
        if (v->u.list.n == 0) { put_cstr(c, s, "[]"); return; }
        put_cstr(c, s, "[");
        for (size_t i = 0; i < v->u.list.n; i++) {
            if (i) put_cstr(c, s, item_sep);
            if (has_indent) newline_indent(c, s, indent, level + 1);
            jv_tojson(c, s, v->u.list.items[i], indent, has_indent, item_sep, key_sep, sort_keys, ensure_ascii, level + 1);
        }
        if (has_indent) newline_indent(c, s, indent, level);
        put_cstr(c, s, "]");
        return;
    case JV_DICT: case JV_NS: {
        if (v->t == JV_NS) break;
        if (v->u.dict.n == 0) { put_cstr(c, s, "{}"); return; }
        size_t  n     = v->u.dict.n;
        size_t *order = ja_alloc_array(&c->arena, n, sizeof *order);
        for (size_t i = 0; i < n; i++) order[i] = i;
        if (sort_keys) /* insertion sort: dicts in templates are small; steps bound the rest */
            for (size_t i = 1; i < n; i++)
                for (size_t k = i; k > 0 && jv_compare(c, v->u.dict.keys[order[k - 1]], v->u.dict.keys[order[k]]) > 0; k--) {
                    jinja_step(c);
                    size_t t = order[k]; order[k] = order[k - 1]; order[k - 1] = t;
                }
        put_cstr(c, s, "{");
        for (size_t i = 0; i < n; i++) {
            const jval *k = v->u.dict.keys[order[i]];
            if (i) put_cstr(c, s, item_sep);
            if (has_indent) newline_indent(c, s, indent, level + 1);
            if (k->t == JV_STR) json_string(c, s, k, ensure_ascii);
            else if (k->t == JV_INT || k->t == JV_FLOAT || k->t == JV_BOOL || k->t == JV_NONE) {
                put_cstr(c, s, "\"");
                jv_tojson(c, s, k, 0, false, item_sep, key_sep, false, ensure_ascii, level + 1);
                put_cstr(c, s, "\"");
            } else jinja_fail(c, LLMRT_ERR_INVALID_ARG, "tojson: keys must be str, int, float, bool or None, not %s", jv_type_name(k));
            put_cstr(c, s, key_sep);
            jv_tojson(c, s, v->u.dict.vals[order[i]], indent, has_indent, item_sep, key_sep, sort_keys, ensure_ascii, level + 1);
        }
        if (has_indent) newline_indent(c, s, indent, level);
        put_cstr(c, s, "}");
        return;
    }
    default: break;
    }
    jinja_fail(c, LLMRT_ERR_INVALID_ARG, "Object of type %s is not JSON serializable", jv_type_name(v));
}
