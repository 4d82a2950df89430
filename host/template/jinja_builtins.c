/* Jinja builtins as HF chat templates use them: filters, tests, str/dict methods, attribute
 * lookup as jinja2's sandbox does it, and the globals range/namespace/dict plus HF's
 * raise_exception and strftime_now. Case mapping (upper, lower, title, capitalize) is ASCII:
 * other code points pass through unchanged, which keeps byte lengths and so taint spans. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/checked_math.h"
#include "jinja_internal.h"

size_t jinja_ws_len_at(const unsigned char *s, size_t n);
size_t jinja_ws_len_before(const unsigned char *s, size_t n);

/* ------------------------------------------------------------------------------------------ */
/* Argument helpers                                                                            */
/* ------------------------------------------------------------------------------------------ */

typedef struct bargs {
    jval      **pos;
    size_t      n_pos;
    const char **kw_names;
    jval      **kw_vals;
    size_t      n_kw;
} bargs;

/* Positional argument i or keyword `name`; NULL if neither. */
static jval *arg(const bargs *a, size_t i, const char *name) {
    for (size_t k = 0; k < a->n_kw; k++)
        if (name && strcmp(a->kw_names[k], name) == 0) return a->kw_vals[k];
    return i < a->n_pos ? a->pos[i] : NULL;
}

static jval *want_str(jctx *c, jval *v, const char *what) {
    if (v->t != JV_STR) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "%s expects a string, got %s", what, jv_type_name(v));
    return v;
}

static int64_t want_int(jctx *c, jval *v, const char *what) {
    if (v->t == JV_INT) return v->u.i;
    if (v->t == JV_BOOL) return v->u.b;
    jinja_fail(c, LLMRT_ERR_INVALID_ARG, "%s expects an integer, got %s", what, jv_type_name(v));
}

static jval *substr(jctx *c, jval *s, size_t b, size_t e) {
    jsink o = {0};
    jsink_put_sub(c, &o, s, b, e);
    return jsink_to_str(c, &o);
}

jval *jinja_iterable_list(jctx *c, jval *v) {
    switch (v->t) {
    case JV_LIST: return v;
    case JV_UNDEF: return jv_list(c, 0);
    case JV_DICT: case JV_NS: {
        jval *l = jv_list(c, v->u.dict.n);
        for (size_t i = 0; i < v->u.dict.n; i++) l->u.list.items[i] = v->u.dict.keys[i];
        return l;
    }
    case JV_STR: {
        size_t n = jv_utf8_count(v->u.str.s, v->u.str.len), k = 0;
        jval  *l = jv_list(c, n);
        for (size_t i = 0; i < v->u.str.len; k++) {
            jinja_step(c);
            size_t e = i + 1;
            while (e < v->u.str.len && ((unsigned char)v->u.str.s[e] & 0xc0) == 0x80) e++;
            l->u.list.items[k] = substr(c, v, i, e);
            i = e;
        }
        return l;
    }
    default: jinja_fail(c, LLMRT_ERR_INVALID_ARG, "'%s' object is not iterable", jv_type_name(v));
    }
}

/* ------------------------------------------------------------------------------------------ */
/* String operations (taint-preserving)                                                        */
/* ------------------------------------------------------------------------------------------ */

/* Python str.strip/lstrip/rstrip(chars): chars NULL = whitespace; else a set of code points. */
static bool in_charset(const char *p, size_t n, const jval *chars, size_t *w) {
    size_t cl = 1;
    while (cl < n && ((unsigned char)p[cl] & 0xc0) == 0x80) cl++;
    *w = cl;
    const char *s = chars->u.str.s;
    for (size_t i = 0; i < chars->u.str.len;) {
        size_t e = i + 1;
        while (e < chars->u.str.len && ((unsigned char)s[e] & 0xc0) == 0x80) e++;
        if (e - i == cl && memcmp(s + i, p, cl) == 0) return true;
        i = e;
    }
    return false;
}

static jval *strip(jctx *c, jval *s, const jval *chars, bool left, bool right) {
    const unsigned char *u = (const unsigned char *)s->u.str.s;
    size_t b = 0, e = s->u.str.len, w;
    if (chars && chars->t == JV_NONE) chars = NULL;
    if (left)
        for (;;) {
            if (b >= e) break;
            if (chars) {
                if (!in_charset((const char *)u + b, e - b, chars, &w)) break;
            } else if ((w = jinja_ws_len_at(u + b, e - b)) == 0) break;
            b += w;
        }
    if (right)
        while (e > b) {
            if (chars) {
                size_t st = e - 1;
                while (st > b && (u[st] & 0xc0) == 0x80) st--;
                if (!in_charset((const char *)u + st, e - st, chars, &w)) break;
                e = st;
            } else {
                if ((w = jinja_ws_len_before(u + b, e - b)) == 0) break;
                e -= w;
            }
        }
    return substr(c, s, b, e);
}

/* Python's case mapping for the two-byte UTF-8 letters whose mapping keeps two bytes: Latin-1,
 * Latin Extended-A, Greek (without accents or the final-sigma rule) and Cyrillic. Returns the
 * mapped code point, or cp itself; *cased tells whether cp is a cased letter (title()'s word
 * logic). Code points outside these ranges pass through unchanged, which keeps every string's
 * byte length and so its taint spans. */
static uint32_t map_case_2byte(uint32_t cp, bool upper, bool *cased) {
    bool pair_even_upper = (cp >= 0x100 && cp <= 0x137) || (cp >= 0x14a && cp <= 0x177);
    bool pair_odd_upper  = (cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17e);
    *cased = true;
    if ((cp >= 0xc0 && cp <= 0xde && cp != 0xd7)) return upper ? cp : cp + 0x20;
    if ((cp >= 0xe0 && cp <= 0xfe && cp != 0xf7)) return upper ? cp - 0x20 : cp;
    if (cp == 0xff) return upper ? 0x178 : cp;
    if (cp == 0x178) return upper ? cp : 0xff;
    if ((pair_even_upper || pair_odd_upper) && cp != 0x130 && cp != 0x131) {
        bool is_upper = pair_even_upper ? (cp % 2 == 0) : (cp % 2 == 1);
        if (upper) return is_upper ? cp : cp - 1;
        return is_upper ? cp + 1 : cp;
    }
    if (cp >= 0x391 && cp <= 0x3a9 && cp != 0x3a2) return upper ? cp : cp + 0x20;
    if (cp >= 0x3b1 && cp <= 0x3c9) return upper ? (cp == 0x3c2 ? 0x3a3 : cp - 0x20) : cp;
    if (cp >= 0x410 && cp <= 0x42f) return upper ? cp : cp + 0x20;
    if (cp >= 0x430 && cp <= 0x44f) return upper ? cp - 0x20 : cp;
    if (cp >= 0x400 && cp <= 0x40f) return upper ? cp : cp + 0x50;
    if (cp >= 0x450 && cp <= 0x45f) return upper ? cp - 0x50 : cp;
    *cased = cp == 0xb5 || cp == 0xdf || (cp >= 0x100 && cp <= 0x17f) || (cp >= 0x370 && cp <= 0x3ff) ||
             (cp >= 0x400 && cp <= 0x4ff);
    return cp;
}

