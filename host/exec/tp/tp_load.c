/* Loading a tensor-parallel group (tp.h): under mpirun one rank per process, else every rank
 * in this process; and ending it. */
#include "tp_internal.h"

#include "../comm/comm_mpi_module.h" /* llmrt_mpi_local_rank */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef LLMRT_HAVE_CUDA
#include "../../backend/cuda/cuda_backend.h"
#endif

/* --------------------------------------------------------------------------------------------- */
/* the executor object                                                                           */
/* --------------------------------------------------------------------------------------------- */

static tp_exec *exec_new(tp_rank *self) {
    tp_exec *te = calloc(1, sizeof *te);
    if (!te) return NULL;
    pthread_mutex_init(&te->lock, NULL);
    te->self = self;
    te->ex = (llmrt_executor){.ops = &tp_exec_ops, .model = self->model, .tp_size = self->size,
                              .tp_rank = self->rank, .comm_kind = self->comm->kind, .impl = te};
    return te;
}

void tp_exec_destroy(llmrt_executor *ex) {
    tp_exec *te = ex->impl;
    tp_rank *self = te->self;
    int32_t size = self->size;
    if (self->multi_process) {
        if (self->rank == 0 && !te->dead) {
            tp_msg msg = {.op = TP_OP_SHUTDOWN};
            llmrt_error e2 = {0};
            (void)tp_send(self, &msg, &e2);
        }
        self->comm->ops->destroy(self->comm);
        tp_rank_free(self);
        free(self);
    } else {
        for (int32_t r = 1; r < size; r++)
            tp_worker_stop(&te->workers[r - 1]);
        for (int32_t r = 0; r < size; r++) { /* self is ranks[0]: freed here */
            tp_rank *tr = te->ranks[r];
            if (r > 0) llmrt_rank_model_destroy(tr->model); /* rank 0's is the caller's */
            tp_rank_free(tr);
            free(tr);
        }
        for (int32_t r = 0; r < size; r++)
            te->comms[r]->ops->destroy(te->comms[r]);
        free(te->ranks);
        free(te->comms);
        free(te->workers);
    }
    pthread_mutex_destroy(&te->lock);
    free(te);
}

/* The device of this process's rank in a multi-process CUDA job: its node-local rank (MPI's
 * shared-memory split of the world, whatever the launcher), modulo the visible devices. */
static llmrt_status local_device(int *device, llmrt_error *err) {
    int32_t local = 0, local_size = 1;
    LLMRT_TRY(llmrt_mpi_local_rank(&local, &local_size, err));
    int n = 1;
#ifdef LLMRT_HAVE_CUDA
    n = llmrt_backend_cuda_device_count();
    if (n < 1) n = 1;
#endif
    *device = local % n;
    return LLMRT_OK;
}

static llmrt_status load_multi_process(const char *path, const llmrt_model_params *p,
                                       int32_t world_rank, int32_t world_size,
                                       llmrt_rank_model **model, llmrt_executor **out,
                                       llmrt_error *err) {
    int32_t N = p->tensor_parallel;
    if (world_size % N != 0)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "tensor_parallel %d: the job's %d processes do not form whole groups "
                         "(launch a multiple of %d)",
                         N, world_size, N);
    int32_t group = world_rank / N, rank = world_rank % N;
    int device = 0;
    if (p->device == LLMRT_DEVICE_CUDA) LLMRT_TRY(local_device(&device, err));
    llmrt_rank_model *m = NULL;
    LLMRT_TRY(llmrt_model_load_rank(path, p, N, rank, device, &m, err));
    double timeout = llmrt_comm_timeout(p->tp_timeout_s);
    llmrt_comm_set_spin_us(p->tp_spin_us);
    llmrt_comm *comm = NULL;
    llmrt_status s =
        p->device == LLMRT_DEVICE_CUDA
            ? llmrt_comm_nccl_create_mpi(group, N, device, m->be->stream, timeout, &comm, err)
            : llmrt_comm_mpi_create(group, N, timeout, &comm, err);
    tp_rank *self = NULL;
    if (s == LLMRT_OK) {
        self = calloc(1, sizeof *self);
        s = self ? tp_rank_init(self, m, N, rank, comm, true, err)
                 : llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "tensor parallel: out of memory");
    }
    tp_exec *te = s == LLMRT_OK ? exec_new(self) : NULL;
    if (s == LLMRT_OK && !te) {
        tp_rank_free(self);
        s = llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "tensor parallel: out of memory");
    }
    if (s != LLMRT_OK) {
        free(self);
        if (comm) comm->ops->destroy(comm);
        llmrt_rank_model_destroy(m);
        return s;
    }
    *model = m;
    *out = &te->ex;
    return LLMRT_OK;
}

