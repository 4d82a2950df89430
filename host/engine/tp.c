/* The tensor-parallel driver (see tp.h): loading a group, handing the leader's requests to the
 * other ranks (host threads in one process, or follower processes over the comm's control
 * plane), and turning any rank's failure into a dead group instead of a hang. */
#include "tp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef LLMRT_HAVE_CUDA
#include "../backend/cuda/cuda_backend.h"
#endif

/* --------------------------------------------------------------------------------------------- */
/* fault injection (tests)                                                                       */
/* --------------------------------------------------------------------------------------------- */

static void parse_fault(struct llmrt_tp *tp) {
    const char *v = getenv("LLMRT_TP_FAULT");
    if (!v || !*v) return;
    int  rank = -1;
    long long at = 0;
    char kind[16] = "";
    if (sscanf(v, "%d:%lld:%15s", &rank, &at, kind) != 3 || rank != tp->rank || at < 1) return;
    tp->fault_at = at;
    tp->fault    = !strcmp(kind, "hang")   ? TP_FAULT_HANG
                   : !strcmp(kind, "exit") ? TP_FAULT_EXIT
                                           : TP_FAULT_ERROR;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Runs the injected fault of this forward, if any: returns LLMRT_OK when there is none. */
static llmrt_status injected_fault(struct llmrt_tp *tp, llmrt_error *err) {
    if (tp->fault == TP_FAULT_NONE || tp->n_forwards != tp->fault_at) return LLMRT_OK;
    if (tp->fault == TP_FAULT_EXIT && tp->multi_process) {
        fprintf(stderr, "llmrt: LLMRT_TP_FAULT: rank %d exits in forward %lld\n", tp->rank,
                (long long)tp->n_forwards);
        _exit(3);
    }
    if (tp->fault != TP_FAULT_ERROR) {
        /* stop taking part until the group gives up on this rank (in-process: the others'
         * timeout aborts the group; multi-process: the launcher kills this process) */
        for (int waited = 0; waited < 600000; waited += 10) {
            llmrt_error e2 = {0};
            if (tp->comm->ops->wait(tp->comm, &e2) != LLMRT_OK) break;
            sleep_ms(10);
        }
    }
    return llmrt_err(err, LLMRT_ERR_DEAD, "injected fault (LLMRT_TP_FAULT) on rank %d in forward %lld",
                     tp->rank, (long long)tp->n_forwards);
}

/* --------------------------------------------------------------------------------------------- */
/* one rank                                                                                      */
/* --------------------------------------------------------------------------------------------- */

llmrt_status llmrt_tp_all_reduce(struct llmrt_model *m, void *buf, int64_t n, llmrt_error *err) {
    llmrt_comm *c = m->tp->comm;
    return c->ops->all_reduce_sum(c, buf, n, m->be->act_dtype, err);
}

llmrt_status llmrt_tp_wait(struct llmrt_model *m, llmrt_error *err) {
    llmrt_comm *c = m->tp->comm;
    return c->ops->wait(c, err);
}

/* This rank's part of a group forward. A failure aborts the group (so the other ranks stop
 * waiting for this one) and is LLMRT_ERR_DEAD: the ranks no longer agree on the KV state. */
static llmrt_status forward_rank(llmrt_kv_cache *kv, const llmrt_batch *batch, float *logits,
                                 int64_t capacity, llmrt_error *err) {
    struct llmrt_tp *tp = kv->model->tp;
    tp->n_forwards++;
    llmrt_status s = injected_fault(tp, err);
    if (s == LLMRT_OK) s = llmrt_forward_local(kv, batch, logits, capacity, err);
    if (s != LLMRT_OK) {
        llmrt_err_prefix(err, "tensor parallel rank %d of %d", tp->rank, tp->size);
        tp->comm->ops->abort(tp->comm, err ? err->msg : "a rank failed");
        if (err) err->status = LLMRT_ERR_DEAD;
        s = LLMRT_ERR_DEAD;
    }
    return s;
}

/* --------------------------------------------------------------------------------------------- */
/* in-process peers: one host thread per rank other than 0                                       */
/* --------------------------------------------------------------------------------------------- */

typedef enum worker_state { WORKER_IDLE, WORKER_JOB, WORKER_DONE, WORKER_QUIT } worker_state;

struct tp_worker {
    pthread_t          thread;
    bool               started;
    pthread_mutex_t    mu;
    pthread_cond_t     cv;
    worker_state       state;
    llmrt_kv_cache    *kv;    /* the job: this peer's twin of the leader's cache ... */
    const llmrt_batch *batch; /* ... and the leader's batch */
    llmrt_status       status;
    llmrt_error        err;
};

static void *worker_main(void *arg) {
    tp_worker *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->state != WORKER_JOB && w->state != WORKER_QUIT) pthread_cond_wait(&w->cv, &w->mu);
        if (w->state == WORKER_QUIT) break;
        pthread_mutex_unlock(&w->mu);
        llmrt_error  e = {0};
        llmrt_status s = forward_rank(w->kv, w->batch, NULL, LLMRT_FORWARD_NO_LOGITS, &e);
        pthread_mutex_lock(&w->mu);
        w->status = s;
        w->err    = e;
        w->state  = WORKER_DONE;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void worker_post(tp_worker *w, llmrt_kv_cache *kv, const llmrt_batch *batch) {
    pthread_mutex_lock(&w->mu);
    w->kv     = kv;
    w->batch  = batch;
    w->state  = WORKER_JOB;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static llmrt_status worker_join(tp_worker *w, llmrt_error *err) {
    pthread_mutex_lock(&w->mu);
    while (w->state != WORKER_DONE) pthread_cond_wait(&w->cv, &w->mu);
    w->state       = WORKER_IDLE;
    llmrt_status s = w->status;
    if (s != LLMRT_OK && err) *err = w->err;
    pthread_mutex_unlock(&w->mu);
    return s;
}

static void worker_stop(tp_worker *w) {
    if (!w->started) return;
    pthread_mutex_lock(&w->mu);
    w->state = WORKER_QUIT;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    w->started = false;
}

/* --------------------------------------------------------------------------------------------- */
/* multi-process: the leader's requests over the control plane                                  */
/* --------------------------------------------------------------------------------------------- */

typedef enum tp_op {
    TP_OP_KV_CREATE = 1, /* a = n_blocks, b = block_size */
    TP_OP_KV_RESERVE,    /* a = max_tokens, b = max_outputs */
    TP_OP_KV_DESTROY,
    TP_OP_FORWARD,       /* then one payload: tokens, positions, seq_ids [T], block tables
                          * [n_seqs * max_blocks], output rows [n_outputs] (int32) */
    TP_OP_SHUTDOWN,
} tp_op;

typedef struct tp_msg {
    int32_t op, kv_id;
    int32_t n_tokens, n_seqs, max_blocks, n_outputs; /* n_outputs 0: output_tokens NULL */
    int64_t a, b;
} tp_msg;

/* The leader's twin list of a cache: peers' caches (in-process) or the followers' id. */
typedef struct tp_twins {
    int32_t          id;
    llmrt_kv_cache **peer_kv; /* [size - 1], in-process */
} tp_twins;

static llmrt_status send_msg(struct llmrt_tp *tp, tp_msg *msg, llmrt_error *err) {
    return tp->comm->ops->broadcast_host(tp->comm, msg, sizeof *msg, 0, err);
}

static int64_t forward_payload_ints(const tp_msg *m) {
    return 3 * (int64_t)m->n_tokens + (int64_t)m->n_seqs * m->max_blocks + m->n_outputs;
}

static llmrt_status send_forward(struct llmrt_tp *tp, int32_t kv_id, const llmrt_batch *b,
                                 llmrt_error *err) {
    tp_msg msg = {.op = TP_OP_FORWARD, .kv_id = kv_id, .n_tokens = b->n_tokens,
                  .n_seqs = b->n_seqs, .max_blocks = b->max_blocks_per_seq,
                  .n_outputs = b->output_tokens ? b->n_outputs : 0};
    int64_t  n   = forward_payload_ints(&msg); /* sizes were validated: no overflow */
    int32_t *buf = malloc((size_t)n * sizeof *buf);
    if (!buf) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "tensor parallel: out of memory");
    int32_t *p = buf;
    memcpy(p, b->tokens, (size_t)b->n_tokens * 4), p += b->n_tokens;
    memcpy(p, b->positions, (size_t)b->n_tokens * 4), p += b->n_tokens;
    memcpy(p, b->seq_ids, (size_t)b->n_tokens * 4), p += b->n_tokens;
    memcpy(p, b->block_tables, (size_t)b->n_seqs * (size_t)b->max_blocks_per_seq * 4);
    p += (int64_t)b->n_seqs * b->max_blocks_per_seq;
    if (msg.n_outputs) memcpy(p, b->output_tokens, (size_t)msg.n_outputs * 4);
    llmrt_status s = send_msg(tp, &msg, err);
    if (s == LLMRT_OK)
        s = tp->comm->ops->broadcast_host(tp->comm, buf, (uint64_t)n * 4, 0, err);
    free(buf);
    return s;
}

/* --------------------------------------------------------------------------------------------- */
/* the leader's KV caches                                                                        */
/* --------------------------------------------------------------------------------------------- */

static llmrt_status group_dead(struct llmrt_tp *tp, llmrt_error *err) {
    return llmrt_err(err, LLMRT_ERR_DEAD, "the tensor-parallel group failed earlier: %s",
                     tp->dead_msg);
}

static void mark_dead(struct llmrt_tp *tp, const llmrt_error *err) {
    if (tp->dead) return;
    tp->dead = true;
    snprintf(tp->dead_msg, sizeof tp->dead_msg, "%s", err && err->msg[0] ? err->msg : "unknown");
    tp->comm->ops->abort(tp->comm, tp->dead_msg);
}

llmrt_status llmrt_tp_kv_create(llmrt_kv_cache *kv, llmrt_error *err) {
    struct llmrt_tp *tp = kv->model->tp;
    tp_twins        *tw = calloc(1, sizeof *tw);
    if (!tw) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "tensor parallel: out of memory");
    pthread_mutex_lock(&tp->lock);
    llmrt_status s = tp->dead ? group_dead(tp, err) : LLMRT_OK;
    tw->id         = ++tp->next_kv_id;
    if (s == LLMRT_OK && tp->multi_process) {
        tp_msg msg = {.op = TP_OP_KV_CREATE, .kv_id = tw->id, .a = kv->n_blocks,
                      .b = kv->block_size};
        s = send_msg(tp, &msg, err);
    } else if (s == LLMRT_OK) {
        tw->peer_kv = calloc((size_t)tp->size - 1, sizeof *tw->peer_kv);
        if (!tw->peer_kv) s = llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
        for (int32_t r = 1; r < tp->size && s == LLMRT_OK; r++) {
            s = llmrt_kv_cache_create_local(tp->peers[r - 1], kv->n_blocks, kv->block_size,
                                            &tw->peer_kv[r - 1], err);
            if (s != LLMRT_OK) llmrt_err_prefix(err, "tensor parallel rank %d", r);
        }
    }
    kv->tp_twins = tw;
    pthread_mutex_unlock(&tp->lock);
    if (s != LLMRT_OK) { /* the caller destroys kv, and its twins with it */
        if (tp->multi_process) mark_dead(tp, err);
    }
    return s;
}

