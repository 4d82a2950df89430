/* Serving metrics computed from per-request timelines, with the definitions of DESIGN.md
 * (written out in bench/README.md):
 *   TTFT = first token delivered - submit;  E2E = last token delivered - submit;
 *   TPOT = (E2E - TTFT) / (output tokens - 1), per request with >= 2 tokens;
 *   ITL  = every gap between consecutive deliveries of one request;
 *   throughput = output tokens / wall time (also total tokens and requests per wall second).
 * Percentiles over requests (TTFT, TPOT, E2E) or over gaps (ITL), linear interpolation between
 * order statistics (numpy's default), in milliseconds. */
#ifndef LLMRT_BENCH_METRICS_H
#define LLMRT_BENCH_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct bench_timeline {
    double   t_submit;
    double  *t_tokens; /* [n_tokens] delivery time of each output token */
    int32_t  n_tokens;
    int32_t  n_prompt;
    int32_t  n_cached;
    bool     failed;
} bench_timeline;

typedef struct bench_dist {
    double mean, median, std, p90, p99, min, max;
    int64_t n;
} bench_dist;

typedef struct bench_slo {
    double ttft_ms, tpot_ms, e2el_ms; /* 0 = no constraint */
} bench_slo;

typedef struct bench_summary {
    double     duration_s;
    int32_t    completed, failed;
    int64_t    total_input_tokens, total_output_tokens;
    double     request_throughput, output_throughput, total_token_throughput;
    double     request_goodput; /* requests/s meeting every SLO given */
    bench_dist ttft_ms, tpot_ms, itl_ms, e2el_ms;
} bench_summary;

/* Summarises n timelines over a wall time of duration_s. */
void bench_summarize(const bench_timeline *t, int32_t n, double duration_s, const bench_slo *slo,
                     bench_summary *out);
/* Distribution of v[0..n) (sorted in place). */
bench_dist bench_dist_of(double *v, int64_t n);

/* Writes the summary's fields as JSON members (vLLM's benchmark field names), without braces. */
void bench_summary_json(FILE *f, const bench_summary *s);
/* CSV: header line / value line with the same field order. */
void bench_summary_csv_header(FILE *f);
void bench_summary_csv_row(FILE *f, const bench_summary *s);

#endif
