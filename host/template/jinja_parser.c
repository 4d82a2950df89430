/* Jinja parser: tokens -> AST, following jinja2/parser.py's grammar and precedence:
 *   expr    := or ['if' or ['else' expr]]
 *   or      := and ('or' and)*          and := not ('and' not)*     not := 'not' not | compare
 *   compare := math1 (('=='|'!='|'<'|'<='|'>'|'>='|'in'|'not' 'in') math1)*
 *   math1   := concat (('+'|'-') concat)*   concat := math2 ('~' math2)*
 *   math2   := pow (('*'|'/'|'//'|'%') pow)*   pow := unary ('**' unary)*
 *   unary   := ('-'|'+') unary_nofilter | primary postfix* filters
 * Statements the interpreter does not implement (include, import, extends, block, call, filter,
 * with, recursive loops, *args) fail here with the construct and line, never at render time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_internal.h"

typedef struct parser {
    ja_arena    *arena;
    const jtok  *t;
    size_t       n, i;
    int          depth; /* nesting of expressions and blocks: bounded, so a hostile template
                         * cannot exhaust the C stack here or in the evaluator */
} parser;

#define MAX_NESTING 200

_Noreturn static void pfail(parser *p, llmrt_status st, const char *fmt, const char *a) {
    llmrt_err(p->arena->err, st, fmt, p->t[p->i].line, a);
    longjmp(*p->arena->fail, 1);
}

static const jtok *cur(parser *p) { return &p->t[p->i]; }
static const jtok *peek(parser *p, size_t k) {
    return p->i + k < p->n ? &p->t[p->i + k] : &p->t[p->n - 1];
}

static bool is_op(const jtok *t, const char *op) {
    return t->kind == T_OP && t->len == strlen(op) && memcmp(t->s, op, t->len) == 0;
}
static bool is_name(const jtok *t, const char *name) {
    return t->kind == T_NAME && strcmp(t->s, name) == 0;
}

static bool accept_op(parser *p, const char *op) {
    if (!is_op(cur(p), op)) return false;
    p->i++;
    return true;
}
static bool accept_name(parser *p, const char *name) {
    if (!is_name(cur(p), name)) return false;
    p->i++;
    return true;
}

static const char *tok_desc(parser *p) {
    const jtok *t = cur(p);
    switch (t->kind) {
    case T_NAME: case T_OP: return ja_strndup(p->arena, t->s, t->len);
    case T_STRING: return "a string";
    case T_INT: case T_FLOAT: return "a number";
    case T_VAR_END: return "}}";
    case T_BLOCK_END: return "%}";
    case T_EOF: return "the end of the template";
    default: return "template text";
    }
}

static void expect_op(parser *p, const char *op) {
    if (!accept_op(p, op)) {
        char msg[96];
        snprintf(msg, sizeof msg, "line %%d: expected '%s', got '%%s'", op);
        pfail(p, LLMRT_ERR_FORMAT, msg, tok_desc(p));
    }
}

static const char *expect_name(parser *p) {
    if (cur(p)->kind != T_NAME) pfail(p, LLMRT_ERR_FORMAT, "line %d: expected a name, got '%s'", tok_desc(p));
    return p->t[p->i++].s;
}

static jnode *node(parser *p, jnode_kind k) {
    jnode *n = ja_alloc(p->arena, sizeof *n);
    n->kind = k, n->line = cur(p)->line;
    return n;
}

/* Growable node/name lists during parsing (copied into the arena as they grow). */
typedef struct nlist {
    jnode **v;
    size_t  n, cap;
} nlist;

static void nl_push(parser *p, nlist *l, jnode *x) {
    if (l->n == l->cap) {
        size_t  cap = l->cap ? l->cap * 2 : 4;
        jnode **v   = ja_alloc_array(p->arena, cap, sizeof *v);
        if (l->n) memcpy(v, l->v, l->n * sizeof *v);
        l->v = v, l->cap = cap;
    }
    l->v[l->n++] = x;
}

typedef struct slist {
    const char **v;
    size_t       n, cap;
} slist;

static void sl_push(parser *p, slist *l, const char *x) {
    if (l->n == l->cap) {
        size_t       cap = l->cap ? l->cap * 2 : 4;
        const char **v   = ja_alloc_array(p->arena, cap, sizeof *v);
        if (l->n) memcpy(v, l->v, l->n * sizeof *v);
        l->v = v, l->cap = cap;
    }
    l->v[l->n++] = x;
}