/* mode: 0 lower, 1 upper, 2 capitalize, 3 str.title(), 4 jinja2's title filter */
static jval *ascii_map(jctx *c, jval *s, int mode) {
    jval          *r        = substr(c, s, 0, s->u.str.len);
    unsigned char *p        = (unsigned char *)r->u.str.s;
    bool           at_start = true;
    for (size_t i = 0; i < r->u.str.len; i++) {
        unsigned char ch = p[i];
        bool          up;
        switch (mode) {
        case 0: up = false; break;
        case 1: up = true; break;
        case 2: up = i == 0; break;
        default: up = at_start; break;
        }
        if (ch < 0x80) {
            bool alpha = isalpha(ch) != 0;
            p[i]       = (unsigned char)(up ? toupper(ch) : tolower(ch));
            if (mode == 3) at_start = !alpha;
            if (mode == 4) at_start = ch == '-' || isspace(ch) || ch == '(' || ch == '{' || ch == '[' || ch == '<';
            continue;
        }
        if (ch >= 0xc2 && ch <= 0xd3 && i + 1 < r->u.str.len && (p[i + 1] & 0xc0) == 0x80) {
            uint32_t cp = ((uint32_t)(ch & 0x1f) << 6) | (p[i + 1] & 0x3f);
            bool     cased;
            uint32_t m = map_case_2byte(cp, up, &cased);
            if (cp == 0xdf && up) { /* German sharp s: "SS", still two bytes */
                p[i] = 'S', p[i + 1] = 'S';
            } else if (m != cp) {
                p[i] = (unsigned char)(0xc0 | (m >> 6)), p[i + 1] = (unsigned char)(0x80 | (m & 0x3f));
            }
            i++;
            if (mode == 3) at_start = !cased;
            if (mode == 4) at_start = cp == 0x85 || cp == 0xa0;
            continue;
        }
        /* other code points: no mapping; for title(), an uncased character ends a word */
        if ((ch & 0xc0) != 0x80 && mode == 3) at_start = true;
        if ((ch & 0xc0) != 0x80 && mode == 4) at_start = false;
    }
    return r;
}

static jval *replace(jctx *c, jval *s, jval *old, jval *new_, int64_t count) {
    jsink o = {0};
    size_t i = 0, n = s->u.str.len, ol = old->u.str.len;
    int64_t done = 0;
    if (ol == 0) { /* Python inserts `new` between every code point and at both ends */
        for (;;) {
            if (count >= 0 && done >= count) break;
            jsink_put_str(c, &o, new_);
            done++;
            if (i >= n) break;
            size_t e = i + 1;
            while (e < n && ((unsigned char)s->u.str.s[e] & 0xc0) == 0x80) e++;
            jsink_put_sub(c, &o, s, i, e);
            i = e;
            jinja_step(c);
        }
        jsink_put_sub(c, &o, s, i, n);
        return jsink_to_str(c, &o);
    }
    while (i < n && (count < 0 || done < count)) {
        const char *hit = memmem(s->u.str.s + i, n - i, old->u.str.s, ol);
        if (!hit) break;
        size_t h = (size_t)(hit - s->u.str.s);
        jsink_put_sub(c, &o, s, i, h);
        jsink_put_str(c, &o, new_);
        i = h + ol;
        done++;
        jinja_step(c);
    }
    jsink_put_sub(c, &o, s, i, n);
    return jsink_to_str(c, &o);
}

static jval *split(jctx *c, jval *s, jval *sep, int64_t maxsplit) {
    size_t n = s->u.str.len, cnt = 0, cap = 8;
    jval **parts = ja_alloc_array(&c->arena, cap, sizeof *parts);
#define PUSH(v) do { if (cnt == cap) { jval **np = ja_alloc_array(&c->arena, cap * 2, sizeof *np); memcpy(np, parts, cnt * sizeof *np); parts = np; cap *= 2; } parts[cnt++] = (v); jinja_step(c); } while (0)
    const unsigned char *u = (const unsigned char *)s->u.str.s;
    if (!sep || sep->t == JV_NONE) { /* whitespace runs, no empty strings */
        size_t i = 0, w;
        int64_t done = 0;
        for (;;) {
            while (i < n && (w = jinja_ws_len_at(u + i, n - i)) > 0) i += w;
            if (i >= n) break;
            if (maxsplit >= 0 && done >= maxsplit) {
                size_t e = n;
                while (e > i && (w = jinja_ws_len_before(u + i, e - i)) > 0) e -= w;
                PUSH(substr(c, s, i, e));
                break;
            }
            size_t b = i;
            while (i < n && jinja_ws_len_at(u + i, n - i) == 0) i++;
            PUSH(substr(c, s, b, i));
            done++;
        }
    } else {
        want_str(c, sep, "split");
        if (sep->u.str.len == 0) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "empty separator");
        size_t i = 0;
        int64_t done = 0;
        for (;;) {
            const char *hit = (maxsplit < 0 || done < maxsplit)
                                  ? memmem(s->u.str.s + i, n - i, sep->u.str.s, sep->u.str.len) : NULL;
            if (!hit) {
                PUSH(substr(c, s, i, n));
                break;
            }
            size_t h = (size_t)(hit - s->u.str.s);
            PUSH(substr(c, s, i, h));
            i = h + sep->u.str.len;
            done++;
        }
    }
#undef PUSH
    jval *l = jv_list(c, cnt);
    memcpy(l->u.list.items, parts, cnt * sizeof *parts);
    return l;
}

static bool affix(jctx *c, jval *s, jval *fix, bool start) {
    if (fix->t == JV_LIST) {
        for (size_t i = 0; i < fix->u.list.n; i++)
            if (affix(c, s, fix->u.list.items[i], start)) return true;
        return false;
    }
    want_str(c, fix, start ? "startswith" : "endswith");
    size_t n = s->u.str.len, k = fix->u.str.len;
    if (k > n) return false;
    return memcmp(s->u.str.s + (start ? 0 : n - k), fix->u.str.s, k) == 0;
}

