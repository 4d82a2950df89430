/* Multi-process tensor-parallel groups (tp_internal.h): the leader broadcasts each request (KV
 * cache create / reserve / destroy, forward with its batch, shutdown) over the communicator's
 * control plane, and every follower process serves them in order in tp_follow. */
#include "tp_internal.h"

#include "../../model/lora_slots.h"

#include <stdlib.h>
#include <string.h>

/* --------------------------------------------------------------------------------------------- */
/* multi-process: the leader's requests over the control plane                                  */
/* --------------------------------------------------------------------------------------------- */

llmrt_status tp_send(tp_rank *tp, tp_msg *msg, llmrt_error *err) {
    return tp->comm->ops->broadcast_host(tp->comm, msg, sizeof *msg, 0, err);
}

static int64_t tp_forward_payload_ints(const tp_msg *m) {
    return 3 * (int64_t)m->n_tokens + (int64_t)m->n_seqs * m->max_blocks + m->n_outputs +
           (m->b ? 2 * (int64_t)m->n_tokens : 0);
}

llmrt_status tp_send_forward(tp_rank *tp, int32_t kv_id, const llmrt_batch *b,
                             llmrt_error *err) {
    tp_msg msg = {.op = TP_OP_FORWARD,
                  .kv_id = kv_id,
                  .n_tokens = b->n_tokens,
                  .n_seqs = b->n_seqs,
                  .max_blocks = b->max_blocks_per_seq,
                  .n_outputs = b->output_tokens ? b->n_outputs : 0,
                  .a = b->output_tokens != NULL,
                  .b = b->lora_slots != NULL};
    int64_t n = tp_forward_payload_ints(&msg); /* sizes were validated: no overflow */
    int32_t *buf = malloc((size_t)n * sizeof *buf);
    if (!buf) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "tensor parallel: out of memory");
    int32_t *p = buf;
    memcpy(p, b->tokens, (size_t)b->n_tokens * 4), p += b->n_tokens;
    memcpy(p, b->positions, (size_t)b->n_tokens * 4), p += b->n_tokens;
    memcpy(p, b->seq_ids, (size_t)b->n_tokens * 4), p += b->n_tokens;
    memcpy(p, b->block_tables, (size_t)b->n_seqs * (size_t)b->max_blocks_per_seq * 4);
    p += (int64_t)b->n_seqs * b->max_blocks_per_seq;
    if (msg.n_outputs) memcpy(p, b->output_tokens, (size_t)msg.n_outputs * 4);
    p += msg.n_outputs;
    if (msg.b) {
        memcpy(p, b->lora_slots, (size_t)b->n_tokens * 4), p += b->n_tokens;
        memcpy(p, b->lora_scales, (size_t)b->n_tokens * 4);
    }
    llmrt_status s = tp_send(tp, &msg, err);
    if (s == LLMRT_OK) s = tp->comm->ops->broadcast_host(tp->comm, buf, (uint64_t)n * 4, 0, err);
    free(buf);
    return s;
}

/* --------------------------------------------------------------------------------------------- */
/* followers                                                                                     */
/* --------------------------------------------------------------------------------------------- */

typedef struct follower_cache {
    int32_t id;
    llmrt_rank_kv *kv;
} follower_cache;

static llmrt_rank_kv *find_cache(follower_cache *c, int32_t n, int32_t id) {
    for (int32_t i = 0; i < n; i++)
        if (c[i].id == id) return c[i].kv;
    return NULL;
}

/* Serves one forward request: the payload, then this rank's forward. */
static llmrt_status follow_forward(tp_rank *tp, const tp_msg *msg, llmrt_rank_kv *kv,
                                   llmrt_error *err) {
    if (msg->n_tokens < 1 || msg->n_seqs < 1 || msg->max_blocks < 1 || msg->n_outputs < 0 ||
        (int64_t)msg->n_seqs * msg->max_blocks > INT32_MAX)
        return llmrt_err(err, LLMRT_ERR_BACKEND, "tensor parallel: malformed forward request");
    int64_t n = tp_forward_payload_ints(msg);
    int32_t *buf = malloc((size_t)n * sizeof *buf);
    if (!buf) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "tensor parallel: out of memory");
    llmrt_status s = tp->comm->ops->broadcast_host(tp->comm, buf, (uint64_t)n * 4, 0, err);
    if (s == LLMRT_OK) {
        if (!kv) {
            s = llmrt_err(err, LLMRT_ERR_BACKEND, "tensor parallel: forward on unknown cache %d",
                          msg->kv_id);
        } else {
            llmrt_batch b = {.n_tokens = msg->n_tokens,
                             .n_seqs = msg->n_seqs,
                             .max_blocks_per_seq = msg->max_blocks};
            b.tokens = buf;
            b.positions = buf + msg->n_tokens;
            b.seq_ids = buf + 2 * (int64_t)msg->n_tokens;
            b.block_tables = buf + 3 * (int64_t)msg->n_tokens;
            const int32_t *rest = b.block_tables + (int64_t)msg->n_seqs * msg->max_blocks;
            if (msg->a) {
                b.output_tokens = rest;
                b.n_outputs = msg->n_outputs;
            }
            rest += msg->n_outputs;
            if (msg->b) {
                b.lora_slots = rest;
                b.lora_scales = (const float *)(rest + msg->n_tokens);
            }
            s = tp_rank_forward(tp, kv, &b, NULL, 0, err);
        }
    }
    free(buf);
    return s;
}

