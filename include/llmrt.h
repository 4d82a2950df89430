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
 *    (it names the file, tensor, key or argument at fault). There is no per-handle error: read
 *    llmrt_last_error() on the thread that made the failing call, before its next failing call.
 *  - The library never exits or aborts on bad input: a malformed file or argument is a status.
 *  - The library prints nothing and reads no environment variable: options are params fields,
 *    and diagnostics go to the callback installed with llmrt_log_set() (none by default).
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
    LLMRT_ERR_BUFFER_TOO_SMALL = 12, /* an output buffer is too small; the size needed is
                                        returned through the call's size argument          */
    LLMRT_ERR_NOT_FOUND      = 13, /* no such request id / token / template                */
} llmrt_status;

/* Static name of a status, e.g. "LLMRT_ERR_FORMAT". Never NULL. */
LLMRT_API const char *llmrt_status_str(llmrt_status status);

/* Message of the last failed llmrt call on this thread ("" if none). Valid until the next
 * failing call on the same thread. */
LLMRT_API const char *llmrt_last_error(void);

/* ------------------------------------------------------------------------------------------ */
/* Logging                                                                                    */
/* ------------------------------------------------------------------------------------------ */

typedef enum llmrt_log_level {
    LLMRT_LOG_ERROR = 0,
    LLMRT_LOG_WARN  = 1, /* something the caller should know: e.g. a weight fallback at load */
    LLMRT_LOG_INFO  = 2, /* what the library decided: backend, kernels, memory at load       */
    LLMRT_LOG_DEBUG = 3,
} llmrt_log_level;

/* Receives one message (UTF-8, no trailing newline, valid during the call). It may be called
 * from any thread the library runs on, concurrently: it must be thread-safe. It must not call
 * llmrt_log_set. */
typedef void (*llmrt_log_callback)(llmrt_log_level level, const char *message, void *user_data);

/* Sends the library's messages of level <= min_level (ERROR is the most severe) to `callback`
 * with `user_data`. NULL callback (the default) = silent: the library never writes to stdout or
 * stderr itself. Process-wide; thread-safe (a message being delivered while this is called may
 * still reach the previous callback). */
LLMRT_API void llmrt_log_set(llmrt_log_level min_level, llmrt_log_callback callback,
                             void *user_data);

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
    LLMRT_DEVICE_CPU  = 0,
    LLMRT_DEVICE_CUDA = 1, /* CUDA device 0 (CUDA_VISIBLE_DEVICES selects it); fp16 activations,
                              bf16 with activation_dtype = LLMRT_ACTIVATION_BF16. A build
                              without CUDA, or a machine without a device: LLMRT_ERR_UNSUPPORTED */
} llmrt_device;

/* Activation (and KV cache) type of the CUDA backend. The CPU backend computes in fp32, except
 * that BF16 there runs the matmuls with f32, f16 or bf16 weights in bf16 on AVX512-BF16: the
 * weights rounded to bf16 at load (packed copies next to them), the activations rounded per
 * matmul, fp32 accumulation (~2x the fp32 rate; a token's result still depends on no other token
 * of the batch, but differs from the fp32 path by the bf16 rounding); the other values are
 * ignored on the CPU. */
typedef enum llmrt_activation_dtype {
    LLMRT_ACTIVATION_AUTO = 0, /* the backend's default: fp16 on CUDA                          */
    LLMRT_ACTIVATION_F16  = 1,
    LLMRT_ACTIVATION_BF16 = 2, /* for checkpoints with weights outside the fp16 range          */
    LLMRT_ACTIVATION_F32  = 3, /* a reference mode for tests and debugging (fp32 weights too)  */
} llmrt_activation_dtype;

/* Kernel set of the CPU backend. A set the CPU lacks falls back to the best one it has below
 * it (AVX512 -> AVX2 -> GENERIC). */
typedef enum llmrt_cpu_isa {
    LLMRT_CPU_ISA_AUTO    = 0, /* the best the CPU has                                          */
    LLMRT_CPU_ISA_AVX512  = 1,
    LLMRT_CPU_ISA_AVX2    = 2,
    LLMRT_CPU_ISA_GENERIC = 3, /* portable C                                                    */
} llmrt_cpu_isa;

