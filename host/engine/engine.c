/* The serving engine: continuous batching over the paged KV cache.
 *
 * Each step packs every running request's next tokens (one for a decode, a chunk for a prompt
 * still being prefilled) and admits waiting requests with prompt chunks, up to
 * max_batched_tokens and max_seqs, then runs one forward and samples. When KV blocks run out the
 * newest running request is preempted (its blocks freed, recomputed later; vLLM's policy), or,
 * under the reserve policy, requests are admitted only when prompt + max_tokens fit.
 *
 * Threads: the step thread owns the queues and requests. submit/abort/metrics from other threads
 * only touch `incoming`, `aborts` and the metrics snapshot, under `mu`. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/log.h"
#include "../model/lora_merge.h"
#include "../model/model.h"
#include "../tokenizer/tokenizer.h"
#include "engine_internal.h"
#include "metrics.h"

double engine_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* --------------------------------------------------------------------------------------------- */
/* create / destroy                                                                              */
/* --------------------------------------------------------------------------------------------- */

llmrt_engine_params engine_default_params(void) {
    return (llmrt_engine_params){
        .struct_size        = sizeof(llmrt_engine_params),
        .block_size         = 16,
        .kv_tokens          = 8192,
        .kv_bytes           = 0,
        .max_batched_tokens = 512,
        .max_seqs           = 64,
        .policy             = LLMRT_KV_PREEMPT,
        .prefix_caching     = true,
        .max_loras          = 8,
        .max_lora_bytes     = 0,
    };
}

/* A quantised base cannot hold its load-time adapter (lora_merge.h): this engine applies it to
 * every request that names no adapter of its own. */
static llmrt_status serve_unmerged_adapter(llmrt_engine *e, llmrt_error *err) {
    const llmrt_lora_merge *g = e->model->merge;
    if (!g || g->mode != 2 || g->n == 0) return LLMRT_OK;
    llmrt_lora_file f = {0};
    LLMRT_TRY(llmrt_lora_file_load(g->paths[0], &e->model->cfg, &f, err));
    llmrt_status s = lora_registry_add_unlisted(&e->lora, e->exec, "the model's --lora adapter",
                                                g->paths[0], &f, &e->default_adapter, err);
    llmrt_lora_file_free(&f); /* moved on success */
    LLMRT_TRY(s);
    e->default_scale = g->scales[0];
    llmrt_log(LLMRT_LOG_INFO, "the base model is quantised: LoRA adapter %s is applied per token "
              "(unmerged) to requests that name no adapter", g->paths[0]);
    return LLMRT_OK;
}

