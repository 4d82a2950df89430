/* A step's rows sampled on the backend's host threads (engine_internal.h). Sampling a row reads
 * the whole vocabulary (49k logits for SmolLM2: the normaliser, top-k / top-p buckets, the
 * logprobs' log-sum-exp), and with 64 sequences a step it ran on the step thread while the CPU
 * backend's workers slept (3.4 % of a 64-request run). A row's sampler is its own (RNG, penalty
 * map, scratch) and touches only its row, so rows run in any order on any thread with the same
 * arithmetic and the same tokens; what follows (tokens, text, stop rules, finishing) still runs
 * on the step thread in the step's order. */
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

/* fewer rows than this: the pool's hand-off would cost about what it saves */
#define SAMPLE_AHEAD_MIN_ROWS 4

typedef struct sample_job {
    const step_plan *p;
    engine_batch *b;
    const int32_t *rows; /* [n] the step's sequence indices to sample */
    int32_t vocab;
} sample_job;

static void sample_task(void *ctx, int64_t task, int thread) {
    (void)thread;
    const sample_job *j = ctx;
    int32_t i = j->rows[task];
    engine_sampled *s = &j->b->sampled[i];
    float *row = j->b->logits + (int64_t)j->b->seq_out_row[i] * j->vocab;
    memset(&s->err, 0, sizeof s->err);
    s->status = llmrt_sampler_sample(j->p->seq_req[i]->sampler, row, &s->res, &s->err);
}

void engine_sample_ahead(llmrt_engine *e, const step_plan *p, engine_batch *b) {
    for (int64_t i = 0; i < b->cap_sampled; i++)
        b->sampled[i].done = false;
    if (!e->exec->ops->host_run) return;
    int32_t n = 0;
    for (int32_t i = 0; i < p->n_seqs; i++) /* forks sample from copies of the row first */
        n += b->seq_out_row[i] >= 0 && p->seq_req[i]->n_fork == 0;
    if (n < SAMPLE_AHEAD_MIN_ROWS) return;
    if (p->n_seqs > b->cap_sampled) {
        engine_sampled *g = realloc(b->sampled, (size_t)p->n_seqs * sizeof *g);
        if (!g) return; /* sampled in order instead */
        b->sampled = g;
        for (int64_t i = b->cap_sampled; i < p->n_seqs; i++)
            b->sampled[i].done = false;
        b->cap_sampled = p->n_seqs;
    }
    int32_t *rows = malloc((size_t)n * sizeof *rows);
    if (!rows) return;
    n = 0;
    for (int32_t i = 0; i < p->n_seqs; i++)
        if (b->seq_out_row[i] >= 0 && p->seq_req[i]->n_fork == 0) rows[n++] = i;
    sample_job job = {.p = p, .b = b, .rows = rows, .vocab = e->model->cfg.vocab_size};
    if (e->exec->ops->host_run(e->exec, n, sample_task, &job))
        for (int32_t k = 0; k < n; k++)
            b->sampled[rows[k]].done = true;
    free(rows);
}