/* ------------------------------------------------------------------------------------------ */
/* Expressions                                                                                 */
/* ------------------------------------------------------------------------------------------ */

static jnode *parse_expr(parser *p);
static jnode *parse_or(parser *p);
static jnode *parse_unary(parser *p, bool with_filter);

static jnode *literal(parser *p, jval *v) {
    jnode *n = node(p, N_LITERAL);
    n->lit   = v;
    return n;
}

static jval *const_val(parser *p, jtype t) {
    jval *v = ja_alloc(p->arena, sizeof *v);
    v->t    = t;
    return v;
}

/* Call arguments after '(' up to ')': positional into args, name=value into names/args2. */
static void parse_call_args(parser *p, jnode *n) {
    nlist pos = {0}, kwv = {0};
    slist kwn = {0};
    while (!accept_op(p, ")")) {
        if (pos.n + kwv.n > 0) expect_op(p, ",");
        if (accept_op(p, ")")) break; /* trailing comma */
        if (is_op(cur(p), "*") || is_op(cur(p), "**"))
            pfail(p, LLMRT_ERR_UNSUPPORTED, "line %d: unsupported construct: '%s' argument unpacking", tok_desc(p));
        if (cur(p)->kind == T_NAME && is_op(peek(p, 1), "=")) {
            sl_push(p, &kwn, cur(p)->s);
            p->i += 2;
            nl_push(p, &kwv, parse_expr(p));
        } else {
            if (kwv.n) pfail(p, LLMRT_ERR_FORMAT, "line %d: positional argument after keyword argument%s", "");
            nl_push(p, &pos, parse_expr(p));
        }
    }
    n->args = pos.v, n->n_args = pos.n;
    n->args2 = kwv.v, n->n_args2 = kwv.n;
    n->names = kwn.v, n->n_names = kwn.n;
}

static jnode *parse_primary(parser *p) {
    const jtok *t = cur(p);
    switch (t->kind) {
    case T_NAME: {
        const char *s = t->s;
        p->i++;
        if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "false") || !strcmp(s, "False")) {
            jval *v = const_val(p, JV_BOOL);
            v->u.b  = s[0] == 't' || s[0] == 'T';
            return literal(p, v);
        }
        if (!strcmp(s, "none") || !strcmp(s, "None")) return literal(p, const_val(p, JV_NONE));
        jnode *n = node(p, N_NAME);
        n->name  = s;
        return n;
    }
    case T_STRING: {
        /* adjacent string literals concatenate */
        size_t total = 0, k = p->i;
        while (p->t[k].kind == T_STRING) total += p->t[k++].len;
        char  *s = ja_alloc(p->arena, total + 1);
        size_t o = 0;
        while (cur(p)->kind == T_STRING) {
            memcpy(s + o, cur(p)->s, cur(p)->len);
            o += cur(p)->len;
            p->i++;
        }
        jval *v       = const_val(p, JV_STR);
        v->u.str.s    = s;
        v->u.str.len  = total;
        return literal(p, v);
    }
    case T_INT: {
        jval *v = const_val(p, JV_INT);
        v->u.i  = t->i;
        p->i++;
        return literal(p, v);
    }
    case T_FLOAT: {
        jval *v = const_val(p, JV_FLOAT);
        v->u.f  = t->f;
        p->i++;
        return literal(p, v);
    }
    default: break;
    }
    if (accept_op(p, "(")) {
        if (accept_op(p, ")")) { /* empty tuple */
            jnode *tup = node(p, N_LIST);
            tup->negated = true;
            return tup;
        }
        jnode *e = parse_expr(p);
        if (is_op(cur(p), ",")) { /* a tuple: a list for our purposes */
            nlist items = {0};
            nl_push(p, &items, e);
            while (accept_op(p, ",")) {
                if (is_op(cur(p), ")")) break;
                nl_push(p, &items, parse_expr(p));
            }
            e       = node(p, N_LIST);
            e->args = items.v, e->n_args = items.n;
            e->negated = true; /* a tuple */
        }
        expect_op(p, ")");
        return e;
    }
    if (accept_op(p, "[")) {
        nlist  items = {0};
        jnode *n     = node(p, N_LIST);
        while (!accept_op(p, "]")) {
            if (items.n) expect_op(p, ",");
            if (accept_op(p, "]")) break;
            nl_push(p, &items, parse_expr(p));
        }
        n->args = items.v, n->n_args = items.n;
        return n;
    }
    if (accept_op(p, "{")) {
        nlist  keys = {0}, vals = {0};
        jnode *n    = node(p, N_DICT);
        while (!accept_op(p, "}")) {
            if (keys.n) expect_op(p, ",");
            if (accept_op(p, "}")) break;
            nl_push(p, &keys, parse_expr(p));
            expect_op(p, ":");
            nl_push(p, &vals, parse_expr(p));
        }
        n->args = keys.v, n->n_args = keys.n;
        n->args2 = vals.v, n->n_args2 = vals.n;
        return n;
    }
    pfail(p, LLMRT_ERR_FORMAT, "line %d: unexpected '%s' in an expression", tok_desc(p));
}

