/* The CUDA backend (host/backend/cuda/cuda_backend.c): the backend interface over the plain-C
 * launchers of cuda/ (llmrt_cuda.h). Only built when LLMRT_HAVE_CUDA is defined (cmake
 * -DLLMRT_CUDA=nvcc, or =sim for the simulator). */
#ifndef LLMRT_BACKEND_CUDA_H
#define LLMRT_BACKEND_CUDA_H

#include <stdbool.h>
#include <stdint.h>

#include "../backend.h"

/* Options of a CUDA backend instance. */
typedef struct llmrt_cuda_options {
    /* activations: LLMRT_DTYPE_F16 (also when LLMRT_DTYPE_INVALID, i.e. left 0),
     * LLMRT_DTYPE_BF16, or LLMRT_DTYPE_F32: a reference mode with fp32 weights, activations and
     * KV cache, and the naive attention, for tests and debugging */
    llmrt_dtype act_dtype;
    /* tests and debugging: run the naive attention kernel for every shape (`supports` then
     * declines LLMRT_BOP_FLASH_ATTENTION) */
    bool        naive_attention;
    /* tests: the N-th begin_batch (1-based) launches an out-of-bounds kernel, a sticky fault;
     * 0 = off */
    int64_t     inject_fault_at;
    /* run every decode step eagerly, without CUDA graphs (llmrt_model_params.enforce_eager);
     * false (the default): decode-only steps run as one graph per batch-size bucket (see the
     * section "decode graphs" of cuda_backend.c) */
    bool        enforce_eager;
    /* tests and the launch counts: decline every fused decode op (matmul_fused), so the forward
     * runs the unfused sequence (rmsnorm, cuBLAS matmuls, swiglu, adds); false: fused (the
     * default). Settable by llmrt_backend_cuda_set_test_options. */
    bool        unfused;
} llmrt_cuda_options;

/* Creates the backend on CUDA device `device` with `opts` (NULL = fp16, no test hooks).
 * LLMRT_ERR_UNSUPPORTED when there is no usable device (the message says why). */
llmrt_status llmrt_backend_cuda_create(int device, const llmrt_cuda_options *opts,
                                       llmrt_backend **out, llmrt_error *err);

/* Test hooks on a backend that has run no forward yet (e.g. the backend of a model just loaded):
 * the test-only fields of `opts` (naive_attention, inject_fault_at) replace the instance's;
 * act_dtype is ignored. false when `be` is not a CUDA backend or already ran a forward. */
bool llmrt_backend_cuda_set_test_options(llmrt_backend *be, const llmrt_cuda_options *opts);

/* Number of CUDA devices this build can use (0 without a device or driver). */
int llmrt_backend_cuda_device_count(void);

/* What the backend did so far, for tests and logs. */
typedef struct llmrt_cuda_backend_stats {
    int64_t device_allocs;    /* successful device allocations (weights, KV, buffers) */
    int64_t device_frees;
    int64_t batch_allocs;     /* of which made while a forward ran (per-batch state growth) */
    int64_t forwards;         /* begin_batch calls */
    int64_t flash_attention;  /* attention calls served by the attention.h kernels */
    int64_t naive_attention;  /* attention calls served by attention_naive.cu */
    /* launches: kernel launcher and GEMM calls enqueued (eagerly or into a graph being captured;
     * a split-KV decode attention counts its combine kernel too); a replayed graph adds nothing */
    int64_t launches;
    /* decode graphs (section "decode graphs" of cuda_backend.c) */
    int64_t graph_captures;   /* decode steps captured into a new graph (and run by it)      */
    int64_t graph_replays;    /* decode steps run by replaying a graph                       */
    int64_t graph_eager;      /* decode-only steps that ran eagerly (no bucket, LoRA, TP...) */
    int64_t graph_rebuilds;   /* times every graph was dropped (KV / buffers reallocated)    */
    int64_t graph_nodes;      /* nodes of the last captured graph: the kernels, GEMMs and
                               * copies of one whole decode step (cudaGraphGetNodes)         */
    int32_t graph_bucket;     /* bucket (padded batch size) of the last graph step, 0 = none */
    bool    graphs_on;        /* decode graphs enabled (not enforce_eager, no failed capture) */
    bool    dead;             /* a sticky fault happened: every call fails with LLMRT_ERR_DEAD */
    char    dead_message[512];
    char    device_name[256];
} llmrt_cuda_backend_stats;

/* false when `be` is not a CUDA backend. */
bool llmrt_backend_cuda_stats(const llmrt_backend *be, llmrt_cuda_backend_stats *out);

#endif