/* Arithmetic of the CPU backend's matmuls. EXACT keeps fp32 activations and one fixed reduction
 * order per output, so a token's result is bit-identical whatever batch it runs in (the engine's
 * batch invariance). INT8 quantises the activations of matmuls with 4-bit, Q8_0, Q8_Z (8-bit
 * GPTQ with zero points), Q5_0 or Q5_1 weights to int8 per 32-column block, and with Q4_K, Q5_K or Q6_K weights per 256-column block
 * (llama.cpp's q8_K), as llama.cpp does, and runs integer dot products (AVX512-VNNI; the K-quants
 * also AVX2 or portable C, same bits): 2-3x the matmul rate, still independent of the batch and
 * the thread count, but not the same numbers as EXACT (logits move by ~1e-2, see
 * bench/results/cpu_gemm_before_after.txt; on llama.cpp-written K-quant / Q5 files of a tiny
 * random Llama, max |int8 - exact| is 0.7-4.7 % of max|logit|, tests/model/test_kquant_gguf.c).
 * Other weights (f32/f16/bf16, Q2_K, Q3_K), and 4-bit/Q8_0/Q5 on CPUs without AVX512-VNNI, stay
 * exact. */
typedef enum llmrt_cpu_matmul {
    LLMRT_CPU_MATMUL_EXACT = 0, /* the default */
    LLMRT_CPU_MATMUL_INT8  = 1,
} llmrt_cpu_matmul;

/* Storage of the KV cache (vLLM's --kv-cache-dtype). The 8-bit types keep one fp32 scale per
 * (token, KV head) next to the codes (its absmax maps onto the type's largest value), quantise K
 * and V when they are written and dequantise them inside the attention kernels: a quarter of the
 * fp32 CPU cache's bytes (+4 bytes per head_dim codes), half of the fp16 CUDA one. Logits move
 * (README: KV cache dtypes gives the error and greedy agreement measured on SmolLM2). BF16 keeps
 * K and V rounded to bf16 (round to nearest even, no scales), half the fp32 CPU cache's bytes, as
 * vLLM's CPU build does for a bf16 model; on CUDA, whose cache is in the activation dtype, it is
 * the same as AUTO with bf16 activations and refused with any other. */
typedef enum llmrt_kv_cache_dtype {
    LLMRT_KV_CACHE_AUTO     = 0, /* the activation type: fp16/bf16 on CUDA; on the CPU fp32
                                  * with EXACT matmuls, bf16 with INT8 ones or bf16 activations
                                  * (modes that already trade bits for speed; llama.cpp keeps
                                  * f16, vLLM's CPU build the model's bf16)                    */
    LLMRT_KV_CACHE_INT8     = 1, /* symmetric int8 codes -127..127                           */
    LLMRT_KV_CACHE_FP8_E4M3 = 2, /* OCP fp8 e4m3 ("e4m3fn", largest 448)                     */
    LLMRT_KV_CACHE_BF16     = 3, /* bf16 (RNE), no scales                                     */
    LLMRT_KV_CACHE_FP32     = 4, /* fp32: the CPU's cache in any matmul mode; on CUDA only
                                  * with f32 activations (refused otherwise)                   */
} llmrt_kv_cache_dtype;

