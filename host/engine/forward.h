/* Internal calls on the KV cache / forward (engine/forward.c) beyond the public API. */
#ifndef LLMRT_ENGINE_FORWARD_H
#define LLMRT_ENGINE_FORWARD_H

#include "llmrt.h"

/* Sizes the activation buffers and the backend's per-batch state for batches of up to
 * max_tokens tokens and max_outputs logits rows, so that no forward within these bounds
 * allocates (device memory on a GPU backend). The engine calls it with its max_batched_tokens
 * and max_seqs; larger batches still work (the buffers grow then). */
llmrt_status llmrt_kv_cache_reserve(llmrt_kv_cache *kv, int64_t max_tokens, int64_t max_outputs);

#endif
