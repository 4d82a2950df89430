/* The benchmark harness behind `llmrt bench ...`. */
#ifndef LLMRT_BENCH_H
#define LLMRT_BENCH_H

#include <stddef.h>

/* Best-of-`reps` memory bandwidth in GB/s with n_threads threads over a `bytes` buffer:
 * reads only (copy == 0) or read + write (copy == 1). */
double bench_membw(int n_threads, size_t bytes, int copy, int reps);

/* `llmrt bench <mode> ...` */
int bench_main(int argc, char **argv);

#endif