typedef struct llmrt_model_params {
    uint32_t          struct_size; /* sizeof(llmrt_model_params), set by the default function */
    llmrt_load_format load_format;
    llmrt_device      device;
    int32_t           n_threads;   /* CPU worker threads; 0 = number of online cores          */
    uint64_t          random_seed; /* seed of LLMRT_LOAD_RANDOM weights                       */
    /* Tensor parallel: shard the model over this many ranks (0 or 1 = off). Under mpirun/srun
     * the job's processes form groups of consecutive ranks (one GPU or CPU backend each,
     * NCCL or MPI all-reduce); otherwise the ranks are threads of this process (CUDA: devices
     * 0..N-1, NCCL; CPU: N backends sharing the threads). See llmrt_model_tp_follow. */
    int32_t           tensor_parallel;
    /* -- fields added after 0.1.0 (a smaller struct_size gives them their defaults) -- */
    /* Seconds a tensor-parallel collective may take before the group is aborted and the step
     * fails on every rank; <= 0 = the default, 120. */
    double            tp_timeout_s;
    /* Microseconds a CPU rank spins at a pending collective before it sleeps between polls
     * (spinning saves a wake-up when every rank has a core; sleeping gives the core away when
     * the machine is oversubscribed); -1 = the default, 1000; 0 = never spin; at most 10^7.
     * Process-wide: the CPU communicators use the value of the TP model loaded last. */
    int32_t           tp_spin_us;
    llmrt_activation_dtype activation_dtype; /* CUDA activations; default AUTO (fp16); CPU:
                                              * BF16 = bf16 matmuls for bf16 weights         */
    llmrt_cpu_isa     cpu_isa;     /* CPU kernel set; default AUTO                            */
    /* Dequantise 4-bit (GPTQ, GGUF Q4_0/Q4_1) and 8-bit (GGUF Q8_0) matrices at load, to fp32
     * on the CPU (the backend's activation type on CUDA), instead of running the quantised
     * kernels: a comparison mode. Default false. */
    bool              dequantize_weights;
    /* What to do with a 4-bit matrix the backend cannot run as stored (e.g. on the CUDA backend
     * with bf16 activations, or a shape its 4-bit kernels do not take): false (the default)
     * fails the load with LLMRT_ERR_UNSUPPORTED naming the tensor, the backend and the reason;
     * true dequantises it at load (more memory, slower), logs a warning and reports it in
     * llmrt_model_info's n_fallbacks / fallback. (GGUF Q8_0 matrices on a CUDA backend with f32
     * activations, whose 8-bit kernels take fp16 / bf16 only, are still converted to f32
     * without this switch.) */
    bool              allow_fallback;
    llmrt_cpu_matmul  cpu_matmul;  /* CPU matmul arithmetic; default EXACT                    */
    /* LoRA adapters folded into the weights at load (zero per-token cost): n_loras paths (PEFT
     * directories or GGUF adapters) and their scales (NULL = 1.0 each), read during the call
     * only. W' = W + scale * (alpha / r) * B A, stored fp32 (the backend converts it as any
     * fp32 weight; an f16/bf16 sum would round the delta away). A base whose adapted
     * matrices are quantised (4-bit, Q8_0) cannot hold the sum: the adapters are then kept
     * unmerged and an engine of the model applies them to every request that names no adapter
     * of its own (llmrt_model_info.n_lora_unmerged says so; one adapter at most on such a base:
     * more is LLMRT_ERR_UNSUPPORTED at load). */
    const char *const *lora_paths;
    const float       *lora_scales;
    int32_t            n_loras;
    /* CUDA: run every decode step eagerly, one launch per kernel (vLLM's enforce_eager). Default
     * false: a decode-only step runs as one CUDA graph of the whole forward per batch-size bucket
     * (1, 2, 4, ...; the batch padded up to it), captured on the bucket's first step. Ignored on
     * the CPU. */
    bool               enforce_eager;
    /* How every KV cache of the model stores K and V; default AUTO. A backend without kernels
     * for the type fails the load with LLMRT_ERR_UNSUPPORTED naming kv_cache_dtype. */
    llmrt_kv_cache_dtype kv_cache_dtype;
    /* CPU: bind thread i of the backend's pool to the i-th CPU the process may run on (its
     * affinity mask: narrow it with taskset / numactl), as vLLM's VLLM_CPU_OMP_THREADS_BIND or
     * llama.cpp's --cpu-strict do; the thread that steps the engine is thread 0 and is bound
     * too, on its first step. Default false (the scheduler places the threads). A mask with
     * fewer CPUs than n_threads fails the load with LLMRT_ERR_INVALID_ARG naming the field;
     * refused with CPU tensor parallel (its ranks would share the first CPUs). */
    bool                 cpu_pin_threads;
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
    char     backend[16];             /* "cpu" or "cuda"                                      */
    char     device_name[64];         /* e.g. "NVIDIA H100 80GB HBM3"; "cpu" on the CPU       */
    int32_t  kv_elem_bytes;           /* bytes per K/V element in the cache (4 cpu, 2 cuda or
                                       * kv_cache_dtype bf16; 1 with an 8-bit kv_cache_dtype,
                                       * plus a 4-byte scale per token and KV head)           */
    int32_t  tp_size;                 /* tensor-parallel ranks (1 = off)                      */
    int32_t  tp_rank;                 /* this process's rank in its group (0 = the leader)    */
    char     tp_comm[8];              /* "local", "mpi", "nccl"; "" without TP                */
    /* -- fields added after 0.1.0 -- */
    int32_t  n_fallbacks;             /* matrices loaded other than as stored because the
                                         backend cannot run them (allow_fallback), 0 = none    */
    char     fallback[128];           /* a summary of them, e.g. "q4->f16 dequantised: 168
                                         matrices (the 4-bit kernels take fp16 activations
                                         only)"; "" when n_fallbacks == 0                      */
    int32_t  n_lora_merged;           /* adapters of lora_paths folded into the weights       */
    int32_t  n_lora_unmerged;         /* adapters of lora_paths kept unmerged (a quantised
                                         base): applied per token by an engine of the model   */
    bool     cuda_graphs;             /* decode steps run as CUDA graphs (a CUDA model without
                                         enforce_eager or tensor parallel, and no capture has
                                         failed); false on the CPU                            */
    int64_t  cuda_graph_replays;      /* decode steps run by a graph so far (captures
                                         included)                                            */
} llmrt_model_info;

