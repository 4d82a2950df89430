/*
 * llmrt_experimental.h — experimental additions to the public C API of llmrt.
 *
 * EXPERIMENTAL: the calls and types declared here may change or disappear between minor versions
 * of llmrt, and no ABI compatibility is promised for them (a struct may grow without a leading
 * struct_size, a signature may change). Code that needs a stable interface uses llmrt.h alone.
 * Check LLMRT_EXPERIMENTAL_VERSION when you depend on a particular revision of this header.
 *
 * What is here:
 *  - the tensor-parallel follower loop and TP statistics (llmrt_model_tp_follow,
 *    llmrt_model_get_tp_stats);
 *  - the paged KV cache and the low-level forward on a packed batch (llmrt_kv_cache_*,
 *    llmrt_batch, llmrt_forward): what the engine does for you, for callers that manage block
 *    tables themselves;
 *  - a standalone tokenizer loaded from a tokenizer.json or from a GGUF file without its weights
 *    (llmrt_text_tokenizer_*);
 *  - a streaming detokenizer over a model's or a standalone tokenizer (llmrt_text_detokenizer_*);
 *  - the process's place in an MPI job, for data-parallel tools (llmrt_mpi_world_*).
 *
 * It follows the conventions of llmrt.h (which it includes): every fallible call returns
 * llmrt_status and sets llmrt_last_error() on failure, handles are opaque, `*_destroy(NULL)` is a
 * no-op, and buffers follow the size protocol described in llmrt.h. Plain C11.
 */
#ifndef LLMRT_EXPERIMENTAL_H
#define LLMRT_EXPERIMENTAL_H

#include "llmrt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Revision of this header; bumped whenever a declaration below changes. */
#define LLMRT_EXPERIMENTAL_VERSION 2 /* 2: llmrt_batch gained lora_slots, lora_scales */

/* ------------------------------------------------------------------------------------------ */
/* Tensor parallel: followers and statistics                                                  */
/* ------------------------------------------------------------------------------------------ */

/* Tensor parallel across processes: every process of a group loads the model with the same
 * params; the group's rank 0 (the leader: llmrt_model_get_info's tp_rank == 0) is the model the
 * caller drives (KV caches, forwards, engines). Every other rank must call this, which serves
 * the leader's KV-cache and forward requests (they arrive over MPI) until the leader destroys
 * its model; then it returns LLMRT_OK and the caller destroys this model. It returns an error
 * when the group fails (a collective timed out or a rank died); the process should then exit
 * non-zero. On the leader, or without TP, it returns LLMRT_ERR_INVALID_ARG. */
LLMRT_API llmrt_status llmrt_model_tp_follow(llmrt_model *model);

/* Time the leader spent in all-reduce collectives since the model was loaded. */
typedef struct llmrt_tp_stats {
    uint32_t struct_size;  /* set by the caller                                                */
    int64_t  n_all_reduce; /* collectives called by the leader (2 per layer per forward)      */
    int64_t  bytes;        /* payload bytes per rank summed over those calls                   */
    double   seconds;      /* host wall time inside them (incl. waiting for slower ranks)      */
    int64_t  n_forwards;
} llmrt_tp_stats;
LLMRT_API llmrt_status llmrt_model_get_tp_stats(const llmrt_model *model, llmrt_tp_stats *out);

/* ------------------------------------------------------------------------------------------ */
/* KV cache + low-level forward on a packed batch                                             */
/* ------------------------------------------------------------------------------------------ */

/* A paged KV pool: `n_blocks` blocks of `block_size` token slots, for every layer. Which blocks
 * belong to which sequence is the caller's business (block tables in llmrt_batch); the engine
 * (later API) manages this for you. */
typedef struct llmrt_kv_cache llmrt_kv_cache;

