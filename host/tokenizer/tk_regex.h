/* PCRE2 (UTF + UCP, JIT-compiled) behind a small interface, so that only tk_regex.c includes
 * pcre2.h. A compiled regex is immutable and shared by all threads; each encode call owns a
 * tk_match_scratch (match data + JIT stack). Subjects must be valid UTF-8 (the encoder
 * sanitizes its input first), so matching skips PCRE2's UTF check. */
#ifndef LLMRT_TOKENIZER_TK_REGEX_H
#define LLMRT_TOKENIZER_TK_REGEX_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

typedef struct tk_regex         tk_regex;
typedef struct tk_match_scratch tk_match_scratch;

/* `what` names the regex in error messages (e.g. "pre_tokenizer Split pattern"). */
llmrt_status tk_regex_compile(const char *pattern, size_t len, const char *what, tk_regex **out,
                              llmrt_error *err);
void         tk_regex_free(tk_regex *re);

tk_match_scratch *tk_match_scratch_create(void);
void              tk_match_scratch_free(tk_match_scratch *ms);

/* Leftmost match in s[0..len) starting at or after `start`: *found, and [*mstart, *mend). */
llmrt_status tk_regex_find(const tk_regex *re, tk_match_scratch *ms, const char *s, size_t len,
                           size_t start, bool *found, size_t *mstart, size_t *mend,
                           llmrt_error *err);

/* The GPT-2 pre-tokenizer regex of HF ByteLevel (use_regex) and tokenizer.ggml.pre "gpt2". */
extern const char TK_REGEX_GPT2[];
/* Llama 3's Split regex (tokenizer.ggml.pre "llama-bpe" / "llama3"). */
extern const char TK_REGEX_LLAMA3[];
/* Qwen2 / Qwen2.5's Split regex: Llama 3's with single digits (tokenizer.ggml.pre "qwen2"). */
extern const char TK_REGEX_QWEN2[];

#endif
