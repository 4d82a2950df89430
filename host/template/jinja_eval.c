/* Jinja evaluator: expressions, statements, scopes, macros, and the parse/render entry points.
 *
 * Scopes follow jinja2: a for loop's body gets a fresh scope per iteration (a `set` inside a
 * loop does not leak out, hence namespace()), `if` does not open one, a macro's body runs in a
 * scope whose parent is where the macro was defined. Every evaluation costs a step; the render
 * fails once the step budget, the output cap or the memory cap is exceeded. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/checked_math.h"
#include "jinja_internal.h"

typedef enum flow { FLOW_NORMAL, FLOW_BREAK, FLOW_CONTINUE } flow;

void jinja_step(jctx *c) {
    if (++c->steps > c->params->max_steps)
        jinja_fail(c, LLMRT_ERR_ABORTED, "the render exceeded its budget of %llu steps",
                   (unsigned long long)c->params->max_steps);
}

/* ------------------------------------------------------------------------------------------ */
/* Scopes                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static jscope *scope_new(jctx *c, jscope *parent) {
    jscope *s = ja_alloc(&c->arena, sizeof *s);
    s->parent = parent;
    return s;
}

static void scope_set(jctx *c, jscope *s, const char *name, jval *v) {
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->names[i], name) == 0) {
            s->vals[i] = v;
            return;
        }
    if (s->n == s->cap) {
        size_t       cap   = s->cap ? s->cap * 2 : 8;
        const char **names = ja_alloc_array(&c->arena, cap, sizeof *names);
        jval       **vals  = ja_alloc_array(&c->arena, cap, sizeof *vals);
        if (s->n) {
            memcpy(names, s->names, s->n * sizeof *names);
            memcpy(vals, s->vals, s->n * sizeof *vals);
        }
        s->names = names, s->vals = vals, s->cap = cap;
    }
    s->names[s->n] = name;
    s->vals[s->n++] = v;
}

jval *jinja_lookup(jscope *sc, const char *name) {
    for (; sc; sc = sc->parent)
        for (size_t i = 0; i < sc->n; i++)
            if (strcmp(sc->names[i], name) == 0) return sc->vals[i];
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Operators                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static jval *concat_str(jctx *c, jval *a, jval *b) {
    jsink s = {0};
    jsink_put_str(c, &s, a);
    jsink_put_str(c, &s, b);
    return jsink_to_str(c, &s);
}

_Noreturn static void type_error(jctx *c, const char *op, const jval *a, const jval *b) {
    if (a->t == JV_UNDEF || b->t == JV_UNDEF) {
        const jval *u = a->t == JV_UNDEF ? a : b;
        jinja_fail(c, LLMRT_ERR_INVALID_ARG, "'%s' is undefined", u->u.undef_name ? u->u.undef_name : "value");
    }
    jinja_fail(c, LLMRT_ERR_INVALID_ARG, "unsupported operand type(s) for %s: '%s' and '%s'", op,
               jv_type_name(a), jv_type_name(b));
}

static bool contains(jctx *c, jval *hay, jval *needle) {
    switch (hay->t) {
    case JV_STR:
        if (needle->t != JV_STR)
            jinja_fail(c, LLMRT_ERR_INVALID_ARG, "'in <string>' requires string as left operand, not %s", jv_type_name(needle));
        if (needle->u.str.len == 0) return true;
        return memmem(hay->u.str.s, hay->u.str.len, needle->u.str.s, needle->u.str.len) != NULL;
    case JV_LIST:
        for (size_t i = 0; i < hay->u.list.n; i++) {
            jinja_step(c);
            if (jv_equal(hay->u.list.items[i], needle)) return true;
        }
        return false;
    case JV_DICT: case JV_NS: return jv_dict_get_v(hay, needle) != NULL;
    case JV_UNDEF: return false;
    default:
        jinja_fail(c, LLMRT_ERR_INVALID_ARG, "argument of type '%s' is not iterable", jv_type_name(hay));
    }
}

/* markupsafe.escape: & < > " ' as HTML entities; an entity for content bytes is content. */
jval *jinja_html_escape(jctx *c, jval *v) {
    jsink  s = {0};
    size_t run = 0, n = v->u.str.len;
    for (size_t i = 0; i <= n; i++) {
        char        ch  = i < n ? v->u.str.s[i] : 0;
        const char *ent = i == n ? NULL : ch == '&' ? "&amp;" : ch == '<' ? "&lt;" : ch == '>' ? "&gt;"
                        : ch == '"' ? "&#34;" : ch == '\'' ? "&#39;" : NULL;
        if (i == n || ent) {
            jsink_put_sub(c, &s, v, run, i);
            if (ent) jsink_put(c, &s, ent, strlen(ent), v->u.str.nsp > 0);
            run = i + 1;
        }
    }
    return jsink_to_str(c, &s);
}

