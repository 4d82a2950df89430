/* Engine metrics: Prometheus-style histograms and the text exposition of llmrt_engine_metrics. */
#ifndef LLMRT_ENGINE_METRICS_H
#define LLMRT_ENGINE_METRICS_H

#include <stddef.h>

#include "llmrt.h"

/* Latency buckets in seconds (1 ms .. 60 s, then +inf). */
void llmrt_histogram_init(llmrt_histogram *h);
/* Every histogram of m (ttft, itl, e2e, tpot, queue_time) empty with its bucket bounds: one list,
 * so that a histogram added later cannot be left without bounds (tpot and queue_time once were,
 * read before the first step). */
void llmrt_engine_metrics_init_histograms(llmrt_engine_metrics *m);
void llmrt_histogram_observe(llmrt_histogram *h, double seconds);

/* Writes the metrics as Prometheus text; returns the length needed (excluding the NUL), writing
 * at most capacity bytes (NUL-terminated when capacity > 0). */
size_t llmrt_metrics_format_prometheus(const llmrt_engine_metrics *m, char *text, size_t capacity);

#endif
