/* The engine's LoRA adapters: registered by name (llmrt_engine_lora_load: read and checked on
 * the caller's thread, so the engine loop never waits on a file), chosen per request, and made
 * resident in the executor's adapter slots by the step thread when a request that needs one is
 * admitted. Residency is bounded by the slot count (max_loras) and a byte budget
 * (max_lora_bytes); the least recently used adapter that no running request uses is evicted
 * first, and one in use is never evicted. Unloading an adapter removes its name at once: the
 * requests that hold it finish with it, then it is freed. */
#ifndef LLMRT_ENGINE_LORA_REGISTRY_H
#define LLMRT_ENGINE_LORA_REGISTRY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "../exec/executor.h"
#include "../format/lora_file.h"
#include "plan_gate.h"

#define LORA_NAME_MAX 128

typedef struct lora_registry lora_registry;

typedef struct lora_adapter {
    lora_registry  *reg;
    uint32_t        uid;  /* never reused: the KV namespace of its requests derives from it */
    char            name[LORA_NAME_MAX];
    char            path[1024];
    llmrt_lora_file file; /* the host copy, kept while registered or in use (paging source) */
    /* under reg->mu */
    int32_t  slot;       /* executor slot holding it, -1 when not resident */
    int32_t  refs;       /* requests holding it, + 1 while registered, + 1 while resident */
    bool     registered;
    bool     unlisted;   /* lora_registry_add_unlisted's: never named, never unloaded */
    uint64_t last_used;  /* registry clock at its last admission */
    uint64_t n_requests; /* metrics: requests submitted with it, tokens they generated */
    uint64_t n_generated;
    uint64_t n_loads;    /* times made resident */
} lora_adapter;

struct lora_registry {
    pthread_mutex_t mu;
    lora_adapter  **list; /* registered, in load order */
    int32_t         n, cap;
    lora_adapter  **slots; /* [n_slots] resident adapter of each slot, or NULL */
    int32_t         n_slots;
    bool            slots_ready; /* the executor's slots exist (created at the first load) */
    int64_t         max_bytes;   /* 0: no limit */
    int64_t         resident_bytes;
    uint32_t        next_uid;
    uint64_t        clock;
    uint64_t        n_evictions;
};

void lora_registry_init(lora_registry *reg, int32_t n_slots, int64_t max_bytes);
/* Frees every adapter (no request may still hold one). */
void lora_registry_destroy(lora_registry *reg);

/* Registers `file` (moved in: zeroed on return) under `name`, read from `path`. The executor's
 * slots are created on the first call. LLMRT_ERR_INVALID_ARG when the name is taken or not a
 * valid name; UNSUPPORTED when the executor serves no adapters. */
llmrt_status lora_registry_add(lora_registry *reg, llmrt_executor *ex, const char *name,
                               const char *path, llmrt_lora_file *file, llmrt_error *err);
/* An adapter no request can name (the model's unmerged load-time adapter, which the engine
 * applies to requests that name none): not listed, not selectable, paged like the others.
 * *out holds the caller's reference (release it with lora_adapter_release). */
llmrt_status lora_registry_add_unlisted(lora_registry *reg, llmrt_executor *ex, const char *what,
                                        const char *path, llmrt_lora_file *file,
                                        lora_adapter **out, llmrt_error *err);
/* Removes `name`: new requests can no longer name it; those holding it finish. */
llmrt_status lora_registry_remove(lora_registry *reg, const char *name, llmrt_error *err);

/* The adapter called `name` with a reference for a request; NOT_FOUND naming the loaded ones. */
llmrt_status lora_registry_acquire(lora_registry *reg, const char *name, lora_adapter **out,
                                   llmrt_error *err);
/* Another reference to `a` for a request (counted in its metrics). */
lora_adapter *lora_adapter_retain(lora_adapter *a);
/* Drops a request's reference (NULL: no-op). */
void lora_adapter_release(lora_adapter *a);


/* Step thread: makes `a` resident (evicting adapters no request in `in_use[n_in_use]` holds),
 * loading it into a free executor slot. The planner's answer: PLAN_ADMIT (resident), PLAN_WAIT
 * (no slot or budget free now: every resident adapter is in use), PLAN_FAIL (err says why). */
plan_gate lora_registry_make_resident(lora_registry *reg, llmrt_executor *ex, lora_adapter *a,
                                       lora_adapter *const *in_use, int32_t n_in_use,
                                       llmrt_error *err);

/* Adds a finished sequence's generated tokens to a's metrics (any thread; NULL: no-op). */
void lora_adapter_count_tokens(lora_adapter *a, int64_t n);

#endif
