/* The MPI module: comm_mpi.c is built into its own shared object, libllmrt_mpi.so (the only part
 * of llmrt linked with libmpi), which the core library opens at run time (comm_mpi_loader.c) the
 * first time a process started by an MPI launcher asks for its place in the job. libllmrt itself
 * therefore never depends on libmpi; without the module a launched job fails with a clear
 * LLMRT_ERR_UNSUPPORTED naming the module.
 *
 * The module exports one symbol, LLMRT_MPI_MODULE_ENTRY: given the core's table of the few helpers
 * it needs (so the module links nothing of libllmrt), it returns its table of entry points, whose
 * meaning is that of the functions of the same names in comm.h. The module and the core are built
 * from the same tree; the ABI number and the struct sizes in both tables catch a stale module. */
#ifndef LLMRT_COMM_MPI_MODULE_H
#define LLMRT_COMM_MPI_MODULE_H

#include <stdint.h>

#include "comm.h"

#define LLMRT_MPI_MODULE_ABI   1
#define LLMRT_MPI_MODULE_FILE  "libllmrt_mpi.so"
#define LLMRT_MPI_MODULE_ENTRY "llmrt_mpi_module_v1"

/* What the core gives the module. */
typedef struct llmrt_mpi_host {
    uint32_t struct_size;
    uint32_t abi;                 /* LLMRT_MPI_MODULE_ABI */
    uint32_t sizeof_comm;         /* sizeof(llmrt_comm), sizeof(llmrt_comm_ops), sizeof(llmrt_error) */
    uint32_t sizeof_comm_ops;
    uint32_t sizeof_error;
    const char *(*dtype_name)(llmrt_dtype t);
    double (*comm_default_timeout)(void);
    int64_t (*comm_spin_ns)(void);
    /* the library's log (core/log.h): the module prints nothing itself */
    void (*log)(llmrt_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
} llmrt_mpi_host;

/* What the module gives the core (see comm.h for each). */
typedef struct llmrt_mpi_module {
    uint32_t struct_size;
    uint32_t abi;
    llmrt_status (*world)(int32_t *rank, int32_t *size, llmrt_error *err);
    llmrt_status (*barrier)(llmrt_error *err);
    void (*finalize)(void);
    void (*abort)(int code);
    llmrt_status (*comm_create)(int32_t group, int32_t size, double timeout_s, llmrt_comm **out,
                                llmrt_error *err);
    /* This process's rank among the job's processes on its node, and their number
     * (MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)). */
    llmrt_status (*local_rank)(int32_t *local_rank, int32_t *local_size, llmrt_error *err);
} llmrt_mpi_module;

/* The entry point's type: NULL when the host's ABI or struct sizes differ from the module's. */
typedef const llmrt_mpi_module *(*llmrt_mpi_module_entry_fn)(const llmrt_mpi_host *host);

/* The node-local rank of this process (loader side, beside the comm.h entry points): its rank
 * among the job's processes sharing its node, from MPI_Comm_split_type(MPI_COMM_TYPE_SHARED);
 * 0 of 1 for a process not started by an MPI launcher. For picking a process's GPU. */
llmrt_status llmrt_mpi_local_rank(int32_t *local_rank, int32_t *local_size, llmrt_error *err);

#endif
