/* What every communicator shares: the per-collective timeout and the spin time, as set by the
 * caller (llmrt_model_params.tp_timeout_s / tp_spin_us through the TP loader); the library reads
 * no environment variable. */
#include "comm.h"

#include <stdatomic.h>

/* 120 s: far above any healthy collective (a prefill all-reduce of a 70B model is ~10 ms),
 * below the patience of a job scheduler; a rank that is this late is dead or deadlocked. */
#define DEFAULT_TIMEOUT_S 120.0

/* Default spin before sleeping (see comm.h), measured on the 2-core VM (bench/tp_cpu.sh). */
#define DEFAULT_SPIN_US 1000

static _Atomic int64_t g_spin_ns = (int64_t)DEFAULT_SPIN_US * 1000;

double llmrt_comm_default_timeout(void) {
    return DEFAULT_TIMEOUT_S;
}

double llmrt_comm_timeout(double timeout_s) {
    return timeout_s > 0 ? timeout_s : DEFAULT_TIMEOUT_S;
}

void llmrt_comm_set_spin_us(int32_t spin_us) {
    int64_t ns = spin_us < 0 ? (int64_t)DEFAULT_SPIN_US * 1000
                 : spin_us > 10000000 ? (int64_t)10000000 * 1000
                                      : (int64_t)spin_us * 1000;
    atomic_store(&g_spin_ns, ns);
}

int64_t llmrt_comm_spin_ns(void) {
    return atomic_load_explicit(&g_spin_ns, memory_order_relaxed);
}
