/* The engine's LoRA adapters (lora_registry.h). */
#include "lora_registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lora_registry_init(lora_registry *reg, int32_t n_slots, int64_t max_bytes) {
    memset(reg, 0, sizeof *reg);
    pthread_mutex_init(&reg->mu, NULL);
    reg->n_slots = n_slots;
    reg->max_bytes = max_bytes;
}

static void adapter_free(lora_adapter *a) {
    llmrt_lora_file_free(&a->file);
    free(a);
}

/* Under reg->mu. */
static void drop_ref(lora_adapter *a) {
    if (--a->refs == 0) adapter_free(a);
}

void lora_registry_destroy(lora_registry *reg) {
    for (int32_t i = 0; i < reg->n_slots && reg->slots; i++)
        if (reg->slots[i]) drop_ref(reg->slots[i]);
    for (int32_t i = 0; i < reg->n; i++) {
        reg->list[i]->registered = false;
        drop_ref(reg->list[i]);
    }
    free(reg->slots);
    free(reg->list);
    pthread_mutex_destroy(&reg->mu);
    memset(reg, 0, sizeof *reg);
}

/* Names are what requests and served model ids use: printable ASCII without spaces or quotes. */
static bool valid_name(const char *name) {
    size_t n = strlen(name);
    if (n == 0 || n >= LORA_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (name[i] <= ' ' || name[i] > '~' || name[i] == '"' || name[i] == '\\') return false;
    return true;
}

static int32_t find(const lora_registry *reg, const char *name) {
    for (int32_t i = 0; i < reg->n; i++)
        if (strcmp(reg->list[i]->name, name) == 0) return i;
    return -1;
}

/* Under reg->mu: the executor's slots exist (made at the first adapter). */
static llmrt_status ensure_slots(lora_registry *reg, llmrt_executor *ex, llmrt_error *err) {
    if (reg->slots_ready) return LLMRT_OK;
    reg->slots = calloc((size_t)reg->n_slots, sizeof *reg->slots);
    if (!reg->slots) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    llmrt_status s = ex->ops->lora_init(ex, reg->n_slots, err);
    if (s == LLMRT_OK)
        reg->slots_ready = true;
    else
        free(reg->slots), reg->slots = NULL;
    return s;
}

/* A new adapter holding `file` (moved), or NULL with err set; under reg->mu. */
static lora_adapter *create(lora_registry *reg, llmrt_executor *ex, const char *name,
                            const char *path, llmrt_lora_file *file, llmrt_error *err) {
    if (strlen(path) >= sizeof((lora_adapter *)0)->path) {
        llmrt_err(err, LLMRT_ERR_INVALID_ARG, "LoRA adapter path longer than %zu bytes",
                  sizeof((lora_adapter *)0)->path - 1);
        return NULL;
    }
    if (!ex->ops->lora_init || !ex->ops->lora_set) {
        llmrt_err(err, LLMRT_ERR_UNSUPPORTED, "this executor serves no LoRA adapters per request");
        return NULL;
    }
    if (reg->max_bytes > 0 && (int64_t)file->bytes > reg->max_bytes) {
        llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                  "LoRA adapter \"%s\" holds %llu bytes, more than max_lora_bytes %lld", name,
                  (unsigned long long)file->bytes, (long long)reg->max_bytes);
        return NULL;
    }
    if (ensure_slots(reg, ex, err) != LLMRT_OK) return NULL;
    lora_adapter *a = calloc(1, sizeof *a);
    if (!a) {
        llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
        return NULL;
    }
    a->reg = reg;
    a->uid = ++reg->next_uid;
    a->slot = -1;
    a->refs = 1;
    snprintf(a->name, sizeof a->name, "%s", name);
    snprintf(a->path, sizeof a->path, "%s", path);
    a->file = *file;
    memset(file, 0, sizeof *file);
    return a;
}

llmrt_status lora_registry_add(lora_registry *reg, llmrt_executor *ex, const char *name,
                               const char *path, llmrt_lora_file *file, llmrt_error *err) {
    if (!valid_name(name))
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "LoRA adapter name \"%.64s\" must be 1-%d printable characters without "
                         "spaces or quotes",
                         name, LORA_NAME_MAX - 1);
    pthread_mutex_lock(&reg->mu);
    llmrt_status s = LLMRT_OK;
    if (find(reg, name) >= 0)
        s = llmrt_err(err, LLMRT_ERR_INVALID_ARG, "a LoRA adapter named \"%s\" is already loaded",
                      name);
    if (s == LLMRT_OK && reg->n == reg->cap) {
        int32_t cap = reg->cap ? 2 * reg->cap : 8;
        lora_adapter **l = realloc(reg->list, (size_t)cap * sizeof *l);
        if (l)
            reg->list = l, reg->cap = cap;
        else
            s = llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    }
    lora_adapter *a = s == LLMRT_OK ? create(reg, ex, name, path, file, err) : NULL;
    if (a) {
        a->registered = true;
        reg->list[reg->n++] = a;
    } else if (s == LLMRT_OK) {
        s = err ? err->status : LLMRT_ERR_INTERNAL;
    }
    pthread_mutex_unlock(&reg->mu);
    return s;
}

llmrt_status lora_registry_add_unlisted(lora_registry *reg, llmrt_executor *ex, const char *what,
                                        const char *path, llmrt_lora_file *file, lora_adapter **out,
                                        llmrt_error *err) {
    pthread_mutex_lock(&reg->mu);
    *out = create(reg, ex, what, path, file, err);
    if (*out) (*out)->unlisted = true;
    pthread_mutex_unlock(&reg->mu);
    return *out ? LLMRT_OK : (err ? err->status : LLMRT_ERR_INTERNAL);
}