static jnode *parse_subscript(parser *p, jnode *obj) {
    jnode *parts[3] = {NULL, NULL, NULL};
    int    colons   = 0;
    while (!is_op(cur(p), "]")) {
        if (accept_op(p, ":")) {
            if (++colons > 2) pfail(p, LLMRT_ERR_FORMAT, "line %d: too many ':' in a slice%s", "");
            continue;
        }
        if (parts[colons]) pfail(p, LLMRT_ERR_UNSUPPORTED, "line %d: unsupported construct: tuple subscript%s", "");
        parts[colons] = parse_expr(p);
        if (is_op(cur(p), ",")) pfail(p, LLMRT_ERR_UNSUPPORTED, "line %d: unsupported construct: tuple subscript%s", "");
    }
    expect_op(p, "]");
    jnode *n;
    if (colons == 0) {
        if (!parts[0]) pfail(p, LLMRT_ERR_FORMAT, "line %d: empty subscript%s", "");
        n = node(p, N_INDEX);
        n->a = obj, n->b = parts[0];
    } else {
        n = node(p, N_SLICE);
        n->a = obj, n->b = parts[0], n->c = parts[1], n->d = parts[2];
    }
    return n;
}

static jnode *parse_postfix(parser *p, jnode *e) {
    for (;;) {
        if (accept_op(p, ".")) {
            jnode *n = node(p, N_ATTR);
            n->a     = e;
            if (cur(p)->kind == T_INT) { /* x.0 is x[0] */
                n->kind = N_INDEX;
                jval *v = const_val(p, JV_INT);
                v->u.i  = cur(p)->i;
                p->i++;
                n->b = literal(p, v);
            } else {
                n->name = expect_name(p);
            }
            e = n;
        } else if (accept_op(p, "[")) {
            e = parse_subscript(p, e);
        } else if (accept_op(p, "(")) {
            jnode *n = node(p, N_CALL);
            n->a     = e;
            parse_call_args(p, n);
            e = n;
        } else {
            return e;
        }
    }
}

/* Test argument without parentheses (`x is divisibleby 3`), as jinja2 allows. */
static bool starts_bare_test_arg(parser *p) {
    const jtok *t = cur(p);
    if (t->kind == T_STRING || t->kind == T_INT || t->kind == T_FLOAT) return true;
    if (t->kind == T_NAME)
        return !is_name(t, "else") && !is_name(t, "or") && !is_name(t, "and") &&
               !is_name(t, "if") && !is_name(t, "in") && !is_name(t, "not") && !is_name(t, "is");
    return is_op(t, "[") || is_op(t, "{") || is_op(t, "-");
}

static jnode *parse_filters(parser *p, jnode *e) {
    for (;;) {
        if (accept_op(p, "|")) {
            jnode *n = node(p, N_FILTER);
            n->a     = e;
            n->name  = expect_name(p);
            if (!jinja_has_filter(n->name))
                pfail(p, LLMRT_ERR_UNSUPPORTED, "line %d: unsupported filter '%s'", n->name);
            if (accept_op(p, "(")) parse_call_args(p, n);
            e = n;
        } else if (accept_name(p, "is")) {
            jnode *n   = node(p, N_TEST);
            n->a       = e;
            n->negated = accept_name(p, "not");
            /* none/true/false are keywords but also test names */
            n->name = expect_name(p);
            if (!jinja_has_test(n->name))
                pfail(p, LLMRT_ERR_UNSUPPORTED, "line %d: unsupported test '%s'", n->name);
            if (accept_op(p, "(")) {
                parse_call_args(p, n);
            } else if (starts_bare_test_arg(p)) {
                nlist a = {0};
                nl_push(p, &a, parse_unary(p, false));
                n->args = a.v, n->n_args = a.n;
            }
            e = n;
        } else if (accept_op(p, "(")) {
            jnode *n = node(p, N_CALL);
            n->a     = e;
            parse_call_args(p, n);
            e = n;
        } else {
            return e;
        }
    }
}

