/* Internal representation shared by the tokenizer files: the loaded tokenizer (vocabulary, model,
 * pipeline steps as flat arrays of ops) and the per-call encode scratch. Loaders (tokenizer_hf.c,
 * tokenizer_gguf.c) fill an llmrt_tokenizer and call tk_finalize(); encode.c runs the pipeline. */
#ifndef LLMRT_TOKENIZER_TOK_INTERNAL_H
#define LLMRT_TOKENIZER_TOK_INTERNAL_H

#include "strmap.h"
#include "tk_regex.h"
#include "tk_util.h"
#include "tokenizer.h"

/* Per-id attributes. */
enum {
    TK_ATTR_SPECIAL = 1, /* skipped by skip_special; matched in text only with parse_special */
    TK_ATTR_ADDED   = 2, /* an added token: split out of the text before the model runs */
};

/* Upper bound on ids, so that a hostile file cannot make us allocate by an unchecked count. */
#define TK_MAX_VOCAB (1 << 24)
/* Longest vocabulary / added-token string accepted. */
#define TK_MAX_PIECE (1 << 16)

typedef enum tk_model_type { TK_MODEL_BPE, TK_MODEL_SPM } tk_model_type;

/* A pattern of HF Split / Replace: a regex, or a literal string (a char is a 1-char string). */
typedef struct tk_pattern {
    tk_regex *re; /* NULL: literal */
    char     *str;
    size_t    len;
} tk_pattern;

typedef enum tk_split_behavior {
    TK_SPLIT_REMOVED,
    TK_SPLIT_ISOLATED,
    TK_SPLIT_MERGED_WITH_PREVIOUS,
    TK_SPLIT_MERGED_WITH_NEXT,
    TK_SPLIT_CONTIGUOUS,
} tk_split_behavior;

typedef enum tk_prepend_scheme { TK_PREPEND_ALWAYS, TK_PREPEND_FIRST, TK_PREPEND_NEVER } tk_prepend_scheme;

typedef struct tk_norm_op {
    enum { TK_NORM_PREPEND, TK_NORM_REPLACE, TK_NORM_NFC } type;
    tk_pattern pat;     /* REPLACE */
    char      *content; /* PREPEND: the prefix; REPLACE: the replacement */
    size_t     content_len;
} tk_norm_op;

typedef struct tk_pretok_op {
    enum { TK_PRE_SPLIT, TK_PRE_BYTELEVEL, TK_PRE_METASPACE } type;
    /* SPLIT (Digits is a SPLIT on \p{N}); BYTELEVEL with use_regex: pat.re = the GPT-2 regex */
    tk_pattern        pat;
    tk_split_behavior behavior;
    bool              invert;
    bool              add_prefix_space; /* BYTELEVEL */
    bool              use_regex;        /* BYTELEVEL */
    char              replacement[8];   /* METASPACE: UTF-8 of the replacement char */
    size_t            rep_len;
    tk_prepend_scheme prepend_scheme;   /* METASPACE */
    bool              split;            /* METASPACE */
} tk_pretok_op;

typedef struct tk_dec_op {
    enum {
        TK_DEC_BYTELEVEL,
        TK_DEC_BYTEFALLBACK,
        TK_DEC_FUSE,
        TK_DEC_STRIP,
        TK_DEC_REPLACE,
        TK_DEC_METASPACE,
    } type;
    tk_pattern        pat;       /* REPLACE */
    char             *content;   /* REPLACE */
    size_t            content_len;
    char              chr[8];    /* STRIP content / METASPACE replacement, UTF-8 */
    size_t            chr_len;
    int64_t           start, stop; /* STRIP */
    tk_prepend_scheme prepend_scheme;
} tk_dec_op;

typedef struct tk_added_token {
    int32_t id;
    char   *content; /* as written in the file */
    size_t  len;
    char   *match;   /* what is searched: content, or normalized content when `normalized` */
    size_t  match_len;
    bool    special, lstrip, rstrip, single_word, normalized;
} tk_added_token;