llmrt_status llmrt_tp_kv_reserve(llmrt_kv_cache *kv, int64_t max_tokens, int64_t max_outputs,
                                 llmrt_error *err) {
    struct llmrt_tp *tp = kv->model->tp;
    tp_twins        *tw = kv->tp_twins;
    pthread_mutex_lock(&tp->lock);
    llmrt_status s = tp->dead ? group_dead(tp, err) : LLMRT_OK;
    if (s == LLMRT_OK && tp->multi_process) {
        tp_msg msg = {.op = TP_OP_KV_RESERVE, .kv_id = tw->id, .a = max_tokens, .b = max_outputs};
        s = send_msg(tp, &msg, err);
        if (s != LLMRT_OK) mark_dead(tp, err);
    } else if (s == LLMRT_OK) {
        for (int32_t r = 1; r < tp->size && s == LLMRT_OK; r++) {
            s = llmrt_kv_cache_reserve_local(tw->peer_kv[r - 1], max_tokens, max_outputs, err);
            if (s != LLMRT_OK) llmrt_err_prefix(err, "tensor parallel rank %d", r);
        }
    }
    pthread_mutex_unlock(&tp->lock);
    return s;
}

void llmrt_tp_kv_destroy(llmrt_kv_cache *kv) {
    struct llmrt_tp *tp = kv->model->tp;
    tp_twins        *tw = kv->tp_twins;
    kv->tp_twins        = NULL;
    if (!tw) return;
    pthread_mutex_lock(&tp->lock);
    if (tp->multi_process) {
        if (!tp->dead) {
            tp_msg      msg = {.op = TP_OP_KV_DESTROY, .kv_id = tw->id};
            llmrt_error e2  = {0};
            if (send_msg(tp, &msg, &e2) != LLMRT_OK) mark_dead(tp, &e2);
        }
    } else if (tw->peer_kv) {
        for (int32_t r = 1; r < tp->size; r++) llmrt_kv_cache_destroy(tw->peer_kv[r - 1]);
    }
    pthread_mutex_unlock(&tp->lock);
    free(tw->peer_kv);
    free(tw);
}

