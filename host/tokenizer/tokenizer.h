/* Tokenizer: one engine fed from two sources, an HF tokenizer.json (+ tokenizer_config.json) or
 * a GGUF file's tokenizer.ggml.* metadata.
 *
 * Pipeline of encode (the HF `tokenizers` order, which the golden tests compare against id for
 * id): invalid UTF-8 -> U+FFFD (maximal subparts, like Python's errors="replace") -> split out
 * added tokens matched on the raw text -> normalize each remaining segment -> split out added
 * tokens matched on normalized text -> pre-tokenize -> model (BPE by merge ranks, or
 * SentencePiece BPE by scores for GGUF "llama") -> post-processor (BOS/EOS) when add_special.
 *
 * Special-token safety: text is only parsed into tokens marked special when the caller passes
 * parse_special; otherwise "<|im_end|>" in user text becomes its literal pieces. Non-special
 * added tokens are always matched, as in HF tokenizers and llama.cpp.
 *
 * Anything the engine does not implement (a normalizer, pre-tokenizer, model or decoder type,
 * an option) is rejected at load with LLMRT_ERR_UNSUPPORTED naming it, never ignored.
 *
 * A loaded tokenizer is immutable: encode/decode may run concurrently from many threads. */
#ifndef LLMRT_TOKENIZER_TOKENIZER_H
#define LLMRT_TOKENIZER_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "format/gguf.h"

typedef struct llmrt_tokenizer llmrt_tokenizer;

/* tokenizer_config_path may be NULL (then add_bos/add_eos come from the post-processor alone). */
llmrt_status llmrt_tokenizer_load_hf(const char *tokenizer_json_path,
                                     const char *tokenizer_config_path, llmrt_tokenizer **out,
                                     llmrt_error *err);
/* tokenizer.json text already in memory (no config); `what` names it in messages. */
llmrt_status llmrt_tokenizer_load_hf_text(const char *json, size_t len, const char *what,
                                          llmrt_tokenizer **out, llmrt_error *err);
/* tokenizer.ggml.* metadata of an open GGUF file (the tokenizer copies what it needs). */
llmrt_status llmrt_tokenizer_load_gguf(const llmrt_gguf_file *f, llmrt_tokenizer **out,
                                       llmrt_error *err);
void         llmrt_tokenizer_destroy(llmrt_tokenizer *tk);

/* Number of ids: highest id + 1 (vocabulary plus added tokens). */
int32_t llmrt_tokenizer_vocab_size(const llmrt_tokenizer *tk);

/* Encodes text[0..len) (any bytes; NUL allowed). add_special: apply the post-processor (BOS/EOS)
 * as the tokenizer and its config say. parse_special: recognise added tokens marked special.
 * The ids are appended to the malloc'd vector *ids of *n_ids elements (*ids may be NULL and
 * *n_ids 0 to start one; the caller frees it). On failure *ids and *n_ids are unchanged. */
llmrt_status llmrt_tokenizer_encode(const llmrt_tokenizer *tk, const char *text, size_t len,
                                    bool add_special, bool parse_special, int32_t **ids,
                                    int64_t *n_ids, llmrt_error *err);

/* Decodes ids into a malloc'd NUL-terminated UTF-8 string (the caller frees it), the way HF
 * tokenizers' decode does (the tokenizer's decoder chain). skip_special drops special tokens.
 * An id out of range => LLMRT_ERR_INVALID_ARG naming its index. */
llmrt_status llmrt_tokenizer_decode(const llmrt_tokenizer *tk, const int32_t *ids, int64_t n,
                                    bool skip_special, char **text, size_t *len, llmrt_error *err);

/* Raw vocabulary string of an id (e.g. "Ġthe", "▁Hello", "<0x0A>"); NULL if out of range. */
const char *llmrt_tokenizer_piece(const llmrt_tokenizer *tk, int32_t id);
bool        llmrt_tokenizer_is_special(const llmrt_tokenizer *tk, int32_t id);
int32_t     llmrt_tokenizer_bos(const llmrt_tokenizer *tk); /* -1 if none */
int32_t     llmrt_tokenizer_eos(const llmrt_tokenizer *tk); /* -1 if none */
int32_t     llmrt_tokenizer_eot(const llmrt_tokenizer *tk); /* -1 if none (GGUF eot_token_id) */
int32_t     llmrt_tokenizer_pad(const llmrt_tokenizer *tk); /* -1 if none */
/* Whether add_special puts BOS in front / EOS at the end. */
bool        llmrt_tokenizer_adds_bos(const llmrt_tokenizer *tk);
bool        llmrt_tokenizer_adds_eos(const llmrt_tokenizer *tk);
/* Id of a vocabulary string or added token; -1 if none. */
int32_t     llmrt_tokenizer_token_id(const llmrt_tokenizer *tk, const char *piece);
/* The Jinja chat_template string of tokenizer_config.json / tokenizer.chat_template; NULL if
 * none (rendering lives in chat_template.c). */
const char *llmrt_tokenizer_chat_template(const llmrt_tokenizer *tk);
/* The chat template parsed at load (once; immutable, shared by every render). Errors:
 * LLMRT_ERR_NOT_FOUND when the model has none; the parse error (LLMRT_ERR_FORMAT or
 * LLMRT_ERR_UNSUPPORTED, naming the construct and line) when it did not parse. */
struct llmrt_jinja_template;
llmrt_status llmrt_tokenizer_chat_jinja(const llmrt_tokenizer *tk,
                                        const struct llmrt_jinja_template **tpl,
                                        llmrt_error *err);

/* Streaming detokenizer: turns ids, one at a time, into text deltas whose concatenation equals
 * llmrt_tokenizer_decode of all the ids. A delta never ends inside a UTF-8 sequence: while the
 * decoded text ends in an incomplete sequence the tail is held back, until a later token
 * completes it or flush() emits what is left. */
typedef struct llmrt_detokenizer llmrt_detokenizer;

llmrt_status llmrt_detokenizer_create(const llmrt_tokenizer *tk, bool skip_special,
                                      llmrt_detokenizer **out, llmrt_error *err);
/* *delta (NUL-terminated, possibly empty) is owned by the detokenizer and valid until the next
 * call on it. */
llmrt_status llmrt_detokenizer_push(llmrt_detokenizer *d, int32_t id, const char **delta,
                                    size_t *delta_len, llmrt_error *err);
/* Emits the held tail (end of stream) and resets the detokenizer for a new stream. */
llmrt_status llmrt_detokenizer_flush(llmrt_detokenizer *d, const char **delta, size_t *delta_len,
                                     llmrt_error *err);
void         llmrt_detokenizer_destroy(llmrt_detokenizer *d);

#endif
