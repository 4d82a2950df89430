/* Fault injection for the tests of multi-process tensor parallel (tests/cli/test_tp_mpi.sh),
 * only in builds with test hooks (LLMRT_TEST_HOOKS): LLMRT_TP_FAULT=RANK:FORWARD:KIND makes
 * rank RANK fail its FORWARD-th forward (1-based) with KIND error (the rank reports an error),
 * hang (it stops taking part) or exit (its process dies: done here, the library never exits). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#ifdef LLMRT_TEST_HOOKS
#include "llmrt_test_hooks.h"

typedef struct cli_fault {
    int       rank;
    long long at;
    char      kind[16];
} cli_fault;

static cli_fault fault;

static llmrt_tp_fault cli_fault_hook(int32_t rank, int64_t forward, void *data) {
    (void)data;
    if (rank != fault.rank || forward != fault.at) return LLMRT_TP_FAULT_NONE;
    if (!strcmp(fault.kind, "exit")) {
        fprintf(stderr, "llmrt: LLMRT_TP_FAULT: rank %d exits in forward %lld\n", rank,
                (long long)forward);
        fflush(stderr);
        _exit(3);
    }
    return !strcmp(fault.kind, "hang") ? LLMRT_TP_FAULT_HANG : LLMRT_TP_FAULT_ERROR;
}

void cli_install_test_hooks(void) {
    const char *v = getenv("LLMRT_TP_FAULT");
    if (!v || !*v) return;
    if (sscanf(v, "%d:%lld:%15s", &fault.rank, &fault.at, fault.kind) != 3 || fault.rank < 0 ||
        fault.at < 1) {
        fprintf(stderr, "llmrt: LLMRT_TP_FAULT=%s: expected RANK:FORWARD:error|hang|exit\n", v);
        return;
    }
    llmrt_test_set_tp_fault_hook(cli_fault_hook, NULL);
}
#else
void cli_install_test_hooks(void) {}
#endif
