/* What every benchmark report states: the command, the machine, the git revision, the model and
 * its weight format, the backend and threads, the KV settings, and the roofline reference
 * (measured memory bandwidth and FMA throughput of this CPU). */
#ifndef LLMRT_BENCH_REPORT_H
#define LLMRT_BENCH_REPORT_H

#include <stdbool.h>
#include <stdio.h>

#include "llmrt.h"

typedef struct bench_context {
    int                 argc;
    char              **argv;
    const char         *model_path;
    llmrt_model_info    info;
    int                 threads;
    llmrt_engine_params engine;
    double              peak_gbps;   /* measured read bandwidth at `threads` */
    double              peak_gflops; /* measured fp32 FMA rate at `threads` (CPU) or datasheet */
    const char         *peak_source; /* where the peaks come from */
} bench_context;

/* K + V bytes per cached token (all layers) for the model's backend. */
double bench_kv_bytes_per_token(const llmrt_model_info *info);

/* The roofline references: measured on the CPU (about a second), datasheet values for known
 * GPUs (needs c->info filled). */
void bench_context_measure(bench_context *c);
/* "# key: value" lines for human output. */
void bench_context_print(FILE *f, const bench_context *c);
/* JSON members (no braces): "command", "machine", "git_revision", "model", ... */
void bench_context_json(FILE *f, const bench_context *c);

/* For reports without a local model (`bench serve --base-url`): the machine line ("CPU, N cores,
 * OS arch") and the command line ("llmrt bench ...", a JSON string when json). */
void bench_machine_string(char *buf, size_t n);
void bench_command_print(FILE *f, int argc, char **argv, bool json);

/* fp32 FMA throughput in GFLOP/s with n threads (register-resident loop). */
double bench_flops_probe(int n_threads);

#endif