static jnode *parse_unary(parser *p, bool with_filter) {
    if (++p->depth > MAX_NESTING) pfail(p, LLMRT_ERR_UNSUPPORTED, "line %d: expressions nested deeper than %s", "200");
    jnode *e;
    if (is_op(cur(p), "-") || is_op(cur(p), "+")) {
        jnode *n = node(p, N_UNARY);
        n->op    = is_op(cur(p), "-") ? OP_NEG : OP_POS;
        p->i++;
        n->a = parse_unary(p, false);
        e    = n;
    } else {
        e = parse_primary(p);
    }
    e = parse_postfix(p, e);
    if (with_filter) e = parse_filters(p, e);
    p->depth--;
    return e;
}

static jnode *binary(parser *p, jop op, jnode *a, jnode *b) {
    jnode *n = node(p, N_BINARY);
    n->op = op, n->a = a, n->b = b;
    n->line = a->line;
    return n;
}

static jnode *parse_pow(parser *p) {
    jnode *e = parse_unary(p, true);
    while (accept_op(p, "**")) e = binary(p, OP_POW, e, parse_unary(p, true));
    return e;
}

static jnode *parse_math2(parser *p) {
    jnode *e = parse_pow(p);
    for (;;) {
        jop op = is_op(cur(p), "*") ? OP_MUL : is_op(cur(p), "/") ? OP_DIV
               : is_op(cur(p), "//") ? OP_FLOORDIV : is_op(cur(p), "%") ? OP_MOD : OP_NONE;
        if (op == OP_NONE) return e;
        p->i++;
        e = binary(p, op, e, parse_pow(p));
    }
}

static jnode *parse_concat(parser *p) {
    jnode *e = parse_math2(p);
    while (accept_op(p, "~")) e = binary(p, OP_CONCAT, e, parse_math2(p));
    return e;
}

static jnode *parse_math1(parser *p) {
    jnode *e = parse_concat(p);
    for (;;) {
        jop op = is_op(cur(p), "+") ? OP_ADD : is_op(cur(p), "-") ? OP_SUB : OP_NONE;
        if (op == OP_NONE) return e;
        p->i++;
        e = binary(p, op, e, parse_concat(p));
    }
}

static jnode *parse_compare(parser *p) {
    jnode *e    = parse_math1(p);
    jnode *prev = NULL; /* the right operand of a chained comparison (a < b < c) */
    jnode *acc  = NULL;
    for (;;) {
        const jtok *t  = cur(p);
        jop         op = is_op(t, "==") ? OP_EQ : is_op(t, "!=") ? OP_NE : is_op(t, "<") ? OP_LT
                       : is_op(t, "<=") ? OP_LE : is_op(t, ">") ? OP_GT : is_op(t, ">=") ? OP_GE
                       : is_name(t, "in") ? OP_IN : OP_NONE;
        if (op == OP_NONE && is_name(t, "not") && is_name(peek(p, 1), "in")) {
            op = OP_NOTIN;
            p->i++;
        }
        if (op == OP_NONE) break;
        p->i++;
        jnode *rhs = parse_math1(p);
        jnode *cmp = binary(p, op, prev ? prev : e, rhs);
        acc        = acc ? binary(p, OP_AND, acc, cmp) : cmp;
        prev       = rhs;
    }
    return acc ? acc : e;
}

static jnode *parse_not(parser *p) {
    if (is_name(cur(p), "not")) {
        if (++p->depth > MAX_NESTING) pfail(p, LLMRT_ERR_UNSUPPORTED, "line %d: expressions nested deeper than %s", "200");
        jnode *n = node(p, N_UNARY);
        p->i++;
        n->op = OP_NOT;
        n->a  = parse_not(p);
        p->depth--;
        return n;
    }
    return parse_compare(p);
}

static jnode *parse_and(parser *p) {
    jnode *e = parse_not(p);
    while (accept_name(p, "and")) e = binary(p, OP_AND, e, parse_not(p));
    return e;
}