static jval *arith(jctx *c, jop op, jval *a, jval *b) {
    static const char *const sym[] = {[OP_ADD] = "+", [OP_SUB] = "-", [OP_MUL] = "*", [OP_DIV] = "/",
                                      [OP_FLOORDIV] = "//", [OP_MOD] = "%", [OP_POW] = "**"};
    if (op == OP_ADD && a->t == JV_STR && b->t == JV_STR) {
        if (!a->u.str.safe && !b->u.str.safe) return concat_str(c, a, b);
        /* Markup + str escapes the str, and so does str + Markup */
        jval *r = concat_str(c, a->u.str.safe ? a : jinja_html_escape(c, a), b->u.str.safe ? b : jinja_html_escape(c, b));
        r->u.str.safe = true;
        return r;
    }
    if (op == OP_ADD && a->t == JV_LIST && b->t == JV_LIST && !a->u.list.gen && !b->u.list.gen) {
        uint64_t n;
        if (!ck_add_u64(a->u.list.n, b->u.list.n, &n)) jinja_fail(c, LLMRT_ERR_ABORTED, "list too large");
        jval *l = jv_list(c, (size_t)n);
        for (size_t i = 0; i < a->u.list.n; i++) l->u.list.items[i] = a->u.list.items[i];
        for (size_t i = 0; i < b->u.list.n; i++) l->u.list.items[a->u.list.n + i] = b->u.list.items[i];
        return l;
    }
    if (op == OP_MUL && ((a->t == JV_STR && (b->t == JV_INT || b->t == JV_BOOL)) ||
                         ((a->t == JV_INT || a->t == JV_BOOL) && b->t == JV_STR))) {
        jval   *s = a->t == JV_STR ? a : b, *num = a->t == JV_STR ? b : a;
        int64_t k = num->t == JV_INT ? num->u.i : num->u.b;
        jsink   out = {0};
        uint64_t total;
        if (k > 0 && (!ck_mul_u64(s->u.str.len, (uint64_t)k, &total) || (c->arena.cap && total > c->arena.cap)))
            jinja_fail(c, LLMRT_ERR_ABORTED, "string repetition too large");
        for (int64_t i = 0; i < k; i++) {
            jinja_step(c);
            jsink_put_str(c, &out, s);
        }
        return jsink_to_str(c, &out);
    }
    if (!jv_is_number(a) || !jv_is_number(b)) type_error(c, sym[op], a, b);
    if (a->t != JV_FLOAT && b->t != JV_FLOAT && op != OP_DIV) {
        int64_t x = a->t == JV_INT ? a->u.i : a->u.b, y = b->t == JV_INT ? b->u.i : b->u.b, r = 0;
        bool    ok = true;
        switch (op) {
        case OP_ADD: ok = ck_add_i64(x, y, &r); break;
        case OP_SUB: ok = !__builtin_sub_overflow(x, y, &r); break;
        case OP_MUL: ok = ck_mul_i64(x, y, &r); break;
        case OP_FLOORDIV: case OP_MOD:
            if (y == 0) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "integer division or modulo by zero");
            if (x == INT64_MIN && y == -1) { ok = false; break; }
            r = op == OP_FLOORDIV ? x / y : x % y;
            if (op == OP_FLOORDIV && (x % y != 0) && ((x < 0) != (y < 0))) r--;
            if (op == OP_MOD && r != 0 && ((r < 0) != (y < 0))) r += y;
            break;
        case OP_POW:
            if (y < 0) return jv_float(c, pow((double)x, (double)y));
            r = 1;
            for (int64_t k = 0; k < y && ok; k++) {
                jinja_step(c);
                ok = ck_mul_i64(r, x, &r);
            }
            break;
        default: break;
        }
        if (!ok) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "integer overflow in '%s'", sym[op]);
        return jv_int(c, r);
    }
    double x = jv_as_double(a), y = jv_as_double(b);
    switch (op) {
    case OP_ADD: return jv_float(c, x + y);
    case OP_SUB: return jv_float(c, x - y);
    case OP_MUL: return jv_float(c, x * y);
    case OP_DIV:
        if (y == 0) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "division by zero");
        return jv_float(c, x / y);
    case OP_FLOORDIV:
        if (y == 0) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "float floor division by zero");
        return jv_float(c, floor(x / y));
    case OP_MOD: {
        if (y == 0) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "float modulo");
        double r = fmod(x, y);
        if (r != 0 && ((r < 0) != (y < 0))) r += y;
        return jv_float(c, r);
    }
    case OP_POW: return jv_float(c, pow(x, y));
    default: return jv_none();
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Subscripts                                                                                  */
/* ------------------------------------------------------------------------------------------ */

