/* The comm.h MPI entry points in the core library: they open the MPI module (libllmrt_mpi.so,
 * comm_mpi.c; see comm_mpi_module.h) with dlopen() the first time a process started by an MPI
 * launcher needs it, and forward to it. libllmrt is thus not linked with libmpi: a process that
 * is not an MPI job never loads it, and a library installed without the module still runs every
 * single-process job.
 *
 * The module is looked for, in order:
 *   1. next to the object holding this code (dladdr): libllmrt.so's directory, or the directory
 *      of an executable linked with the static library (the build tree: build/llmrt);
 *   2. the library directory relative to that one (LLMRT_MPI_MODULE_RELDIR, the installed
 *      bin/ -> lib/ path: an installed executable linked with the static library);
 *   3. the dynamic loader's search path (LD_LIBRARY_PATH, the caller's RUNPATH, ld.so.cache).
 * When the module is absent the MPI calls of a launched process fail with LLMRT_ERR_UNSUPPORTED
 * naming the module and the places tried. A build without MPI (no module built) never looks for
 * it: every process is rank 0 of 1, as comm.h documents. */
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm.h"
#include "../../core/log.h"
#include "comm_mpi_module.h"

#ifndef LLMRT_MPI_MODULE_RELDIR
#define LLMRT_MPI_MODULE_RELDIR "../lib"
#endif

static pthread_mutex_t         g_mu = PTHREAD_MUTEX_INITIALIZER;
static bool                    g_tried;        /* the module lookup ran (once per process) */
static bool                    g_launched;     /* started by an MPI launcher */
static const llmrt_mpi_module *g_mod;          /* the module, once loaded (never unloaded) */
static char                    g_why[LLMRT_ERROR_MSG_MAX - 128]; /* why it is not */

#if LLMRT_HAVE_MPI
static const llmrt_mpi_host g_host = {
    .struct_size          = sizeof(llmrt_mpi_host),
    .abi                  = LLMRT_MPI_MODULE_ABI,
    .sizeof_comm          = sizeof(llmrt_comm),
    .sizeof_comm_ops      = sizeof(llmrt_comm_ops),
    .sizeof_error         = sizeof(llmrt_error),
    .dtype_name           = llmrt_dtype_name,
    .comm_default_timeout = llmrt_comm_default_timeout,
    .comm_spin_ns         = llmrt_comm_spin_ns,
    .log                  = llmrt_log,
};

/* Whether a launcher (mpirun/mpiexec of Open MPI or MPICH, srun) started this process: then MPI
 * is initialised; otherwise the process is rank 0 of 1 and MPI is never touched (nor loaded). */
static bool launched_by_mpi(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return true;
    }
    return false;
}

static void append_why(size_t *len, const char *fmt, const char *a, const char *b) {
    if (*len >= sizeof g_why) return;
    int n = snprintf(g_why + *len, sizeof g_why - *len, fmt, a, b);
    if (n > 0) *len += (size_t)n;
    if (*len >= sizeof g_why) *len = sizeof g_why;
}

/* dlopen of one candidate: true and *handle set, or the reason appended to g_why. */
static bool try_open(const char *path, void **handle, size_t *why_len) {
    /* RTLD_GLOBAL: libmpi's own plug-ins (Open MPI's MCA components) resolve libmpi's symbols
     * in the global scope */
    void *h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    if (!h) {
        const char *e = dlerror();
        append_why(why_len, "%s%s", *why_len ? "; " : "", e ? e : path);
        return false;
    }
    *handle = h;
    return true;
}