static jnode *parse_or(parser *p) {
    jnode *e = parse_and(p);
    while (accept_name(p, "or")) e = binary(p, OP_OR, e, parse_and(p));
    return e;
}

static jnode *parse_expr(parser *p) {
    if (++p->depth > MAX_NESTING) pfail(p, LLMRT_ERR_UNSUPPORTED, "line %d: expressions nested deeper than %s", "200");
    jnode *e = parse_or(p);
    while (accept_name(p, "if")) {
        jnode *n = node(p, N_COND);
        n->a     = parse_or(p);
        n->b     = e;
        n->c     = accept_name(p, "else") ? parse_expr(p) : NULL;
        e        = n;
    }
    p->depth--;
    return e;
}

/* An expression list without brackets (`a, b` after `set` or `in`) is a tuple. */
static jnode *parse_tuple_expr(parser *p) {
    jnode *e = parse_expr(p);
    if (!is_op(cur(p), ",")) return e;
    nlist items = {0};
    nl_push(p, &items, e);
    while (accept_op(p, ",")) {
        if (cur(p)->kind == T_BLOCK_END) break;
        nl_push(p, &items, parse_expr(p));
    }
    jnode *n = node(p, N_LIST);
    n->args = items.v, n->n_args = items.n;
    n->negated = true; /* a tuple */
    return n;
}

/* ------------------------------------------------------------------------------------------ */
/* Statements                                                                                  */
/* ------------------------------------------------------------------------------------------ */

static void expect_block_end(parser *p) {
    if (cur(p)->kind != T_BLOCK_END) pfail(p, LLMRT_ERR_FORMAT, "line %d: expected '%%}', got '%s'", tok_desc(p));
    p->i++;
}

/* Parses statements until a {% name %} with name in `ends` (NULL-terminated); leaves the
 * position on that name. At the top level (ends == NULL) runs to the end. */
static jnode *parse_body(parser *p, const char *const *ends);
static jnode *parse_statement_inner(parser *p);
static jnode *parse_if_inner(parser *p);

static bool at_end_tag(parser *p, const char *const *ends) {
    if (!ends || cur(p)->kind != T_BLOCK_BEGIN) return false;
    const jtok *t = peek(p, 1);
    for (size_t k = 0; ends[k]; k++)
        if (is_name(t, ends[k])) return true;
    return false;
}

static void parse_targets(parser *p, slist *names) {
    bool paren = accept_op(p, "(");
    do {
        sl_push(p, names, expect_name(p));
    } while (accept_op(p, ","));
    if (paren) expect_op(p, ")");
}

static jnode *parse_for(parser *p) {
    jnode *n     = node(p, N_FOR);
    slist  names = {0};
    parse_targets(p, &names);
    n->names = names.v, n->n_names = names.n;
    if (!accept_name(p, "in")) pfail(p, LLMRT_ERR_FORMAT, "line %d: expected 'in' in a for loop, got '%s'", tok_desc(p));
    /* the iterable cannot be a bare conditional: `if` starts the loop filter */
    jnode *it = parse_or(p);
    if (is_op(cur(p), ",")) pfail(p, LLMRT_ERR_UNSUPPORTED, "line %d: unsupported construct: looping over a bare tuple%s", "");
    n->a = it;
    if (accept_name(p, "if")) n->b = parse_expr(p);
    if (is_name(cur(p), "recursive")) pfail(p, LLMRT_ERR_UNSUPPORTED, "line %d: unsupported construct: recursive for loop%s", "");
    expect_block_end(p);
    static const char *const ends[] = {"else", "endfor", NULL};
    jnode *body = parse_body(p, ends);
    n->args = body->args, n->n_args = body->n_args;
    if (accept_name(p, "else")) {
        expect_block_end(p);
        static const char *const ends2[] = {"endfor", NULL};
        jnode *eb = parse_body(p, ends2);
        n->args2 = eb->args, n->n_args2 = eb->n_args;
    }
    p->i++; /* endfor */
    expect_block_end(p);
    return n;
}

static jnode *parse_if(parser *p) {
    /* elif chains recurse here, not through parse_statement */
    if (++p->depth > MAX_NESTING) pfail(p, LLMRT_ERR_UNSUPPORTED, "line %d: if/elif chain longer than %s", "200");
    jnode *n = parse_if_inner(p);
    p->depth--;
    return n;
}