/* Fills `info` (whose struct_size the caller sets). */
LLMRT_API llmrt_status llmrt_model_get_info(const llmrt_model *model, llmrt_model_info *info);

/* Tensor-parallel followers (llmrt_model_tp_follow), TP statistics and the low-level forward on a
 * packed batch over a caller-managed KV cache: see llmrt_experimental.h. */

/* ------------------------------------------------------------------------------------------ */
/* Tokenizer and chat templates (the model's own; loaded with it)                             */
/* ------------------------------------------------------------------------------------------ */

/* Size protocol for output buffers: pass the capacity; the call stores the size needed in *n
 * (tokens) or *len (bytes, excluding the NUL) and returns LLMRT_ERR_BUFFER_TOO_SMALL without
 * writing past the capacity when it does not fit. Pass NULL / 0 to query the size. */

/* Encodes text[0..len) (any bytes; NUL allowed). add_special: add BOS/EOS as the tokenizer's
 * post-processor says. parse_special: recognise special-token strings in the text (never do this
 * for text from users: "<|im_end|>" would forge a turn boundary). */
LLMRT_API llmrt_status llmrt_tokenize(const llmrt_model *model, const char *text, size_t len,
                                      bool add_special, bool parse_special, int32_t *ids,
                                      int32_t capacity, int32_t *n);
/* Decodes ids to UTF-8 text; writes a NUL when capacity > *len. */
LLMRT_API llmrt_status llmrt_detokenize(const llmrt_model *model, const int32_t *ids, int32_t n_ids,
                                        bool skip_special, char *text, size_t capacity,
                                        size_t *len);
/* The raw vocabulary string of a token (NULL if out of range); owned by the model. */
LLMRT_API const char  *llmrt_token_piece(const llmrt_model *model, int32_t id);

typedef struct llmrt_chat_message {
    const char *role;    /* "system", "user", "assistant", "tool" or any role the model's
                            template accepts */
    const char *content; /* UTF-8 */
} llmrt_chat_message;

/* Renders messages with the model's own Jinja chat template (run by llmrt's interpreter, byte
 * for byte what HF apply_chat_template renders), or with the built-in family named by
 * `template_name` ("chatml", "llama2", "llama3", "mistral"; NULL = the model's template). A model
 * without a template needs template_name (LLMRT_ERR_UNSUPPORTED otherwise); a template that does
 * not parse is reported with its line (LLMRT_ERR_FORMAT / LLMRT_ERR_UNSUPPORTED); a template that
 * raises (raise_exception) is LLMRT_ERR_INVALID_ARG with its message. */
LLMRT_API llmrt_status llmrt_chat_apply_template(const llmrt_model *model, const char *template_name,
                                                 const llmrt_chat_message *messages,
                                                 int32_t n_messages, bool add_generation_prompt,
                                                 char *text, size_t capacity, size_t *len);

/* As llmrt_chat_apply_template, with the conversation as OpenAI/HF JSON, passed to the model's
 * template exactly as HF's apply_chat_template(messages, tools=tools) passes it:
 * `messages_json` a non-empty JSON array of message objects, each with a string "role"; content
 * a string, a list of parts ({"type": "text", "text": ...}, ...) or null; tool_calls,
 * tool_call_id, name and any other field kept as given. `tools_json` a JSON array of tools
 * (NULL or "null" = none). Both are UTF-8 JSON texts of at most 64 MiB nested at most 64 deep.
 * Bad JSON or a bad field is LLMRT_ERR_INVALID_ARG naming the index and field
 * ("messages[1].role: must be a string"). A built-in family (`template_name`) renders only role
 * + string or text-part content (parts joined with "\n") and no tools: anything else is
 * LLMRT_ERR_INVALID_ARG naming the field. Other errors and the size protocol as above. */
LLMRT_API llmrt_status llmrt_chat_apply_template_json(const llmrt_model *model,
                                                      const char *template_name,
                                                      const char *messages_json,
                                                      const char *tools_json,
                                                      bool add_generation_prompt, char *text,
                                                      size_t capacity, size_t *len);

/* ------------------------------------------------------------------------------------------ */
/* Sampling                                                                                   */
/* ------------------------------------------------------------------------------------------ */

#define LLMRT_MAX_LOGIT_BIAS 65536 /* entries of llmrt_sampling_params.logit_bias */