static void load_module(void) {
    size_t why_len = 0;
    void  *h       = NULL;
    char   path[4096], self[4096];
    /* the file holding this code: libllmrt.so, or the executable linked with the static library
     * (whose link map has no name: /proc/self/exe) */
    const char      *file = NULL;
    Dl_info          info;
    struct link_map *map = NULL;
    if (dladdr1((void *)&llmrt_mpi_world, &info, (void **)&map, RTLD_DL_LINKMAP)) {
        if (map && map->l_name && strchr(map->l_name, '/')) {
            file = map->l_name;
        } else {
            ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
            if (n > 0) {
                self[n] = '\0';
                file    = self;
            } else if (info.dli_fname && strchr(info.dli_fname, '/')) {
                file = info.dli_fname;
            }
        }
    }
    if (file) {
        const char *slash   = strrchr(file, '/');
        int         dir_len = (int)(slash - file);
        snprintf(path, sizeof path, "%.*s/%s", dir_len, file, LLMRT_MPI_MODULE_FILE);
        if (access(path, F_OK) == 0) try_open(path, &h, &why_len);
        if (!h) {
            snprintf(path, sizeof path, "%.*s/%s/%s", dir_len, file, LLMRT_MPI_MODULE_RELDIR,
                     LLMRT_MPI_MODULE_FILE);
            if (access(path, F_OK) == 0) try_open(path, &h, &why_len);
        }
    }
    if (!h) try_open(LLMRT_MPI_MODULE_FILE, &h, &why_len);
    if (!h) return;
    llmrt_mpi_module_entry_fn entry;
    void *sym = dlsym(h, LLMRT_MPI_MODULE_ENTRY);
    memcpy(&entry, &sym, sizeof entry); /* object pointer -> function pointer, as POSIX allows */
    const llmrt_mpi_module *m = entry ? entry(&g_host) : NULL;
    if (!m || m->struct_size < sizeof(llmrt_mpi_module) || m->abi != LLMRT_MPI_MODULE_ABI) {
        why_len = 0;
        append_why(&why_len, "%s%s", LLMRT_MPI_MODULE_FILE,
                   entry ? " was built from another version of llmrt (ABI mismatch)"
                         : " has no " LLMRT_MPI_MODULE_ENTRY " (not an llmrt MPI module)");
        return; /* the handle stays open: dlclose of an MPI library is unsafe */
    }
    g_mod = m;
}

#endif /* LLMRT_HAVE_MPI */

/* The module when this is a launched process; NULL (and *launched false) otherwise, or an error
 * naming the module when it is a launched process and the module cannot be loaded. */
static llmrt_status get_module(const llmrt_mpi_module **out, bool *launched, llmrt_error *err) {
    pthread_mutex_lock(&g_mu);
    if (!g_tried) {
        g_tried    = true;
#if LLMRT_HAVE_MPI
        g_launched = launched_by_mpi();
        if (g_launched) load_module();
#else
        g_launched = false; /* a build without MPI: rank 0 of 1 whatever started it (comm.h) */
#endif
    }
    const llmrt_mpi_module *m = g_mod;
    bool l = g_launched;
    pthread_mutex_unlock(&g_mu);
    *out = m;
    if (launched) *launched = l;
    if (l && !m)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "MPI: this process was started by an MPI launcher, but the MPI module "
                         LLMRT_MPI_MODULE_FILE " (installed next to libllmrt) could not be "
                         "loaded: %s",
                         g_why);
    return LLMRT_OK;
}

llmrt_status llmrt_mpi_world(int32_t *rank, int32_t *size, llmrt_error *err) {
    const llmrt_mpi_module *m;
    LLMRT_TRY(get_module(&m, NULL, err));
    if (m) return m->world(rank, size, err);
    if (rank) *rank = 0;
    if (size) *size = 1;
    return LLMRT_OK;
}

llmrt_status llmrt_mpi_barrier(llmrt_error *err) {
    const llmrt_mpi_module *m;
    LLMRT_TRY(get_module(&m, NULL, err));
    return m ? m->barrier(err) : LLMRT_OK;
}

void llmrt_mpi_finalize(void) {
    pthread_mutex_lock(&g_mu);
    const llmrt_mpi_module *m = g_mod;
    pthread_mutex_unlock(&g_mu);
    if (m) m->finalize();
}

void llmrt_mpi_abort(int code) {
    pthread_mutex_lock(&g_mu);
    const llmrt_mpi_module *m = g_mod;
    pthread_mutex_unlock(&g_mu);
    if (m) m->abort(code);
}

llmrt_status llmrt_mpi_local_rank(int32_t *local_rank, int32_t *local_size, llmrt_error *err) {
    const llmrt_mpi_module *m;
    LLMRT_TRY(get_module(&m, NULL, err));
    if (m) return m->local_rank(local_rank, local_size, err);
    if (local_rank) *local_rank = 0;
    if (local_size) *local_size = 1;
    return LLMRT_OK;
}

llmrt_status llmrt_comm_mpi_create(int32_t group, int32_t size, double timeout_s,
                                   llmrt_comm **out, llmrt_error *err) {
    *out = NULL;
    const llmrt_mpi_module *m;
    LLMRT_TRY(get_module(&m, NULL, err));
    if (m) return m->comm_create(group, size, timeout_s, out, err);
#if LLMRT_HAVE_MPI
    return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                     "MPI communicator: this process was not started by mpirun/srun "
                     "(OMPI_COMM_WORLD_SIZE, PMI_SIZE and PMIX_RANK are unset)");
#else
    return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                     "MPI communicator: llmrt was built without MPI (install libopenmpi-dev and "
                     "reconfigure)");
#endif
}