static jval *index_value(jctx *c, jval *obj, jval *key) {
    if (obj->t == JV_UNDEF)
        jinja_fail(c, LLMRT_ERR_INVALID_ARG, "'%s' is undefined", obj->u.undef_name ? obj->u.undef_name : "value");
    /* jinja2's getitem turns Python's TypeError/LookupError (a generator, an int, a bad key)
     * into Undefined; only Undefined itself raises */
    if (obj->t == JV_LIST && obj->u.list.gen) return jv_undef(c, "item");
    if ((obj->t == JV_LIST || obj->t == JV_STR) && (key->t == JV_INT || key->t == JV_BOOL)) {
        int64_t i = key->t == JV_INT ? key->u.i : key->u.b;
        size_t  n = obj->t == JV_LIST ? obj->u.list.n : jv_utf8_count(obj->u.str.s, obj->u.str.len);
        if (i < 0) i += (int64_t)n;
        if (i < 0 || (uint64_t)i >= n) return jv_undef(c, "index out of range");
        if (obj->t == JV_LIST) return obj->u.list.items[i];
        size_t b = jv_utf8_offset(obj->u.str.s, obj->u.str.len, (size_t)i);
        size_t e = jv_utf8_offset(obj->u.str.s, obj->u.str.len, (size_t)i + 1);
        jsink  s = {0};
        jsink_put_sub(c, &s, obj, b, e);
        return jsink_to_str(c, &s);
    }
    if (obj->t == JV_DICT || obj->t == JV_NS) {
        jval *v = jv_dict_get_v(obj, key);
        if (v) return v;
    }
    /* jinja2's getitem falls back to an attribute for string keys */
    if (key->t == JV_STR) return jinja_getattr(c, obj, key->u.str.s);
    return jv_undef(c, "item");
}

/* Python slice indices for a sequence of n: start/stop clamped, step != 0. */
static jval *slice_value(jctx *c, jval *obj, jval *vs, jval *ve, jval *vstep) {
    if (obj->t == JV_UNDEF)
        jinja_fail(c, LLMRT_ERR_INVALID_ARG, "'%s' is undefined", obj->u.undef_name ? obj->u.undef_name : "value");
    /* unlike an index, jinja2 compiles a slice to Python's own obj[a:b:c]: a TypeError raises */
    if (obj->t == JV_DICT || obj->t == JV_NS) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "unhashable type: 'slice'");
    if ((obj->t != JV_LIST && obj->t != JV_STR) || (obj->t == JV_LIST && obj->u.list.gen))
        jinja_fail(c, LLMRT_ERR_INVALID_ARG, "'%s' object is not subscriptable", jv_type_name(obj));
    jval *bounds[3] = {vs, ve, vstep};
    for (int k = 0; k < 3; k++)
        if (bounds[k] && bounds[k]->t != JV_INT && bounds[k]->t != JV_NONE && bounds[k]->t != JV_BOOL)
            jinja_fail(c, LLMRT_ERR_INVALID_ARG, "slice indices must be integers or None");
    int64_t n    = obj->t == JV_LIST ? (int64_t)obj->u.list.n : (int64_t)jv_utf8_count(obj->u.str.s, obj->u.str.len);
    int64_t step = (vstep && vstep->t == JV_INT) ? vstep->u.i : (vstep && vstep->t == JV_BOOL) ? vstep->u.b : 1;
    if (step == 0) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "slice step cannot be zero");
    if (step == INT64_MIN) step = -INT64_MAX;
    int64_t start, stop;
    if (vs && vs->t == JV_BOOL) vs = jv_int(c, vs->u.b);
    if (ve && ve->t == JV_BOOL) ve = jv_int(c, ve->u.b);
    bool    has_s = vs && vs->t == JV_INT, has_e = ve && ve->t == JV_INT;
    if (step > 0) {
        start = has_s ? vs->u.i : 0;
        stop  = has_e ? ve->u.i : n;
        if (start < 0) start = start + n < 0 ? 0 : start + n;
        if (start > n) start = n;
        if (stop < 0) stop = stop + n < 0 ? 0 : stop + n;
        if (stop > n) stop = n;
    } else {
        start = has_s ? vs->u.i : n - 1;
        stop  = has_e ? ve->u.i : -1;
        if (has_s) {
            if (start < 0) start = start + n < 0 ? -1 : start + n;
            if (start >= n) start = n - 1;
        }
        if (has_e) {
            if (stop < 0) stop = stop + n < 0 ? -1 : stop + n;
            if (stop >= n) stop = n - 1;
        }
    }
    size_t count = 0;
    if (step > 0 && start < stop) count = (size_t)((stop - start - 1) / step + 1);
    if (step < 0 && start > stop) count = (size_t)((start - stop - 1) / (-step) + 1);
    if (obj->t == JV_LIST) {
        jval *l = jv_list(c, count);
        for (size_t k = 0; k < count; k++) {
            jinja_step(c);
            l->u.list.items[k] = obj->u.list.items[start + (int64_t)k * step];
        }
        return l;
    }
    /* strings: code point positions -> byte ranges */
    size_t *offs = ja_alloc_array(&c->arena, (size_t)n + 1, sizeof *offs);
    size_t  k = 0;
    for (size_t i = 0; i < obj->u.str.len; i++)
        if (((unsigned char)obj->u.str.s[i] & 0xc0) != 0x80) offs[k++] = i;
    offs[k] = obj->u.str.len;
    jsink s = {0};
    if (step == 1) {
        if (count) jsink_put_sub(c, &s, obj, offs[start], offs[stop]);
    } else {
        for (size_t q = 0; q < count; q++) {
            jinja_step(c);
            int64_t i = start + (int64_t)q * step;
            jsink_put_sub(c, &s, obj, offs[i], offs[i + 1]);
        }
    }
    return jsink_to_str(c, &s);
}

