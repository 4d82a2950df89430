#include "metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const double bucket_bounds[LLMRT_HISTOGRAM_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    INFINITY,
};

void llmrt_histogram_init(llmrt_histogram *h) {
    memset(h, 0, sizeof *h);
    memcpy(h->upper, bucket_bounds, sizeof bucket_bounds);
}

void llmrt_engine_metrics_init_histograms(llmrt_engine_metrics *m) {
    llmrt_histogram_init(&m->ttft);
    llmrt_histogram_init(&m->itl);
    llmrt_histogram_init(&m->e2e);
    llmrt_histogram_init(&m->tpot);
    llmrt_histogram_init(&m->queue_time);
}

void llmrt_histogram_observe(llmrt_histogram *h, double seconds) {
    for (int i = 0; i < LLMRT_HISTOGRAM_BUCKETS; i++)
        if (seconds <= h->upper[i]) h->count[i]++; /* cumulative, as Prometheus exposes them */
    h->sum += seconds;
    h->n++;
}

typedef struct writer {
    char  *buf;
    size_t cap, len;
} writer;

static void put(writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(writer *w, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char   *dst  = w->len < w->cap ? w->buf + w->len : NULL;
    size_t  room = w->len < w->cap ? w->cap - w->len : 0;
    int     n    = vsnprintf(dst, room, fmt, ap);
    va_end(ap);
    if (n > 0) w->len += (size_t)n;
}

static void put_histogram(writer *w, const char *name, const char *help, const llmrt_histogram *h) {
    put(w, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (int i = 0; i < LLMRT_HISTOGRAM_BUCKETS; i++) {
        if (isinf(h->upper[i])) put(w, "%s_bucket{le=\"+Inf\"} %lld\n", name, (long long)h->count[i]);
        else put(w, "%s_bucket{le=\"%g\"} %lld\n", name, h->upper[i], (long long)h->count[i]);
    }
    put(w, "%s_sum %.6f\n%s_count %lld\n", name, h->sum, name, (long long)h->n);
}

static void put_value(writer *w, const char *name, const char *type, const char *help, double v) {
    put(w, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

size_t llmrt_metrics_format_prometheus(const llmrt_engine_metrics *m, char *text, size_t capacity) {
    writer w = {.buf = text, .cap = capacity, .len = 0};
    put_value(&w, "llmrt_engine_healthy", "gauge", "1 while the engine can serve; 0 after a sticky "
              "backend fault (restart it).", m->healthy ? 1.0 : 0.0);
    put_value(&w, "llmrt_requests_waiting", "gauge", "Requests queued.", m->n_waiting);
    put_value(&w, "llmrt_requests_running", "gauge", "Requests running.", m->n_running);
    put_value(&w, "llmrt_kv_blocks_capacity", "gauge", "KV cache blocks in the pool.", m->kv_blocks_total);
    put_value(&w, "llmrt_kv_blocks_used", "gauge", "KV blocks referenced by requests.", m->kv_blocks_used);
    put_value(&w, "llmrt_kv_blocks_cached", "gauge", "Free KV blocks holding a reusable prefix.",
              m->kv_blocks_cached);
    put_value(&w, "llmrt_kv_blocks_free", "gauge", "Empty KV blocks.", m->kv_blocks_free);
    put_value(&w, "llmrt_kv_cache_usage_ratio", "gauge", "Fraction of KV blocks in use.",
              m->kv_blocks_total ? (double)m->kv_blocks_used / m->kv_blocks_total : 0.0);
    put_value(&w, "llmrt_prefix_cache_queries_total", "counter",
              "Prompt tokens looked up in the prefix cache.", (double)m->prefix_cache_queries);
    put_value(&w, "llmrt_prefix_cache_hits_total", "counter",
              "Prompt tokens found in the prefix cache.", (double)m->prefix_cache_hits);
    put_value(&w, "llmrt_prefix_cache_hit_rate", "gauge", "Prefix cache hits / queries.",
              m->prefix_cache_hit_rate);
    put_value(&w, "llmrt_preemptions_total", "counter", "Requests preempted for recompute.",
              (double)m->preemptions);
    put_value(&w, "llmrt_prompt_tokens_total", "counter", "Prompt tokens computed.",
              (double)m->prompt_tokens);
    put_value(&w, "llmrt_generation_tokens_total", "counter", "Tokens generated.",
              (double)m->generation_tokens);
    put_value(&w, "llmrt_requests_finished_total", "counter", "Requests finished.",
              (double)m->requests_finished);
    put_value(&w, "llmrt_requests_aborted_total", "counter", "Requests aborted.",
              (double)m->requests_aborted);
    put_value(&w, "llmrt_engine_steps_total", "counter", "Engine steps run.", (double)m->steps);
    put_histogram(&w, "llmrt_time_to_first_token_seconds", "Submit to first token.", &m->ttft);
    put_histogram(&w, "llmrt_inter_token_latency_seconds", "Gap between tokens of a request.", &m->itl);
    put_histogram(&w, "llmrt_e2e_request_latency_seconds", "Submit to finish.", &m->e2e);
    put_histogram(&w, "llmrt_time_per_output_token_seconds",
                  "Per request generating at least 2 tokens: (e2e - ttft) / (generated - 1).",
                  &m->tpot);
    put_histogram(&w, "llmrt_request_queue_time_seconds",
                  "Submit to first admission by the scheduler.", &m->queue_time);
    if (capacity > 0) text[w.len < capacity ? w.len : capacity - 1] = 0;
    return w.len;
}
