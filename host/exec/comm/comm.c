/* What every communicator shares: the default per-collective timeout and spin time. */
#include "comm.h"

#include <stdlib.h>

double llmrt_comm_default_timeout(void) {
    /* 120 s: far above any healthy collective (a prefill all-reduce of a 70B model is ~10 ms),
     * below the patience of a job scheduler; a rank that is this late is dead or deadlocked. */
    const char *s = getenv("LLMRT_TP_TIMEOUT_S");
    if (s && *s) {
        char  *end;
        double v = strtod(s, &end);
        if (end != s && *end == '\0' && v > 0) return v;
    }
    return 120.0;
}

/* Default spin before sleeping (see comm.h), measured on the 2-core VM (bench/tp_cpu.sh). */
#define DEFAULT_SPIN_US 1000

int64_t llmrt_comm_spin_ns(void) {
    const char *s = getenv("LLMRT_TP_SPIN_US");
    if (s && *s) {
        char     *end;
        long long v = strtoll(s, &end, 10);
        if (end != s && *end == '\0' && v >= 0 && v <= 10000000) return v * 1000;
    }
    return (int64_t)DEFAULT_SPIN_US * 1000;
}