/* ------------------------------------------------------------------------------------------ */
/* Expressions                                                                                 */
/* ------------------------------------------------------------------------------------------ */

typedef struct call_args {
    jval      **pos;
    size_t      n_pos;
    const char **kw_names;
    jval      **kw_vals;
    size_t      n_kw;
} call_args;

static call_args eval_args(jctx *c, jscope *sc, const jnode *n, jval *first) {
    call_args a = {0};
    size_t    extra = first ? 1 : 0;
    a.pos   = ja_alloc_array(&c->arena, n->n_args + extra + 1, sizeof(jval *));
    if (first) a.pos[0] = first;
    for (size_t i = 0; i < n->n_args; i++) a.pos[extra + i] = jinja_eval(c, sc, n->args[i]);
    a.n_pos    = n->n_args + extra;
    a.kw_names = n->names;
    a.kw_vals  = ja_alloc_array(&c->arena, n->n_args2 + 1, sizeof(jval *));
    for (size_t i = 0; i < n->n_args2; i++) a.kw_vals[i] = jinja_eval(c, sc, n->args2[i]);
    a.n_kw = n->n_args2;
    return a;
}

static jval *call_value(jctx *c, jval *fn, call_args *a) {
    if (fn->t != JV_FUNC) {
        if (fn->t == JV_UNDEF)
            jinja_fail(c, LLMRT_ERR_INVALID_ARG, "'%s' is undefined", fn->u.undef_name ? fn->u.undef_name : "value");
        jinja_fail(c, LLMRT_ERR_INVALID_ARG, "'%s' object is not callable", jv_type_name(fn));
    }
    if (fn->u.fn.kind == JF_MACRO)
        return jinja_call_macro(c, fn, a->pos, a->n_pos, a->kw_names, a->kw_vals, a->n_kw);
    return jinja_call_builtin(c, fn, a->pos, a->n_pos, a->kw_names, a->kw_vals, a->n_kw);
}

static jval *eval_filter(jctx *c, jscope *sc, const jnode *n, jval *operand) {
    call_args a = eval_args(c, sc, n, NULL);
    return jinja_filter(c, n->name, operand, a.pos, a.n_pos, a.kw_names, a.kw_vals, a.n_kw);
}