typedef struct llmrt_sampling_params {
    uint32_t            struct_size;
    float               temperature;        /* 0 = greedy; default 1.0 (or generation_config)  */
    float               top_p;              /* (0, 1]; 1 = off                                  */
    int32_t             top_k;              /* -1 or 0 = off (vLLM); < -1 is rejected           */
    float               min_p;              /* [0, 1]; 0 = off                                  */
    float               repetition_penalty; /* > 0; 1 = off (prompt and output tokens)         */
    float               presence_penalty;   /* output tokens; 0 = off                           */
    float               frequency_penalty;  /* output tokens; 0 = off                           */
    int32_t             max_tokens;         /* >= 1; generation also ends at the context end   */
    int32_t             min_tokens;         /* stop tokens are ignored before this many        */
    uint64_t            seed;               /* used when has_seed                               */
    int32_t             n_logprobs;         /* top-n logprobs per token, 0..20                  */
    const int32_t      *stop_token_ids;     /* extra stop ids (the model's EOS ids always stop
                                               unless ignore_eos)                               */
    int32_t             n_stop_token_ids;
    const char *const  *stop;               /* stop strings: matched on text across tokens,
                                               not emitted                                      */
    int32_t             n_stop;
    bool                has_seed;
    bool                ignore_eos;
    bool                skip_special_tokens; /* in text output; default true                    */
    /* -- fields added after 0.1.0 (a smaller struct_size gives them their defaults) -- */
    int32_t             n;                  /* sequences to generate from the prompt, 1..64;
                                               default 1. The prompt is prefilled once and its
                                               KV blocks shared (copy-on-write). Sequence i
                                               samples with seed + i when has_seed. Anything else
                                               is LLMRT_ERR_INVALID_ARG. See llmrt_output.index;
                                               the metrics' n_running counts sequences. */
    int32_t             n_prompt_logprobs;  /* with prompt_logprobs: top-n per prompt position,
                                               0..20 (0 = the prompt token's own only)         */
    bool                prompt_logprobs;    /* return the log-probability of every prompt token
                                               given the tokens before it (vLLM's
                                               prompt_logprobs; see llmrt_output). Costs a
                                               logits row per prompt token, and the request
                                               skips the prefix cache: a cached prefix has no
                                               logits, so the prompt is computed in full
                                               (vLLM does the same). Default false.            */
    /* OpenAI's logit_bias: logit_bias[i] is added to the logit of token logit_bias_ids[i]
     * before the penalties, temperature and filters (vLLM's order), greedy decoding included,
     * so -100 bans a token in practice and +100 forces it. Ids in [0, vocab) (repeated ids add
     * up), values in [-100, 100], at most LLMRT_MAX_LOGIT_BIAS entries; else
     * LLMRT_ERR_INVALID_ARG naming the entry. Copied at submit. Logprobs stay those of the raw
     * logits. Default none.                                                                 */
    const int32_t      *logit_bias_ids;
    const float        *logit_bias;
    int32_t             n_logit_bias;
} llmrt_sampling_params;

/* Library defaults (temperature 1, top_p 1, top_k off, max_tokens 256, ...). */
LLMRT_API llmrt_sampling_params llmrt_sampling_default_params(void);
/* The defaults with the model's generation_config.json values (temperature, top_p, top_k,
 * repetition_penalty) applied where the checkpoint has them. */
LLMRT_API llmrt_sampling_params llmrt_model_sampling_defaults(const llmrt_model *model);

/* ------------------------------------------------------------------------------------------ */
/* Engine: continuous batching over a paged KV cache                                          */
/* ------------------------------------------------------------------------------------------ */

/* Thread contract: llmrt_engine_submit, llmrt_engine_abort, llmrt_engine_get_metrics and
 * llmrt_engine_metrics_prometheus may be called from any thread at any time. llmrt_engine_step
 * must be called by one thread at a time (or use llmrt_engine_start_loop, which steps on an
 * internal thread and calls back). */
typedef struct llmrt_engine llmrt_engine;

typedef enum llmrt_kv_policy {
    LLMRT_KV_PREEMPT = 0, /* when blocks run out, preempt the newest running request and
                             recompute it later (vLLM); the default                          */
    LLMRT_KV_RESERVE = 1, /* admit a request only when prompt + max_tokens fit; never preempt */
} llmrt_kv_policy;