static jval *join(jctx *c, jval *seq, jval *sep, const char *attr);

/* ------------------------------------------------------------------------------------------ */
/* Attribute lookup and methods                                                                */
/* ------------------------------------------------------------------------------------------ */

static const char *const STR_METHODS[] = {"strip", "lstrip", "rstrip", "split", "startswith",
    "endswith", "upper", "lower", "replace", "title", "capitalize", "find", "rfind", "join",
    "count", "isdigit", "isalpha", "isspace", "format", NULL};
static const char *const DICT_METHODS[] = {"items", "keys", "values", "get", NULL};

static bool in_names(const char *const *names, const char *name) {
    for (size_t i = 0; names[i]; i++)
        if (strcmp(names[i], name) == 0) return true;
    return false;
}

static jval *method(jctx *c, jval *self, const char *name) {
    jval *f = ja_alloc(&c->arena, sizeof *f);
    f->t = JV_FUNC, f->u.fn.kind = JF_METHOD, f->u.fn.name = name, f->u.fn.self = self;
    return f;
}

jval *jinja_getattr(jctx *c, jval *obj, const char *name) {
    switch (obj->t) {
    case JV_DICT:
        if (in_names(DICT_METHODS, name)) return method(c, obj, name);
        /* a sandboxed getattr on a dict falls back to the item */
        __attribute__((fallthrough));
    case JV_NS: {
        jval *v = jv_dict_get(obj, name, strlen(name));
        return v ? v : jv_undef(c, name);
    }
    case JV_STR:
        if (in_names(STR_METHODS, name)) return method(c, obj, name);
        return jv_undef(c, name);
    case JV_UNDEF:
        jinja_fail(c, LLMRT_ERR_INVALID_ARG, "'%s' is undefined (reading .%s)", obj->u.undef_name ? obj->u.undef_name : "value", name);
    default:
        return jv_undef(c, name);
    }
}

/* getattr for filters' attribute= arguments: dotted paths, item first (jinja2 environment.getitem) */
static jval *attr_path(jctx *c, jval *obj, const char *path) {
    const char *p = path;
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t      n   = dot ? (size_t)(dot - p) : strlen(p);
        jval       *v   = NULL;
        if (obj->t == JV_DICT || obj->t == JV_NS) v = jv_dict_get(obj, p, n);
        else if (obj->t == JV_LIST && n > 0 && isdigit((unsigned char)p[0])) {
            size_t idx = (size_t)strtoull(p, NULL, 10);
            if (idx < obj->u.list.n) v = obj->u.list.items[idx];
        }
        if (!v) {
            if (obj->t == JV_UNDEF) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "'%s' is undefined", obj->u.undef_name ? obj->u.undef_name : "value");
            v = jv_undef(c, ja_strndup(&c->arena, p, n));
        }
        obj = v;
        if (!dot) break;
        p = dot + 1;
    }
    return obj;
}

/* str.format with {}, {N} and {name} fields and {{ }} escapes; format specs and conversions
 * (':', '!') are not implemented and fail. Arguments keep their taint. */
static jval *str_format(jctx *c, jval *self, bargs *a) {
    jsink       o = {0};
    const char *p = self->u.str.s;
    size_t      n = self->u.str.len, run = 0, auto_idx = 0;
    for (size_t i = 0; i < n; i++) {
        jinja_step(c);
        if ((p[i] == '{' || p[i] == '}') && i + 1 < n && p[i + 1] == p[i]) {
            jsink_put_sub(c, &o, self, run, i + 1);
            run = ++i + 1;
            continue;
        }
        if (p[i] == '}') jinja_fail(c, LLMRT_ERR_INVALID_ARG, "Single '}' encountered in format string");
        if (p[i] != '{') continue;
        const char *close = memchr(p + i, '}', n - i);
        if (!close) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "Single '{' encountered in format string");
        jsink_put_sub(c, &o, self, run, i);
        size_t      fb = i + 1, fe = (size_t)(close - p);
        jval       *v  = NULL;
        if (memchr(p + fb, ':', fe - fb) || memchr(p + fb, '!', fe - fb) || memchr(p + fb, '.', fe - fb) ||
            memchr(p + fb, '[', fe - fb))
            jinja_fail(c, LLMRT_ERR_INVALID_ARG, "str.format: format specs are not supported");
        if (fe == fb) {
            v = auto_idx < a->n_pos ? a->pos[auto_idx] : NULL;
            auto_idx++;
        } else if (isdigit((unsigned char)p[fb])) {
            size_t k = (size_t)strtoull(p + fb, NULL, 10);
            v = k < a->n_pos ? a->pos[k] : NULL;
        } else {
            for (size_t k = 0; k < a->n_kw; k++)
                if (strlen(a->kw_names[k]) == fe - fb && !memcmp(a->kw_names[k], p + fb, fe - fb)) v = a->kw_vals[k];
        }
        if (!v) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "str.format: no argument for field %zu", auto_idx);
        if (v->t != JV_UNDEF) jsink_put_str(c, &o, jv_to_str(c, v));
        i   = fe;
        run = fe + 1;
    }
    jsink_put_sub(c, &o, self, run, n);
    return jsink_to_str(c, &o);
}

