/* llmrt_test_hooks.h — hooks for llmrt's own tests, present only in libraries built with
 * LLMRT_TEST_HOOKS (the default when the tests are built; never in a release install). Not an
 * API: it may change at any time. */
#ifndef LLMRT_TEST_HOOKS_H
#define LLMRT_TEST_HOOKS_H

#include "llmrt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Asked at the start of every forward of every tensor-parallel rank (forward counted from 1 per
 * rank) whether to fail it. ERROR: the rank reports an error and aborts its group; HANG: the
 * rank stops taking part silently (the others time out). A hook that wants its process to die
 * calls _exit itself: the library never exits. NULL removes the hook. */
typedef enum llmrt_tp_fault {
    LLMRT_TP_FAULT_NONE = 0,
    LLMRT_TP_FAULT_ERROR,
    LLMRT_TP_FAULT_HANG,
} llmrt_tp_fault;
typedef llmrt_tp_fault (*llmrt_tp_fault_hook)(int32_t rank, int64_t forward, void *data);
LLMRT_API void llmrt_test_set_tp_fault_hook(llmrt_tp_fault_hook hook, void *data);

#ifdef __cplusplus
}
#endif
#endif
