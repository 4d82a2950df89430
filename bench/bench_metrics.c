#include "bench_metrics.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* numpy.percentile's default ("linear"): rank = q/100 * (n - 1), interpolate neighbours. */
static double percentile_sorted(const double *v, int64_t n, double q) {
    if (n == 0) return 0.0;
    double  rank = q / 100.0 * (double)(n - 1);
    int64_t lo   = (int64_t)floor(rank);
    int64_t hi   = lo + 1 < n ? lo + 1 : lo;
    return v[lo] + (v[hi] - v[lo]) * (rank - (double)lo);
}

bench_dist bench_dist_of(double *v, int64_t n) {
    bench_dist d = {0};
    d.n          = n;
    if (n == 0) return d;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += v[i];
    d.mean = sum / (double)n;
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (v[i] - d.mean) * (v[i] - d.mean);
    d.std    = sqrt(ss / (double)n); /* population std, as numpy.std */
    d.median = percentile_sorted(v, n, 50);
    d.p90    = percentile_sorted(v, n, 90);
    d.p99    = percentile_sorted(v, n, 99);
    d.min    = v[0];
    d.max    = v[n - 1];
    return d;
}

void bench_summarize(const bench_timeline *t, int32_t n, double duration_s, const bench_slo *slo,
                     bench_summary *out) {
    *out            = (bench_summary){0};
    out->duration_s = duration_s;
    int64_t n_gaps  = 0;
    for (int32_t i = 0; i < n; i++) n_gaps += t[i].n_tokens > 1 ? t[i].n_tokens - 1 : 0;
    double *ttft = malloc(((size_t)n + 1) * sizeof(double));
    double *tpot = malloc(((size_t)n + 1) * sizeof(double));
    double *e2el = malloc(((size_t)n + 1) * sizeof(double));
    double *itl  = malloc(((size_t)n_gaps + 1) * sizeof(double));
    int64_t n_ttft = 0, n_tpot = 0, n_e2el = 0, n_itl = 0, good = 0;
    for (int32_t i = 0; i < n; i++) {
        const bench_timeline *r = &t[i];
        if (r->failed || r->n_tokens == 0) {
            out->failed++;
            continue;
        }
        out->completed++;
        out->total_input_tokens += r->n_prompt;
        out->total_output_tokens += r->n_tokens;
        double ft = (r->t_tokens[0] - r->t_submit) * 1e3;
        double e2 = (r->t_tokens[r->n_tokens - 1] - r->t_submit) * 1e3;
        ttft[n_ttft++] = ft;
        e2el[n_e2el++] = e2;
        double tp      = 0;
        if (r->n_tokens > 1) {
            tp             = (e2 - ft) / (r->n_tokens - 1);
            tpot[n_tpot++] = tp;
        }
        for (int32_t k = 1; k < r->n_tokens; k++)
            itl[n_itl++] = (r->t_tokens[k] - r->t_tokens[k - 1]) * 1e3;
        bool ok = true;
        if (slo && slo->ttft_ms > 0 && ft > slo->ttft_ms) ok = false;
        if (slo && slo->tpot_ms > 0 && tp > slo->tpot_ms) ok = false;
        if (slo && slo->e2el_ms > 0 && e2 > slo->e2el_ms) ok = false;
        good += ok;
    }
    if (duration_s > 0) {
        out->request_throughput     = out->completed / duration_s;
        out->output_throughput      = (double)out->total_output_tokens / duration_s;
        out->total_token_throughput =
            (double)(out->total_input_tokens + out->total_output_tokens) / duration_s;
        out->request_goodput        = (double)good / duration_s;
    }
    out->ttft_ms = bench_dist_of(ttft, n_ttft);
    out->tpot_ms = bench_dist_of(tpot, n_tpot);
    out->itl_ms  = bench_dist_of(itl, n_itl);
    out->e2el_ms = bench_dist_of(e2el, n_e2el);
    free(ttft);
    free(tpot);
    free(e2el);
    free(itl);
}

static void json_dist(FILE *f, const char *name, const bench_dist *d) {
    fprintf(f, ",\n  \"mean_%s_ms\": %.4f, \"median_%s_ms\": %.4f, \"std_%s_ms\": %.4f, "
               "\"p90_%s_ms\": %.4f, \"p99_%s_ms\": %.4f",
            name, d->mean, name, d->median, name, d->std, name, d->p90, name, d->p99);
}

void bench_summary_json(FILE *f, const bench_summary *s) {
    fprintf(f, "  \"duration\": %.6f, \"completed\": %d, \"failed\": %d,\n"
               "  \"total_input_tokens\": %lld, \"total_output_tokens\": %lld,\n"
               "  \"request_throughput\": %.4f, \"request_goodput\": %.4f, "
               "\"output_throughput\": %.4f, \"total_token_throughput\": %.4f",
            s->duration_s, s->completed, s->failed, (long long)s->total_input_tokens,
            (long long)s->total_output_tokens, s->request_throughput, s->request_goodput,
            s->output_throughput, s->total_token_throughput);
    json_dist(f, "ttft", &s->ttft_ms);
    json_dist(f, "tpot", &s->tpot_ms);
    json_dist(f, "itl", &s->itl_ms);
    json_dist(f, "e2el", &s->e2el_ms);
}

static const char *const dist_names[] = {"ttft", "tpot", "itl", "e2el"};

void bench_summary_csv_header(FILE *f) {
    fprintf(f, "duration,completed,failed,total_input_tokens,total_output_tokens,"
               "request_throughput,request_goodput,output_throughput,total_token_throughput");
    for (int i = 0; i < 4; i++)
        fprintf(f, ",mean_%s_ms,median_%s_ms,std_%s_ms,p90_%s_ms,p99_%s_ms", dist_names[i],
                dist_names[i], dist_names[i], dist_names[i], dist_names[i]);
}

void bench_summary_csv_row(FILE *f, const bench_summary *s) {
    fprintf(f, "%.6f,%d,%d,%lld,%lld,%.4f,%.4f,%.4f,%.4f", s->duration_s, s->completed, s->failed,
            (long long)s->total_input_tokens, (long long)s->total_output_tokens,
            s->request_throughput, s->request_goodput, s->output_throughput,
            s->total_token_throughput);
    const bench_dist *d[] = {&s->ttft_ms, &s->tpot_ms, &s->itl_ms, &s->e2el_ms};
    for (int i = 0; i < 4; i++)
        fprintf(f, ",%.4f,%.4f,%.4f,%.4f,%.4f", d[i]->mean, d[i]->median, d[i]->std, d[i]->p90,
                d[i]->p99);
}