typedef struct llmrt_kv_cache_params {
    uint32_t struct_size;
    int32_t  block_size; /* tokens per block; default 16                                     */
    int32_t  n_blocks;   /* blocks in the pool; 0 = derive from max_tokens / max_bytes      */
    int64_t  max_tokens; /* budget in tokens (used when n_blocks == 0 and > 0)              */
    int64_t  max_bytes;  /* budget in bytes  (used when n_blocks == 0 and max_tokens == 0)  */
} llmrt_kv_cache_params;

LLMRT_API llmrt_kv_cache_params llmrt_kv_cache_default_params(void);
LLMRT_API llmrt_status llmrt_kv_cache_create(llmrt_model *model, const llmrt_kv_cache_params *params,
                                             llmrt_kv_cache **out);
LLMRT_API void         llmrt_kv_cache_destroy(llmrt_kv_cache *kv);
LLMRT_API int32_t      llmrt_kv_cache_n_blocks(const llmrt_kv_cache *kv);
LLMRT_API int32_t      llmrt_kv_cache_block_size(const llmrt_kv_cache *kv);
/* Bytes of KV storage per token slot (all layers, K and V). */
LLMRT_API int64_t      llmrt_kv_cache_bytes_per_token(const llmrt_kv_cache *kv);

/* A packed batch: the new tokens of several sequences, concatenated. Token i belongs to sequence
 * seq_ids[i] and sits at position positions[i]; its K/V are written to the slot of that position
 * in the sequence's block table, and it attends to positions 0..positions[i] of its sequence,
 * which must all be written (now or by an earlier forward). Tokens may appear in any order. */
typedef struct llmrt_batch {
    int32_t        n_tokens;
    const int32_t *tokens;             /* [n_tokens] token ids                                */
    const int32_t *positions;          /* [n_tokens] position of each token in its sequence   */
    const int32_t *seq_ids;            /* [n_tokens] index 0..n_seqs-1 of the token's sequence */
    int32_t        n_seqs;
    int32_t        max_blocks_per_seq; /* row stride of block_tables                          */
    const int32_t *block_tables;       /* [n_seqs, max_blocks_per_seq] block ids, -1 = unused */
    int32_t        n_outputs;          /* rows of logits wanted                               */
    const int32_t *output_tokens;      /* [n_outputs] indices into tokens whose logits to
                                          return; NULL = the last token (in batch order) of
                                          each sequence, in sequence order                    */
    /* LoRA adapters served per request (an engine with adapters fills these; NULL = none):
     * the adapter slot of each token (-1 = none) and the scale applied to its delta */
    const int32_t *lora_slots;         /* [n_tokens] */
    const float   *lora_scales;        /* [n_tokens] */
} llmrt_batch;

/* Runs the model on `batch` and writes logits[n_outputs][vocab_size] (float32) into `logits`,
 * whose capacity in floats is `logits_capacity`. The batch is validated first (ids, positions,
 * block ids, outputs); on a validation error nothing is written to the cache. */
LLMRT_API llmrt_status llmrt_forward(llmrt_kv_cache *kv, const llmrt_batch *batch, float *logits,
                                     int64_t logits_capacity);

/* ------------------------------------------------------------------------------------------ */
/* Chat content format                                                                        */
/* ------------------------------------------------------------------------------------------ */

/* Whether the chat template (the model's own; a family name `template_name` never) iterates over
 * a message's content, i.e. takes OpenAI content-part lists as they are; otherwise a server
 * joins text parts into one string first. vLLM's "content format" detection, done on the
 * template source: a `{% for x in EXPR %}` with EXPR ending in ['content'], ["content"] or
 * .content, or a variable set from one. False for a model without a tokenizer or template. */
LLMRT_API bool llmrt_chat_template_takes_parts(const llmrt_model *model, const char *template_name);

/* ------------------------------------------------------------------------------------------ */
/* Standalone tokenizer (no model, no weights)                                                */
/* ------------------------------------------------------------------------------------------ */

/* A tokenizer on its own: the same engine a model loads (ids identical to the model's), for
 * tools that only tokenize. Immutable once loaded: encode and decode may run concurrently. */