static jnode *parse_if_inner(parser *p) {
    jnode *n = node(p, N_IF);
    n->a     = parse_expr(p);
    expect_block_end(p);
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    jnode *body = parse_body(p, ends);
    n->args = body->args, n->n_args = body->n_args;
    if (accept_name(p, "elif")) {
        jnode  *elif = parse_if(p); /* consumes through endif */
        jnode **one  = ja_alloc(p->arena, sizeof *one);
        one[0]       = elif;
        n->args2 = one, n->n_args2 = 1;
        return n;
    }
    if (accept_name(p, "else")) {
        expect_block_end(p);
        static const char *const ends2[] = {"endif", NULL};
        jnode *eb = parse_body(p, ends2);
        n->args2 = eb->args, n->n_args2 = eb->n_args;
    }
    if (!accept_name(p, "endif")) pfail(p, LLMRT_ERR_FORMAT, "line %d: expected 'endif', got '%s'", tok_desc(p));
    expect_block_end(p);
    return n;
}

static jnode *parse_set(parser *p) {
    jnode *n = node(p, N_SET);
    slist  names = {0};
    const char *first = expect_name(p);
    if (accept_op(p, ".")) { /* namespace attribute */
        n->name = first;
        n->attr = expect_name(p);
    } else {
        sl_push(p, &names, first);
        while (accept_op(p, ",")) sl_push(p, &names, expect_name(p));
        n->names = names.v, n->n_names = names.n;
        n->name  = first;
    }
    if (accept_op(p, "=")) {
        n->a = parse_tuple_expr(p);
        expect_block_end(p);
        return n;
    }
    /* block set: {% set x %}...{% endset %}, optionally filtered */
    if (n->attr || n->n_names != 1) pfail(p, LLMRT_ERR_FORMAT, "line %d: a block set takes one name%s", "");
    n->kind = N_SET_BLOCK;
    jnode *filt = NULL;
    while (accept_op(p, "|")) {
        jnode *f = node(p, N_FILTER);
        f->a     = filt;
        f->name  = expect_name(p);
        if (!jinja_has_filter(f->name)) pfail(p, LLMRT_ERR_UNSUPPORTED, "line %d: unsupported filter '%s'", f->name);
        if (accept_op(p, "(")) parse_call_args(p, f);
        filt = f;
    }
    n->b = filt; /* a chain whose innermost operand (NULL) is the block's text */
    expect_block_end(p);
    static const char *const ends[] = {"endset", NULL};
    jnode *body = parse_body(p, ends);
    n->args = body->args, n->n_args = body->n_args;
    p->i++;
    expect_block_end(p);
    return n;
}

/* {% filter name(args) | name2 %}...{% endfilter %}: the body's text through the filters */
static jnode *parse_filter_block(parser *p) {
    jnode *n    = node(p, N_FILTER_BLOCK);
    jnode *filt = NULL;
    do {
        jnode *f = node(p, N_FILTER);
        f->a     = filt;
        f->name  = expect_name(p);
        if (!jinja_has_filter(f->name)) pfail(p, LLMRT_ERR_UNSUPPORTED, "line %d: unsupported filter '%s'", f->name);
        if (accept_op(p, "(")) parse_call_args(p, f);
        filt = f;
    } while (accept_op(p, "|"));
    n->b = filt;
    expect_block_end(p);
    static const char *const ends[] = {"endfilter", NULL};
    jnode *body = parse_body(p, ends);
    n->args = body->args, n->n_args = body->n_args;
    p->i++;
    expect_block_end(p);
    return n;
}

static jnode *parse_macro(parser *p) {
    jnode *n = node(p, N_MACRO);
    n->name  = expect_name(p);
    expect_op(p, "(");
    slist params = {0};
    nlist defs   = {0};
    while (!accept_op(p, ")")) {
        if (params.n) expect_op(p, ",");
        if (accept_op(p, ")")) break;
        sl_push(p, &params, expect_name(p));
        nl_push(p, &defs, accept_op(p, "=") ? parse_expr(p) : NULL);
    }
    n->names = params.v, n->n_names = params.n;
    n->args2 = defs.v, n->n_args2 = defs.n;
    expect_block_end(p);
    static const char *const ends[] = {"endmacro", NULL};
    jnode *body = parse_body(p, ends);
    n->args = body->args, n->n_args = body->n_args;
    p->i++;
    if (cur(p)->kind == T_NAME) p->i++; /* {% endmacro name %} */
    expect_block_end(p);
    return n;
}