/* --------------------------------------------------------------------------------------------- */
/* the group's forward                                                                           */
/* --------------------------------------------------------------------------------------------- */

llmrt_status llmrt_tp_forward(llmrt_kv_cache *kv, const llmrt_batch *batch, float *logits,
                              int64_t logits_capacity, llmrt_error *err) {
    struct llmrt_tp *tp = kv->model->tp;
    tp_twins        *tw = kv->tp_twins;
    pthread_mutex_lock(&tp->lock);
    if (tp->dead) {
        llmrt_status s = group_dead(tp, err);
        pthread_mutex_unlock(&tp->lock);
        return s;
    }
    /* a bad batch is the caller's mistake, not the group's: refuse it before any rank starts */
    llmrt_status s = llmrt_forward_validate(kv, batch, logits, logits_capacity, err);
    if (s != LLMRT_OK) {
        pthread_mutex_unlock(&tp->lock);
        return s;
    }
    if (tp->multi_process) {
        s = send_forward(tp, tw->id, batch, err);
    } else {
        for (int32_t r = 1; r < tp->size; r++)
            worker_post(&tp->workers[r - 1], tw->peer_kv[r - 1], batch);
    }
    if (s == LLMRT_OK) s = forward_rank(kv, batch, logits, logits_capacity, err);
    if (!tp->multi_process) {
        /* report the rank that failed first, not the ones its abort released */
        bool first_is_abort = s != LLMRT_OK && err && strstr(err->msg, "abort") != NULL;
        for (int32_t r = 1; r < tp->size; r++) {
            llmrt_error  e2 = {0};
            llmrt_status s2 = worker_join(&tp->workers[r - 1], &e2);
            if (s2 == LLMRT_OK) continue;
            bool e2_is_abort = strstr(e2.msg, "abort") != NULL;
            if (s == LLMRT_OK || (first_is_abort && !e2_is_abort)) {
                s              = s2;
                first_is_abort = e2_is_abort;
                if (err) *err = e2;
            }
        }
    }
    if (s != LLMRT_OK) {
        if (err) err->status = LLMRT_ERR_DEAD;
        s = LLMRT_ERR_DEAD;
        mark_dead(tp, err);
    }
    pthread_mutex_unlock(&tp->lock);
    return s;
}