static jval *call_method(jctx *c, jval *self, const char *name, bargs *a) {
    if (self->t == JV_DICT) {
        if (!strcmp(name, "items") || !strcmp(name, "keys") || !strcmp(name, "values")) {
            jval *l = jv_list(c, self->u.dict.n);
            for (size_t i = 0; i < self->u.dict.n; i++) {
                if (name[0] == 'k') l->u.list.items[i] = self->u.dict.keys[i];
                else if (name[0] == 'v') l->u.list.items[i] = self->u.dict.vals[i];
                else {
                    jval *pair = jv_list(c, 2);
                    pair->u.list.tuple = true;
                    pair->u.list.items[0] = self->u.dict.keys[i];
                    pair->u.list.items[1] = self->u.dict.vals[i];
                    l->u.list.items[i] = pair;
                }
            }
            return l;
        }
        if (!strcmp(name, "get")) {
            jval *k = arg(a, 0, "key");
            if (!k) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "get expected at least 1 argument");
            jval *v = jv_dict_get_v(self, k);
            if (v) return v;
            jval *d = arg(a, 1, "default");
            return d ? d : jv_none();
        }
    }
    /* string methods */
    if (!strcmp(name, "strip")) return strip(c, self, arg(a, 0, "chars"), true, true);
    if (!strcmp(name, "lstrip")) return strip(c, self, arg(a, 0, "chars"), true, false);
    if (!strcmp(name, "rstrip")) return strip(c, self, arg(a, 0, "chars"), false, true);
    if (!strcmp(name, "split")) {
        jval *ms = arg(a, 1, "maxsplit");
        return split(c, self, arg(a, 0, "sep"), ms ? want_int(c, ms, "maxsplit") : -1);
    }
    if (!strcmp(name, "startswith") || !strcmp(name, "endswith")) {
        jval *f = arg(a, 0, NULL);
        if (!f) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "%s takes a prefix", name);
        return jv_bool(affix(c, self, f, name[0] == 's'));
    }
    if (!strcmp(name, "upper")) return ascii_map(c, self, 1);
    if (!strcmp(name, "lower")) return ascii_map(c, self, 0);
    if (!strcmp(name, "capitalize")) return ascii_map(c, self, 2);
    if (!strcmp(name, "title")) return ascii_map(c, self, 3);
    if (!strcmp(name, "replace")) {
        jval *o = arg(a, 0, NULL), *n = arg(a, 1, NULL), *cnt = arg(a, 2, NULL);
        if (!o || !n) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "replace takes old and new");
        return replace(c, self, want_str(c, o, "replace"), want_str(c, n, "replace"), cnt ? want_int(c, cnt, "replace") : -1);
    }
    if (!strcmp(name, "find") || !strcmp(name, "rfind") || !strcmp(name, "count")) {
        jval *sub = want_str(c, arg(a, 0, NULL) ? arg(a, 0, NULL) : jv_none(), name);
        const char *s = self->u.str.s;
        size_t n = self->u.str.len, k = sub->u.str.len;
        int64_t found = -1, count = 0;
        for (size_t i = 0; i + k <= n; i++) {
            if (memcmp(s + i, sub->u.str.s, k) != 0) continue;
            if (name[0] == 'f') { found = (int64_t)jv_utf8_count(s, i); break; }
            found = (int64_t)jv_utf8_count(s, i);
            count++;
            if (k) i += k - 1;
        }
        return jv_int(c, name[0] == 'c' ? count : found);
    }
    if (!strcmp(name, "format")) return str_format(c, self, a);
    if (!strcmp(name, "join")) {
        jval *seq = arg(a, 0, NULL);
        if (!seq) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "join takes an iterable");
        return join(c, seq, self, NULL);
    }
    if (!strcmp(name, "isdigit") || !strcmp(name, "isalpha") || !strcmp(name, "isspace")) {
        if (self->u.str.len == 0) return jv_bool(false);
        for (size_t i = 0; i < self->u.str.len; i++) {
            unsigned char ch = (unsigned char)self->u.str.s[i];
            bool ok = name[2] == 'd' ? isdigit(ch) : name[2] == 'a' ? isalpha(ch) : isspace(ch);
            if (!ok) return jv_bool(false);
        }
        return jv_bool(true);
    }
    jinja_fail(c, LLMRT_ERR_INVALID_ARG, "'%s' object has no callable attribute '%s'", jv_type_name(self), name);
}

/* ------------------------------------------------------------------------------------------ */
/* Globals                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static const char *const GLOBALS[] = {"range", "namespace", "raise_exception", "strftime_now", "dict", NULL};

jval *jinja_global(jctx *c, const char *name) {
    for (size_t i = 0; GLOBALS[i]; i++)
        if (strcmp(GLOBALS[i], name) == 0) {
            jval *f = ja_alloc(&c->arena, sizeof *f);
            f->t = JV_FUNC, f->u.fn.kind = JF_BUILTIN, f->u.fn.name = GLOBALS[i];
            return f;
        }
    return NULL;
}

jval *jinja_call_builtin(jctx *c, jval *fn, jval **args, size_t n_args, const char **kw_names,
                         jval **kw_vals, size_t n_kw) {
    bargs a = {args, n_args, kw_names, kw_vals, n_kw};
    if (fn->u.fn.kind == JF_METHOD) return call_method(c, fn->u.fn.self, fn->u.fn.name, &a);
    if (fn->u.fn.kind == JF_LOOP_CYCLE) {
        if (n_args == 0) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "no items for cycling given");
        return args[(size_t)fn->u.fn.self->u.i % n_args];
    }
    const char *name = fn->u.fn.name;
    if (!strcmp(name, "raise_exception")) {
        jval *m = n_args ? jv_to_str(c, args[0]) : jv_str(c, "", 0);
        jinja_fail(c, LLMRT_ERR_INVALID_ARG, "raise_exception: %s", m->u.str.s);
    }
    if (!strcmp(name, "range")) {
        if (n_args < 1 || n_args > 3) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "range expects 1 to 3 arguments");
        int64_t start = 0, stop, step = 1;
        if (n_args == 1) stop = want_int(c, args[0], "range");
        else start = want_int(c, args[0], "range"), stop = want_int(c, args[1], "range");
        if (n_args == 3) step = want_int(c, args[2], "range");
        if (step == 0) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "range() arg 3 must not be zero");
        uint64_t count = 0;
        if (step > 0 && start < stop) count = ((uint64_t)stop - (uint64_t)start - 1) / (uint64_t)step + 1;
        if (step < 0 && start > stop) count = ((uint64_t)start - (uint64_t)stop - 1) / ((uint64_t)(-(step + 1)) + 1) + 1;
        /* the sandbox caps ranges at MAX_RANGE (100000) */
        if (count > 100000) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "range too big");
        jval *l = jv_list(c, (size_t)count);
        for (uint64_t i = 0; i < count; i++) {
            jinja_step(c);
            /* in unsigned arithmetic: i * step may exceed int64 while start + i * step does not */
            l->u.list.items[i] = jv_int(c, (int64_t)((uint64_t)start + i * (uint64_t)step));
        }
        return l;
    }
    if (!strcmp(name, "namespace") || !strcmp(name, "dict")) {
        jval *d = jv_dict(c, n_kw + 4);
        if (n_args > 1) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "%s takes at most one positional argument", name);
        if (n_args == 1) {
            if (args[0]->t != JV_DICT) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "%s expects a mapping", name);
            for (size_t i = 0; i < args[0]->u.dict.n; i++) jv_dict_set(c, d, args[0]->u.dict.keys[i], args[0]->u.dict.vals[i]);
        }
        for (size_t i = 0; i < n_kw; i++) jv_dict_set(c, d, jv_str(c, kw_names[i], strlen(kw_names[i])), kw_vals[i]);
        if (name[0] == 'n') d->t = JV_NS;
        return d;
    }
    if (!strcmp(name, "strftime_now")) {
        if (n_args != 1) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "strftime_now takes a format");
        want_str(c, args[0], "strftime_now");
        struct tm tm;
        bool      ok;
        if (c->params->now) {
            ok = c->params->now(c->params->now_user, &tm);
        } else {
            time_t t = time(NULL);
            ok       = localtime_r(&t, &tm) != NULL;
        }
        if (!ok) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "strftime_now: no clock");
        char buf[256];
        size_t n = args[0]->u.str.len ? strftime(buf, sizeof buf, args[0]->u.str.s, &tm) : 0;
        if (args[0]->u.str.len && n == 0) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "strftime_now: format too long");
        return jv_str(c, buf, n);
    }
    jinja_fail(c, LLMRT_ERR_INTERNAL, "unknown builtin %s", name);
}