typedef struct llmrt_engine_params {
    uint32_t        struct_size;
    int32_t         block_size;         /* tokens per KV block; default 16                   */
    int64_t         kv_tokens;          /* KV budget in tokens; default 8192                  */
    int64_t         kv_bytes;           /* KV budget in bytes (used when kv_tokens == 0)      */
    int32_t         max_batched_tokens; /* tokens per step (decodes + prefill chunks); 512    */
    int32_t         max_seqs;           /* running requests at most; default 64               */
    llmrt_kv_policy policy;
    bool            prefix_caching;     /* default true                                       */
    /* -- LoRA adapters served per request (llmrt_engine_lora_load); fields added after 0.1.0 -- */
    int32_t         max_loras;          /* adapters resident at once (executor slots); 8       */
    int64_t         max_lora_bytes;     /* bytes of resident adapters (fp32 A and B); 0 = no
                                           limit beyond max_loras                            */
} llmrt_engine_params;

LLMRT_API llmrt_engine_params llmrt_engine_default_params(void);
/* The engine borrows the model (destroy the engine first). The KV budget is rounded up to whole
 * blocks; it fails with LLMRT_ERR_NO_KV_SPACE when no budget is given or the pool cannot be
 * allocated. */
LLMRT_API llmrt_status llmrt_engine_create(llmrt_model *model, const llmrt_engine_params *params,
                                           llmrt_engine **out);
/* Stops the loop thread if running; in-flight requests are dropped (no callbacks). */
LLMRT_API void         llmrt_engine_destroy(llmrt_engine *engine);

/* What to generate from: exactly one of tokens, text, messages or messages_json. */
typedef struct llmrt_prompt {
    uint32_t                  struct_size;
    const int32_t            *tokens;        /* token ids (used as given)                     */
    int32_t                   n_tokens;
    const char               *text;          /* raw text, tokenized with the tokenizer's BOS/EOS
                                                (add_special on) and special-token parsing off */
    size_t                    text_len;
    const llmrt_chat_message *messages;      /* chat: rendered with the chat template, the
                                                generation prompt appended                     */
    int32_t                   n_messages;
    const char               *chat_template; /* family name overriding the model's, or NULL   */
    int32_t                   priority;      /* lower runs first; FCFS within a priority      */
    void                     *user_data;     /* returned in every output of the request       */
    /* -- fields added after 0.1.0 (a smaller struct_size leaves them off) -- */
    const char               *lora_adapter;  /* name of an adapter registered with
                                                llmrt_engine_lora_load, or NULL = the base model */
    float                     lora_scale;    /* multiplies the adapter's delta (on top of its
                                                alpha / r); 0 = 1.0                             */
    /* chat as OpenAI/HF JSON (llmrt_chat_apply_template_json), instead of messages: the
     * conversation and its tools (NULL = none), rendered with the generation prompt */
    const char               *messages_json;
    const char               *tools_json;
} llmrt_prompt;

/* Queues a request; on success *request_id identifies it (ids start at 1). Errors (bad params,
 * a prompt that can never fit the KV pool or the context) are returned here, never later. The
 * engine copies everything it needs: the caller may free the prompt and params at once. */
LLMRT_API llmrt_status llmrt_engine_submit(llmrt_engine *engine, const llmrt_prompt *prompt,
                                           const llmrt_sampling_params *params,
                                           uint64_t *request_id);

/* Cancels a request at any stage (queued, mid-prefill, decoding, or finishing in the current
 * step); its KV blocks are freed exactly once and it ends with an output whose finish reason is
 * LLMRT_FINISH_ABORT (unless it had already finished). Idempotent: aborting a finished or already
 * aborted request is LLMRT_OK. An id never issued is LLMRT_ERR_NOT_FOUND. */
LLMRT_API llmrt_status llmrt_engine_abort(llmrt_engine *engine, uint64_t request_id);

/* LoRA adapters served per request (vLLM's multi-LoRA): `path` is a PEFT directory
 * (adapter_config.json + adapter_model.safetensors) or a llama.cpp GGUF adapter, read and
 * checked against the model on the calling thread (the engine keeps stepping meanwhile), then
 * registered as `name` (printable, no spaces or quotes, < 128 bytes) for llmrt_prompt's
 * lora_adapter. One batch mixes requests of different adapters and none; an adapter is copied
 * into one of the engine's max_loras slots when a request needs it, evicting the least recently
 * used one no running request uses. Errors name the file and the field (LLMRT_ERR_UNSUPPORTED
 * for DoRA, modules_to_save, embedding / lm_head adapters; LLMRT_ERR_MODEL_MISMATCH for shapes).
 * Any thread. */
LLMRT_API llmrt_status llmrt_engine_lora_load(llmrt_engine *engine, const char *name,
                                              const char *path);
/* Unregisters `name`: requests already submitted with it finish with it; new ones naming it
 * fail with LLMRT_ERR_NOT_FOUND. Any thread. */