llmrt_status engine_create(llmrt_rank_model *model, llmrt_executor *exec,
                           const llmrt_engine_params *params, llmrt_engine **out,
                           llmrt_error *err) {
    *out = NULL;
    llmrt_engine_params p = engine_default_params();
    if (params) {
        if (params->struct_size < sizeof(uint32_t) || params->struct_size > sizeof p)
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                             "llmrt_engine_create: params->struct_size %u is invalid",
                             params->struct_size);
        memcpy(&p, params, params->struct_size);
        p.struct_size = sizeof p;
    }
    if (p.max_batched_tokens < 1 || p.max_seqs < 1 || p.max_seqs > 65536 ||
        (p.policy != LLMRT_KV_PREEMPT && p.policy != LLMRT_KV_RESERVE) || p.kv_tokens < 0 ||
        p.kv_bytes < 0)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "llmrt_engine_create: max_batched_tokens and max_seqs must be >= 1, "
                         "policy PREEMPT or RESERVE, budgets >= 0");
    if (p.max_loras < 1 || p.max_loras > 1024 || p.max_lora_bytes < 0)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "llmrt_engine_create: max_loras %d outside [1, 1024] or max_lora_bytes "
                         "%lld < 0", p.max_loras, (long long)p.max_lora_bytes);
    if (p.block_size < 1 || p.block_size > 4096)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "llmrt_engine_create: block_size %d outside [1, 4096]", p.block_size);
    if (!p.kv_tokens && !p.kv_bytes)
        return llmrt_err(err, LLMRT_ERR_NO_KV_SPACE,
                         "llmrt_engine_create: no KV budget (set kv_tokens or kv_bytes)");
    int32_t      n_blocks;
    llmrt_status s = llmrt_kv_budget_blocks(p.block_size, 0, p.kv_tokens,
                                            p.kv_tokens ? 0 : p.kv_bytes,
                                            llmrt_rank_kv_bytes_per_token(model), &n_blocks, err);
    if (s != LLMRT_OK) {
        llmrt_err_prefix(err, "llmrt_engine_create: llmrt_kv_cache_create");
        if (err) err->status = LLMRT_ERR_NO_KV_SPACE;
        return LLMRT_ERR_NO_KV_SPACE;
    }
    llmrt_engine *e = calloc(1, sizeof *e);
    if (!e) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "llmrt_engine_create: out of memory");
    e->model     = model;
    e->exec      = exec;
    e->params    = p;
    e->kv_blocks = n_blocks;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    lora_registry_init(&e->lora, p.max_loras, p.max_lora_bytes);
    e->next_id = 1;
    llmrt_engine_metrics_init_histograms(&e->metrics);
    llmrt_engine_metrics_init_histograms(&e->snapshot); /* what a reader sees before step 1 */
    s = exec->ops->kv_create(exec, n_blocks, p.block_size, &e->kv, err);
    if (s != LLMRT_OK) {
        if (s == LLMRT_ERR_INVALID_ARG) s = LLMRT_ERR_NO_KV_SPACE;
        if (err) err->status = s;
        llmrt_err_prefix(err, "llmrt_engine_create");
        engine_destroy(e);
        return s;
    }
    /* size activations and the backend's per-batch buffers for the engine's largest step now,
     * so no step allocates (device memory on a GPU) */
    s = exec->ops->reserve(exec, e->kv, p.max_batched_tokens, p.max_seqs, err);
    if (s != LLMRT_OK) {
        llmrt_err_prefix(err, "llmrt_engine_create: batches of %d tokens, %d outputs",
                         p.max_batched_tokens, p.max_seqs);
        engine_destroy(e);
        return s;
    }
    e->bm = llmrt_bm_create(n_blocks, p.block_size, p.prefix_caching);
    if (!e->bm) {
        engine_destroy(e);
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "llmrt_engine_create: out of memory");
    }
    s = serve_unmerged_adapter(e, err);
    if (s != LLMRT_OK) {
        llmrt_err_prefix(err, "llmrt_engine_create");
        engine_destroy(e);
        return s;
    }
    *out = e;
    return LLMRT_OK;
}

static void free_list(request_list *l) {
    for (int32_t i = 0; i < l->n; i++) request_free(l->items[i]);
    free(l->items);
    memset(l, 0, sizeof *l);
}