/* --------------------------------------------------------------------------------------------- */
/* followers                                                                                     */
/* --------------------------------------------------------------------------------------------- */

typedef struct follower_cache {
    int32_t         id;
    llmrt_kv_cache *kv;
} follower_cache;

static llmrt_kv_cache *find_cache(follower_cache *c, int32_t n, int32_t id) {
    for (int32_t i = 0; i < n; i++)
        if (c[i].id == id) return c[i].kv;
    return NULL;
}

/* Serves one forward request: the payload, then this rank's forward. */
static llmrt_status follow_forward(struct llmrt_tp *tp, const tp_msg *msg, llmrt_kv_cache *kv,
                                   llmrt_error *err) {
    if (msg->n_tokens < 1 || msg->n_seqs < 1 || msg->max_blocks < 1 || msg->n_outputs < 0 ||
        (int64_t)msg->n_seqs * msg->max_blocks > INT32_MAX)
        return llmrt_err(err, LLMRT_ERR_BACKEND, "tensor parallel: malformed forward request");
    int64_t  n   = forward_payload_ints(msg);
    int32_t *buf = malloc((size_t)n * sizeof *buf);
    if (!buf) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "tensor parallel: out of memory");
    llmrt_status s = tp->comm->ops->broadcast_host(tp->comm, buf, (uint64_t)n * 4, 0, err);
    if (s == LLMRT_OK) {
        if (!kv) {
            s = llmrt_err(err, LLMRT_ERR_BACKEND, "tensor parallel: forward on unknown cache %d",
                          msg->kv_id);
        } else {
            llmrt_batch b = {.n_tokens = msg->n_tokens, .n_seqs = msg->n_seqs,
                             .max_blocks_per_seq = msg->max_blocks};
            b.tokens       = buf;
            b.positions    = buf + msg->n_tokens;
            b.seq_ids      = buf + 2 * (int64_t)msg->n_tokens;
            b.block_tables = buf + 3 * (int64_t)msg->n_tokens;
            if (msg->n_outputs) {
                b.output_tokens = b.block_tables + (int64_t)msg->n_seqs * msg->max_blocks;
                b.n_outputs     = msg->n_outputs;
            }
            s = forward_rank(kv, &b, NULL, LLMRT_FORWARD_NO_LOGITS, err);
        }
    }
    free(buf);
    return s;
}

