/* libFuzzer harness: the `llmrt bench serve --dataset` reader (bench/bench_workload.c,
 * bench_workload_dataset and its dataset_line) over arbitrary file contents, written to one
 * reused file. Besides ASan/UBSan and leaks: it returns 0 exactly when it kept a
 * prompt; each kept prompt has its text and an output length in [1, BENCH_MAX_LEN] (the
 * default when the line gives none); never more than asked for. The file is a memfd (a regular
 * file in memory, opened by its /proc/self/fd path): a disk file's truncate-and-write each run
 * costs more than the parse (1 ms against 60 us). The reader's per-line messages go to a
 * /dev/null stream swapped in for `stderr` during the call (sanitizer reports, written to fd 2
 * directly, and libFuzzer's own output are unaffected). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench_workload.h"

static char path[64];
static int  fd = -1;
static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    if ((fd = memfd_create("fuzz_bench_dataset", 0)) < 0 || !(devnull = fopen("/dev/null", "w")))
        abort();
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 65536) return 0;
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size) abort();
    const int32_t n_max = 32, default_out = 17;
    req_spec     *specs = NULL;
    int32_t       n     = -1;
    FILE         *err   = stderr;
    stderr              = devnull;
    int           rc    = bench_workload_dataset(path, n_max, default_out, &specs, &n);
    stderr              = err;
    if (n < 0 || n > n_max || (rc == 0) != (n > 0) || !specs) __builtin_trap();
    for (int32_t i = 0; i < n; i++) {
        if (!specs[i].text || specs[i].ids || specs[i].n_ids) __builtin_trap();
        if (specs[i].max_tokens < 1 || specs[i].max_tokens > BENCH_MAX_LEN) __builtin_trap();
    }
    bench_workload_free(specs, n_max);
    return 0;
}