typedef struct llmrt_text_tokenizer llmrt_text_tokenizer;

/* Loads a tokenizer from `path`, which is one of
 *  - a GGUF file (recognised by its magic): only its tokenizer.ggml.* metadata is read;
 *  - a directory holding tokenizer.json (and tokenizer_config.json, used when present);
 *  - a tokenizer.json file.
 * `config_path` names a tokenizer_config.json (add_bos/add_eos, chat template) for the two
 * tokenizer.json forms; NULL = none for a file, the directory's own for a directory. It must be
 * NULL for a GGUF file (LLMRT_ERR_INVALID_ARG). A file that cannot be opened is LLMRT_ERR_IO
 * naming it. On success *out owns the tokenizer; on failure *out is NULL. */
LLMRT_API llmrt_status llmrt_text_tokenizer_load(const char *path, const char *config_path,
                                                 llmrt_text_tokenizer **out);
LLMRT_API void         llmrt_text_tokenizer_destroy(llmrt_text_tokenizer *tok);

/* Number of token ids (highest id + 1, added tokens included); 0 for NULL. */
LLMRT_API int32_t      llmrt_text_tokenizer_vocab_size(const llmrt_text_tokenizer *tok);

/* As llmrt_tokenize / llmrt_detokenize, on a standalone tokenizer (same size protocol). An id out
 * of range is LLMRT_ERR_INVALID_ARG naming it. */
LLMRT_API llmrt_status llmrt_text_tokenizer_encode(const llmrt_text_tokenizer *tok, const char *text,
                                                   size_t len, bool add_special, bool parse_special,
                                                   int32_t *ids, int32_t capacity, int32_t *n);
LLMRT_API llmrt_status llmrt_text_tokenizer_decode(const llmrt_text_tokenizer *tok,
                                                   const int32_t *ids, int32_t n_ids,
                                                   bool skip_special, char *text, size_t capacity,
                                                   size_t *len);
/* The BOS and EOS ids of the tokenizer (tokenizer_config.json's bos_token / eos_token, or the
 * GGUF's tokenizer.ggml.bos/eos_token_id); -1 when it has none or for NULL. */
LLMRT_API int32_t      llmrt_text_tokenizer_bos(const llmrt_text_tokenizer *tok);
LLMRT_API int32_t      llmrt_text_tokenizer_eos(const llmrt_text_tokenizer *tok);
/* The raw vocabulary string of a token (NULL if out of range); owned by the tokenizer. */
LLMRT_API const char  *llmrt_text_tokenizer_token_piece(const llmrt_text_tokenizer *tok, int32_t id);

/* The chat template the tokenizer carries: tokenizer_config.json's chat_template (a string; the
 * "default" one of a list) or the GGUF's tokenizer.chat_template. NULL when it has none;
 * owned by the tokenizer. */
LLMRT_API const char  *llmrt_text_tokenizer_chat_template(const llmrt_text_tokenizer *tok);
/* As llmrt_chat_apply_template and llmrt_chat_apply_template_json (same renderer, same
 * arguments, errors and size protocol), with the standalone tokenizer's own template, or the
 * built-in family `template_name` ("chatml", "llama2", "llama3", "mistral"; NULL = its own). A
 * tokenizer without a template needs template_name (LLMRT_ERR_UNSUPPORTED otherwise). */
LLMRT_API llmrt_status llmrt_text_tokenizer_apply_chat_template(
    const llmrt_text_tokenizer *tok, const char *template_name, const llmrt_chat_message *messages,
    int32_t n_messages, bool add_generation_prompt, char *text, size_t capacity, size_t *len);
LLMRT_API llmrt_status llmrt_text_tokenizer_apply_chat_template_json(
    const llmrt_text_tokenizer *tok, const char *template_name, const char *messages_json,
    const char *tools_json, bool add_generation_prompt, char *text, size_t capacity, size_t *len);