llmrt_status llmrt_model_tp_follow(llmrt_model *m) {
    if (!m || !m->tp || m->tp->rank == 0 || !m->tp->multi_process)
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG,
                                  "llmrt_model_tp_follow: not a follower rank of a multi-process "
                                  "tensor-parallel group");
    struct llmrt_tp *tp     = m->tp;
    follower_cache  *caches = NULL;
    int32_t          n      = 0, cap = 0;
    llmrt_error      err    = {0};
    llmrt_status     s      = LLMRT_OK;
    for (bool done = false; !done && s == LLMRT_OK;) {
        tp_msg msg;
        s = send_msg(tp, &msg, &err); /* receives: rank 0 is the root */
        if (s != LLMRT_OK) break;
        llmrt_kv_cache *kv = find_cache(caches, n, msg.kv_id);
        switch ((tp_op)msg.op) {
        case TP_OP_KV_CREATE:
            if (msg.a < 1 || msg.a > INT32_MAX || msg.b < 1 || msg.b > 4096) {
                s = llmrt_err(&err, LLMRT_ERR_BACKEND, "tensor parallel: malformed cache request");
                break;
            }
            if (n == cap) {
                cap = cap ? 2 * cap : 8;
                follower_cache *c2 = realloc(caches, (size_t)cap * sizeof *c2);
                if (!c2) {
                    s = llmrt_err(&err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
                    break;
                }
                caches = c2;
            }
            s = llmrt_kv_cache_create_local(m, (int32_t)msg.a, (int32_t)msg.b, &caches[n].kv, &err);
            if (s == LLMRT_OK) caches[n++].id = msg.kv_id;
            break;
        case TP_OP_KV_RESERVE:
            s = kv ? llmrt_kv_cache_reserve_local(kv, msg.a, msg.b, &err)
                   : llmrt_err(&err, LLMRT_ERR_BACKEND, "tensor parallel: unknown cache %d",
                               msg.kv_id);
            break;
        case TP_OP_KV_DESTROY:
            for (int32_t i = 0; i < n; i++)
                if (caches[i].id == msg.kv_id) {
                    llmrt_kv_cache_destroy(caches[i].kv);
                    caches[i] = caches[--n];
                    break;
                }
            break;
        case TP_OP_FORWARD: s = follow_forward(tp, &msg, kv, &err); break;
        case TP_OP_SHUTDOWN: done = true; break;
        default: s = llmrt_err(&err, LLMRT_ERR_BACKEND, "tensor parallel: unknown request %d", msg.op);
        }
    }
    for (int32_t i = 0; i < n; i++) llmrt_kv_cache_destroy(caches[i].kv);
    free(caches);
    if (s != LLMRT_OK) {
        if (!strstr(err.msg, "tensor parallel rank"))
            llmrt_err_prefix(&err, "tensor parallel rank %d of %d", tp->rank, tp->size);
        tp->comm->ops->abort(tp->comm, err.msg);
        return llmrt_err_publish(&err);
    }
    return LLMRT_OK;
}

/* --------------------------------------------------------------------------------------------- */
/* loading and destroying a group                                                                */
/* --------------------------------------------------------------------------------------------- */