void engine_destroy(llmrt_engine *e) {
    if (!e) return;
    engine_stop_loop(e);
    free_list(&e->incoming);
    free_list(&e->waiting);
    free_list(&e->running);
    free_list(&e->finished);
    free(e->aborts);
    free(e->outputs);
    /* the model outlives the engine: empty the slots this engine filled (another engine of the
     * model may serve adapters later) */
    if (e->lora.slots_ready) {
        llmrt_error ignored = {0};
        e->exec->ops->lora_init(e->exec, 0, &ignored);
    }
    lora_adapter_release(e->default_adapter);
    lora_registry_destroy(&e->lora);
    engine_batch_free(&e->batch);
    llmrt_step_plan_free(&e->plan);
    llmrt_bm_destroy(e->bm);
    if (e->kv) e->exec->ops->kv_destroy(e->exec, e->kv);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

/* --------------------------------------------------------------------------------------------- */
/* LoRA adapters                                                                                 */
/* --------------------------------------------------------------------------------------------- */

llmrt_status engine_lora_load(llmrt_engine *e, const char *name, const char *path,
                              llmrt_error *err) {
    llmrt_lora_file f = {0};
    /* read and checked here, on the caller's thread: the engine keeps stepping meanwhile */
    LLMRT_TRY(llmrt_lora_file_load(path, &e->model->cfg, &f, err));
    llmrt_status s = lora_registry_add(&e->lora, e->exec, name, path, &f, err);
    llmrt_lora_file_free(&f); /* moved on success */
    return s;
}

llmrt_status engine_lora_unload(llmrt_engine *e, const char *name, llmrt_error *err) {
    return lora_registry_remove(&e->lora, name, err);
}

int32_t engine_lora_list(llmrt_engine *e, llmrt_lora_info *out, int32_t cap) {
    lora_registry *reg = &e->lora;
    pthread_mutex_lock(&reg->mu);
    int32_t n = reg->n;
    for (int32_t i = 0; i < n && i < cap; i++) {
        const lora_adapter *a = reg->list[i];
        llmrt_lora_info     info = {.struct_size = sizeof info};
        snprintf(info.name, sizeof info.name, "%s", a->name);
        snprintf(info.path, sizeof info.path, "%s", a->path);
        info.max_rank    = a->file.max_rank;
        info.n_modules   = a->file.n_pairs;
        info.bytes       = a->file.bytes;
        info.resident    = a->slot >= 0;
        info.n_requests  = a->n_requests;
        info.n_generated = a->n_generated;
        info.n_loads     = a->n_loads;
        uint32_t size    = out[i].struct_size; /* the caller's struct, possibly older */
        if (size > sizeof info) size = sizeof info;
        memcpy(&out[i], &info, size);
        out[i].struct_size = size;
    }
    pthread_mutex_unlock(&reg->mu);
    return n;
}

/* --------------------------------------------------------------------------------------------- */
/* submit / abort                                                                                */
/* --------------------------------------------------------------------------------------------- */

llmrt_status engine_submit(llmrt_engine *e, const llmrt_prompt *prompt,
                           const llmrt_sampling_params *params, uint64_t *request_id,
                           llmrt_error *err) {
    *request_id  = 0;
    request    *r   = NULL;
    llmrt_status s  = engine_make_request(e, prompt, params, &r, err);
    if (s != LLMRT_OK) return s;
    pthread_mutex_lock(&e->mu);
    if (e->dead_status != LLMRT_OK) {
        s = llmrt_err(err, LLMRT_ERR_DEAD, "llmrt_engine_submit: the engine is dead: %s",
                      e->dead_message);
    } else {
        r->id      = e->next_id++;
        r->arrival = r->id;
        for (int32_t i = 0; i < r->n_fork; i++) r->fork[i]->id = r->fork[i]->arrival = r->id;
        if (!request_list_push(&e->incoming, r))
            s = llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "llmrt_engine_submit: out of memory");
    }
    if (s == LLMRT_OK) {
        *request_id = r->id;
        e->metrics.n_waiting++;
        pthread_cond_broadcast(&e->cv);
    }
    pthread_mutex_unlock(&e->mu);
    if (s != LLMRT_OK) request_free(r);
    return s;
}

llmrt_status engine_abort(llmrt_engine *e, uint64_t id, llmrt_error *err) {
    pthread_mutex_lock(&e->mu);
    llmrt_status s = LLMRT_OK;
    if (id == 0 || id >= e->next_id) {
        s = LLMRT_ERR_NOT_FOUND;
    } else {
        if (e->n_aborts == e->cap_aborts) {
            int32_t   cap = e->cap_aborts ? e->cap_aborts * 2 : 16;
            uint64_t *n   = realloc(e->aborts, (size_t)cap * sizeof *n);
            if (n) {
                e->aborts     = n;
                e->cap_aborts = cap;
            }
        }
        if (e->n_aborts < e->cap_aborts) e->aborts[e->n_aborts++] = id;
        else s = LLMRT_ERR_OUT_OF_MEMORY;
        pthread_cond_broadcast(&e->cv);
    }
    pthread_mutex_unlock(&e->mu);
    if (s == LLMRT_ERR_NOT_FOUND)
        return llmrt_err(err, s, "llmrt_engine_abort: request %llu was never submitted",
                         (unsigned long long)id);
    if (s != LLMRT_OK) return llmrt_err(err, s, "llmrt_engine_abort: out of memory");
    return LLMRT_OK;
}

int32_t engine_pending(llmrt_engine *e) {
    pthread_mutex_lock(&e->mu);
    int32_t n = e->metrics.n_waiting + e->metrics.n_running;
    pthread_mutex_unlock(&e->mu);
    return n;
}

static request *find_live(llmrt_engine *e, uint64_t id) {
    for (int32_t i = 0; i < e->running.n; i++)
        if (e->running.items[i]->id == id) return e->running.items[i];
    for (int32_t i = 0; i < e->waiting.n; i++)
        if (e->waiting.items[i]->id == id) return e->waiting.items[i];
    return NULL;
}

