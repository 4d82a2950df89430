/* Internals of the Jinja interpreter shared by its files: the arena, values, the AST and the
 * render context.
 *
 * Memory: everything a parse or a render allocates lives in one arena, freed at once. Values
 * are immutable (jinja2's ImmutableSandboxedEnvironment forbids mutating lists and dicts; only a
 * namespace() object changes), so they are shared by pointer without reference counts. Because
 * nothing is owned outside the arena, an error can unwind with longjmp from any depth without
 * leaking. */
#ifndef LLMRT_TEMPLATE_JINJA_INTERNAL_H
#define LLMRT_TEMPLATE_JINJA_INTERNAL_H

#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jinja.h"

/* ------------------------------------------------------------------------------------------ */
/* Arena                                                                                       */
/* ------------------------------------------------------------------------------------------ */

typedef struct ja_chunk ja_chunk;
typedef struct ja_arena {
    ja_chunk *head;
    size_t    used;  /* bytes handed out + chunk overhead, checked against cap */
    size_t    cap;   /* 0 = unlimited */
    jmp_buf  *fail;  /* where to unwind on exhaustion */
    llmrt_error *err;
} ja_arena;

void *ja_alloc(ja_arena *a, size_t n);                   /* zeroed; unwinds on failure */
void *ja_alloc_array(ja_arena *a, size_t n, size_t sz);  /* overflow-checked n * sz      */
char *ja_strndup(ja_arena *a, const char *s, size_t n);
void  ja_free_all(ja_arena *a);

/* ------------------------------------------------------------------------------------------ */
/* Values                                                                                      */
/* ------------------------------------------------------------------------------------------ */

typedef enum jtype {
    JV_UNDEF, JV_NONE, JV_BOOL, JV_INT, JV_FLOAT, JV_STR, JV_LIST, JV_DICT, JV_NS, JV_FUNC
} jtype;

typedef struct jspan {
    size_t b, e; /* tainted bytes [b, e) of a string */
} jspan;

struct jnode;
struct jscope;
typedef struct jval jval;

typedef enum jfunc_kind { JF_MACRO, JF_BUILTIN, JF_METHOD, JF_LOOP_CYCLE } jfunc_kind;

struct jval {
    jtype t;
    union {
        bool    b;
        int64_t i;
        double  f;
        struct {
            const char  *s;   /* NUL-terminated */
            size_t       len;
            const jspan *sp;  /* sorted, disjoint, non-empty */
            size_t       nsp;
            bool         safe; /* markupsafe.Markup (the `safe` filter): `+` escapes the other side */
        } str;
        struct {
            jval  **items;
            size_t  n;
            bool    tuple; /* prints as (a, b): dict.items() pairs, literal tuples */
            bool    gen;   /* a Python generator (map, select*, reject*, unique, items filter):
                            * iterable and always true, but no len(), no index, no JSON */
        } list;
        struct { /* also JV_NS (the one mutable kind) */
            jval  **keys;
            jval  **vals;
            size_t  n, cap;
        } dict;
        struct {
            jfunc_kind          kind;
            const char         *name;  /* builtin/method name, macro name */
            const struct jnode *macro; /* JF_MACRO */
            jval               *self;  /* JF_METHOD: the receiver */
            struct jscope      *closure; /* JF_MACRO: the scope it was defined in */
        } fn;
        const char *undef_name; /* JV_UNDEF: what was looked up, for messages */
    } u;
};

/* ------------------------------------------------------------------------------------------ */
/* AST                                                                                         */
/* ------------------------------------------------------------------------------------------ */

typedef enum jnode_kind {
    /* expressions */
    N_LITERAL, N_NAME, N_LIST, N_DICT, N_ATTR, N_INDEX, N_SLICE, N_CALL, N_FILTER, N_TEST,
    N_UNARY, N_BINARY, N_COND,
    /* statements */
    N_TEXT, N_OUTPUT, N_IF, N_FOR, N_SET, N_SET_BLOCK, N_FILTER_BLOCK, N_MACRO, N_BREAK, N_CONTINUE, N_BLOCK
} jnode_kind;

typedef enum jop {
    OP_NONE, OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW, OP_CONCAT,
    OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_NOTIN, OP_AND, OP_OR, OP_NOT, OP_NEG,
    OP_POS
} jop;

typedef struct jnode {
    jnode_kind kind;
    int        line;
    jop        op;
    bool       negated;    /* N_TEST: `is not`; N_LIST: a tuple; N_BLOCK: its own scope */
    const char *name;      /* N_NAME, N_ATTR, N_FILTER, N_TEST, N_MACRO, N_SET target */
    const char *attr;      /* N_SET: `ns.attr` target attribute */
    jval       *lit;       /* N_LITERAL, N_TEXT */
    struct jnode *a, *b, *c, *d; /* operands; N_FOR: a = iterable, b = filter; N_SLICE: a obj */
    struct jnode **args;   /* call/filter/test args, list items, dict keys, bodies */
    size_t         n_args;
    struct jnode **args2;  /* kwarg values, dict values, else bodies, macro defaults */
    size_t         n_args2;
    const char   **names;  /* kwarg names, for/set targets, macro params */
    size_t         n_names;
} jnode;

struct llmrt_jinja_template {
    ja_arena arena;
    jnode   *root; /* N_BLOCK */
    char    *what;
};

/* ------------------------------------------------------------------------------------------ */
/* Lexer                                                                                       */
/* ------------------------------------------------------------------------------------------ */

typedef enum jtok_kind {
    T_TEXT,        /* template data (already whitespace-controlled) */
    T_VAR_BEGIN, T_VAR_END, T_BLOCK_BEGIN, T_BLOCK_END,
    T_NAME, T_STRING, T_INT, T_FLOAT, T_OP, T_EOF
} jtok_kind;