static jnode *parse_statement(parser *p) {
    if (++p->depth > MAX_NESTING) pfail(p, LLMRT_ERR_UNSUPPORTED, "line %d: blocks nested deeper than %s", "200");
    jnode *n = parse_statement_inner(p);
    p->depth--;
    return n;
}

static jnode *parse_statement_inner(parser *p) {
    p->i++; /* {% */
    if (cur(p)->kind != T_NAME) pfail(p, LLMRT_ERR_FORMAT, "line %d: expected a statement name, got '%s'", tok_desc(p));
    const char *kw = cur(p)->s;
    p->i++;
    if (!strcmp(kw, "for")) return parse_for(p);
    if (!strcmp(kw, "if")) return parse_if(p);
    if (!strcmp(kw, "set")) return parse_set(p);
    if (!strcmp(kw, "macro")) return parse_macro(p);
    if (!strcmp(kw, "filter")) return parse_filter_block(p);
    if (!strcmp(kw, "break") || !strcmp(kw, "continue")) {
        jnode *n = node(p, kw[0] == 'b' ? N_BREAK : N_CONTINUE);
        expect_block_end(p);
        return n;
    }
    if (!strcmp(kw, "generation")) { /* HF's assistant-mask marker: renders its body */
        expect_block_end(p);
        static const char *const ends[] = {"endgeneration", NULL};
        jnode *body = parse_body(p, ends);
        p->i++;
        expect_block_end(p);
        body->negated = true; /* HF runs it as a call block: its own scope */
        return body;
    }
    p->i--;
    pfail(p, LLMRT_ERR_UNSUPPORTED, "line %d: unsupported construct: {%% %s %%}", kw);
}

static jnode *parse_body(parser *p, const char *const *ends) {
    nlist  items = {0};
    jnode *blk   = node(p, N_BLOCK);
    for (;;) {
        const jtok *t = cur(p);
        if (t->kind == T_EOF) {
            if (ends) {
                char what[64];
                size_t last = 0; /* the closer (endif, endfor...) is the last of the list */
                while (ends[last + 1]) last++;
                snprintf(what, sizeof what, "{%% %s %%}", ends[last]);
                pfail(p, LLMRT_ERR_FORMAT, "line %d: the template ends before %s", ja_strndup(p->arena, what, strlen(what)));
            }
            break;
        }
        if (at_end_tag(p, ends)) {
            p->i++; /* leave the position on the end name */
            break;
        }
        if (t->kind == T_TEXT) {
            jnode *n = node(p, N_TEXT);
            jval  *v = const_val(p, JV_STR);
            v->u.str.s = t->s, v->u.str.len = t->len;
            n->lit = v;
            p->i++;
            nl_push(p, &items, n);
        } else if (t->kind == T_VAR_BEGIN) {
            p->i++;
            jnode *n = node(p, N_OUTPUT);
            n->a     = parse_tuple_expr(p);
            if (cur(p)->kind != T_VAR_END) pfail(p, LLMRT_ERR_FORMAT, "line %d: expected '}}', got '%s'", tok_desc(p));
            p->i++;
            nl_push(p, &items, n);
        } else if (t->kind == T_BLOCK_BEGIN) {
            const jtok *kw = peek(p, 1);
            if (kw->kind == T_NAME &&
                (!strcmp(kw->s, "endfor") || !strcmp(kw->s, "endif") || !strcmp(kw->s, "else") ||
                 !strcmp(kw->s, "elif") || !strcmp(kw->s, "endmacro") || !strcmp(kw->s, "endset") || !strcmp(kw->s, "endfilter") ||
                 !strcmp(kw->s, "endgeneration"))) {
                p->i++;
                pfail(p, LLMRT_ERR_FORMAT, "line %d: unexpected '{%% %s %%}'", kw->s);
            }
            nl_push(p, &items, parse_statement(p));
        } else {
            pfail(p, LLMRT_ERR_FORMAT, "line %d: unexpected '%s'", tok_desc(p));
        }
    }
    blk->args = items.v, blk->n_args = items.n;
    return blk;
}

jnode *jinja_parse_tokens(ja_arena *arena, const jlexed *lx) {
    parser p = {.arena = arena, .t = lx->toks, .n = lx->n};
    return parse_body(&p, NULL);
}
