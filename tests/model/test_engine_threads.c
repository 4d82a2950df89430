/* The engine used the way a serving frontend uses it: one loop thread (llmrt_engine_start_loop)
 * steps and streams outputs through a callback into a mutex-protected table; 4 threads submit
 * requests of random lengths; one thread aborts requests at various stages (queued, decoding,
 * already finished) and ids never issued; one thread polls the metrics and their Prometheus
 * text. Everything must complete with exactly one final output per request, greedy and seeded
 * requests equal to a single-threaded run (aborted ones a prefix of it), and the KV pool whole.
 * Then: stopping the loop keeps queued requests queued, and destroying an engine whose loop
 * runs with requests in flight drops them without callbacks or leaks.
 *
 * Nothing here waits on time: threads wait on condition variables signalled by the callback.
 * Built also with -fsanitize=thread (see tests/CMakeLists.txt / the lead's TSan job). */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

#define VOCAB       320
#define N_SUBMIT    4
#define PER_THREAD  16
#define N_REQ       (N_SUBMIT * PER_THREAD)
#define MAX_PROMPT  48
#define MAX_NEW     20

typedef struct req {
    /* fixed before the threads start */
    int32_t prompt[MAX_PROMPT];
    int32_t n_prompt, max_tokens;
    bool    seeded, ignore_eos;
    bool    abort_target;   /* the aborter cancels it once it has abort_after tokens */
    int32_t abort_after;
    bool    abort_finished; /* the aborter cancels it after its final output */
    /* reference, from a single-threaded run */
    int32_t ref[MAX_NEW];
    int32_t n_ref;
    llmrt_finish_reason ref_finish;
    /* under table.mu */
    uint64_t            id;
    int32_t             got[MAX_NEW];
    int32_t             n_got, n_outputs, n_final, n_after_final, n_bad;
    llmrt_finish_reason finish;
    llmrt_status        abort_status;
} req;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    req             r[N_REQ];
    int32_t         n_submitted, n_final, n_unknown;
    bool            submitters_done, done;
} table = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static llmrt_model  *tiny;
static llmrt_engine *engine;

