/* llmrt serve: response bodies. The OpenAI JSON of a finished answer (chat.completion /
 * text_completion) and, for stream: true, the SSE events (chat.completion.chunk / text_completion
 * chunks, role first, usage on request, data: [DONE]) produced from what the engine delivered
 * to a job (server.c's on_output) and handed to libmicrohttpd by srv_stream_reader. */
#ifdef LLMRT_HAVE_MHD
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../cli/cli_json.h"
#include "server_internal.h"


const char *srv_finish_str(llmrt_finish_reason f) {
    switch (f) {
    case LLMRT_FINISH_STOP: return "stop";
    case LLMRT_FINISH_LENGTH: return "length";
    case LLMRT_FINISH_ABORT: return "abort";
    case LLMRT_FINISH_ERROR: return "error";
    default: return NULL;
    }
}

/* The text of one token, valid UTF-8 (invalid bytes become U+FFFD), and its raw bytes. */
void srv_token_text(int32_t id, char *out, size_t cap, unsigned char *raw, size_t *n_raw) {
    char   tmp[256];
    size_t len = 0;
    if (llmrt_detokenize(S.model, &id, 1, false, tmp, sizeof tmp, &len) != LLMRT_OK) len = 0;
    if (len >= sizeof tmp) len = sizeof tmp - 1;
    memcpy(raw, tmp, len);
    *n_raw   = len;
    size_t o = 0;
    for (size_t i = 0; i < len && o + 4 < cap;) {
        size_t n = 1;
        unsigned char c = (unsigned char)tmp[i];
        if (c >= 0xf0) n = 4;
        else if (c >= 0xe0) n = 3;
        else if (c >= 0xc0) n = 2;
        if (i + n <= len && cli_utf8_valid(tmp + i, n)) {
            memcpy(out + o, tmp + i, n);
            o += n;
            i += n;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    out[o] = 0;
}

static cJSON *chat_token_json(int32_t id, float lp) {
    char          text[800];
    unsigned char raw[256];
    size_t        n_raw;
    srv_token_text(id, text, sizeof text, raw, &n_raw);
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "token", text);
    cJSON_AddNumberToObject(t, "logprob", lp);
    cJSON *bytes = cJSON_AddArrayToObject(t, "bytes");
    for (size_t i = 0; i < n_raw; i++) cJSON_AddItemToArray(bytes, cJSON_CreateNumber(raw[i]));
    return t;
}

/* Logprobs of tokens [from, to) of a sequence: chat or completions shape. */
static cJSON *logprobs_json(const srv_job *j, const srv_seq *s, int32_t from, int32_t to,
                            size_t text_offset) {
    if (!j->req.logprobs) return cJSON_CreateNull();
    cJSON *lp = cJSON_CreateObject();
    if (j->req.kind == SRV_CHAT) {
        cJSON *content = cJSON_AddArrayToObject(lp, "content");
        for (int32_t k = from; k < to; k++) {
            cJSON *t   = chat_token_json(s->tok[k], s->lp[k]);
            cJSON *top = cJSON_AddArrayToObject(t, "top_logprobs");
            for (int32_t m = 0; m < s->n_top && m < j->req.n_logprobs; m++)
                cJSON_AddItemToArray(top, chat_token_json(s->top_ids[(size_t)k * s->n_top + m],
                                                          s->top_lps[(size_t)k * s->n_top + m]));
            cJSON_AddItemToArray(content, t);
        }
        return lp;
    }
    cJSON *tokens = cJSON_AddArrayToObject(lp, "tokens");
    cJSON *tlps   = cJSON_AddArrayToObject(lp, "token_logprobs");
    cJSON *tops   = cJSON_AddArrayToObject(lp, "top_logprobs");
    cJSON *offs   = cJSON_AddArrayToObject(lp, "text_offset");
    size_t off    = text_offset;
    for (int32_t k = from; k < to; k++) {
        char          text[800];
        unsigned char raw[256];
        size_t        n_raw;
        srv_token_text(s->tok[k], text, sizeof text, raw, &n_raw);
        cJSON_AddItemToArray(tokens, cJSON_CreateString(text));
        cJSON_AddItemToArray(tlps, cJSON_CreateNumber(s->lp[k]));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        off += n_raw;
        cJSON *top = cJSON_CreateObject();
        for (int32_t m = 0; m < s->n_top && m < j->req.n_logprobs; m++) {
            srv_token_text(s->top_ids[(size_t)k * s->n_top + m], text, sizeof text, raw, &n_raw);
            cJSON_AddNumberToObject(top, text, s->top_lps[(size_t)k * s->n_top + m]);
        }
        cJSON_AddItemToArray(tops, top);
    }
    return lp;
}

void srv_job_token_counts(const srv_job *j, int64_t *prompt, int64_t *cached, int64_t *gen) {
    *prompt = *cached = *gen = 0;
    for (int32_t i = 0; i < j->n_seq; i++) {
        const srv_seq *s = &j->seqs[i];
        if (i % j->req.n == 0) { /* the n choices of a prompt share its prefill */
            *prompt += s->n_prompt;
            *cached += s->n_cached;
        }
        *gen += s->n_gen;
    }
}

static cJSON *usage_json(const srv_job *j) {
    int64_t prompt, cached, gen;
    srv_job_token_counts(j, &prompt, &cached, &gen);
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", (double)prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", (double)gen);
    cJSON_AddNumberToObject(u, "total_tokens", (double)(prompt + gen));
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(d, "cached_tokens", (double)cached);
    return u;
}