/* ------------------------------------------------------------------------------------------ */
/* Streaming detokenizer                                                                      */
/* ------------------------------------------------------------------------------------------ */

/* Turns token ids, pushed one at a time, into text deltas whose concatenation (flush included)
 * equals llmrt_detokenize of all the ids with the same skip_special. A delta never ends inside a
 * UTF-8 character: an incomplete tail is held back until a later token completes it or flush
 * emits it. One stream at a time, one thread at a time; it borrows the model or tokenizer it was
 * made from (destroy the detokenizer first). */
typedef struct llmrt_text_detokenizer llmrt_text_detokenizer;

/* Over a model's tokenizer (LLMRT_ERR_UNSUPPORTED when the model has none). */
LLMRT_API llmrt_status llmrt_text_detokenizer_create(const llmrt_model *model, bool skip_special,
                                                     llmrt_text_detokenizer **out);
/* Over a standalone tokenizer. */
LLMRT_API llmrt_status llmrt_text_detokenizer_create_from_tokenizer(const llmrt_text_tokenizer *tok,
                                                                    bool skip_special,
                                                                    llmrt_text_detokenizer **out);
/* Adds one id. *text (NUL-terminated, possibly empty) is the new text, owned by the detokenizer
 * and valid until its next call; *len (optional) its length in bytes. An id out of range is
 * LLMRT_ERR_INVALID_ARG and leaves the stream as it was; after any other error destroy it. */
LLMRT_API llmrt_status llmrt_text_detokenizer_push(llmrt_text_detokenizer *detok, int32_t token,
                                                   const char **text, size_t *len);
/* Ends the stream: *text is what was held back (often ""). The detokenizer then starts a new
 * stream. */
LLMRT_API llmrt_status llmrt_text_detokenizer_flush(llmrt_text_detokenizer *detok,
                                                    const char **text, size_t *len);
LLMRT_API void         llmrt_text_detokenizer_destroy(llmrt_text_detokenizer *detok);

/* ------------------------------------------------------------------------------------------ */
/* Input files (the tools open theirs as the library opens models, configs and tokenizers)     */
/* ------------------------------------------------------------------------------------------ */

/* Opens `path` read-only (O_CLOEXEC, blocking reads) into *fd when it is a regular file. A FIFO,
 * socket, device or directory is refused before anything is read and without blocking (a FIFO
 * with no writer would block the open or the first read forever): LLMRT_ERR_IO, with
 * llmrt_last_error() naming the path and what it is. The caller closes *fd. */
LLMRT_API llmrt_status llmrt_file_open_regular(const char *path, int *fd);
/* For optional files: *present is 1 when `path` is a regular file, 0 when nothing is there.
 * Anything else at the path (or a failing stat) is LLMRT_ERR_IO naming it. */
LLMRT_API llmrt_status llmrt_file_probe_regular(const char *path, int *present);

/* ------------------------------------------------------------------------------------------ */
/* The MPI job (data-parallel tools)                                                          */
/* ------------------------------------------------------------------------------------------ */

/* This process's rank and the number of processes of the job. Under a launcher (mpirun/srun:
 * OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK set) MPI is initialised on the first call; else,
 * or in a build without MPI, rank 0 of 1. Idempotent. When MPI cannot be initialised the
 * status says why (outputs untouched). Either output may be NULL. */
LLMRT_API llmrt_status llmrt_mpi_world_info(int32_t *rank, int32_t *size);
/* Barrier over every process of the job (LLMRT_OK at once for a job of one). */
LLMRT_API llmrt_status llmrt_mpi_world_barrier(void);
/* Kills every process of the job after a fatal error (MPI_Abort with `code`); returns when this
 * is not an MPI job. */
LLMRT_API void         llmrt_mpi_world_abort(int code);
/* Ends the process's MPI use, before exit (no-op when MPI was not initialised). */
LLMRT_API void         llmrt_mpi_world_finalize(void);

#ifdef __cplusplus
}
#endif
#endif /* LLMRT_EXPERIMENTAL_H */