static llmrt_status attach(struct llmrt_model *m, int32_t size, int32_t rank, llmrt_comm *comm,
                           bool multi_process, llmrt_error *err) {
    struct llmrt_tp *tp = calloc(1, sizeof *tp);
    if (!tp) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "tensor parallel: out of memory");
    tp->size          = size;
    tp->rank          = rank;
    tp->comm          = comm;
    tp->multi_process = multi_process;
    pthread_mutex_init(&tp->lock, NULL);
    parse_fault(tp);
    m->tp = tp;
    return LLMRT_OK;
}

/* The device of this process's rank in a multi-process CUDA job: its node-local rank. */
static int local_device(int32_t world_rank) {
    const char *vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"};
    int         local  = world_rank;
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) {
            local = atoi(v);
            break;
        }
    }
    int n = 1;
#ifdef LLMRT_HAVE_CUDA
    n = llmrt_backend_cuda_device_count();
    if (n < 1) n = 1;
#endif
    return local % n;
}

static llmrt_status load_multi_process(const char *path, const llmrt_model_params *p,
                                       int32_t world_rank, int32_t world_size,
                                       struct llmrt_model **out, llmrt_error *err) {
    int32_t N = p->tensor_parallel;
    if (world_size % N != 0)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "tensor_parallel %d: the job's %d processes do not form whole groups "
                         "(launch a multiple of %d)", N, world_size, N);
    int32_t group = world_rank / N, rank = world_rank % N;
    int     device = p->device == LLMRT_DEVICE_CUDA ? local_device(world_rank) : 0;
    struct llmrt_model *m = NULL;
    LLMRT_TRY(llmrt_model_load_rank(path, p, N, rank, device, &m, err));
    double       timeout = llmrt_comm_default_timeout();
    llmrt_comm  *comm    = NULL;
    llmrt_status s = p->device == LLMRT_DEVICE_CUDA
                         ? llmrt_comm_nccl_create_mpi(group, N, device, m->be->stream, timeout,
                                                      &comm, err)
                         : llmrt_comm_mpi_create(group, N, timeout, &comm, err);
    if (s == LLMRT_OK) s = attach(m, N, rank, comm, true, err);
    if (s != LLMRT_OK) {
        if (comm) comm->ops->destroy(comm);
        llmrt_model_destroy(m);
        return s;
    }
    *out = m;
    return LLMRT_OK;
}

static llmrt_status load_in_process(const char *path, const llmrt_model_params *p,
                                    struct llmrt_model **out, llmrt_error *err) {
    int32_t N = p->tensor_parallel;
    llmrt_model_params rp = *p;
    if (p->device == LLMRT_DEVICE_CUDA) {
#ifdef LLMRT_HAVE_CUDA
        int n_dev = llmrt_backend_cuda_device_count();
        if (n_dev < N)
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                             "tensor_parallel %d needs %d GPUs in this process, %d visible "
                             "(or launch %d processes with mpirun)", N, N, n_dev, N);
#endif
    } else if (rp.n_threads == 0) {
        /* the ranks share the cores: each gets its part instead of one thread per core each */
        long cores   = sysconf(_SC_NPROCESSORS_ONLN);
        rp.n_threads = cores > N ? (int32_t)(cores / N) : 1;
    }
    struct llmrt_model **models = calloc((size_t)N, sizeof *models);
    llmrt_comm         **comms  = calloc((size_t)N, sizeof *comms);
    tp_worker           *wk     = calloc((size_t)N, sizeof *wk);
    llmrt_status         s      = models && comms && wk ? LLMRT_OK
                                                         : llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY,
                                                                     "out of memory");
    for (int32_t r = 0; r < N && s == LLMRT_OK; r++) {
        s = llmrt_model_load_rank(path, &rp, N, r, r, &models[r], err);
        if (s != LLMRT_OK) llmrt_err_prefix(err, "tensor parallel rank %d", r);
    }
    double timeout = llmrt_comm_default_timeout();
    if (s == LLMRT_OK) {
        if (p->device == LLMRT_DEVICE_CUDA) {
            int   *devices = calloc((size_t)N, sizeof *devices);
            void **streams = calloc((size_t)N, sizeof *streams);
            if (devices && streams) {
                for (int32_t r = 0; r < N; r++) {
                    devices[r] = r;
                    streams[r] = models[r]->be->stream;
                }
                s = llmrt_comm_nccl_create_all(N, devices, streams, timeout, comms, err);
            } else {
                s = llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
            }
            free(devices);
            free(streams);
        } else {
            s = llmrt_comm_local_create_all(N, timeout, comms, err);
        }
    }
    for (int32_t r = 0; r < N && s == LLMRT_OK; r++)
        s = attach(models[r], N, r, comms[r], false, err);
    if (s == LLMRT_OK) {
        struct llmrt_tp *lead = models[0]->tp;
        lead->peers           = models + 1;
        lead->comms           = comms;
        lead->workers         = wk;
        for (int32_t r = 1; r < N && s == LLMRT_OK; r++) {
            tp_worker *w = &wk[r - 1];
            pthread_mutex_init(&w->mu, NULL);
            pthread_cond_init(&w->cv, NULL);
            if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
                pthread_mutex_destroy(&w->mu);
                pthread_cond_destroy(&w->cv);
                s = llmrt_err(err, LLMRT_ERR_BACKEND, "tensor parallel: cannot start a thread");
            } else {
                w->started = true;
            }
        }
        if (s != LLMRT_OK) {
            llmrt_model_destroy(models[0]); /* stops the started workers, frees the rest */
            return s;
        }
        *out = models[0];
        return LLMRT_OK;
    }
    for (int32_t r = 0; r < N; r++) {
        if (models && models[r]) {
            if (models[r]->tp) {
                free(models[r]->tp);
                models[r]->tp = NULL;
            }
            llmrt_model_destroy(models[r]);
        }
        if (comms && comms[r]) comms[r]->ops->destroy(comms[r]);
    }
    free(models);
    free(comms);
    free(wk);
    return s;
}