/* ------------------------------------------------------------------------------------------ */
/* Tests                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static const char *const TESTS[] = {"defined", "undefined", "none", "string", "number", "integer",
    "float", "mapping", "iterable", "sequence", "boolean", "true", "false", "equalto", "eq", "==",
    "ne", "!=", "lt", "<", "le", "<=", "gt", ">", "ge", ">=", "in", "odd", "even", "divisibleby",
    "callable", "lower", "upper", "sameas", NULL};

bool jinja_has_test(const char *name) { return in_names(TESTS, name); }

bool jinja_test(jctx *c, const char *name, jval *v, jval **args, size_t n_args) {
    jval *x = n_args ? args[0] : NULL;
    if (!strcmp(name, "defined")) return v->t != JV_UNDEF;
    if (!strcmp(name, "undefined")) return v->t == JV_UNDEF;
    if (!strcmp(name, "none")) return v->t == JV_NONE;
    if (!strcmp(name, "string")) return v->t == JV_STR;
    if (!strcmp(name, "number")) return jv_is_number(v);
    if (!strcmp(name, "integer")) return v->t == JV_INT;
    if (!strcmp(name, "float")) return v->t == JV_FLOAT;
    if (!strcmp(name, "mapping")) return v->t == JV_DICT;
    /* jinja2's Undefined is iterable and has __len__/__getitem__ */
    if (!strcmp(name, "iterable")) return v->t == JV_STR || v->t == JV_LIST || v->t == JV_DICT || v->t == JV_UNDEF;
    if (!strcmp(name, "sequence")) return v->t == JV_STR || (v->t == JV_LIST && !v->u.list.gen) || v->t == JV_DICT || v->t == JV_UNDEF;
    if (!strcmp(name, "boolean")) return v->t == JV_BOOL;
    if (!strcmp(name, "true")) return v->t == JV_BOOL && v->u.b;
    if (!strcmp(name, "false")) return v->t == JV_BOOL && !v->u.b;
    if (!strcmp(name, "callable")) return v->t == JV_FUNC;
    if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
        if (v->t != JV_STR) return false;
        jval *m = ascii_map(c, v, name[0] == 'l' ? 0 : 1);
        return jv_equal(m, v);
    }
    /* value % 2 == 1, value % num == 0 with Python's modulo (floats too) */
    if (!strcmp(name, "odd") || !strcmp(name, "even")) {
        if (!jv_is_number(v)) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "%s expects a number, got %s", name, jv_type_name(v));
        if (v->t == JV_FLOAT) {
            double m = fmod(v->u.f, 2.0);
            if (m < 0) m += 2.0;
            return name[0] == 'o' ? m == 1.0 : m == 0.0;
        }
        int64_t i = want_int(c, v, name);
        return (i % 2 != 0) == (name[0] == 'o');
    }
    if (!x) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "test '%s' takes an argument", name);
    if (!strcmp(name, "divisibleby")) {
        if (!jv_is_number(v) || !jv_is_number(x)) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "divisibleby expects numbers");
        if (v->t == JV_FLOAT || x->t == JV_FLOAT) {
            if (jv_as_double(x) == 0.0) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "float modulo");
            return fmod(jv_as_double(v), jv_as_double(x)) == 0.0;
        }
        int64_t d = want_int(c, x, name);
        if (d == 0) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "integer division or modulo by zero");
        if (d == -1) return true;
        return want_int(c, v, name) % d == 0;
    }
    if (!strcmp(name, "equalto") || !strcmp(name, "eq") || !strcmp(name, "==")) return jv_equal(v, x);
    if (!strcmp(name, "ne") || !strcmp(name, "!=")) return !jv_equal(v, x);
    if (!strcmp(name, "sameas")) return v == x || (v->t == x->t && (v->t == JV_NONE || (v->t == JV_BOOL && v->u.b == x->u.b)));
    if (!strcmp(name, "lt") || !strcmp(name, "<")) return jv_compare(c, v, x) < 0;
    if (!strcmp(name, "le") || !strcmp(name, "<=")) return jv_compare(c, v, x) <= 0;
    if (!strcmp(name, "gt") || !strcmp(name, ">")) return jv_compare(c, v, x) > 0;
    if (!strcmp(name, "ge") || !strcmp(name, ">=")) return jv_compare(c, v, x) >= 0;
    if (!strcmp(name, "in")) {
        if (x->t == JV_STR) return v->t == JV_STR && memmem(x->u.str.s, x->u.str.len, v->u.str.s, v->u.str.len) != NULL;
        jval *l = jinja_iterable_list(c, x);
        if (x->t == JV_DICT) return jv_dict_get_v(x, v) != NULL;
        for (size_t i = 0; i < l->u.list.n; i++)
            if (jv_equal(l->u.list.items[i], v)) return true;
        return false;
    }
    jinja_fail(c, LLMRT_ERR_INTERNAL, "unknown test %s", name);
}