jval *jinja_eval(jctx *c, jscope *sc, const jnode *n) {
    jinja_step(c);
    c->line = n->line;
    switch (n->kind) {
    case N_LITERAL: return n->lit;
    case N_NAME: {
        jval *v = jinja_lookup(sc, n->name);
        if (v) return v;
        v = jinja_global(c, n->name);
        return v ? v : jv_undef(c, n->name);
    }
    case N_LIST: {
        jval *l = jv_list(c, n->n_args);
        for (size_t i = 0; i < n->n_args; i++) l->u.list.items[i] = jinja_eval(c, sc, n->args[i]);
        l->u.list.tuple = n->negated; /* N_LIST reuses `negated` for "is a tuple" */
        return l;
    }
    case N_DICT: {
        jval *d = jv_dict(c, n->n_args);
        for (size_t i = 0; i < n->n_args; i++) {
            jval *k = jinja_eval(c, sc, n->args[i]);
            jv_dict_set(c, d, k, jinja_eval(c, sc, n->args2[i]));
        }
        return d;
    }
    case N_ATTR: {
        jval *obj = jinja_eval(c, sc, n->a);
        c->line   = n->line;
        if (obj->t == JV_UNDEF)
            jinja_fail(c, LLMRT_ERR_INVALID_ARG, "'%s' is undefined (reading .%s)",
                       obj->u.undef_name ? obj->u.undef_name : "value", n->name);
        return jinja_getattr(c, obj, n->name);
    }
    case N_INDEX: {
        jval *obj = jinja_eval(c, sc, n->a);
        jval *key = jinja_eval(c, sc, n->b);
        c->line   = n->line;
        return index_value(c, obj, key);
    }
    case N_SLICE: {
        jval *obj = jinja_eval(c, sc, n->a);
        jval *s = n->b ? jinja_eval(c, sc, n->b) : NULL, *e = n->c ? jinja_eval(c, sc, n->c) : NULL;
        jval *st = n->d ? jinja_eval(c, sc, n->d) : NULL;
        c->line = n->line;
        return slice_value(c, obj, s, e, st);
    }
    case N_CALL: {
        jval     *fn = jinja_eval(c, sc, n->a);
        call_args a  = eval_args(c, sc, n, NULL);
        c->line      = n->line;
        return call_value(c, fn, &a);
    }
    case N_FILTER: {
        jval *v = jinja_eval(c, sc, n->a);
        return eval_filter(c, sc, n, v);
    }
    case N_TEST: {
        jval *v = n->a ? jinja_eval(c, sc, n->a) : jv_none();
        /* `x is defined` must not fail on an undefined x: evaluation above yields Undefined */
        call_args a = eval_args(c, sc, n, NULL);
        c->line     = n->line;
        bool r      = jinja_test(c, n->name, v, a.pos, a.n_pos);
        return jv_bool(n->negated ? !r : r);
    }
    case N_UNARY: {
        jval *v = jinja_eval(c, sc, n->a);
        if (n->op == OP_NOT) return jv_bool(!jv_truthy(v));
        if (!jv_is_number(v)) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "bad operand type for unary %s: '%s'", n->op == OP_NEG ? "-" : "+", jv_type_name(v));
        if (n->op == OP_POS) return v->t == JV_BOOL ? jv_int(c, v->u.b) : v;
        if (v->t == JV_FLOAT) return jv_float(c, -v->u.f);
        int64_t i = v->t == JV_INT ? v->u.i : v->u.b;
        if (i == INT64_MIN) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "integer overflow in unary -");
        return jv_int(c, -i);
    }
    case N_BINARY: {
        if (n->op == OP_AND || n->op == OP_OR) { /* Python: the deciding operand itself */
            jval *a = jinja_eval(c, sc, n->a);
            if (jv_truthy(a) == (n->op == OP_OR)) return a;
            return jinja_eval(c, sc, n->b);
        }
        jval *a = jinja_eval(c, sc, n->a);
        jval *b = jinja_eval(c, sc, n->b);
        c->line = n->line;
        switch (n->op) {
        case OP_EQ: return jv_bool(jv_equal(a, b));
        case OP_NE: return jv_bool(!jv_equal(a, b));
        case OP_LT: return jv_bool(jv_compare(c, a, b) < 0);
        case OP_LE: return jv_bool(jv_compare(c, a, b) <= 0);
        case OP_GT: return jv_bool(jv_compare(c, a, b) > 0);
        case OP_GE: return jv_bool(jv_compare(c, a, b) >= 0);
        case OP_IN: return jv_bool(contains(c, b, a));
        case OP_NOTIN: return jv_bool(!contains(c, b, a));
        case OP_CONCAT: return concat_str(c, jv_to_str(c, a), jv_to_str(c, b));
        default: return arith(c, n->op, a, b);
        }
    }
    case N_COND: {
        if (jv_truthy(jinja_eval(c, sc, n->a))) return jinja_eval(c, sc, n->b);
        return n->c ? jinja_eval(c, sc, n->c) : jv_undef(c, "else branch");
    }
    default: jinja_fail(c, LLMRT_ERR_INTERNAL, "statement node in an expression");
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Statements                                                                                  */
/* ------------------------------------------------------------------------------------------ */