llmrt_status llmrt_tp_load(const char *path, const llmrt_model_params *p,
                           struct llmrt_model **out, llmrt_error *err) {
    *out = NULL;
    if (p->tensor_parallel < 1 || p->tensor_parallel > 256)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "llmrt_model_load: tensor_parallel %d is outside [1, 256]",
                         p->tensor_parallel);
    int32_t world_rank = 0, world_size = 1;
    LLMRT_TRY(llmrt_mpi_world(&world_rank, &world_size, err));
    if (world_size > 1) return load_multi_process(path, p, world_rank, world_size, out, err);
    return load_in_process(path, p, out, err);
}

void llmrt_tp_destroy(struct llmrt_model *m) {
    struct llmrt_tp *tp = m->tp;
    if (!tp) return;
    m->tp = NULL;
    if (tp->multi_process) {
        if (tp->rank == 0 && !tp->dead) {
            tp_msg      msg = {.op = TP_OP_SHUTDOWN};
            llmrt_error e2  = {0};
            (void)send_msg(tp, &msg, &e2);
        }
        tp->comm->ops->destroy(tp->comm);
    } else if (tp->rank == 0) {
        for (int32_t r = 1; r < tp->size; r++) worker_stop(&tp->workers[r - 1]);
        for (int32_t r = 1; r < tp->size; r++) {
            struct llmrt_model *peer = tp->peers[r - 1];
            struct llmrt_tp    *ptp  = peer->tp;
            peer->tp                 = NULL;
            free(ptp);
            llmrt_model_destroy(peer);
        }
        for (int32_t r = 0; r < tp->size; r++) tp->comms[r]->ops->destroy(tp->comms[r]);
        free(tp->peers - 1); /* the models array began with the leader */
        free(tp->comms);
        free(tp->workers);
    }
    pthread_mutex_destroy(&tp->lock);
    free(tp);
}

llmrt_status llmrt_model_get_tp_stats(const llmrt_model *m, llmrt_tp_stats *out) {
    if (!m || !out || out->struct_size < sizeof(uint32_t) || out->struct_size > sizeof *out)
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "llmrt_model_get_tp_stats: bad argument");
    llmrt_tp_stats st = {.struct_size = out->struct_size};
    if (m->tp) {
        const llmrt_comm_stats *c = &m->tp->comm->stats;
        st.n_all_reduce = c->n_all_reduce;
        st.bytes        = c->bytes_all_reduce;
        st.seconds      = (double)c->ns_all_reduce * 1e-9;
        st.n_forwards   = m->tp->n_forwards;
    }
    memcpy(out, &st, out->struct_size);
    return LLMRT_OK;
}
