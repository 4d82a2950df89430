/* What every communicator shares: the default per-collective timeout. */
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