static flow exec_body(jctx *c, jscope *sc, jnode *const *body, size_t n, jsink *out);

static void emit(jctx *c, jsink *out, jval *v) {
    if (v->t == JV_UNDEF) return;
    jsink_put_str(c, out, jv_to_str(c, v));
    if (out == c->out && out->len > c->params->max_output_bytes)
        jinja_fail(c, LLMRT_ERR_ABORTED, "the output exceeds its cap of %zu bytes", c->params->max_output_bytes);
}

static void assign_targets(jctx *c, jscope *sc, const char *const *names, size_t n_names, jval *v) {
    if (n_names == 1) {
        scope_set(c, sc, names[0], v);
        return;
    }
    jval *l = jinja_iterable_list(c, v);
    if (l->u.list.n != n_names)
        jinja_fail(c, LLMRT_ERR_INVALID_ARG, "cannot unpack %zu values into %zu names", l->u.list.n, n_names);
    for (size_t i = 0; i < n_names; i++) scope_set(c, sc, names[i], l->u.list.items[i]);
}

static jval *loop_object(jctx *c, jval *items, size_t i, size_t n) {
    jval *d = jv_dict(c, 10);
#define SETK(k, v) jv_dict_set(c, d, jv_str(c, k, strlen(k)), v)
    SETK("index", jv_int(c, (int64_t)i + 1));
    SETK("index0", jv_int(c, (int64_t)i));
    SETK("revindex", jv_int(c, (int64_t)(n - i)));
    SETK("revindex0", jv_int(c, (int64_t)(n - i - 1)));
    SETK("first", jv_bool(i == 0));
    SETK("last", jv_bool(i + 1 == n));
    SETK("length", jv_int(c, (int64_t)n));
    SETK("depth", jv_int(c, 1));
    SETK("depth0", jv_int(c, 0));
    SETK("previtem", i > 0 ? items->u.list.items[i - 1] : jv_undef(c, "loop.previtem"));
    SETK("nextitem", i + 1 < n ? items->u.list.items[i + 1] : jv_undef(c, "loop.nextitem"));
    jval *cycle        = ja_alloc(&c->arena, sizeof *cycle); /* loop.cycle(a, b, ...) */
    cycle->t           = JV_FUNC;
    cycle->u.fn.kind   = JF_LOOP_CYCLE;
    cycle->u.fn.name   = "loop.cycle";
    cycle->u.fn.self   = jv_int(c, (int64_t)i);
    SETK("cycle", cycle);
#undef SETK
    return d;
}

static flow exec_for(jctx *c, jscope *sc, const jnode *n, jsink *out) {
    jval *items = jinja_iterable_list(c, jinja_eval(c, sc, n->a));
    if (n->b) { /* the loop filter runs before loop.* are computed, as in jinja2 */
        jval  *kept = jv_list(c, items->u.list.n);
        size_t k    = 0;
        for (size_t i = 0; i < items->u.list.n; i++) {
            jscope *fs = scope_new(c, sc);
            assign_targets(c, fs, n->names, n->n_names, items->u.list.items[i]);
            if (jv_truthy(jinja_eval(c, fs, n->b))) kept->u.list.items[k++] = items->u.list.items[i];
        }
        kept->u.list.n = k;
        items          = kept;
    }
    size_t count = items->u.list.n;
    for (size_t i = 0; i < count; i++) {
        jinja_step(c);
        jscope *it = scope_new(c, sc);
        scope_set(c, it, "loop", loop_object(c, items, i, count));
        assign_targets(c, it, n->names, n->n_names, items->u.list.items[i]);
        flow f = exec_body(c, it, n->args, n->n_args, out);
        if (f == FLOW_BREAK) break;
    }
    if (count == 0 && n->n_args2) return exec_body(c, sc, n->args2, n->n_args2, out);
    return FLOW_NORMAL;
}

