/*
 * llmrt.h — the public C API of llmrt, an inference runtime for Llama-family models.
 *
 * This is the only header a user includes. It is plain C11 and is compiled as C by the tests.
 *
 * Conventions
 *  - Every name starts with `llmrt_` / `LLMRT_`. Handles are opaque; `*_destroy(NULL)` is a no-op.
 *  - Options live in `llmrt_*_params` structs. Always start from `llmrt_*_default_params()` and
 *    change fields afterwards: the leading `struct_size` lets a newer library accept a struct
 *    compiled against an older header (fields past `struct_size` take their defaults).
 *  - Every fallible call returns `llmrt_status` (LLMRT_OK == 0). Status values are never
 *    renumbered; new ones may be added. `llmrt_status_str()` names a status and
 *    `llmrt_last_error()` gives the message of the last failed call *on the calling thread*
 *    (it names the file, tensor, key or argument at fault). Handles also keep their own last error.
 *  - The library never exits or aborts on bad input: a malformed file or argument is a status.
 *  - Memory returned by the library is owned by the library unless a comment says otherwise.
 *  - Token ids and positions are int32_t; byte and element counts are int64_t / size_t.
 */
#ifndef LLMRT_H
#define LLMRT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define LLMRT_API __declspec(dllexport)
#elif defined(__GNUC__)
#define LLMRT_API __attribute__((visibility("default")))
#else
#define LLMRT_API
#endif

#define LLMRT_VERSION_MAJOR  0
#define LLMRT_VERSION_MINOR  1
#define LLMRT_VERSION_PATCH  0
#define LLMRT_VERSION_NUMBER (LLMRT_VERSION_MAJOR * 1000000 + LLMRT_VERSION_MINOR * 1000 + LLMRT_VERSION_PATCH)

/* Run-time version, to compare with LLMRT_VERSION_NUMBER when linking a shared library. */
LLMRT_API int32_t llmrt_version(void);

/* ------------------------------------------------------------------------------------------ */
/* Status codes                                                                               */
/* ------------------------------------------------------------------------------------------ */

typedef enum llmrt_status {
    LLMRT_OK                 = 0,
    LLMRT_ERR_INVALID_ARG    = 1,  /* a caller-supplied argument is out of range or NULL     */
    LLMRT_ERR_IO             = 2,  /* a file could not be opened, read or mapped             */
    LLMRT_ERR_FORMAT         = 3,  /* a file is malformed (bad magic, sizes, offsets, JSON)  */
    LLMRT_ERR_UNSUPPORTED    = 4,  /* valid input we do not handle (architecture, dtype, op) */
    LLMRT_ERR_OUT_OF_MEMORY  = 5,  /* host or device allocation failed                       */
    LLMRT_ERR_MODEL_MISMATCH = 6,  /* files disagree: missing tensor, shape != config        */
    LLMRT_ERR_NO_KV_SPACE    = 7,  /* the KV cache cannot hold what was asked                */
    LLMRT_ERR_BACKEND        = 8,  /* a backend (device, library) call failed                */
    LLMRT_ERR_DEAD           = 9,  /* a sticky fault happened earlier; recreate the handle   */
    LLMRT_ERR_ABORTED        = 10, /* the operation was cancelled by the caller             */
    LLMRT_ERR_INTERNAL       = 11, /* a bug in llmrt: please report it                      */
} llmrt_status;

/* Static name of a status, e.g. "LLMRT_ERR_FORMAT". Never NULL. */
LLMRT_API const char *llmrt_status_str(llmrt_status status);

/* Message of the last failed llmrt call on this thread ("" if none). Valid until the next
 * failing call on the same thread. */
LLMRT_API const char *llmrt_last_error(void);

/* ------------------------------------------------------------------------------------------ */
/* Model                                                                                      */
/* ------------------------------------------------------------------------------------------ */

typedef struct llmrt_model llmrt_model;

typedef enum llmrt_load_format {
    LLMRT_LOAD_AUTO   = 0, /* directory => HF checkpoint; *.gguf file => GGUF              */
    LLMRT_LOAD_HF     = 1, /* directory with config.json + *.safetensors                   */
    LLMRT_LOAD_GGUF   = 2, /* one GGUF v3 file                                             */
    LLMRT_LOAD_RANDOM = 3, /* config.json (file or directory) only; weights filled with a
                              deterministic pseudo-random pattern, for benchmarking shapes */
} llmrt_load_format;

typedef enum llmrt_device {
    LLMRT_DEVICE_CPU = 0,
} llmrt_device;

typedef struct llmrt_model_params {
    uint32_t          struct_size; /* sizeof(llmrt_model_params), set by the default function */
    llmrt_load_format load_format;
    llmrt_device      device;
    int32_t           n_threads;   /* CPU worker threads; 0 = number of online cores          */
    uint64_t          random_seed; /* seed of LLMRT_LOAD_RANDOM weights                       */
} llmrt_model_params;

LLMRT_API llmrt_model_params llmrt_model_default_params(void);

/* Loads a model. `path` is an HF checkpoint directory, a .gguf file, or (random format) a
 * config.json or a directory holding one. On success *out owns the model; on failure *out is
 * NULL and llmrt_last_error() explains. Files are memory-mapped and validated before use. */
LLMRT_API llmrt_status llmrt_model_load(const char *path, const llmrt_model_params *params,
                                        llmrt_model **out);
LLMRT_API void         llmrt_model_destroy(llmrt_model *model);

typedef struct llmrt_model_info {
    uint32_t struct_size;             /* set by the caller to sizeof(llmrt_model_info)        */
    char     architecture[32];        /* "llama" (Llama 2/3, Mistral, SmolLM2 all map here)   */
    char     weight_format[16];       /* "f32", "f16", "bf16", or "mixed"                     */
    int32_t  vocab_size;
    int32_t  hidden_size;
    int32_t  intermediate_size;
    int32_t  n_layers;
    int32_t  n_heads;
    int32_t  n_kv_heads;
    int32_t  head_dim;
    int32_t  max_context;             /* max_position_embeddings / llama.context_length       */
    float    rope_theta;
    float    rms_norm_eps;
    int32_t  bos_token_id;            /* -1 when none                                         */
    int32_t  n_eos_token_ids;
    int32_t  eos_token_ids[8];
    int64_t  n_params;                /* parameters counted over all weight tensors           */
    int64_t  weight_bytes;            /* bytes the backend holds for weights                  */
    bool     tie_word_embeddings;
} llmrt_model_info;

/* Fills `info` (whose struct_size the caller sets). */
LLMRT_API llmrt_status llmrt_model_get_info(const llmrt_model *model, llmrt_model_info *info);

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
} llmrt_batch;

/* Runs the model on `batch` and writes logits[n_outputs][vocab_size] (float32) into `logits`,
 * whose capacity in floats is `logits_capacity`. The batch is validated first (ids, positions,
 * block ids, outputs); on a validation error nothing is written to the cache. */
LLMRT_API llmrt_status llmrt_forward(llmrt_kv_cache *kv, const llmrt_batch *batch, float *logits,
                                     int64_t logits_capacity);

#ifdef __cplusplus
}
#endif
#endif /* LLMRT_H */
