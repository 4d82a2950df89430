/* The tensor-parallel executor (executor.h): a group of ranks, each holding its shard of the
 * model (model/shard_plan.h) on its own backend, running the same forward in lockstep with two
 * all-reduces per layer (exec/forward.c, through the collectives each rank hands it). Rank 0,
 * the leader, is the rank the caller drives; it decides every batch (the engine runs once, on
 * the leader) and hands the same batch to the other ranks, so their collectives always match:
 *   in-process group  ranks are host threads of this process (one per rank other than 0), fed
 *                     through tp_worker job slots (CPU: "local" comm; CUDA: NCCL InitAll)
 *   multi-process     ranks are processes (mpirun / srun); the leader broadcasts each request
 *                     (KV cache create / reserve / destroy, forward, shutdown) over the comm's
 *                     control plane and the followers serve them in the executor's follow
 * Failures: a rank whose forward fails aborts the group's communicators, so every other rank's
 * collective fails promptly (or by the comm's timeout when a rank hangs or dies); the group is
 * then dead and every later forward fails with LLMRT_ERR_DEAD, which puts an engine in its dead
 * state. Tests inject faults through a hook compiled only into test builds (LLMRT_TEST_HOOKS). */
#ifndef LLMRT_EXEC_TP_H
#define LLMRT_EXEC_TP_H

#include "../executor.h"
#include "llmrt_test_hooks.h" /* the fault hook of test builds */

/* Loads `path` sharded over params->tensor_parallel (>= 2) ranks: under an MPI job of several
 * processes, this process's rank of its group; otherwise every rank in this process. *model is
 * this process's rank (the caller owns it and destroys it after the executor); *out the group's
 * executor, which owns every other rank. */
llmrt_status llmrt_tp_executor_load(const char *path, const llmrt_model_params *params,
                                    llmrt_rank_model **model, llmrt_executor **out,
                                    llmrt_error *err);

#endif