static flow exec_stmt(jctx *c, jscope *sc, const jnode *n, jsink *out) {
    jinja_step(c);
    c->line = n->line;
    switch (n->kind) {
    case N_TEXT:
        jsink_put_str(c, out, n->lit);
        if (out == c->out && out->len > c->params->max_output_bytes)
            jinja_fail(c, LLMRT_ERR_ABORTED, "the output exceeds its cap of %zu bytes", c->params->max_output_bytes);
        return FLOW_NORMAL;
    case N_OUTPUT: emit(c, out, jinja_eval(c, sc, n->a)); return FLOW_NORMAL;
    case N_BLOCK: /* `negated`: a {% generation %} body, which has its own scope */
        return exec_body(c, n->negated ? scope_new(c, sc) : sc, n->args, n->n_args, out);
    case N_IF:
        if (jv_truthy(jinja_eval(c, sc, n->a))) return exec_body(c, sc, n->args, n->n_args, out);
        return exec_body(c, sc, n->args2, n->n_args2, out);
    case N_FOR: return exec_for(c, sc, n, out);
    case N_BREAK: return FLOW_BREAK;
    case N_CONTINUE: return FLOW_CONTINUE;
    case N_SET: {
        jval *v = jinja_eval(c, sc, n->a);
        c->line = n->line;
        if (n->attr) {
            jval *ns = jinja_lookup(sc, n->name);
            if (!ns || ns->t != JV_NS)
                jinja_fail(c, LLMRT_ERR_INVALID_ARG, "cannot assign attribute on non-namespace object '%s'", n->name);
            jv_dict_set(c, ns, jv_str(c, n->attr, strlen(n->attr)), v);
        } else {
            assign_targets(c, sc, n->names, n->n_names, v);
        }
        return FLOW_NORMAL;
    }
    case N_SET_BLOCK: case N_FILTER_BLOCK: {
        jsink body = {0};
        exec_body(c, sc, n->args, n->n_args, &body);
        jval *v = jsink_to_str(c, &body);
        /* filters chain: innermost operand (a == NULL) is the block text */
        const jnode *chain[64];
        size_t       depth = 0;
        for (const jnode *f = n->b; f && depth < 64; f = f->a) chain[depth++] = f;
        while (depth > 0) v = eval_filter(c, sc, chain[--depth], v);
        if (n->kind == N_FILTER_BLOCK) emit(c, out, v);
        else scope_set(c, sc, n->names[0], v);
        return FLOW_NORMAL;
    }
    case N_MACRO: {
        jval *fn           = ja_alloc(&c->arena, sizeof *fn);
        fn->t              = JV_FUNC;
        fn->u.fn.kind      = JF_MACRO;
        fn->u.fn.name      = n->name;
        fn->u.fn.macro     = n;
        fn->u.fn.closure   = sc;
        scope_set(c, sc, n->name, fn);
        return FLOW_NORMAL;
    }
    default: jinja_fail(c, LLMRT_ERR_INTERNAL, "expression node as a statement");
    }
}

static flow exec_body(jctx *c, jscope *sc, jnode *const *body, size_t n, jsink *out) {
    for (size_t i = 0; i < n; i++) {
        flow f = exec_stmt(c, sc, body[i], out);
        if (f != FLOW_NORMAL) return f;
    }
    return FLOW_NORMAL;
}

jval *jinja_call_macro(jctx *c, jval *fn, jval **args, size_t n_args, const char **kw_names,
                       jval **kw_vals, size_t n_kw) {
    const jnode *m = fn->u.fn.macro;
    if (n_args > m->n_names)
        jinja_fail(c, LLMRT_ERR_INVALID_ARG, "macro '%s' takes not more than %zu argument(s)", m->name, m->n_names);
    if (++c->depth > 64) jinja_fail(c, LLMRT_ERR_ABORTED, "macro recursion deeper than 64");
    jscope *sc = scope_new(c, fn->u.fn.closure);
    for (size_t i = 0; i < m->n_names; i++) {
        jval *v = i < n_args ? args[i] : NULL;
        for (size_t k = 0; k < n_kw; k++)
            if (strcmp(kw_names[k], m->names[i]) == 0) v = kw_vals[k];
        if (!v) v = m->args2[i] ? jinja_eval(c, sc, m->args2[i]) : jv_undef(c, m->names[i]);
        scope_set(c, sc, m->names[i], v);
    }
    for (size_t k = 0; k < n_kw; k++) {
        bool known = false;
        for (size_t i = 0; i < m->n_names; i++) known |= strcmp(kw_names[k], m->names[i]) == 0;
        if (!known) jinja_fail(c, LLMRT_ERR_INVALID_ARG, "macro '%s' takes no keyword argument '%s'", m->name, kw_names[k]);
    }
    jsink out = {0};
    exec_body(c, sc, m->args, m->n_args, &out);
    c->depth--;
    return jsink_to_str(c, &out);
}

