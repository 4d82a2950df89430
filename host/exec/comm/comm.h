/* Communicators of a tensor-parallel group: the all-reduce the forward calls after the attention
 * output projection and the MLP down projection, plus a host broadcast for the control plane
 * (the leader's batch plans to follower processes).
 *
 * Three implementations behind one table:
 *   local  in-process ranks as threads (CPU backend, one process): fixed rank-order fp32 sums
 *   mpi    one rank per process under mpirun/srun (CPU backend): MPI_Iallreduce polled with a
 *          deadline, on a sub-communicator of MPI_COMM_WORLD per TP group
 *   nccl   CUDA backend: ncclAllReduce on the rank's stream (ncclCommInitAll in one process, or
 *          ncclCommInitRank with the unique id broadcast over MPI); a watchdog thread polls
 *          ncclCommGetAsyncError and the completion of the last collective, and calls
 *          ncclCommAbort when it fails or outlives the timeout
 * Every rank calls the collectives in the same order. None of them hangs: a collective that
 * does not complete within `timeout_s` aborts the group and fails on every rank with
 * LLMRT_ERR_BACKEND, naming the collective, the rank and (when known) the missing ranks. */
#ifndef LLMRT_COMM_COMM_H
#define LLMRT_COMM_COMM_H

#include <stdbool.h>
#include <stdint.h>

#include "../../core/error.h"
#include "../../format/dtype.h"

typedef struct llmrt_comm llmrt_comm;

typedef struct llmrt_comm_stats {
    int64_t n_all_reduce;     /* calls */
    int64_t bytes_all_reduce; /* payload bytes (n * element size) summed over calls */
    int64_t ns_all_reduce;    /* host wall time inside all_reduce_sum and wait (CPU comms: the
                               * whole collective; nccl: enqueue + the completion wait) */
} llmrt_comm_stats;

typedef struct llmrt_comm_ops {
    /* In-place sum over the ranks of buf[n], in this rank's backend memory (host memory for
     * local/mpi, device memory for nccl), dtype F32, F16 or BF16. local/mpi: returns when
     * done; nccl: enqueued on the rank's stream (see wait). */
    llmrt_status (*all_reduce_sum)(llmrt_comm *c, void *buf, int64_t n, llmrt_dtype dtype,
                                   llmrt_error *err);
    /* Control plane: `bytes` of host memory from rank `root` to every rank. Waits without a
     * timeout (a follower idles here between the leader's requests); fails when the group was
     * aborted. */
    llmrt_status (*broadcast_host)(llmrt_comm *c, void *buf, uint64_t bytes, int32_t root,
                                   llmrt_error *err);
    /* nccl: waits (with the timeout) until this rank's enqueued collectives completed;
     * local/mpi: returns the group's state (LLMRT_OK unless aborted). */
    llmrt_status (*wait)(llmrt_comm *c, llmrt_error *err);
    /* Makes every pending and later collective of every rank of the group fail promptly, with
     * `why` in their messages. Safe from any thread; idempotent. mpi: the other processes
     * learn it by their own timeout or when the launcher kills them (the process calling abort
     * is expected to exit non-zero). */
    void (*abort)(llmrt_comm *c, const char *why);
    /* Frees this rank's handle; the group's shared state (local: the rendezvous; nccl: the
     * NCCL comms, the watchdog) goes with the last rank's destroy, so destroy a group's ranks
     * only once none of them is inside a collective any more. mpi: a collective abandoned
     * by a timeout keeps its buffer (MPI may still write it). */
    void (*destroy)(llmrt_comm *c);
} llmrt_comm_ops;

struct llmrt_comm {
    const llmrt_comm_ops *ops;
    const char           *kind;      /* "local", "mpi", "nccl" */
    int32_t               rank, size; /* within the TP group */
    double                timeout_s;  /* per collective */
    llmrt_comm_stats      stats;
    void                 *ctx;
};

/* The default per-collective timeout: 120 s. */
double llmrt_comm_default_timeout(void);
/* `timeout_s` when > 0 (llmrt_model_params.tp_timeout_s), else the default. */
double llmrt_comm_timeout(double timeout_s);

/* How long a host communicator (local, mpi) spins, yielding, on a pending collective before it
 * sleeps between polls: the value last given to llmrt_comm_set_spin_us (the TP loader passes
 * llmrt_model_params.tp_spin_us before it creates a group's communicators), else the default of
 * comm.c (1000 us). Process-wide: the communicators read it at every collective (comm_mpi.c has
 * no per-communicator setting yet), so groups loaded with different values share the last one.
 * Spinning saves a wake-up per collective when every rank has a core; sleeping gives the core
 * away when the machine is oversubscribed. */
int64_t llmrt_comm_spin_ns(void);
/* spin_us < 0: the default; 0: never spin; clamped to 10^7. */
void    llmrt_comm_set_spin_us(int32_t spin_us);

/* In-process group of `size` ranks (threads), comms[size] out, comms[r]->rank = r. */
llmrt_status llmrt_comm_local_create_all(int32_t size, double timeout_s, llmrt_comm **comms,
                                         llmrt_error *err);

/* -- MPI (builds with LLMRT_HAVE_MPI; elsewhere these report LLMRT_ERR_UNSUPPORTED) -- */
/* The process's place in the job: MPI is initialised (MPI_THREAD_MULTIPLE) when the process was
 * started by a launcher (OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK set); otherwise, or in a
 * build without MPI, rank 0 of 1 without touching MPI. Idempotent. */
llmrt_status llmrt_mpi_world(int32_t *rank, int32_t *size, llmrt_error *err);
/* Barrier over the whole job (no-op for a job of 1). */
llmrt_status llmrt_mpi_barrier(llmrt_error *err);
/* Ends the job's MPI use at exit (no-op when MPI was not initialised). */
void         llmrt_mpi_finalize(void);
/* Kills every process of the job (MPI_Abort) after a fatal error; no-op without MPI. */
void         llmrt_mpi_abort(int code);
/* The TP group of world ranks [group * size, (group + 1) * size) containing this process. */
llmrt_status llmrt_comm_mpi_create(int32_t group, int32_t size, double timeout_s,
                                   llmrt_comm **out, llmrt_error *err);

/* -- NCCL (CUDA builds; elsewhere LLMRT_ERR_UNSUPPORTED) -- */
/* In-process group: rank r on devices[r] enqueuing on streams[r] (cudaStream_t); its
 * broadcast_host goes through an in-process (local) group. */
llmrt_status llmrt_comm_nccl_create_all(int32_t size, const int *devices, void *const *streams,
                                        double timeout_s, llmrt_comm **comms, llmrt_error *err);
/* One rank per process: the group of llmrt_comm_mpi_create(group, size), bootstrapped with an
 * ncclUniqueId broadcast over MPI; this rank on `device`, enqueuing on `stream`. */
llmrt_status llmrt_comm_nccl_create_mpi(int32_t group, int32_t size, int device, void *stream,
                                        double timeout_s, llmrt_comm **out, llmrt_error *err);

#endif
