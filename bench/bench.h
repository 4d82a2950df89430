/* The benchmark harness behind `llmrt bench ...`. */
#ifndef LLMRT_BENCH_H
#define LLMRT_BENCH_H

#include <stddef.h>

/* Best-of-`reps` memory bandwidth in GB/s with n_threads threads over a `bytes` buffer:
 * reads only (copy == 0) or read + write (copy == 1). */
/* bench_membw modes (bench/membw.c) */
enum { BENCH_MEMBW_READ = 0, BENCH_MEMBW_COPY = 1, BENCH_MEMBW_TRIAD = 2, BENCH_MEMBW_READ_SCALAR = 3 };
double bench_membw(int n_threads, size_t bytes, int mode, int reps);

/* `llmrt bench <mode> ...` */
int bench_main(int argc, char **argv);

#endif