/* ------------------------------------------------------------------------------------------ */
/* Entry points                                                                                */
/* ------------------------------------------------------------------------------------------ */

llmrt_jinja_params llmrt_jinja_default_params(void) {
    return (llmrt_jinja_params){
        .max_steps        = 10 * 1000 * 1000,
        .max_output_bytes = (size_t)16 << 20,
        .max_memory_bytes = (size_t)256 << 20,
    };
}

llmrt_status llmrt_jinja_parse(const char *src, size_t len, const char *what,
                               llmrt_jinja_template **out, llmrt_error *err) {
    if (!out || (!src && len)) return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "jinja parse: bad arguments");
    *out = NULL;
    llmrt_jinja_template *t = calloc(1, sizeof *t);
    if (!t) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "jinja parse: out of memory");
    llmrt_error local = {0};
    jmp_buf     fail;
    t->arena.fail = &fail;
    t->arena.err  = &local;
    t->arena.cap  = (size_t)256 << 20;
    if (setjmp(fail)) {
        ja_free_all(&t->arena);
        free(t);
        return llmrt_err(err, local.status, "%s: %s", what ? what : "chat template", local.msg);
    }
    jlexed lx;
    jinja_lex(&t->arena, src ? src : "", len, &lx);
    t->root = jinja_parse_tokens(&t->arena, &lx);
    t->arena.fail = NULL;
    t->arena.err  = NULL;
    *out = t;
    return LLMRT_OK;
}

void llmrt_jinja_template_free(llmrt_jinja_template *t) {
    if (!t) return;
    ja_free_all(&t->arena);
    free(t);
}

llmrt_status llmrt_jinja_render(const llmrt_jinja_template *t, const cJSON *vars,
                                const llmrt_jinja_params *params, llmrt_jinja_output *out,
                                llmrt_error *err) {
    if (!out) return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "jinja render: out is NULL");
    memset(out, 0, sizeof *out);
    if (!t || (vars && !cJSON_IsObject(vars)))
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "jinja render: needs a template and a JSON object of variables");
    llmrt_jinja_params defaults = llmrt_jinja_default_params();
    jctx *c = calloc(1, sizeof *c); /* jmp_buf is large: keep it off the caller's stack */
    if (!c) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "jinja render: out of memory");
    llmrt_error local = {0};
    c->err        = &local;
    c->params     = params ? params : &defaults;
    c->arena.fail = &c->fail;
    c->arena.err  = &local;
    c->arena.cap  = c->params->max_memory_bytes;
    llmrt_status st = LLMRT_OK;
    if (setjmp(c->fail)) {
        st = llmrt_err(err, local.status, "%s", local.msg);
        goto done;
    }
    c->globals = scope_new(c, NULL);
    for (const cJSON *e = vars ? vars->child : NULL; e; e = e->next) {
        if (!e->string) continue;
        jval *v;
        /* Every string value inside messages is the caller's text (content, but also roles,
         * names, tool calls: a caller may pass any role now), so all of it is tainted; special
         * tokens come only from the template's own text and the *_token variables. Dict keys
         * stay untainted: a template prints them as field names, never user text. The tools
         * (descriptions, parameter names) and documents come from the caller too. */
        bool callers = !strcmp(e->string, "messages") || !strcmp(e->string, "tools") ||
                       !strcmp(e->string, "documents");
        v = jv_from_json(c, e, callers);
        scope_set(c, c->globals, ja_strndup(&c->arena, e->string, strlen(e->string)), v);
    }
    jsink sink = {0};
    c->out     = &sink;
    exec_body(c, c->globals, t->root->args, t->root->n_args, &sink);
    out->text = malloc(sink.len + 1);
    out->spans = malloc((sink.nsp ? sink.nsp : 1) * sizeof *out->spans);
    if (!out->text || !out->spans) {
        free(out->text), free(out->spans);
        memset(out, 0, sizeof *out);
        st = llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "jinja render: out of memory");
        goto done;
    }
    if (sink.len) memcpy(out->text, sink.buf, sink.len);
    out->text[sink.len] = '\0';
    out->len            = sink.len;
    for (size_t i = 0; i < sink.nsp; i++) out->spans[i] = (llmrt_jinja_span){sink.sp[i].b, sink.sp[i].e};
    out->n_spans = sink.nsp;
done:
    ja_free_all(&c->arena);
    free(c);
    return st;
}

void llmrt_jinja_output_free(llmrt_jinja_output *o) {
    if (!o) return;
    free(o->text);
    free(o->spans);
    memset(o, 0, sizeof *o);
}