LLMRT_API llmrt_status llmrt_engine_lora_unload(llmrt_engine *engine, const char *name);

typedef struct llmrt_lora_info {
    uint32_t struct_size;      /* set by the caller to sizeof(llmrt_lora_info)               */
    char     name[128];
    char     path[1024];
    int32_t  max_rank;         /* largest rank of its projections                            */
    int32_t  n_modules;        /* adapted projections (layers x targets)                     */
    uint64_t bytes;            /* fp32 bytes of its A and B matrices                         */
    bool     resident;         /* in a slot now                                              */
    uint64_t n_requests;       /* requests submitted with it                                 */
    uint64_t n_generated;      /* tokens generated by those of them that have finished      */
    uint64_t n_loads;          /* times copied into a slot                                   */
} llmrt_lora_info;

/* Fills out[0 .. min(n, cap)) with the registered adapters in load order and returns n, the
 * number registered (out may be NULL with cap 0 to count). -1 on a bad argument. */
LLMRT_API int32_t llmrt_engine_lora_list(llmrt_engine *engine, llmrt_lora_info *out, int32_t cap);

typedef enum llmrt_finish_reason {
    LLMRT_FINISH_NONE   = 0, /* still running                                               */
    LLMRT_FINISH_STOP   = 1, /* a stop token or stop string                                 */
    LLMRT_FINISH_LENGTH = 2, /* max_tokens, the context end, or the KV pool cannot grow it  */
    LLMRT_FINISH_ABORT  = 3,
    LLMRT_FINISH_ERROR  = 4, /* see status / error_message                                  */
} llmrt_finish_reason;

/* One request's progress in one step. With n > 1 (llmrt_sampling_params.n) one request id covers
 * n sequences and each output is one sequence's (`index`, 0..n-1): its own tokens, text,
 * logprobs and finish. Each index finishes exactly once; the request is over when all n have
 * finished. llmrt_engine_abort ends all n (each reports LLMRT_FINISH_ABORT unless already
 * finished). n_prompt_tokens / n_cached_tokens are the shared prompt's. Pointers are owned by the engine and stay valid until the
 * next llmrt_engine_step call (or the next callback of the loop). struct_size is the library's
 * sizeof(llmrt_output): step through the array returned by llmrt_engine_step with it, so a
 * caller compiled against an older header keeps working when fields are added at the end. */
typedef struct llmrt_output {
    uint32_t            struct_size;
    uint64_t            request_id;
    void               *user_data;
    const int32_t      *tokens;        /* [n_tokens] new token ids (a stop token included)   */
    int32_t             n_tokens;
    const char         *text;          /* new text, whole UTF-8 characters, NUL-terminated   */
    size_t              text_len;
    const float        *logprobs;      /* [n_tokens] log-probability of each new token       */
    const int32_t      *top_ids;       /* [n_tokens * n_top], when n_logprobs was asked      */
    const float        *top_logprobs;  /* [n_tokens * n_top]                                 */
    int32_t             n_top;
    llmrt_finish_reason finish;
    llmrt_status        status;        /* for LLMRT_FINISH_ERROR                             */
    const char         *error_message; /* "" unless finish == LLMRT_FINISH_ERROR             */
    int32_t             n_prompt_tokens;
    int32_t             n_cached_tokens; /* prompt tokens found in the prefix cache          */
    int32_t             n_generated;     /* tokens generated so far                          */
    int32_t             n_preemptions;
    double              t_submit;        /* seconds, CLOCK_MONOTONIC                         */
    double              t_first_token;   /* 0 until the first token                          */
    double              t_now;           /* when this output was made                        */
    /* -- fields added after 0.1.0 -- */
    int32_t             index;           /* which of the request's n sequences, 0-based      */
    /* prompt_logprobs (llmrt_sampling_params): once per request, in the output of sequence 0
     * that carries its first generated token; NULL / 0 in every other output. Position i holds
     * log p(prompt[i] | prompt[0..i)) from the raw logits (log_softmax, as the generated
     * tokens' logprobs); position 0 has no context: NaN, its top ids -1 (vLLM's None). */
    const int32_t      *prompt_token_ids;    /* [n_prompt_logprobs] the tokens they score      */
    const float        *prompt_logprobs;     /* [n_prompt_logprobs]                            */
    const int32_t      *prompt_top_ids;      /* [n_prompt_logprobs * n_prompt_top], descending
                                                by logprob, ties by id                         */
    const float        *prompt_top_logprobs; /* [n_prompt_logprobs * n_prompt_top]             */
    int32_t             n_prompt_logprobs;   /* n_prompt_tokens when present, else 0           */
    int32_t             n_prompt_top;
} llmrt_output;