/* ------------------------------------------------------------------------------------------ */
/* Filters                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static const char *const FILTERS[] = {"trim", "escape", "e", "tojson", "length", "count", "upper", "lower",
    "capitalize", "title", "items", "first", "last", "join", "default", "d", "replace", "string",
    "int", "float", "list", "map", "select", "reject", "selectattr", "rejectattr", "unique", "sort",
    "indent", "round", "abs", "safe", "reverse", "dictsort", "sum", "min", "max", "wordcount", NULL};

bool jinja_has_filter(const char *name) { return in_names(FILTERS, name); }

static jval *join(jctx *c, jval *seq, jval *sep, const char *attr) {
    jval *l = jinja_iterable_list(c, seq);
    jsink o = {0};
    for (size_t i = 0; i < l->u.list.n; i++) {
        jinja_step(c);
        if (i && sep) jsink_put_str(c, &o, sep);
        jval *item = attr ? attr_path(c, l->u.list.items[i], attr) : l->u.list.items[i];
        if (item->t != JV_UNDEF) jsink_put_str(c, &o, jv_to_str(c, item));
    }
    return jsink_to_str(c, &o);
}

static int64_t length_of(jctx *c, jval *v) {
    if (v->t == JV_LIST && v->u.list.gen) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "object of type 'generator' has no len()");
    switch (v->t) {
    case JV_STR: return (int64_t)jv_utf8_count(v->u.str.s, v->u.str.len);
    case JV_LIST: return (int64_t)v->u.list.n;
    case JV_DICT: case JV_NS: return (int64_t)v->u.dict.n;
    case JV_UNDEF: return 0;
    default: jinja_fail(c, LLMRT_ERR_INVALID_ARG, "object of type '%s' has no len()", jv_type_name(v));
    }
}

/* Sort key for sort/unique: lowercased strings unless case_sensitive. */
static jval *sort_key(jctx *c, jval *v, const char *attr, bool case_sensitive) {
    if (attr) v = attr_path(c, v, attr);
    if (!case_sensitive && v->t == JV_STR) v = ascii_map(c, v, 0);
    return v;
}

static jval *select_filter(jctx *c, jval *seq, bargs *a, bool attr_mode, bool keep) {
    jval  *l = jinja_iterable_list(c, seq);
    jval  *out = jv_list(c, l->u.list.n);
    size_t k = 0, first = 0;
    const char *attr = NULL;
    if (attr_mode) {
        if (a->n_pos < 1) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "selectattr/rejectattr need an attribute");
        attr  = want_str(c, a->pos[0], "selectattr")->u.str.s;
        first = 1;
    }
    const char *test = NULL;
    if (a->n_pos > first) test = want_str(c, a->pos[first], "select test")->u.str.s;
    if (test && !jinja_has_test(test)) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "no test named '%s'", test);
    for (size_t i = 0; i < l->u.list.n; i++) {
        jinja_step(c);
        jval *item = l->u.list.items[i];
        jval *v    = attr ? attr_path(c, item, attr) : item;
        bool  r    = test ? jinja_test(c, test, v, a->pos + first + 1, a->n_pos - first - 1) : jv_truthy(v);
        if (r == keep) out->u.list.items[k++] = item;
    }
    out->u.list.n = k;
    return out;
}

static jval *filter_impl(jctx *c, const char *name, jval *v, jval **args, size_t n_args,
                         const char **kw_names, jval **kw_vals, size_t n_kw);

/* jinja2's map, select, reject, selectattr, rejectattr, unique and items yield generators */
jval *jinja_filter(jctx *c, const char *name, jval *v, jval **args, size_t n_args,
                   const char **kw_names, jval **kw_vals, size_t n_kw) {
    jval *r = filter_impl(c, name, v, args, n_args, kw_names, kw_vals, n_kw);
    if (r->t == JV_LIST && (!strcmp(name, "map") || !strcmp(name, "select") || !strcmp(name, "reject") ||
                            !strcmp(name, "selectattr") || !strcmp(name, "rejectattr") ||
                            !strcmp(name, "unique") || !strcmp(name, "items"))) {
        jval *g = ja_alloc(&c->arena, sizeof *g);
        *g = *r;
        g->u.list.gen = true, g->u.list.tuple = false;
        return g;
    }
    return r;
}

