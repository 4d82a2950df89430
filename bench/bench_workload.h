/* The serving workload shared by `llmrt bench serve` in process and over HTTP (--base-url):
 * the same options and seeds give the same prompts, output lengths and arrival times. */
#ifndef LLMRT_BENCH_WORKLOAD_H
#define LLMRT_BENCH_WORKLOAD_H

#include <stdint.h>

#include "bench_metrics.h" /* bench_slo */

typedef struct req_spec {
    int32_t *ids;        /* random prompt token ids (NULL for a dataset prompt) */
    int32_t  n_ids;
    char    *text;       /* dataset prompt (NULL for random ids) */
    int32_t  max_tokens; /* output length */
} req_spec;

/* num_prompts prompts of random ids in [0, vocab): lengths uniform in [in_min, in_max], output
 * lengths uniform in [out_min, out_max], from `seed`. */
/* NULL (with a message) when out of memory. */
req_spec *bench_workload_random(int32_t num_prompts, int32_t in_min, int32_t in_max,
                                int32_t out_min, int32_t out_max, uint64_t seed, int32_t vocab);
/* The largest prompt or output length (tokens) a dataset line or --input-len/--output-len may
 * ask for: it sizes per-request arrays, so it is bounded before any allocation (far above any
 * model's context). */
#define BENCH_MAX_LEN (1 << 20)

/* Per-token timestamps for a request of up to max_tokens tokens (+1 for the last event), with
 * overflow-checked size math; NULL (with a message) when out of memory or out of range. */
double *bench_alloc_token_times(int32_t max_tokens);

/* At most n_max prompts from a JSONL file ({"prompt": "...", "output_len": n}); -1 when none.
 * The file must be a regular file (a FIFO would block). A line that is not JSON, has no prompt
 * string, or an output_len that is not an integer in [1, BENCH_MAX_LEN] is skipped with a
 * message naming the file, line and field. */
int bench_workload_dataset(const char *path, int32_t n_max, int32_t default_out, req_spec **out,
                           int32_t *n);
/* Checks --dataset before the model is loaded and the machine probed (seconds): it must be a
 * regular file. -1 with a message naming it. */
int bench_workload_check_dataset(const char *path);
/* Arrival times (seconds from the start) of n requests: all 0 when rate <= 0, else a Poisson
 * process of `rate` requests/s from `seed`. */
void bench_workload_arrivals(int32_t n, double rate, uint64_t seed, double *arrival);
void bench_workload_free(req_spec *specs, int32_t n);

/* Bounds of the other options (host/cli/cli_args.h checks every value against its range):
 * prompts per run (each holds a spec and per-token timestamps), arrivals per second, HTTP
 * timeouts in seconds (converted to milliseconds in a long). */
#define BENCH_MAX_PROMPTS   (1 << 24)
#define BENCH_MAX_RATE      1e9
#define BENCH_MAX_TIMEOUT_S 1e7

/* --input-len / --output-len: "N" or "MIN:MAX" (1 <= MIN <= MAX <= BENCH_MAX_LEN, the whole
 * argument); -1 with a message naming `opt` on stderr. */
int bench_parse_range(const char *opt, const char *arg, int32_t *lo, int32_t *hi);
/* --goodput: "ttft:MS,tpot:MS,e2el:MS" (any subset, each a finite number > 0, nothing else);
 * -1 with a message on stderr. */
int bench_parse_slo(const char *arg, bench_slo *slo);
/* Microseconds to sleep until an arrival `seconds` away: at most 0.1 s (the caller looks
 * again), at least 1; the conversion is range-checked (an arrival far off, from a tiny
 * --request-rate, overflowed it). */
unsigned bench_wait_us(double seconds);
/* --request-rate: 0 (all at once) or a finite rate in [1e-3, BENCH_MAX_RATE] requests/s;
 * -1 with a message on stderr. */
int bench_parse_rate(const char *arg, double *rate);
/* --format table|json|csv: *fmt = 0, 1 or 2; -1 with a message on stderr. */
int bench_parse_format(const char *arg, int *fmt);

#endif