/* Serves one LoRA slot request: the adapter's path, read and loaded into this rank's slot. */
static llmrt_status follow_lora_set(tp_rank *tp, const tp_msg *msg, llmrt_error *err) {
    if (msg->a < 0 || msg->a > INT32_MAX || msg->b < 0 || msg->b > 4096)
        return llmrt_err(err, LLMRT_ERR_BACKEND, "tensor parallel: malformed LoRA request");
    char path[4097] = {0};
    if (msg->b > 0)
        LLMRT_TRY(tp->comm->ops->broadcast_host(tp->comm, path, (uint64_t)msg->b, 0, err));
    if (msg->b == 0) return llmrt_rank_lora_set(tp->model, (int32_t)msg->a, NULL, err);
    llmrt_lora_file f = {0};
    LLMRT_TRY(llmrt_lora_file_load(path, &tp->model->cfg, &f, err));
    llmrt_status s = llmrt_rank_lora_set(tp->model, (int32_t)msg->a, &f, err);
    llmrt_lora_file_free(&f);
    return s;
}

llmrt_status tp_follow(tp_exec *te, llmrt_error *errp) {
    tp_rank *tp = te->self;
    llmrt_rank_model *m = tp->model;
    follower_cache *caches = NULL;
    int32_t n = 0, cap = 0;
    llmrt_error err = {0};
    llmrt_status s = LLMRT_OK;
    for (bool done = false; !done && s == LLMRT_OK;) {
        tp_msg msg;
        s = tp_send(tp, &msg, &err); /* receives: rank 0 is the root */
        if (s != LLMRT_OK) break;
        llmrt_rank_kv *kv = find_cache(caches, n, msg.kv_id);
        switch ((tp_op)msg.op) {
        case TP_OP_KV_CREATE:
            if (msg.a < 1 || msg.a > INT32_MAX || msg.b < 1 || msg.b > 4096) {
                s = llmrt_err(&err, LLMRT_ERR_BACKEND, "tensor parallel: malformed cache request");
                break;
            }
            if (n == cap) {
                cap = cap ? 2 * cap : 8;
                follower_cache *c2 = realloc(caches, (size_t)cap * sizeof *c2);
                if (!c2) {
                    s = llmrt_err(&err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
                    break;
                }
                caches = c2;
            }
            s = llmrt_rank_kv_create(m, (int32_t)msg.a, (int32_t)msg.b, &caches[n].kv, &err);
            if (s == LLMRT_OK) caches[n++].id = msg.kv_id;
            break;
        case TP_OP_KV_RESERVE:
            s = kv ? llmrt_rank_kv_reserve(kv, msg.a, msg.b, &err)
                   : llmrt_err(&err, LLMRT_ERR_BACKEND, "tensor parallel: unknown cache %d",
                               msg.kv_id);
            break;
        case TP_OP_KV_DESTROY:
            for (int32_t i = 0; i < n; i++)
                if (caches[i].id == msg.kv_id) {
                    llmrt_rank_kv_destroy(caches[i].kv);
                    caches[i] = caches[--n];
                    break;
                }
            break;
        case TP_OP_FORWARD:
            s = follow_forward(tp, &msg, kv, &err);
            break;
        case TP_OP_SHUTDOWN:
            done = true;
            break;
        case TP_OP_LORA_INIT:
            s = msg.a < 0 || msg.a > 1024
                    ? llmrt_err(&err, LLMRT_ERR_BACKEND, "tensor parallel: malformed LoRA request")
                    : llmrt_rank_lora_init(m, (int32_t)msg.a, &err);
            break;
        case TP_OP_LORA_SET:
            s = follow_lora_set(tp, &msg, &err);
            break;
        default:
            s = llmrt_err(&err, LLMRT_ERR_BACKEND, "tensor parallel: unknown request %d", msg.op);
        }
    }
    for (int32_t i = 0; i < n; i++)
        llmrt_rank_kv_destroy(caches[i].kv);
    free(caches);
    if (s != LLMRT_OK) {
        if (!strstr(err.msg, "tensor parallel rank"))
            llmrt_err_prefix(&err, "tensor parallel rank %d of %d", tp->rank, tp->size);
        tp->comm->ops->abort(tp->comm, err.msg);
        if (errp) *errp = err;
        return s;
    }
    return LLMRT_OK;
}