static uint64_t lcg_next(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

static llmrt_sampling_params params_of(const req *q) {
    llmrt_sampling_params sp = llmrt_sampling_default_params();
    sp.max_tokens            = q->max_tokens;
    sp.ignore_eos            = q->ignore_eos;
    if (q->seeded) {
        sp.temperature = 0.8f;
        sp.top_k       = 40;
        sp.seed        = (uint64_t)q->n_prompt * 7919u + 1;
        sp.has_seed    = true;
    } else {
        sp.temperature = 0.0f;
    }
    return sp;
}

static void make_requests(void) {
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (int32_t i = 0; i < N_REQ; i++) {
        req *q        = &table.r[i];
        q->n_prompt   = 1 + (int32_t)(lcg_next(&s) % MAX_PROMPT);
        q->max_tokens = 1 + (int32_t)(lcg_next(&s) % MAX_NEW);
        q->seeded     = i % 3 == 2;
        q->ignore_eos = i % 2 == 0;
        for (int32_t k = 0; k < q->n_prompt; k++) q->prompt[k] = (int32_t)(lcg_next(&s) % VOCAB);
        q->abort_target   = i % 4 == 1;
        q->abort_after    = (i / 4) % 4; /* 0: right after submit (often still queued) */
        q->abort_finished = i % 8 == 3;
    }
}

/* The reference: all requests on one engine, stepped on this thread. */
static void make_references(void) {
    llmrt_engine *e = NULL;
    CHECK_STATUS(llmrt_engine_create(tiny, NULL, &e), LLMRT_OK, NULL);
    if (!e) return;
    uint64_t ids[N_REQ];
    for (int32_t i = 0; i < N_REQ; i++) {
        req                  *q  = &table.r[i];
        llmrt_prompt          p  = {.struct_size = sizeof p, .tokens = q->prompt, .n_tokens = q->n_prompt};
        llmrt_sampling_params sp = params_of(q);
        CHECK_STATUS(llmrt_engine_submit(e, &p, &sp, &ids[i]), LLMRT_OK, NULL);
    }
    while (llmrt_engine_pending(e) > 0) {
        const llmrt_output *outs;
        int32_t             n = 0;
        if (llmrt_engine_step(e, &outs, &n) != LLMRT_OK) break;
        for (int32_t k = 0; k < n; k++) {
            req *q = &table.r[outs[k].request_id - ids[0]];
            for (int32_t t = 0; t < outs[k].n_tokens && q->n_ref < MAX_NEW; t++)
                q->ref[q->n_ref++] = outs[k].tokens[t];
            if (outs[k].finish) q->ref_finish = outs[k].finish;
        }
    }
    llmrt_engine_destroy(e);
}

/* --------------------------------------------------------------------------------------------- */
/* the loop's callback and the threads                                                           */
/* --------------------------------------------------------------------------------------------- */

static void on_output(const llmrt_output *o, void *data) {
    pthread_mutex_lock(&table.mu);
    req *q = o->user_data;
    if (data != &table || !q || q < table.r || q >= table.r + N_REQ) {
        table.n_unknown++;
    } else {
        q->n_outputs++;
        if (q->n_final) q->n_after_final++;
        if (q->id && q->id != o->request_id) q->n_bad++;
        for (int32_t t = 0; t < o->n_tokens; t++) {
            if (q->n_got < MAX_NEW) q->got[q->n_got] = o->tokens[t];
            q->n_got++;
        }
        if (o->finish != LLMRT_FINISH_NONE) {
            q->n_final++;
            q->finish = o->finish;
            table.n_final++;
        }
    }
    pthread_cond_broadcast(&table.cv);
    pthread_mutex_unlock(&table.mu);
}

static void *submitter(void *arg) {
    int32_t t = (int32_t)(intptr_t)arg;
    for (int32_t k = 0; k < PER_THREAD; k++) {
        req                  *q  = &table.r[k * N_SUBMIT + t]; /* interleaved across threads */
        llmrt_prompt          p  = {.struct_size = sizeof p, .tokens = q->prompt,
                                    .n_tokens = q->n_prompt, .user_data = q};
        llmrt_sampling_params sp = params_of(q);
        uint64_t              id = 0;
        llmrt_status          s  = llmrt_engine_submit(engine, &p, &sp, &id);
        pthread_mutex_lock(&table.mu);
        if (s != LLMRT_OK) q->n_bad++;
        q->id = id;
        table.n_submitted++;
        pthread_cond_broadcast(&table.cv);
        pthread_mutex_unlock(&table.mu);
    }
    return NULL;
}

static bool abort_due(const req *q) {
    if (!q->id) return false;
    if (q->abort_target) return q->n_got >= q->abort_after || q->n_final > 0;
    return q->abort_finished && q->n_final > 0;
}

static int32_t n_not_found_ok;

/* Aborts each target as soon as it is due (targets do not wait for each other). */
static void *aborter(void *arg) {
    (void)arg;
    bool    handled[N_REQ] = {false};
    int32_t n_left         = 0;
    for (int32_t i = 0; i < N_REQ; i++) n_left += table.r[i].abort_target || table.r[i].abort_finished;
    /* an id past the last one that will be issued */
    if (llmrt_engine_abort(engine, N_REQ * 10) == LLMRT_ERR_NOT_FOUND) n_not_found_ok++;
    pthread_mutex_lock(&table.mu);
    while (n_left > 0) {
        int32_t due = -1;
        for (int32_t i = 0; i < N_REQ && due < 0; i++)
            if (!handled[i] && abort_due(&table.r[i])) due = i;
        if (due < 0) {
            pthread_cond_wait(&table.cv, &table.mu);
            continue;
        }
        req     *q  = &table.r[due];
        uint64_t id = q->id;
        handled[due] = true;
        n_left--;
        pthread_mutex_unlock(&table.mu);
        llmrt_status s = llmrt_engine_abort(engine, id);
        if (s == LLMRT_OK && q->abort_target) s = llmrt_engine_abort(engine, id); /* twice */
        pthread_mutex_lock(&table.mu);
        q->abort_status = s;
    }
    pthread_mutex_unlock(&table.mu);
    if (llmrt_engine_abort(engine, 0) == LLMRT_ERR_NOT_FOUND) n_not_found_ok++;
    return NULL;
}

static int32_t n_metric_polls, n_metric_bad;

static void *metrics_poller(void *arg) {
    (void)arg;
    size_t cap  = 0;
    char  *text = NULL;
    for (;;) {
        pthread_mutex_lock(&table.mu);
        bool done = table.done;
        pthread_mutex_unlock(&table.mu);
        if (done) break;
        llmrt_engine_metrics m = {.struct_size = sizeof m};
        if (llmrt_engine_get_metrics(engine, &m) != LLMRT_OK ||
            m.kv_blocks_used + m.kv_blocks_cached + m.kv_blocks_free != m.kv_blocks_total ||
            m.kv_blocks_used < 0 || m.n_running < 0 || m.n_waiting < 0 ||
            m.requests_aborted > m.requests_finished || m.requests_finished > N_REQ)
            n_metric_bad++;
        (void)llmrt_engine_pending(engine);
        /* the size protocol; the text may grow between the calls: retry */
        size_t       len = 0;
        llmrt_status s   = llmrt_engine_metrics_prometheus(engine, text, cap, &len);
        while (s == LLMRT_ERR_BUFFER_TOO_SMALL) {
            cap        = len + 64;
            char *grow = realloc(text, cap);
            if (!grow) break;
            text = grow;
            s    = llmrt_engine_metrics_prometheus(engine, text, cap, &len);
        }
        if (s != LLMRT_OK || !text || strlen(text) != len ||
            !strstr(text, "llmrt_kv_blocks_capacity ") ||
            !strstr(text, "llmrt_e2e_request_latency_seconds_bucket{le=\"+Inf\"}"))
            n_metric_bad++;
        n_metric_polls++;
        pthread_mutex_lock(&table.mu);
        /* poll again after the next output (or when done): no busy loop, no timing */
        int32_t seen = table.n_final + table.n_submitted;
        while (!table.done && table.n_final + table.n_submitted == seen)
            pthread_cond_wait(&table.cv, &table.mu);
        pthread_mutex_unlock(&table.mu);
    }
    free(text);
    return NULL;
}

/* --------------------------------------------------------------------------------------------- */

static bool prefix_of_ref(const req *q) {
    return q->n_got <= q->n_ref && memcmp(q->got, q->ref, (size_t)q->n_got * sizeof(int32_t)) == 0;
}

static void check_results(void) {
    int32_t n_aborted = 0, n_late = 0;
    for (int32_t i = 0; i < N_REQ; i++) {
        const req *q = &table.r[i];
        CHECK_MSG(q->id > 0 && q->n_final == 1 && q->n_after_final == 0 && q->n_bad == 0,
                  "#%d id %llu: %d finals, %d after the final, %d bad", i,
                  (unsigned long long)q->id, q->n_final, q->n_after_final, q->n_bad);
        bool equal = q->n_got == q->n_ref && prefix_of_ref(q) && q->finish == q->ref_finish;
        if (q->abort_target) {
            CHECK_MSG(q->abort_status == LLMRT_OK, "#%d: abort returned %s", i,
                      llmrt_status_str(q->abort_status));
            CHECK_MSG((q->finish == LLMRT_FINISH_ABORT && prefix_of_ref(q)) || equal,
                      "#%d: finish %d with %d tokens (reference %d, %d tokens)", i, q->finish,
                      q->n_got, q->ref_finish, q->n_ref);
            n_aborted += q->finish == LLMRT_FINISH_ABORT;
            n_late += q->finish != LLMRT_FINISH_ABORT;
        } else {
            CHECK_MSG(equal, "#%d: %d tokens finish %d, reference %d tokens finish %d", i, q->n_got,
                      q->finish, q->n_ref, q->ref_finish);
            if (q->abort_finished) CHECK(q->abort_status == LLMRT_OK);
        }
    }
    CHECK(table.n_unknown == 0 && table.n_final == N_REQ);
    CHECK(n_not_found_ok == 2);
    CHECK(n_metric_bad == 0 && n_metric_polls > 0);
    llmrt_engine_metrics m = {.struct_size = sizeof m};
    CHECK_STATUS(llmrt_engine_get_metrics(engine, &m), LLMRT_OK, NULL);
    CHECK_MSG(m.kv_blocks_used == 0 && m.kv_blocks_cached + m.kv_blocks_free == m.kv_blocks_total &&
                  m.n_running == 0 && m.n_waiting == 0,
              "pool used %d cached %d free %d of %d", m.kv_blocks_used, m.kv_blocks_cached,
              m.kv_blocks_free, m.kv_blocks_total);
    CHECK(m.requests_finished == N_REQ && m.requests_aborted == n_aborted);
    CHECK(n_aborted > 0);
    printf("threads: %d requests, %d aborted, %d finished before their abort, %lld preemptions, "
           "%lld steps, %d metric polls\n", N_REQ, n_aborted, n_late, (long long)m.preemptions,
           (long long)m.steps, n_metric_polls);
}

static void test_frontend(void) {
    llmrt_engine_params p = llmrt_engine_default_params();
    p.kv_tokens           = 256; /* 16 blocks: requests preempt each other now and then */
    p.max_batched_tokens  = 64;
    CHECK_STATUS(llmrt_engine_create(tiny, &p, &engine), LLMRT_OK, NULL);
    if (!engine) return;
    CHECK_STATUS(llmrt_engine_start_loop(engine, on_output, &table), LLMRT_OK, NULL);
    CHECK_STATUS(llmrt_engine_start_loop(engine, on_output, &table), LLMRT_ERR_INVALID_ARG, NULL);
    pthread_t sub[N_SUBMIT], ab, mp;
    pthread_create(&ab, NULL, aborter, NULL);
    pthread_create(&mp, NULL, metrics_poller, NULL);
    for (intptr_t t = 0; t < N_SUBMIT; t++) pthread_create(&sub[t], NULL, submitter, (void *)t);
    for (int32_t t = 0; t < N_SUBMIT; t++) pthread_join(sub[t], NULL);
    pthread_join(ab, NULL);
    pthread_mutex_lock(&table.mu);
    while (table.n_final < N_REQ) pthread_cond_wait(&table.cv, &table.mu);
    table.done = true;
    pthread_cond_broadcast(&table.cv);
    pthread_mutex_unlock(&table.mu);
    pthread_join(mp, NULL);
    CHECK_STATUS(llmrt_engine_stop_loop(engine), LLMRT_OK, NULL);
    check_results();
    llmrt_engine_destroy(engine);
    engine = NULL;
}

/* --------------------------------------------------------------------------------------------- */
/* stop / restart the loop; destroy with requests in flight                                      */
/* --------------------------------------------------------------------------------------------- */

typedef struct counter {
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    int32_t         n_final, n_outputs;
} counter;

static void count_output(const llmrt_output *o, void *data) {
    counter *c = data;
    pthread_mutex_lock(&c->mu);
    c->n_outputs++;
    c->n_final += o->finish != LLMRT_FINISH_NONE;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void submit_n(llmrt_engine *e, int32_t n, int32_t max_tokens) {
    int32_t prompt[24];
    for (int32_t i = 0; i < 24; i++) prompt[i] = (i * 37 + 11) % VOCAB;
    llmrt_sampling_params sp = llmrt_sampling_default_params();
    sp.temperature           = 0.0f;
    sp.max_tokens            = max_tokens;
    sp.ignore_eos            = true;
    for (int32_t i = 0; i < n; i++) {
        llmrt_prompt p  = {.struct_size = sizeof p, .tokens = prompt, .n_tokens = 4 + i % 20};
        uint64_t     id = 0;
        CHECK_STATUS(llmrt_engine_submit(e, &p, &sp, &id), LLMRT_OK, NULL);
    }
}

static void test_stop_restart(void) {
    llmrt_engine_params p = llmrt_engine_default_params();
    p.max_seqs            = 2; /* others stay queued */
    llmrt_engine *e       = NULL;
    CHECK_STATUS(llmrt_engine_create(tiny, &p, &e), LLMRT_OK, NULL);
    if (!e) return;
    counter c = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    submit_n(e, 10, 6);
    CHECK_STATUS(llmrt_engine_start_loop(e, count_output, &c), LLMRT_OK, NULL);
    pthread_mutex_lock(&c.mu);
    while (c.n_final < 1) pthread_cond_wait(&c.cv, &c.mu);
    pthread_mutex_unlock(&c.mu);
    CHECK_STATUS(llmrt_engine_stop_loop(e), LLMRT_OK, NULL);
    CHECK_STATUS(llmrt_engine_stop_loop(e), LLMRT_OK, NULL); /* already stopped */
    pthread_mutex_lock(&c.mu);
    int32_t finals = c.n_final;
    pthread_mutex_unlock(&c.mu);
    CHECK(llmrt_engine_pending(e) == 10 - finals); /* every finished one was called back */
    /* generate() refuses to step while the loop runs; restart and finish */
    CHECK_STATUS(llmrt_engine_start_loop(e, count_output, &c), LLMRT_OK, NULL);
    int32_t      tok = 5;
    llmrt_prompt one = {.struct_size = sizeof one, .tokens = &tok, .n_tokens = 1};
    CHECK_STATUS(llmrt_generate(e, &one, NULL, NULL, NULL, NULL), LLMRT_ERR_INVALID_ARG, "loop");
    pthread_mutex_lock(&c.mu);
    while (c.n_final < 10) pthread_cond_wait(&c.cv, &c.mu);
    pthread_mutex_unlock(&c.mu);
    CHECK_STATUS(llmrt_engine_stop_loop(e), LLMRT_OK, NULL);
    CHECK(c.n_final == 10 && llmrt_engine_pending(e) == 0);
    llmrt_engine_metrics m = {.struct_size = sizeof m};
    CHECK_STATUS(llmrt_engine_get_metrics(e, &m), LLMRT_OK, NULL);
    CHECK(m.kv_blocks_used == 0 && m.requests_finished == 10);
    llmrt_engine_destroy(e);
}

static void test_destroy_in_flight(void) {
    llmrt_engine *e = NULL;
    CHECK_STATUS(llmrt_engine_create(tiny, NULL, &e), LLMRT_OK, NULL);
    if (!e) return;
    counter c = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    CHECK_STATUS(llmrt_engine_start_loop(e, count_output, &c), LLMRT_OK, NULL);
    submit_n(e, 12, 200);
    pthread_mutex_lock(&c.mu);
    while (c.n_outputs < 3) pthread_cond_wait(&c.cv, &c.mu);
    pthread_mutex_unlock(&c.mu);
    llmrt_engine_destroy(e); /* stops the loop; in-flight requests dropped and freed (ASan) */
    pthread_mutex_lock(&c.mu);
    CHECK(c.n_outputs >= 3);
    pthread_mutex_unlock(&c.mu);
}

int main(void) {
    char path[2048];
    snprintf(path, sizeof path, "%s/tiny/llama_f32", LLMRT_TEST_DATA_DIR);
    llmrt_model_params mp = llmrt_model_default_params();
    mp.n_threads          = 2;
    CHECK_STATUS(llmrt_model_load(path, &mp, &tiny), LLMRT_OK, NULL);
    if (!tiny) return test_summary("test_engine_threads");
    make_requests();
    make_references();
    test_frontend();
    test_stop_restart();
    test_destroy_in_flight();
    llmrt_model_destroy(tiny);
    return test_summary("test_engine_threads");
}
