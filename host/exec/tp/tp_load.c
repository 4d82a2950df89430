/* Loading a tensor-parallel group (tp.h): under mpirun one rank per process, else every rank
 * in this process; and ending it. */
#include "tp_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef LLMRT_HAVE_CUDA
#include "../../backend/cuda/cuda_backend.h"
#endif

/* --------------------------------------------------------------------------------------------- */
/* loading and destroying a group                                                                */
/* --------------------------------------------------------------------------------------------- */

/* Frees one rank's TP state (not its comm, peers or workers: llmrt_tp_destroy ends those). */
static void tp_free(struct llmrt_tp *tp) {
    pthread_mutex_destroy(&tp->lock);
    free(tp->gather_buf);
    free(tp->vocab0);
    free(tp->vocab);
    free(tp);
}

static llmrt_status attach(struct llmrt_model *m, int32_t size, int32_t rank, llmrt_comm *comm,
                           bool multi_process, llmrt_error *err) {
    struct llmrt_tp *tp = calloc(1, sizeof *tp);
    if (!tp) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "tensor parallel: out of memory");
    tp->size = size;
    tp->rank = rank;
    tp->comm = comm;
    tp->multi_process = multi_process;
    pthread_mutex_init(&tp->lock, NULL);
    tp_parse_fault(tp);
    /* every rank's vocabulary rows, once: the logits gather places them */
    tp->vocab0 = calloc((size_t)size, sizeof *tp->vocab0);
    tp->vocab = calloc((size_t)size, sizeof *tp->vocab);
    llmrt_status s = tp->vocab0 && tp->vocab ? LLMRT_OK
                                             : llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY,
                                                         "tensor parallel: out of memory");
    for (int32_t r = 0; r < size && s == LLMRT_OK; r++) {
        llmrt_tp_shard sh;
        s = llmrt_shard_plan(&m->cfg, size, r, &sh, err);
        tp->vocab0[r] = sh.vocab0;
        tp->vocab[r] = sh.vocab;
    }
    if (s != LLMRT_OK) {
        tp_free(tp);
        return s;
    }
    m->tp = tp;
    return LLMRT_OK;
}

/* The device of this process's rank in a multi-process CUDA job: its node-local rank. */
static int local_device(int32_t world_rank) {
    const char *vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"};
    int local = world_rank;
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
                         "(launch a multiple of %d)",
                         N, world_size, N);
    int32_t group = world_rank / N, rank = world_rank % N;
    int device = p->device == LLMRT_DEVICE_CUDA ? local_device(world_rank) : 0;
    struct llmrt_model *m = NULL;
    LLMRT_TRY(llmrt_model_load_rank(path, p, N, rank, device, &m, err));
    double timeout = llmrt_comm_timeout(p->tp_timeout_s);
    llmrt_comm_set_spin_us(p->tp_spin_us);
    llmrt_comm *comm = NULL;
    llmrt_status s =
        p->device == LLMRT_DEVICE_CUDA
            ? llmrt_comm_nccl_create_mpi(group, N, device, m->be->stream, timeout, &comm, err)
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
                             "(or launch %d processes with mpirun)",
                             N, N, n_dev, N);
#endif
    } else if (rp.n_threads == 0) {
        /* the ranks share the cores: each gets its part instead of one thread per core each */
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        rp.n_threads = cores > N ? (int32_t)(cores / N) : 1;
    }
    struct llmrt_model **models = calloc((size_t)N, sizeof *models);
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
    for (int32_t r = 0; r < N && s == LLMRT_OK; r++)
        s = attach(models[r], N, r, comms[r], false, err);
    if (s == LLMRT_OK) {
        struct llmrt_tp *lead = models[0]->tp;
        lead->peers = models + 1;
        lead->comms = comms;
        lead->workers = wk;
        for (int32_t r = 1; r < N && s == LLMRT_OK; r++) {
            s = tp_worker_start(&wk[r - 1], err);
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
                tp_free(models[r]->tp);
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

llmrt_status llmrt_tp_load(const char *path, const llmrt_model_params *p, struct llmrt_model **out,
                           llmrt_error *err) {
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
            tp_msg msg = {.op = TP_OP_SHUTDOWN};
            llmrt_error e2 = {0};
            (void)tp_send(tp, &msg, &e2);
        }
        tp->comm->ops->destroy(tp->comm);
    } else if (tp->rank == 0) {
        for (int32_t r = 1; r < tp->size; r++)
            tp_worker_stop(&tp->workers[r - 1]);
        for (int32_t r = 1; r < tp->size; r++) {
            struct llmrt_model *peer = tp->peers[r - 1];
            struct llmrt_tp *ptp = peer->tp;
            peer->tp = NULL;
            tp_free(ptp);
            llmrt_model_destroy(peer);
        }
        for (int32_t r = 0; r < tp->size; r++)
            tp->comms[r]->ops->destroy(tp->comms[r]);
        free(tp->peers - 1); /* the models array began with the leader */
        free(tp->comms);
        free(tp->workers);
    }
    tp_free(tp);
}