static llmrt_status load_in_process(const char *path, const llmrt_model_params *p,
                                    llmrt_rank_model **model, llmrt_executor **out,
                                    llmrt_error *err) {
    int32_t N = p->tensor_parallel;
    llmrt_model_params rp = *p;
    if (p->device == LLMRT_DEVICE_CUDA) {
#ifdef LLMRT_HAVE_CUDA
        int n_dev = llmrt_backend_cuda_device_count();
        if (n_dev < N)
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                             "tensor_parallel %d needs %d GPUs in this process, %d visible "
                             "(or launch %d processes with mpirun)",
                             N, N, n_dev, N);
#endif
    } else if (rp.n_threads == 0) {
        /* the ranks share the cores: each gets its part instead of one thread per core each */
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        rp.n_threads = cores > N ? (int32_t)(cores / N) : 1;
    }
    llmrt_rank_model **models = calloc((size_t)N, sizeof *models);
    llmrt_comm **comms = calloc((size_t)N, sizeof *comms);
    tp_worker *wk = calloc((size_t)N, sizeof *wk);
    llmrt_status s =
        models && comms && wk ? LLMRT_OK : llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    for (int32_t r = 0; r < N && s == LLMRT_OK; r++) {
        s = llmrt_model_load_rank(path, &rp, N, r, r, &models[r], err);
        if (s != LLMRT_OK) llmrt_err_prefix(err, "tensor parallel rank %d", r);
    }
    double timeout = llmrt_comm_timeout(p->tp_timeout_s);
    llmrt_comm_set_spin_us(p->tp_spin_us);
    if (s == LLMRT_OK) {
        if (p->device == LLMRT_DEVICE_CUDA) {
            int *devices = calloc((size_t)N, sizeof *devices);
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
    tp_rank **ranks = calloc((size_t)N, sizeof *ranks);
    if (s == LLMRT_OK && !ranks) s = llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    for (int32_t r = 0; r < N && s == LLMRT_OK; r++) {
        ranks[r] = calloc(1, sizeof *ranks[r]);
        s = ranks[r] ? tp_rank_init(ranks[r], models[r], N, r, comms[r], false, err)
                     : llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
        if (s != LLMRT_OK) {
            free(ranks[r]);
            ranks[r] = NULL;
        }
    }
    tp_exec *te = s == LLMRT_OK ? exec_new(ranks[0]) : NULL;
    if (s == LLMRT_OK && !te) s = llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    if (s == LLMRT_OK) {
        te->ranks = ranks;
        te->comms = comms;
        te->workers = wk;
        free(models); /* the ranks hold them now */
        int32_t started = 1;
        for (; started < N && s == LLMRT_OK; started++)
            s = tp_worker_start(&wk[started - 1], ranks[started], err);
        if (s != LLMRT_OK) {
            llmrt_rank_model *lead = ranks[0]->model;
            tp_exec_destroy(&te->ex); /* stops the started workers, frees the other ranks */
            llmrt_rank_model_destroy(lead);
            return s;
        }
        *model = ranks[0]->model;
        *out = &te->ex;
        return LLMRT_OK;
    }
    for (int32_t r = 0; r < N; r++) {
        if (ranks && ranks[r]) {
            tp_rank_free(ranks[r]);
            free(ranks[r]);
        }
        if (models && models[r]) llmrt_rank_model_destroy(models[r]);
        if (comms && comms[r]) comms[r]->ops->destroy(comms[r]);
    }
    free(ranks);
    free(models);
    free(comms);
    free(wk);
    return s;
}

llmrt_status llmrt_tp_executor_load(const char *path, const llmrt_model_params *p,
                                    llmrt_rank_model **model, llmrt_executor **out,
                                    llmrt_error *err) {
    *out = NULL;
    *model = NULL;
    if (p->tensor_parallel < 1 || p->tensor_parallel > 256)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "llmrt_model_load: tensor_parallel %d is outside [1, 256]",
                         p->tensor_parallel);
    int32_t world_rank = 0, world_size = 1;
    LLMRT_TRY(llmrt_mpi_world(&world_rank, &world_size, err));
    if (world_size > 1) return load_multi_process(path, p, world_rank, world_size, model, out, err);
    return load_in_process(path, p, model, out, err);
}