/* Leftmost-longest matcher over a set of added tokens: candidates bucketed by first byte,
 * longest first, so the first hit at a position is the longest. */
typedef struct tk_added_matcher {
    uint32_t  bucket[257]; /* candidates of first byte b: order[bucket[b] .. bucket[b + 1]) */
    int32_t  *order;       /* indices into tk->added */
    uint32_t  n;
    uint8_t   min_len_by_byte[256];
} tk_added_matcher;

struct llmrt_tokenizer {
    char    *name; /* the source, for messages */
    tk_arena arena;

    int32_t      n_vocab;   /* highest id + 1 */
    const char **pieces;    /* id -> string decode uses (added content overrides vocab) */
    uint32_t    *piece_len;
    uint8_t     *attr;
    tk_strmap    vocab;     /* model vocabulary: string -> id */
    tk_strmap    added_map; /* added token content -> id */

    tk_model_type model;
    tk_u64map     merges; /* BPE: (left << 32 | right) -> (rank << 32 | new id) */
    bool          ignore_merges, byte_fallback, fuse_unk;
    int32_t       unk_id;       /* -1 if none */
    char         *unk_missing;  /* unk_token named by the model but absent from the vocab */
    float        *scores;       /* SPM */
    int32_t       byte_ids[256];    /* BPE: id of the byte-level character of each byte */
    bool          byte_ids_complete;
    int32_t       byte_tokens[256]; /* id of "<0xNN>" per byte, -1 if absent */
    int32_t       ascii_ids[128];   /* id of each 1-byte string, -1 if absent */

    tk_norm_op   *norm;
    int           n_norm;
    tk_pretok_op *pre;
    int           n_pre;
    bool          has_decoder;
    tk_dec_op    *dec;
    int           n_dec;

    tk_added_token  *added;
    int32_t          n_added;
    tk_added_matcher raw_match, norm_match;
    tk_regex        *word_re; /* "starts with a word character", for single_word tokens */

    int32_t *prefix_ids, *suffix_ids; /* post-processor, with add_special */
    int32_t  n_prefix, n_suffix;

    int32_t bos, eos, eot, pad;
    char   *chat_template;
    /* chat_template parsed once at load (template/jinja.h), or why it failed to parse: the load
     * succeeds (plain text still works) and rendering a chat reports chat_template_error */
    struct llmrt_jinja_template *chat_jinja;
    llmrt_error                  chat_template_error;
};

/* Parses tk->chat_template (if any) into tk->chat_jinja, or records the parse error in
 * tk->chat_template_error (and logs it). Fails only when out of memory. */
llmrt_status tk_parse_chat_template(llmrt_tokenizer *tk, llmrt_error *err);

/* ---- loading helpers (tokenizer.c) -------------------------------------------------------- */

llmrt_tokenizer *tk_alloc(const char *name);
/* Sizes the id tables for n_vocab ids (all empty). */
llmrt_status tk_set_vocab_size(llmrt_tokenizer *tk, int64_t n_vocab, llmrt_error *err);
/* How tk_set_piece treats the string -> id map of the model vocabulary. */
typedef enum tk_vocab_mode {
    TK_NOT_IN_VOCAB,   /* an added token outside the model vocabulary */
    TK_VOCAB_UNIQUE,   /* tokenizer.json: a string with two ids is an error */
    TK_VOCAB_LAST_WINS /* GGUF: duplicate strings exist in real files; llama.cpp keeps the last */
} tk_vocab_mode;

/* Records id -> piece (copied) and, per `mode`, piece -> id. An id that already has a different
 * string is an error (`what` names the construct in the message). */
llmrt_status tk_set_piece(llmrt_tokenizer *tk, int32_t id, const char *s, size_t len,
                          tk_vocab_mode mode, const char *what, llmrt_error *err);
/* Adds a BPE merge by ids; rank = its order. */
llmrt_status tk_add_merge(llmrt_tokenizer *tk, int32_t a, int32_t b, uint32_t rank,
                          llmrt_error *err);