static cJSON *envelope(const srv_job *j, bool chunk) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "object", j->req.kind == SRV_CHAT
                                             ? (chunk ? "chat.completion.chunk" : "chat.completion")
                                             : "text_completion");
    cJSON_AddNumberToObject(o, "created", (double)j->created);
    /* the name the client asked for: the base model's or an adapter's (vLLM) */
    cJSON_AddStringToObject(o, "model", j->req.model ? j->req.model : S.name);
    return o;
}

/* The whole non-streaming answer. */
cJSON *srv_final_json(const srv_job *j) {
    cJSON *o       = envelope(j, false);
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    for (int32_t i = 0; i < j->n_seq; i++) {
        const srv_seq *s = &j->seqs[i];
        cJSON         *c = cJSON_CreateObject();
        cJSON_AddNumberToObject(c, "index", s->index);
        if (j->req.kind == SRV_CHAT) {
            cJSON *m = cJSON_AddObjectToObject(c, "message");
            cJSON_AddStringToObject(m, "role", "assistant");
            cJSON_AddStringToObject(m, "content", s->text.p ? s->text.p : "");
        } else {
            cJSON_AddStringToObject(c, "text", s->text.p ? s->text.p : "");
        }
        cJSON_AddItemToObject(c, "logprobs", logprobs_json(j, s, 0, s->n_lp, 0));
        const char *f = srv_finish_str(s->finish);
        cJSON_AddItemToObject(c, "finish_reason", f ? cJSON_CreateString(f) : cJSON_CreateNull());
        cJSON_AddItemToArray(choices, c);
    }
    cJSON_AddItemToObject(o, "usage", usage_json(j));
    return o;
}

static void emit(srv_job *j, cJSON *o) {
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text) return;
    sbuf_add(&j->out, "data: ", 6);
    sbuf_add(&j->out, text, strlen(text));
    sbuf_add(&j->out, "\n\n", 2);
    free(text);
}

/* One streaming chunk for sequence s: a delta (text/logprobs), or the finish. */
static cJSON *chunk_json(const srv_job *j, const srv_seq *s, const char *role, const char *text,
                         size_t text_len, cJSON *logprobs, const char *finish) {
    cJSON *o       = envelope(j, true);
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    cJSON *c       = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", s->index);
    if (j->req.kind == SRV_CHAT) {
        cJSON *d = cJSON_AddObjectToObject(c, "delta");
        if (role) cJSON_AddStringToObject(d, "role", role);
        if (text) {
            char *t = strndup(text, text_len);
            cJSON_AddStringToObject(d, "content", t ? t : "");
            free(t);
        }
    } else {
        char *t = strndup(text ? text : "", text ? text_len : 0);
        cJSON_AddStringToObject(c, "text", t ? t : "");
        free(t);
    }
    cJSON_AddItemToObject(c, "logprobs", logprobs ? logprobs : cJSON_CreateNull());
    cJSON_AddItemToObject(c, "finish_reason", finish ? cJSON_CreateString(finish) : cJSON_CreateNull());
    cJSON_AddItemToArray(choices, c);
    if (j->req.include_usage) cJSON_AddNullToObject(o, "usage");
    return o;
}