typedef struct jtok {
    jtok_kind   kind;
    int         line;
    const char *s;   /* T_TEXT/T_STRING: decoded text (arena); T_NAME/T_OP: spelling */
    size_t      len;
    int64_t     i;
    double      f;
} jtok;

typedef struct jlexed {
    jtok  *toks;
    size_t n;
} jlexed;

/* Lexes the template into tokens with jinja2's whitespace rules applied to T_TEXT. Unwinds
 * through arena->fail with err set on a lexical error. */
void jinja_lex(ja_arena *arena, const char *src, size_t len, jlexed *out);

/* Parses tokens into the template's root block. Unwinds on error. */
jnode *jinja_parse_tokens(ja_arena *arena, const jlexed *lx);

/* ------------------------------------------------------------------------------------------ */
/* Render context                                                                              */
/* ------------------------------------------------------------------------------------------ */

typedef struct jscope {
    struct jscope *parent;
    const char   **names;
    jval         **vals;
    size_t         n, cap;
} jscope;

/* Text being built with its taint spans (output, macro bodies, block sets, string results). */
typedef struct jsink {
    char  *buf;
    size_t len, cap;
    jspan *sp;
    size_t nsp, cap_sp;
} jsink;

typedef struct jctx {
    ja_arena                  arena;
    llmrt_error              *err;
    jmp_buf                   fail;
    const llmrt_jinja_params *params;
    uint64_t                  steps;
    jscope                   *globals;
    jsink                    *out;   /* the render's output (capped by max_output_bytes) */
    int                       line;  /* of the node being evaluated, for messages */
    int                       depth; /* macro recursion */
} jctx;

/* Records the error and unwinds to the render's entry point. */
_Noreturn void jinja_fail(jctx *c, llmrt_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* values (jinja_value.c) */
jval       *jv_undef(jctx *c, const char *name);
jval       *jv_none(void);
jval       *jv_bool(bool b);
jval       *jv_int(jctx *c, int64_t i);
jval       *jv_float(jctx *c, double f);
jval       *jv_str(jctx *c, const char *s, size_t len);            /* untainted copy */
jval       *jv_str_tainted(jctx *c, const char *s, size_t len);    /* whole string tainted */
jval       *jv_list(jctx *c, size_t n);                              /* n NULL items to fill */
jval       *jv_dict(jctx *c, size_t cap);
void        jv_dict_set(jctx *c, jval *d, jval *key, jval *val);
jval       *jv_dict_get(const jval *d, const char *key, size_t klen); /* NULL if missing */
jval       *jv_dict_get_v(const jval *d, const jval *key);
const char *jv_type_name(const jval *v);
bool        jv_truthy(const jval *v);
bool        jv_equal(const jval *a, const jval *b);
int         jv_compare(jctx *c, const jval *a, const jval *b); /* <0 0 >0; fails on mixed types */
bool        jv_is_number(const jval *v);
double      jv_as_double(const jval *v);
/* Python str(): strings as-is (taint kept), others as Python prints them. */
jval       *jv_to_str(jctx *c, jval *v);
/* Python repr() into the sink (untainted, except string contents keep their taint). */
void        jv_repr(jctx *c, jsink *s, const jval *v);
/* HF tojson: json.dumps(ensure_ascii=False, indent, separators, sort_keys). */
void        jv_tojson(jctx *c, jsink *s, const jval *v, int64_t indent, bool has_indent,
                      const char *item_sep, const char *key_sep, bool sort_keys, bool ensure_ascii,
                      int level);
jval       *jv_from_json(jctx *c, const cJSON *j, bool tainted);
size_t      jv_utf8_count(const char *s, size_t len);
/* Byte offset of code point index cp (clamped to len). */
size_t      jv_utf8_offset(const char *s, size_t len, size_t cp);

/* sinks (jinja_value.c) */
void  jsink_put(jctx *c, jsink *s, const char *p, size_t n, bool tainted);
void  jsink_put_str(jctx *c, jsink *s, const jval *str); /* keeps the string's taint */
void  jsink_put_sub(jctx *c, jsink *s, const jval *str, size_t b, size_t e); /* a byte range */
jval *jsink_to_str(jctx *c, jsink *s);

/* evaluation (jinja_eval.c) */
jval *jinja_eval(jctx *c, jscope *sc, const jnode *n);
jval *jinja_call_macro(jctx *c, jval *fn, jval **args, size_t n_args, const char **kw_names,
                       jval **kw_vals, size_t n_kw);
void  jinja_step(jctx *c);
jval *jinja_lookup(jscope *sc, const char *name);
/* markupsafe.escape (the result is not marked safe; callers decide) */
jval *jinja_html_escape(jctx *c, jval *v);

/* builtins (jinja_builtins.c) */
jval *jinja_filter(jctx *c, const char *name, jval *v, jval **args, size_t n_args,
                   const char **kw_names, jval **kw_vals, size_t n_kw);
bool  jinja_test(jctx *c, const char *name, jval *v, jval **args, size_t n_args);
bool  jinja_has_filter(const char *name);
bool  jinja_has_test(const char *name);
jval *jinja_getattr(jctx *c, jval *obj, const char *name);
jval *jinja_call_builtin(jctx *c, jval *fn, jval **args, size_t n_args, const char **kw_names,
                         jval **kw_vals, size_t n_kw);
jval *jinja_global(jctx *c, const char *name); /* range, namespace, ...; NULL if none */
/* Python iteration: list items, dict keys, string characters; undefined is empty. */
jval *jinja_iterable_list(jctx *c, jval *v);

#endif