/* Builds lookup tables and added-token matchers, validates cross-references. */
llmrt_status tk_finalize(llmrt_tokenizer *tk, llmrt_error *err);
llmrt_status tk_pattern_init_literal(tk_pattern *p, const char *s, size_t len, llmrt_error *err);
void         tk_pattern_free(tk_pattern *p);
char        *tk_strndup(const char *s, size_t len);

/* ---- encode scratch ---------------------------------------------------------------------- */

typedef struct tk_piece {
    size_t  off, len; /* in enc->text */
    uint8_t flags;
} tk_piece;

enum {
    TK_PIECE_BYTES  = 1, /* raw bytes still to be mapped to byte-level characters */
    TK_PIECE_ORIGIN = 2, /* starts at offset 0 of the original input (Metaspace "first") */
};

typedef struct tk_pieces {
    tk_piece *v;
    size_t    n, cap;
} tk_pieces;

typedef struct tk_span {
    size_t start, end;
    bool   is_match;
} tk_span;

typedef struct tk_spans {
    tk_span *v;
    size_t   n, cap;
} tk_spans;

typedef struct tk_bpe_sym tk_bpe_sym;
typedef struct tk_bpe_merge tk_bpe_merge;

typedef struct tk_enc {
    const llmrt_tokenizer *tk;
    llmrt_error           *err;
    tk_buf                 text;      /* working text: pieces point into it by offset */
    tk_buf                 tmp;       /* scratch for one lookup / normalization */
    tk_pieces              pa, pb;    /* ping-pong piece lists of the pre-tokenizer */
    tk_spans               spans;     /* pattern matches of one split */
    tk_match_scratch      *ms;
    tk_bpe_sym            *syms;      /* model workspace */
    size_t                 syms_cap;
    tk_bpe_merge          *heap;
    size_t                 heap_cap;
    tk_ids                 out;
} tk_enc;

void tk_enc_init(tk_enc *e, const llmrt_tokenizer *tk, llmrt_error *err);
bool tk_enc_ready(const tk_enc *e); /* false if init could not allocate */
void tk_enc_free(tk_enc *e);
bool tk_pieces_push(tk_pieces *p, size_t off, size_t len, uint8_t flags);
bool tk_spans_push(tk_spans *s, size_t start, size_t end, bool is_match);

/* normalize.c: appends the normalized form of s[0..len) to out. */
llmrt_status tk_normalize(tk_enc *e, const char *s, size_t len, tk_buf *out);
/* pretokenize.c: splits enc->text[off..off+len) into enc->pa. */
llmrt_status tk_pretokenize(tk_enc *e, size_t off, size_t len, bool at_origin);
/* The HF find_matches of a pattern over s[0..len): spans covering s, matches flagged. */
llmrt_status tk_pattern_find(tk_enc *e, const tk_pattern *p, const char *s, size_t len);
/* bpe.c / spm.c: append the ids of one pre-token. */
llmrt_status tk_bpe_word(tk_enc *e, const char *s, size_t len, bool bytes);
llmrt_status tk_spm_word(tk_enc *e, const char *s, size_t len);
void         tk_model_scratch_free(tk_enc *e);
/* added_tokens.c */
llmrt_status tk_added_build(llmrt_tokenizer *tk, llmrt_error *err);
void         tk_added_free(llmrt_tokenizer *tk);
/* Splits s[0..len) by the added tokens of matcher m into spans covering s; span_ids holds, per
 * span, the token's id or -1 for text between tokens. */
llmrt_status tk_added_split(tk_enc *e, const tk_added_matcher *m, const char *s, size_t len,
                            bool parse_special, tk_spans *spans, tk_ids *span_ids);
/* decode.c: the decoder chain over ids; appends UTF-8 to out. hold_tail (streaming): bytes at
 * the very end that are an incomplete UTF-8 sequence are left out instead of becoming U+FFFD. */
llmrt_status tk_decode(const llmrt_tokenizer *tk, const int32_t *ids, int64_t n,
                       bool skip_special, bool hold_tail, tk_buf *out, llmrt_error *err);

#endif