/* Moves submitted requests into the queue and applies pending aborts. */
static void take_incoming_and_aborts(llmrt_engine *e) {
    pthread_mutex_lock(&e->mu);
    for (int32_t i = 0; i < e->incoming.n; i++) {
        request *r = e->incoming.items[i];
        if (!request_list_push(&e->waiting, r)) {
            r->state = REQUEST_WAITING;
            engine_finish(e, r, LLMRT_FINISH_ERROR, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
        }
    }
    e->incoming.n = 0;
    uint64_t local[64];
    int32_t  n    = 0;
    while (e->n_aborts > 0) {
        /* copy in chunks so finishing happens outside the lock-held array */
        n = e->n_aborts < 64 ? e->n_aborts : 64;
        memcpy(local, e->aborts + e->n_aborts - n, (size_t)n * sizeof *local);
        e->n_aborts -= n;
        pthread_mutex_unlock(&e->mu);
        for (int32_t i = 0; i < n; i++) { /* every live sequence of the id (n > 1) */
            request *r;
            while ((r = find_live(e, local[i])) != NULL)
                engine_finish(e, r, LLMRT_FINISH_ABORT, LLMRT_OK, NULL);
        }
        pthread_mutex_lock(&e->mu);
    }
    pthread_mutex_unlock(&e->mu);
}

/* --------------------------------------------------------------------------------------------- */
/* step                                                                                          */
/* --------------------------------------------------------------------------------------------- */

/* A sticky backend fault (e.g. a CUDA illegal address): the engine can never compute again.
 * Every request ends with ERROR now, and every later call fails with LLMRT_ERR_DEAD and the
 * original message, so a supervisor sees it (metrics: healthy = false) and restarts us. */
static void enter_dead_state(llmrt_engine *e, const char *message) {
    pthread_mutex_lock(&e->mu);
    e->dead_status = LLMRT_ERR_DEAD;
    snprintf(e->dead_message, sizeof e->dead_message, "%.255s", message);
    for (int32_t i = 0; i < e->incoming.n; i++) request_list_push(&e->waiting, e->incoming.items[i]);
    e->incoming.n = 0;
    pthread_mutex_unlock(&e->mu);
    while (e->running.n > 0)
        engine_finish(e, e->running.items[0], LLMRT_FINISH_ERROR, LLMRT_ERR_DEAD, message);
    while (e->waiting.n > 0) {
        e->waiting.items[0]->state = REQUEST_WAITING;
        engine_finish(e, e->waiting.items[0], LLMRT_FINISH_ERROR, LLMRT_ERR_DEAD, message);
    }
}

static llmrt_status collect_outputs(llmrt_engine *e, const llmrt_output **outputs,
                                    int32_t *n_outputs, llmrt_error *err) {
    int32_t n = 0;
    for (int32_t i = 0; i < e->running.n; i++) n += e->running.items[i]->n_out > 0;
    n += e->finished.n;
    if (n > e->cap_outputs) {
        llmrt_output *o = realloc(e->outputs, (size_t)n * sizeof *o);
        if (!o) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "llmrt_engine_step: out of memory");
        e->outputs     = o;
        e->cap_outputs = n;
    }
    int32_t k   = 0;
    double  now = engine_now();
    for (int pass = 0; pass < 2; pass++) {
        request_list *l = pass == 0 ? &e->running : &e->finished;
        for (int32_t i = 0; i < l->n; i++) {
            request *r = l->items[i];
            if (pass == 0 && r->n_out == 0) continue;
            llmrt_output *o = &e->outputs[k++];
            *o = (llmrt_output){
                .struct_size     = sizeof(llmrt_output),
                .request_id      = r->id,
                .user_data       = r->user_data,
                .tokens          = r->out_tokens,
                .n_tokens        = r->n_out,
                .text            = r->out_text ? r->out_text : "",
                .text_len        = r->out_text_len,
                .logprobs        = r->out_logprobs,
                .top_ids         = r->sampling.n_logprobs ? r->out_top_ids : NULL,
                .top_logprobs    = r->sampling.n_logprobs ? r->out_top_logprobs : NULL,
                .n_top           = r->sampling.n_logprobs,
                .finish          = pass == 0 ? LLMRT_FINISH_NONE : r->finish,
                .status          = pass == 0 ? LLMRT_OK : r->finish_status,
                .error_message   = pass == 0 ? "" : r->error_message,
                .n_prompt_tokens = (int32_t)r->n_prompt,
                .n_cached_tokens = (int32_t)r->n_cached,
                .n_generated     = (int32_t)(r->n_tokens - r->n_prompt),
                .n_preemptions   = r->n_preemptions,
                .t_submit        = r->t_submit,
                .t_first_token   = r->t_first,
                .t_now           = now,
                .index           = r->index,
            };
            /* prompt logprobs ride with the first generated token (never with an abort: its
             * tokens are taken back) */
            if (r->prompt_lp && !r->prompt_lp_sent && r->n_out > 0 &&
                r->n_tokens - r->n_prompt == r->n_out) {
                r->prompt_lp_sent      = true;
                o->prompt_token_ids    = r->tokens;
                o->prompt_logprobs     = r->prompt_lp;
                o->prompt_top_ids      = r->n_prompt_top ? r->prompt_top_ids : NULL;
                o->prompt_top_logprobs = r->n_prompt_top ? r->prompt_top_lp : NULL;
                o->n_prompt_logprobs   = (int32_t)r->n_prompt;
                o->n_prompt_top        = r->n_prompt_top;
            }
        }
    }
    *outputs   = e->outputs;
    *n_outputs = k;
    return LLMRT_OK;
}