static jval *filter_impl(jctx *c, const char *name, jval *v, jval **args, size_t n_args,
                         const char **kw_names, jval **kw_vals, size_t n_kw) {
    bargs a = {args, n_args, kw_names, kw_vals, n_kw};
    if (!strcmp(name, "safe")) {
        jval *s = ja_alloc(&c->arena, sizeof *s);
        *s = *(v->t == JV_UNDEF ? jv_str(c, "", 0) : jv_to_str(c, v));
        s->u.str.safe = true;
        return s;
    }
    /* jinja2's select/reject/map start with `if value:`: a falsy input is an empty result */
    if (!jv_truthy(v) && (!strcmp(name, "select") || !strcmp(name, "reject") || !strcmp(name, "selectattr") ||
                          !strcmp(name, "rejectattr") || !strcmp(name, "map")))
        return jv_list(c, 0);
    if (!strcmp(name, "default") || !strcmp(name, "d")) {
        jval *dv = arg(&a, 0, "default_value"), *boolean = arg(&a, 1, "boolean");
        bool  use = v->t == JV_UNDEF || (boolean && jv_truthy(boolean) && !jv_truthy(v));
        return use ? (dv ? dv : jv_str(c, "", 0)) : v;
    }
    if (!strcmp(name, "length") || !strcmp(name, "count")) return jv_int(c, length_of(c, v));
    if (!strcmp(name, "string")) return v->t == JV_UNDEF ? jv_str(c, "", 0) : jv_to_str(c, v);
    if (!strcmp(name, "tojson")) {
        jval *ind = arg(&a, 1, "indent"), *seps = arg(&a, 2, "separators"), *sk = arg(&a, 3, "sort_keys");
        jval *ea = arg(&a, 0, "ensure_ascii");
        bool    has_indent = ind && ind->t != JV_NONE;
        int64_t indent     = has_indent ? want_int(c, ind, "tojson indent") : 0;
        if (indent < 0) indent = 0;
        const char *item_sep = has_indent ? "," : ", ", *key_sep = ": ";
        if (seps && seps->t == JV_LIST && seps->u.list.n == 2) {
            item_sep = want_str(c, seps->u.list.items[0], "separators")->u.str.s;
            key_sep  = want_str(c, seps->u.list.items[1], "separators")->u.str.s;
        }
        jsink o = {0};
        jv_tojson(c, &o, v, indent, has_indent, item_sep, key_sep, sk && jv_truthy(sk), ea && jv_truthy(ea), 0);
        return jsink_to_str(c, &o);
    }
    if (!strcmp(name, "items")) {
        if (v->t == JV_UNDEF) return jv_list(c, 0);
        if (v->t != JV_DICT) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "items filter expects a mapping, got %s", jv_type_name(v));
        return call_method(c, v, "items", &a);
    }
    if (!strcmp(name, "list")) {
        jval *l = jinja_iterable_list(c, v);
        if (!l->u.list.gen && !l->u.list.tuple) return l;
        jval *copy = ja_alloc(&c->arena, sizeof *copy);
        *copy = *l;
        copy->u.list.gen = copy->u.list.tuple = false;
        return copy;
    }
    if (!strcmp(name, "first") || !strcmp(name, "last")) {
        jval *l = jinja_iterable_list(c, v);
        if (name[0] == 'l' && l->u.list.gen) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "'generator' object is not reversible");
        if (l->u.list.n == 0) return jv_undef(c, name);
        return l->u.list.items[name[0] == 'f' ? 0 : l->u.list.n - 1];
    }
    if (!strcmp(name, "reverse")) {
        jval *l = jinja_iterable_list(c, v), *r = jv_list(c, l->u.list.n);
        for (size_t i = 0; i < l->u.list.n; i++) r->u.list.items[i] = l->u.list.items[l->u.list.n - 1 - i];
        if (v->t == JV_STR) return join(c, r, NULL, NULL);
        return r;
    }
    if (!strcmp(name, "join")) {
        jval *sep = arg(&a, 0, "d"), *attr = arg(&a, 1, "attribute");
        return join(c, v, sep ? jv_to_str(c, sep) : NULL, attr ? want_str(c, attr, "join attribute")->u.str.s : NULL);
    }
    if (!strcmp(name, "map")) {
        jval *l = jinja_iterable_list(c, v), *r = jv_list(c, l->u.list.n);
        jval *attr = arg(&a, SIZE_MAX, "attribute"), *dflt = arg(&a, SIZE_MAX, "default");
        for (size_t i = 0; i < l->u.list.n; i++) {
            jinja_step(c);
            if (attr) {
                jval *x = attr_path(c, l->u.list.items[i], want_str(c, attr, "map attribute")->u.str.s);
                r->u.list.items[i] = (x->t == JV_UNDEF && dflt) ? dflt : x;
            } else {
                if (n_args < 1) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "map needs a filter name or attribute=");
                const char *f = want_str(c, args[0], "map")->u.str.s;
                if (!jinja_has_filter(f)) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "no filter named '%s'", f);
                r->u.list.items[i] = jinja_filter(c, f, l->u.list.items[i], args + 1, n_args - 1, kw_names, kw_vals, n_kw);
            }
        }
        return r;
    }
    if (!strcmp(name, "select")) return select_filter(c, v, &a, false, true);
    if (!strcmp(name, "reject")) return select_filter(c, v, &a, false, false);
    if (!strcmp(name, "selectattr")) return select_filter(c, v, &a, true, true);
    if (!strcmp(name, "rejectattr")) return select_filter(c, v, &a, true, false);
    if (!strcmp(name, "unique") || !strcmp(name, "sort") || !strcmp(name, "dictsort") ||
        !strcmp(name, "min") || !strcmp(name, "max")) {
        bool        is_sort = name[0] == 's', is_dictsort = name[0] == 'd';
        jval       *cs = arg(&a, is_sort ? 1 : 0, "case_sensitive"), *at = arg(&a, is_sort ? 2 : 1, "attribute");
        jval       *rev = is_sort ? arg(&a, 0, "reverse") : NULL;
        const char *attr = at && at->t == JV_STR ? at->u.str.s : NULL;
        bool        case_sensitive = cs && jv_truthy(cs);
        jval       *l = is_dictsort ? call_method(c, v, "items", &(bargs){0}) : jinja_iterable_list(c, v);
        size_t      n = l->u.list.n;
        jval      **items = ja_alloc_array(&c->arena, n ? n : 1, sizeof *items);
        jval      **keys  = ja_alloc_array(&c->arena, n ? n : 1, sizeof *keys);
        size_t      k = 0;
        for (size_t i = 0; i < n; i++) {
            jval *item = l->u.list.items[i];
            jval *key  = is_dictsort ? sort_key(c, item->u.list.items[0], NULL, case_sensitive) : sort_key(c, item, attr, case_sensitive);
            if (name[0] == 'u') {
                bool seen = false;
                for (size_t q = 0; q < k && !seen; q++) {
                    jinja_step(c);
                    seen = jv_equal(keys[q], key);
                }
                if (seen) continue;
            }
            items[k] = item, keys[k] = key, k++;
        }
        if (name[0] == 'u') {
            jval *r = jv_list(c, k);
            memcpy(r->u.list.items, items, k * sizeof *items);
            return r;
        }
        bool desc = rev && jv_truthy(rev);
        for (size_t i = 1; i < k; i++) /* stable insertion sort, steps-bounded */
            for (size_t q = i; q > 0; q--) {
                jinja_step(c);
                int cmp = jv_compare(c, keys[q - 1], keys[q]);
                if (desc ? cmp >= 0 : cmp <= 0) break;
                jval *t = items[q]; items[q] = items[q - 1]; items[q - 1] = t;
                t = keys[q]; keys[q] = keys[q - 1]; keys[q - 1] = t;
            }
        if (!strcmp(name, "min")) return k ? items[0] : jv_undef(c, "min");
        if (!strcmp(name, "max")) return k ? items[k - 1] : jv_undef(c, "max");
        jval *r = jv_list(c, k);
        memcpy(r->u.list.items, items, k * sizeof *items);
        return r;
    }
    if (!strcmp(name, "sum")) {
        jval *l = jinja_iterable_list(c, v), *attr = arg(&a, 0, "attribute"), *acc = arg(&a, 1, "start");
        if (!acc) acc = jv_int(c, 0);
        for (size_t i = 0; i < l->u.list.n; i++) {
            jval *x = attr ? attr_path(c, l->u.list.items[i], want_str(c, attr, "sum")->u.str.s) : l->u.list.items[i];
            if (!jv_is_number(x) || !jv_is_number(acc)) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "sum expects numbers");
            if (x->t == JV_FLOAT || acc->t == JV_FLOAT) acc = jv_float(c, jv_as_double(acc) + jv_as_double(x));
            else {
                int64_t r;
                if (!ck_add_i64(acc->u.i, x->t == JV_INT ? x->u.i : x->u.b, &r)) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "integer overflow in sum");
                acc = jv_int(c, r);
            }
        }
        return acc;
    }
    if (!strcmp(name, "abs")) {
        if (v->t == JV_FLOAT) return jv_float(c, fabs(v->u.f));
        int64_t i = want_int(c, v, "abs");
        if (i == INT64_MIN) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "integer overflow in abs");
        return jv_int(c, i < 0 ? -i : i);
    }
    if (!strcmp(name, "round")) {
        jval   *pr = arg(&a, 0, "precision"), *me = arg(&a, 1, "method");
        int64_t p  = pr ? want_int(c, pr, "round") : 0;
        if (!jv_is_number(v)) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "round expects a number");
        const char *method = me ? want_str(c, me, "round")->u.str.s : "common";
        /* Python's round() of an int (or bool) is that int; floor/ceil go through floats */
        if (v->t != JV_FLOAT && !strcmp(method, "common") && p >= 0) return jv_int(c, v->t == JV_INT ? v->u.i : v->u.b);
        double x = jv_as_double(v), m = pow(10.0, (double)p);
        double r = !strcmp(method, "floor") ? floor(x * m) / m : !strcmp(method, "ceil") ? ceil(x * m) / m : nearbyint(x * m) / m;
        return jv_float(c, r);
    }
    if (!strcmp(name, "int")) {
        jval *dflt = arg(&a, 0, "default");
        if (v->t == JV_INT) return v;
        if (v->t == JV_BOOL) return jv_int(c, v->u.b);
        if (v->t == JV_FLOAT && isfinite(v->u.f) && fabs(v->u.f) < 9.2e18) return jv_int(c, (int64_t)v->u.f);
        if (v->t == JV_STR) {
            char *end;
            errno = 0;
            long long r = strtoll(v->u.str.s, &end, 10);
            while (*end && isspace((unsigned char)*end)) end++;
            if (end != v->u.str.s && *end == '\0' && errno == 0) return jv_int(c, r);
            double d = strtod(v->u.str.s, &end);
            if (end != v->u.str.s && *end == '\0' && isfinite(d) && fabs(d) < 9.2e18) return jv_int(c, (int64_t)d);
        }
        return dflt ? dflt : jv_int(c, 0);
    }
    if (!strcmp(name, "float")) {
        jval *dflt = arg(&a, 0, "default");
        if (jv_is_number(v)) return jv_float(c, jv_as_double(v));
        if (v->t == JV_STR) {
            char  *end;
            double d = strtod(v->u.str.s, &end);
            if (end != v->u.str.s && *end == '\0') return jv_float(c, d);
        }
        return dflt ? dflt : jv_float(c, 0.0);
    }
    if (!strcmp(name, "wordcount")) {
        jval *l = split(c, jv_to_str(c, v), NULL, -1);
        return jv_int(c, (int64_t)l->u.list.n);
    }
    /* string filters: the operand as str (undefined is "") */
    jval *s = v->t == JV_UNDEF ? jv_str(c, "", 0) : jv_to_str(c, v);
    if (!strcmp(name, "trim")) return strip(c, s, arg(&a, 0, "chars"), true, true);
    if (!strcmp(name, "escape") || !strcmp(name, "e")) {
        if (s->u.str.safe) return s;
        jval *e = ja_alloc(&c->arena, sizeof *e);
        *e = *jinja_html_escape(c, s);
        e->u.str.safe = true;
        return e;
    }
    if (!strcmp(name, "upper")) return ascii_map(c, s, 1);
    if (!strcmp(name, "lower")) return ascii_map(c, s, 0);
    if (!strcmp(name, "capitalize")) return ascii_map(c, s, 2);
    if (!strcmp(name, "title")) return ascii_map(c, s, 4);
    if (!strcmp(name, "replace")) {
        jval *o = arg(&a, 0, "old"), *n = arg(&a, 1, "new"), *cnt = arg(&a, 2, "count");
        if (!o || !n) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "replace takes old and new");
        return replace(c, s, jv_to_str(c, o), jv_to_str(c, n), cnt && cnt->t != JV_NONE ? want_int(c, cnt, "replace") : -1);
    }
    if (!strcmp(name, "indent")) {
        /* jinja2 does `s += "\n"` without converting: anything but a string raises */
        if (v->t != JV_STR) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "unsupported operand type(s) for +=: '%s' and 'str'", jv_type_name(v));
        jval *w = arg(&a, 0, "width"), *first = arg(&a, 1, "first"), *blank = arg(&a, 2, "blank");
        jval *ind;
        if (w && w->t == JV_STR) ind = w;
        else {
            int64_t width = w ? want_int(c, w, "indent") : 4;
            if (width < 0) width = 0;
            if (c->arena.cap && (uint64_t)width > c->arena.cap) jinja_fail(c, LLMRT_ERR_ABORTED, "indent too wide");
            char *sp = ja_alloc(&c->arena, (size_t)width + 1);
            memset(sp, ' ', (size_t)width);
            ind = jv_str(c, sp, (size_t)width);
        }
        /* s + "\n", then splitlines() */
        jsink tmp = {0};
        jsink_put_str(c, &tmp, s);
        jsink_put(c, &tmp, "\n", 1, false);
        jval *t = jsink_to_str(c, &tmp);
        size_t nl = 0, cap = 8;
        size_t *lb = ja_alloc_array(&c->arena, cap, sizeof *lb), *le = ja_alloc_array(&c->arena, cap, sizeof *le);
        const unsigned char *u = (const unsigned char *)t->u.str.s;
        size_t n = t->u.str.len, i = 0, b = 0;
        while (i < n) {
            size_t brk = 0;
            if (u[i] == '\r' && i + 1 < n && u[i + 1] == '\n') brk = 2;
            else if (u[i] == '\n' || u[i] == '\r' || u[i] == 0x0b || u[i] == 0x0c || (u[i] >= 0x1c && u[i] <= 0x1e)) brk = 1;
            else if (i + 1 < n && u[i] == 0xc2 && u[i + 1] == 0x85) brk = 2;
            else if (i + 2 < n && u[i] == 0xe2 && u[i + 1] == 0x80 && (u[i + 2] == 0xa8 || u[i + 2] == 0xa9)) brk = 3;
            if (!brk) { i++; continue; }
            if (nl == cap) {
                size_t *nb = ja_alloc_array(&c->arena, cap * 2, sizeof *nb), *ne = ja_alloc_array(&c->arena, cap * 2, sizeof *ne);
                memcpy(nb, lb, nl * sizeof *nb), memcpy(ne, le, nl * sizeof *ne);
                lb = nb, le = ne, cap *= 2;
            }
            lb[nl] = b, le[nl] = i, nl++;
            i += brk, b = i;
            jinja_step(c);
        }
        if (b < n) { /* cannot happen: the text ends with "\n" */ }
        jsink o = {0};
        if (first && jv_truthy(first)) jsink_put_str(c, &o, ind);
        for (size_t q = 0; q < nl; q++) {
            if (q) jsink_put(c, &o, "\n", 1, false);
            bool blank_line = lb[q] == le[q];
            if (q > 0 && (!blank_line || (blank && jv_truthy(blank)))) jsink_put_str(c, &o, ind);
            jsink_put_sub(c, &o, t, lb[q], le[q]);
        }
        return jsink_to_str(c, &o);
    }
    jinja_fail(c, LLMRT_ERR_INTERNAL, "unknown filter %s", name);
}