llmrt_status lora_registry_remove(lora_registry *reg, const char *name, llmrt_error *err) {
    pthread_mutex_lock(&reg->mu);
    int32_t i = find(reg, name);
    if (i < 0) {
        pthread_mutex_unlock(&reg->mu);
        return llmrt_err(err, LLMRT_ERR_NOT_FOUND, "no LoRA adapter named \"%.128s\" is loaded",
                         name);
    }
    lora_adapter *a = reg->list[i];
    memmove(reg->list + i, reg->list + i + 1, (size_t)(reg->n - i - 1) * sizeof *reg->list);
    reg->n--;
    a->registered = false;
    drop_ref(a); /* resident or held by requests: freed when the last of them lets go */
    pthread_mutex_unlock(&reg->mu);
    return LLMRT_OK;
}

llmrt_status lora_registry_acquire(lora_registry *reg, const char *name, lora_adapter **out,
                                   llmrt_error *err) {
    *out = NULL;
    pthread_mutex_lock(&reg->mu);
    int32_t i = find(reg, name);
    if (i >= 0) {
        *out = reg->list[i];
        (*out)->refs++;
        (*out)->n_requests++;
        pthread_mutex_unlock(&reg->mu);
        return LLMRT_OK;
    }
    char loaded[256] = "";
    size_t len = 0;
    for (int32_t j = 0; j < reg->n && len + 2 < sizeof loaded; j++)
        len += (size_t)snprintf(loaded + len, sizeof loaded - len, "%s%s", j ? ", " : "",
                                reg->list[j]->name);
    pthread_mutex_unlock(&reg->mu);
    return llmrt_err(err, LLMRT_ERR_NOT_FOUND, "no LoRA adapter named \"%.128s\" is loaded (%s)",
                     name, reg->n ? loaded : "none are");
}

lora_adapter *lora_adapter_retain(lora_adapter *a) {
    pthread_mutex_lock(&a->reg->mu);
    a->refs++;
    a->n_requests++;
    pthread_mutex_unlock(&a->reg->mu);
    return a;
}

void lora_adapter_release(lora_adapter *a) {
    if (!a) return;
    lora_registry *reg = a->reg;
    pthread_mutex_lock(&reg->mu);
    drop_ref(a);
    pthread_mutex_unlock(&reg->mu);
}

void lora_adapter_count_tokens(lora_adapter *a, int64_t n) {
    if (!a || n <= 0) return;
    pthread_mutex_lock(&a->reg->mu);
    a->n_generated += (uint64_t)n;
    pthread_mutex_unlock(&a->reg->mu);
}

static bool in_use(const lora_adapter *a, lora_adapter *const *used, int32_t n) {
    for (int32_t i = 0; i < n; i++)
        if (used[i] == a) return true;
    return false;
}

/* Under reg->mu: empties slot i (its adapter is in no running request). */
static llmrt_status evict(lora_registry *reg, llmrt_executor *ex, int32_t i, llmrt_error *err) {
    lora_adapter *a = reg->slots[i];
    llmrt_status s = ex->ops->lora_set(ex, i, NULL, NULL, err);
    if (s != LLMRT_OK) return s;
    reg->slots[i] = NULL;
    reg->resident_bytes -= (int64_t)a->file.bytes;
    reg->n_evictions++;
    a->slot = -1;
    drop_ref(a);
    return LLMRT_OK;
}

/* Under reg->mu: the slot to evict next, unloaded adapters first, then least recently used;
 * -1 when every resident adapter is in use. */
static int32_t victim(const lora_registry *reg, lora_adapter *const *used, int32_t n_used) {
    int32_t best = -1;
    for (int32_t i = 0; i < reg->n_slots; i++) {
        const lora_adapter *a = reg->slots[i];
        if (!a || in_use(a, used, n_used)) continue;
        if (best < 0) {
            best = i;
            continue;
        }
        const lora_adapter *b = reg->slots[best];
        bool a_gone = !a->registered && !a->unlisted, b_gone = !b->registered && !b->unlisted;
        if ((a_gone && !b_gone) || (a_gone == b_gone && a->last_used < b->last_used)) best = i;
    }
    return best;
}

plan_gate lora_registry_make_resident(lora_registry *reg, llmrt_executor *ex, lora_adapter *a,
                                       lora_adapter *const *used, int32_t n_used,
                                       llmrt_error *err) {
    pthread_mutex_lock(&reg->mu);
    a->last_used = ++reg->clock;
    if (a->slot >= 0) {
        pthread_mutex_unlock(&reg->mu);
        return PLAN_ADMIT;
    }
    plan_gate out = PLAN_WAIT;
    for (;;) {
        int32_t free_slot = -1;
        for (int32_t i = 0; i < reg->n_slots && free_slot < 0; i++)
            if (!reg->slots[i]) free_slot = i;
        bool fits =
            reg->max_bytes <= 0 || reg->resident_bytes + (int64_t)a->file.bytes <= reg->max_bytes;
        if (free_slot >= 0 && fits) {
            if (ex->ops->lora_set(ex, free_slot, a->path, &a->file, err) != LLMRT_OK) {
                llmrt_err_prefix(err, "LoRA adapter \"%s\" (%s)", a->name, a->path);
                out = PLAN_FAIL;
                break;
            }
            reg->slots[free_slot] = a;
            reg->resident_bytes += (int64_t)a->file.bytes;
            a->slot = free_slot;
            a->refs++;
            a->n_loads++;
            out = PLAN_ADMIT;
            break;
        }
        int32_t v = victim(reg, used, n_used);
        if (v < 0) break; /* everything resident is running: wait for a request to finish */
        if (evict(reg, ex, v, err) != LLMRT_OK) {
            out = PLAN_FAIL;
            break;
        }
    }
    pthread_mutex_unlock(&reg->mu);
    return out;
}