static void publish_metrics(llmrt_engine *e) {
    llmrt_bm_stats st = llmrt_bm_get_stats(e->bm);
    pthread_mutex_lock(&e->mu);
    e->metrics.n_waiting            = e->waiting.n + e->incoming.n;
    e->metrics.n_running            = e->running.n;
    e->metrics.kv_blocks_total      = st.n_blocks;
    e->metrics.kv_blocks_used       = st.n_used;
    e->metrics.kv_blocks_cached     = st.n_cached;
    e->metrics.kv_blocks_free       = st.n_free;
    /* prefix_cache_queries / hits are counted by the scheduler once per request (its prompt at
     * its first admission), not per lookup: lookups repeat while a request waits for blocks */
    e->metrics.prefix_cache_hit_rate =
        e->metrics.prefix_cache_queries
            ? (double)e->metrics.prefix_cache_hits / (double)e->metrics.prefix_cache_queries
            : 0.0;
    e->metrics.healthy = e->dead_status == LLMRT_OK;
    e->snapshot        = e->metrics;
    pthread_mutex_unlock(&e->mu);
}

llmrt_status engine_step(llmrt_engine *e, const llmrt_output **outputs, int32_t *n_outputs,
                         llmrt_error *err) {
    *outputs   = NULL;
    *n_outputs = 0;
    if (e->dead_status != LLMRT_OK)
        return llmrt_err(err, LLMRT_ERR_DEAD, "llmrt_engine_step: the engine is dead: %s",
                         e->dead_message);
    /* outputs of the previous step are no longer referenced by the caller */
    for (int32_t i = 0; i < e->finished.n; i++) request_free(e->finished.items[i]);
    e->finished.n = 0;
    for (int32_t i = 0; i < e->running.n; i++) request_out_reset(e->running.items[i]);

    take_incoming_and_aborts(e);
    llmrt_error  step_err = {0};
    llmrt_status s        = engine_run_step(e, &step_err);
    if (s == LLMRT_ERR_DEAD) enter_dead_state(e, step_err.msg);
    /* aborts that arrived during the forward win over this step's results (vLLM #29987) */
    take_incoming_and_aborts(e);
    e->metrics.steps++;
    publish_metrics(e);
    llmrt_status so = collect_outputs(e, outputs, n_outputs, err);
    if (s != LLMRT_OK) {
        if (err) *err = step_err;
        return s;
    }
    return so;
}

/* --------------------------------------------------------------------------------------------- */
/* metrics                                                                                       */
/* --------------------------------------------------------------------------------------------- */

void engine_get_metrics(llmrt_engine *e, llmrt_engine_metrics *out) {
    pthread_mutex_lock(&e->mu);
    llmrt_engine_metrics snap = e->snapshot;
    snap.n_waiting            = e->metrics.n_waiting; /* submits since the last step count too */
    snap.healthy              = e->dead_status == LLMRT_OK;
    pthread_mutex_unlock(&e->mu);
    if (snap.kv_blocks_total == 0) /* before the first step */
        snap.kv_blocks_total = snap.kv_blocks_free = e->kv_blocks;
    *out = snap;
}