/* Runs one scheduling step: every running decode plus prefill chunks up to max_batched_tokens,
 * one forward, sampling. *outputs (owned by the engine) lists the requests that produced tokens
 * or finished. With nothing to do it returns LLMRT_OK and *n_outputs = 0 at once. On a backend
 * failure the in-flight requests end with LLMRT_FINISH_ERROR and the status is returned. */
LLMRT_API llmrt_status llmrt_engine_step(llmrt_engine *engine, const llmrt_output **outputs,
                                         int32_t *n_outputs);
/* Requests queued or running. */
LLMRT_API int32_t      llmrt_engine_pending(llmrt_engine *engine);

/* Steps on an internal thread until stopped, calling `callback` (on that thread) for every
 * output. Submit and abort from any thread meanwhile. */
typedef void (*llmrt_output_callback)(const llmrt_output *output, void *callback_data);
LLMRT_API llmrt_status llmrt_engine_start_loop(llmrt_engine *engine, llmrt_output_callback callback,
                                               void *callback_data);
/* Waits for the thread to finish its current step and stops it; queued requests stay queued. */
LLMRT_API llmrt_status llmrt_engine_stop_loop(llmrt_engine *engine);

#define LLMRT_HISTOGRAM_BUCKETS 16
typedef struct llmrt_histogram {
    double  upper[LLMRT_HISTOGRAM_BUCKETS];  /* bucket upper bounds in seconds (last = +inf) */
    int64_t count[LLMRT_HISTOGRAM_BUCKETS];  /* cumulative counts, Prometheus style          */
    double  sum;
    int64_t n;
} llmrt_histogram;

typedef struct llmrt_engine_metrics {
    uint32_t        struct_size;
    int32_t         n_waiting;
    int32_t         n_running;
    int32_t         kv_blocks_total;
    int32_t         kv_blocks_used;
    int32_t         kv_blocks_cached;   /* free but holding a reusable prefix */
    int32_t         kv_blocks_free;
    int64_t         prefix_cache_queries; /* prompt tokens looked up          */
    int64_t         prefix_cache_hits;    /* of which found                   */
    double          prefix_cache_hit_rate;
    int64_t         preemptions;
    int64_t         prompt_tokens;        /* prompt tokens computed           */
    int64_t         generation_tokens;
    int64_t         requests_finished;
    int64_t         requests_aborted;
    int64_t         steps;
    llmrt_histogram ttft;                 /* submit -> first token            */
    llmrt_histogram itl;                  /* gaps between tokens              */
    llmrt_histogram e2e;                  /* submit -> finish                 */
    bool            healthy;              /* false once a sticky backend fault made the
                                             engine dead (every call fails: recreate it) */
    /* -- fields added after 0.1.0 (a smaller struct_size gets only the fields it holds) -- */
    llmrt_histogram tpot;       /* per request generating >= 2 tokens, at finish:
                                   (e2e - ttft) / (generated - 1)                      */
    llmrt_histogram queue_time; /* submit -> first admission by the scheduler, once per
                                   request (a preempted request's re-admission is not) */
} llmrt_engine_metrics;

LLMRT_API llmrt_status llmrt_engine_get_metrics(llmrt_engine *engine, llmrt_engine_metrics *m);
/* Prometheus text exposition format (size protocol above). */
LLMRT_API llmrt_status llmrt_engine_metrics_prometheus(llmrt_engine *engine, char *text,
                                                       size_t capacity, size_t *len);

/* Blocking convenience: submits one request to `engine`, steps until it finishes, and calls
 * `on_text` with each text delta (may be NULL). One sequence only: params->n > 1 is
 * LLMRT_ERR_INVALID_ARG (use llmrt_engine_submit / llmrt_engine_step). The full result is summarised in *result
 * (optional). Must not be used while the engine's loop thread runs. */
typedef struct llmrt_generate_result {
    uint32_t            struct_size;
    llmrt_finish_reason finish;
    int32_t             n_prompt_tokens;
    int32_t             n_generated;
    double              ttft_s;      /* submit -> first token */
    double              total_s;     /* submit -> finish      */
} llmrt_generate_result;
typedef void (*llmrt_text_callback)(const char *text, size_t len, void *callback_data);
LLMRT_API llmrt_status llmrt_generate(llmrt_engine *engine, const llmrt_prompt *prompt,
                                      const llmrt_sampling_params *params,
                                      llmrt_text_callback on_text, void *callback_data,
                                      llmrt_generate_result *result);

#ifdef __cplusplus
}
#endif
#endif /* LLMRT_H */