/* Turns what the engine delivered since the last call into SSE bytes in j->out (j->mu held).
 * Returns whether anything was produced. */
static bool produce(srv_job *j) {
    size_t before = j->out.len;
    if (j->phase == PH_ROLE) {
        if (j->req.kind == SRV_CHAT)
            for (int32_t i = 0; i < j->n_seq; i++)
                emit(j, chunk_json(j, &j->seqs[i], "assistant", "", 0, NULL, NULL));
        j->phase = PH_DELTAS;
    }
    if (j->phase == PH_DELTAS) {
        int32_t finished = 0;
        for (int32_t i = 0; i < j->n_seq; i++) {
            srv_seq *s = &j->seqs[i];
            if (s->text.len > s->text_sent || s->n_lp > s->lp_sent) {
                cJSON *lp = j->req.logprobs ? logprobs_json(j, s, s->lp_sent, s->n_lp, s->text_sent)
                                            : NULL;
                emit(j, chunk_json(j, s, NULL, s->text.p + s->text_sent, s->text.len - s->text_sent,
                                   lp, NULL));
                s->text_sent = s->text.len;
                s->lp_sent   = s->n_lp;
            }
            if (s->finish != LLMRT_FINISH_NONE && !s->finish_sent) {
                if (s->finish == LLMRT_FINISH_ERROR) {
                    cJSON *e  = cJSON_CreateObject();
                    cJSON *ee = cJSON_AddObjectToObject(e, "error");
                    cJSON_AddStringToObject(ee, "message", s->error);
                    cJSON_AddStringToObject(ee, "type", "server_error");
                    emit(j, e);
                }
                emit(j, chunk_json(j, s, NULL, j->req.kind == SRV_CHAT ? NULL : "", 0, NULL,
                                   srv_finish_str(s->finish)));
                s->finish_sent = true;
            }
            if (s->finish_sent) finished++;
        }
        if (finished == j->n_seq) j->phase = PH_TAIL;
    }
    if (j->phase == PH_TAIL) {
        if (j->req.include_usage) {
            cJSON *o = envelope(j, true);
            cJSON_AddArrayToObject(o, "choices");
            cJSON_AddItemToObject(o, "usage", usage_json(j));
            emit(j, o);
        }
        sbuf_add(&j->out, "data: [DONE]\n\n", 14);
        j->phase = PH_END;
    }
    return j->out.len > before;
}

/* MHD content reader of a stream (its connection's own thread).
 *
 * Keep-alive: MHD counts the time this reader blocks as idle time, so a stream queued behind
 * others (or a long prefill) for longer than --timeout would be closed the moment its first
 * event is ready. So after S.keepalive_s seconds without an event the reader sends an SSE
 * comment (": keep-alive", which SSE clients ignore; sse-starlette, under llama-cpp-python's
 * server, sends the same kind of ping). It also finds a vanished client (the write fails) while
 * the request still waits, and a client that stops reading is still cut by --timeout because
 * nothing more can be written to it. */
ssize_t srv_stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    srv_job *j      = cls;
    double   waited = now_s();
    pthread_mutex_lock(&j->mu);
    for (;;) {
        if (j->out.len > j->out_off) {
            size_t n = j->out.len - j->out_off;
            if (n > max) n = max;
            memcpy(buf, j->out.p + j->out_off, n);
            j->out_off += n;
            if (j->out_off == j->out.len) j->out.len = j->out_off = 0;
            pthread_mutex_unlock(&j->mu);
            return (ssize_t)n;
        }
        if (j->phase == PH_END) {
            pthread_mutex_unlock(&j->mu);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (atomic_load(&S.hard_stop)) {
            pthread_mutex_unlock(&j->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (produce(j)) continue;
        static const char ping[] = ": keep-alive\n\n";
        if (now_s() - waited >= S.keepalive_s && max >= sizeof ping - 1) {
            pthread_mutex_unlock(&j->mu);
            memcpy(buf, ping, sizeof ping - 1);
            return (ssize_t)(sizeof ping - 1);
        }
        struct timespec ts;
        deadline_in(&ts, 0.5);
        pthread_cond_timedwait(&j->cv, &j->mu, &ts);
    }
}
#endif
