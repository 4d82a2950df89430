/* llmrt serve: an OpenAI-compatible HTTP server over the engine, on libmicrohttpd.
 *
 * Threads. One engine loop thread (llmrt_engine_start_loop) steps the model and delivers every
 * output to on_output(), which only appends the new text / logprobs to the request's sequence
 * under the request's mutex and signals its condition variable. HTTP threads never call
 * llmrt_engine_step: they parse, submit (llmrt_engine_submit is thread-safe), wait on the
 * request's condition variable and format the answer.
 *
 * libmicrohttpd mode: MHD_USE_THREAD_PER_CONNECTION (+ its internal polling thread, poll() rather
 * than select(), so descriptors above FD_SETSIZE work). A streaming response is a
 * MHD_create_response_from_callback whose reader blocks on the request's queue (a timed wait, so
 * a shutdown is noticed); with a thread per connection that block holds only its own
 * connection, never another client, and a non-streaming request may simply wait in its handler.
 * The cost is one thread per open connection, bounded by MHD_OPTION_CONNECTION_LIMIT, and idle or
 * slow clients are cut by MHD_OPTION_CONNECTION_TIMEOUT (--timeout). (A thread-pool mode would
 * need suspend/resume plumbing for every stream; this is the robust first slice.)
 *
 * A client that goes away mid-stream: the next write fails, MHD ends the request and calls
 * on_completed(), which aborts the request's unfinished sequences in the engine (their KV blocks
 * return to the pool). n choices are one engine request per prompt with sampling n (the prompt
 * is prefilled once; llmrt_output.index is the choice). Lifetime: a job is reference-counted, one
 * reference for the HTTP side and one per sequence, dropped by the sequence's final output (the
 * engine gives each index exactly one, an abort included).
 *
 * Shutdown: SIGTERM/SIGINT are taken by sigwait() on the main thread; new requests get 503, the
 * requests in flight may finish for up to --drain-timeout seconds, then the rest are cut, the
 * daemon and the loop stop and the command exits 0.
 *
 * Files: this one (state, jobs, HTTP routing and handlers, request log, the command);
 * server_stream.c (answer JSON, SSE events); server_guard.c (slow requests, descriptors);
 * server_request.c (request JSON -> srv_request); server_openapi.c (GET /openapi.json);
 * redact.c (--log-redact); server_internal.h (what they share). */
#ifdef LLMRT_HAVE_MHD
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "../cli/cli_args.h"
#include "../cli/cli.h"
#include "../cli/cli_json.h"
#include "../cli/cli_options.h"
#include "llmrt.h"
#include "llmrt_experimental.h"
#include "redact.h"
#include "server.h"
#include "server_internal.h"
#include "server_log.h"
#include "server_request.h"

/* ---------------------------------------------------------------------------------------- */
/* Small helpers                                                                            */
/* ---------------------------------------------------------------------------------------- */


bool sbuf_add(sbuf *b, const void *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->len + n + 1 > cap) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) return false;
        b->p   = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return true;
}

double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void deadline_in(struct timespec *ts, double seconds) {
    clock_gettime(CLOCK_REALTIME, ts);
    double      ns = ts->tv_nsec + seconds * 1e9;
    ts->tv_sec += (time_t)(ns / 1e9);
    ts->tv_nsec = (long)fmod(ns, 1e9);
}

/* ---------------------------------------------------------------------------------------- */
/* Server state                                                                             */
/* ---------------------------------------------------------------------------------------- */

srv_state S = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .log_fd = -1,
               .log_mu = PTHREAD_MUTEX_INITIALIZER, .lora_mu = PTHREAD_MUTEX_INITIALIZER};

static void job_unref(srv_job *j) {
    pthread_mutex_lock(&j->mu);
    int left = --j->refs;
    pthread_mutex_unlock(&j->mu);
    if (left) return;
    for (int32_t i = 0; i < j->n_seq; i++) {
        srv_seq *s = &j->seqs[i];
        free(s->text.p);
        free(s->tok);
        free(s->lp);
        free(s->top_ids);
        free(s->top_lps);
    }
    free(j->seqs);
    free(j->out.p);
    srv_request_free(&j->req);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

/* The engine loop thread: append, signal; nothing slow. */
static void on_output(const llmrt_output *o, void *data) {
    (void)data;
    srv_seq *s = o->user_data; /* the prompt's first sequence; the engine's index picks ours */
    srv_job *j = s->job;
    if (o->index > 0 && o->index < j->req.n) s += o->index;
    pthread_mutex_lock(&j->mu);
    sbuf_add(&s->text, o->text, o->text_len);
    if (o->logprobs && o->n_tokens > 0 && j->req.logprobs) {
        int32_t need = s->n_lp + o->n_tokens;
        if (need > s->cap_lp) {
            int32_t cap = s->cap_lp ? s->cap_lp : 64;
            while (cap < need) cap *= 2;
            int32_t nt  = o->n_top > 0 ? o->n_top : 0;
            int32_t *t  = realloc(s->tok, (size_t)cap * sizeof *t);
            if (t) s->tok = t;
            float *l = realloc(s->lp, (size_t)cap * sizeof *l);
            if (l) s->lp = l;
            int32_t *ti = nt ? realloc(s->top_ids, (size_t)cap * nt * sizeof *ti) : s->top_ids;
            if (ti) s->top_ids = ti;
            float *tl = nt ? realloc(s->top_lps, (size_t)cap * nt * sizeof *tl) : s->top_lps;
            if (tl) s->top_lps = tl;
            if (t && l && (!nt || (ti && tl))) s->cap_lp = cap;
        }
        if (need <= s->cap_lp) {
            if (o->n_top > 0 && o->top_ids && o->top_logprobs) s->n_top = o->n_top;
            for (int32_t k = 0; k < o->n_tokens; k++) {
                s->tok[s->n_lp + k] = o->tokens[k];
                s->lp[s->n_lp + k]  = o->logprobs[k];
                if (s->n_top > 0 && o->n_top == s->n_top) {
                    memcpy(&s->top_ids[(size_t)(s->n_lp + k) * s->n_top],
                           &o->top_ids[(size_t)k * o->n_top], (size_t)o->n_top * sizeof(int32_t));
                    memcpy(&s->top_lps[(size_t)(s->n_lp + k) * s->n_top],
                           &o->top_logprobs[(size_t)k * o->n_top], (size_t)o->n_top * sizeof(float));
                }
            }
            s->n_lp = need;
        }
    }
    s->n_prompt = o->n_prompt_tokens;
    s->n_cached = o->n_cached_tokens;
    s->n_gen    = o->n_generated;
    if (o->t_first_token > 0 && (j->t_first == 0 || o->t_first_token < j->t_first))
        j->t_first = o->t_first_token;
    bool done   = o->finish != LLMRT_FINISH_NONE && s->finish == LLMRT_FINISH_NONE;
    if (done) {
        s->finish = o->finish;
        if (o->finish == LLMRT_FINISH_ERROR)
            snprintf(s->error, sizeof s->error, "%s", o->error_message ? o->error_message : "");
        j->n_done++;
    }
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    if (done) job_unref(j);
}

static void abort_job(srv_job *j) {
    /* one engine request per prompt (its n sequences share the id): abort it once */
    for (int32_t i = 0; i < j->n_seq; i += j->req.n) {
        pthread_mutex_lock(&j->mu);
        bool live = false;
        for (int32_t k = i; k < i + j->req.n && k < j->n_seq; k++)
            live |= j->seqs[k].finish == LLMRT_FINISH_NONE;
        live = live && j->seqs[i].id;
        uint64_t id = j->seqs[i].id;
        pthread_mutex_unlock(&j->mu);
        if (live) llmrt_engine_abort(S.engine, id);
    }
}


/* ---------------------------------------------------------------------------------------- */
/* HTTP                                                                                     */
/* ---------------------------------------------------------------------------------------- */

typedef struct conn {
    sbuf     body;
    bool     too_big;
    srv_job *job;
    bool     in_flight;
    int      fd; /* the socket while its request is still arriving (watched), else -1 */
    /* the request log */
    double   t_start;
    unsigned status;
    bool     log;         /* an API route (not /health, /metrics, /openapi.json) */
    char     endpoint[64];
    char     client[80];
} conn;


/* The connection being answered on this thread (a thread per connection): its status is noted. */
static _Thread_local conn *tl_conn;

static void count_code(unsigned code) {
    if (code < 600) atomic_fetch_add(&S.http_codes[code], 1);
    if (tl_conn) tl_conn->status = code;
}

/* --log-text --log-redact: a string as logged. */
static cJSON *log_string(const char *text, size_t len) {
    cJSON *o = srv_log_string(S.redactor, text, len);
    return o ? o : cJSON_CreateNull();
}

static void log_write_failed(const char *why) {
    if (!atomic_exchange(&S.log_failed, true))
        fprintf(stderr, "llmrt serve: --log-requests: write failed: %s (further failures are not "
                        "reported)\n", why);
}

/* One JSON line for a finished request (on_completed, the connection's thread). */
static void log_request(conn *cn) {
    double end = now_s();
    cJSON *o   = cJSON_CreateObject();
    srv_job *j = cn->job;
    char     id[48];
    if (j) snprintf(id, sizeof id, "%s", j->id);
    else snprintf(id, sizeof id, "req-%lx", (unsigned long)atomic_fetch_add(&S.next_id, 1) + 1);
    cJSON_AddStringToObject(o, "id", id);
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    struct tm tm;
    gmtime_r(&rt.tv_sec, &tm);
    char when[80];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, rt.tv_nsec / 1000000);
    cJSON_AddStringToObject(o, "time", when);
    cJSON_AddStringToObject(o, "endpoint", cn->endpoint);
    cJSON_AddStringToObject(o, "model", j && j->req.model ? j->req.model : S.name);
    cJSON_AddNumberToObject(o, "status", cn->status);
    int64_t prompt = 0, cached = 0, gen = 0;
    cJSON  *reasons = cJSON_CreateArray();
    double  t_first = 0;
    if (j) {
        pthread_mutex_lock(&j->mu);
        srv_job_token_counts(j, &prompt, &cached, &gen);
        for (int32_t i = 0; i < j->n_seq; i++) {
            const char *f = srv_finish_str(j->seqs[i].finish);
            cJSON_AddItemToArray(reasons, f ? cJSON_CreateString(f) : cJSON_CreateNull());
        }
        t_first = j->t_first;
        pthread_mutex_unlock(&j->mu);
    }
    cJSON_AddNumberToObject(o, "prompt_tokens", (double)prompt);
    cJSON_AddNumberToObject(o, "completion_tokens", (double)gen);
    cJSON_AddNumberToObject(o, "cached_tokens", (double)cached);
    if (t_first > 0) cJSON_AddNumberToObject(o, "ttft_ms", round((t_first - cn->t_start) * 1e4) / 10);
    else cJSON_AddNullToObject(o, "ttft_ms");
    cJSON_AddNumberToObject(o, "e2e_ms", round((end - cn->t_start) * 1e4) / 10);
    cJSON_AddItemToObject(o, "finish_reasons", reasons);
    cJSON_AddStringToObject(o, "client", cn->client);
    if (S.log_text && j) {
        pthread_mutex_lock(&j->mu);
        if (j->req.kind == SRV_CHAT) {
            /* roles, content text, tool calls and tool-call ids, each string as logged */
            cJSON *msgs = srv_log_messages(&j->req, S.redactor);
            cJSON_AddItemToObject(o, "messages", msgs ? msgs : cJSON_CreateNull());
        } else {
            cJSON *ps = cJSON_AddArrayToObject(o, "prompt");
            for (int32_t i = 0; i < j->req.n_prompts; i++) {
                const srv_prompt *p = &j->req.prompts[i];
                if (p->text) {
                    cJSON_AddItemToArray(ps, log_string(p->text, p->text_len));
                } else {
                    cJSON *ids = cJSON_CreateArray();
                    for (int32_t k = 0; k < p->n_ids; k++)
                        cJSON_AddItemToArray(ids, cJSON_CreateNumber(p->ids[k]));
                    cJSON_AddItemToArray(ps, ids);
                }
            }
        }
        cJSON *cs = cJSON_AddArrayToObject(o, "completions");
        for (int32_t i = 0; i < j->n_seq; i++)
            cJSON_AddItemToArray(cs, log_string(j->seqs[i].text.p, j->seqs[i].text.len));
        pthread_mutex_unlock(&j->mu);
    }
    char *line = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!line) {
        log_write_failed("out of memory");
        return;
    }
    size_t n = strlen(line);
    line[n] = '\n'; /* over the NUL: the line is written as one piece */
    pthread_mutex_lock(&S.log_mu);
    ssize_t w = write(S.log_fd, line, n + 1);
    int     e = errno;
    pthread_mutex_unlock(&S.log_mu);
    free(line);
    if (w < 0) log_write_failed(strerror(e));
    else if ((size_t)w != n + 1) log_write_failed("short write");
}

static enum MHD_Result send_bytes(struct MHD_Connection *c, unsigned code, const char *ctype,
                                  const char *text, size_t len, int retry_after) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", ctype);
    if (retry_after > 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", retry_after);
        MHD_add_response_header(r, "Retry-After", v);
    }
    if (code == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    enum MHD_Result rc = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    count_code(code);
    return rc;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned code, cJSON *o) {
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text) return send_bytes(c, 500, "text/plain", "out of memory\n", 14, 0);
    enum MHD_Result rc = send_bytes(c, code, "application/json", text, strlen(text), 0);
    free(text);
    return rc;
}

/* {"error": {"message", "type", "param", "code"}} as OpenAI sends it; malloc'd, NULL: no memory */
static char *error_text(const char *type, const char *message, const char *param,
                        const char *ecode) {
    cJSON *o = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddStringToObject(e, "type", type);
    cJSON_AddItemToObject(e, "param", param && *param ? cJSON_CreateString(param) : cJSON_CreateNull());
    cJSON_AddItemToObject(e, "code", ecode ? cJSON_CreateString(ecode) : cJSON_CreateNull());
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

static enum MHD_Result send_error_ra(struct MHD_Connection *c, unsigned code, const char *type,
                                     const char *message, const char *param, const char *ecode,
                                     int retry_after) {
    char *text = error_text(type, message, param, ecode);
    if (!text) return send_bytes(c, 500, "text/plain", "out of memory\n", 14, 0);
    enum MHD_Result rc = send_bytes(c, code, "application/json", text, strlen(text), retry_after);
    free(text);
    return rc;
}

/* 405 with the Allow header RFC 9110 requires (allow: "GET" or "POST", the route's one method) */
static enum MHD_Result method_not_allowed(struct MHD_Connection *c, const char *allow) {
    char msg[64];
    snprintf(msg, sizeof msg, "method not allowed: use %s", allow);
    char *text = error_text("invalid_request_error", msg, NULL, NULL);
    struct MHD_Response *r =
        text ? MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!r) {
        free(text);
        return send_bytes(c, 500, "text/plain", "out of memory\n", 14, 0);
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "Allow", allow);
    enum MHD_Result rc = MHD_queue_response(c, 405, r);
    MHD_destroy_response(r);
    count_code(405);
    return rc;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned code, const char *type,
                                  const char *message, const char *param, const char *ecode) {
    return send_error_ra(c, code, type, message, param, ecode, 0);
}

static bool authorized(struct MHD_Connection *c) {
    if (!S.api_key) return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7)) return false;
    const char *got = h + 7;
    size_t      a = strlen(got), b = strlen(S.api_key);
    /* constant time in the key's content: every byte of the longer string is looked at */
    unsigned char diff = a != b;
    size_t        n    = a > b ? a : b;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)((i < a ? got[i] : 0) ^ (i < b ? S.api_key[i] : 0));
    return diff == 0;
}

/* ---------------------------------------------------------------------------------------- */
/* LoRA adapters served as model names                                                      */
/* ---------------------------------------------------------------------------------------- */

/* Whether `name` is a served adapter (S.lora_mu held by the caller). */
static int32_t adapter_find_locked(const char *name) {
    for (int32_t i = 0; i < S.n_adapters; i++)
        if (!strcmp(S.adapters[i].name, name)) return i;
    return -1;
}

static bool adapter_served(const char *name) {
    pthread_mutex_lock(&S.lora_mu);
    bool found = adapter_find_locked(name) >= 0;
    pthread_mutex_unlock(&S.lora_mu);
    return found;
}

/* Adds a served adapter (already loaded into the engine); false when out of memory. */
static bool adapter_add(const char *name, const char *path) {
    pthread_mutex_lock(&S.lora_mu);
    bool ok = true;
    if (S.n_adapters == S.cap_adapters) {
        int32_t      cap = S.cap_adapters ? S.cap_adapters * 2 : 8;
        srv_adapter *a   = realloc(S.adapters, (size_t)cap * sizeof *a);
        if (a) {
            S.adapters     = a;
            S.cap_adapters = cap;
        } else {
            ok = false;
        }
    }
    if (ok) {
        srv_adapter *a = &S.adapters[S.n_adapters++];
        snprintf(a->name, sizeof a->name, "%s", name);
        snprintf(a->path, sizeof a->path, "%s", path);
    }
    pthread_mutex_unlock(&S.lora_mu);
    return ok;
}

/* "`smol`, `a`, `b`": the served model names, for messages. */
static void served_names(char *out, size_t cap) {
    size_t len = (size_t)snprintf(out, cap, "`%s`", S.name);
    pthread_mutex_lock(&S.lora_mu);
    for (int32_t i = 0; i < S.n_adapters && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, ", `%s`", S.adapters[i].name);
    pthread_mutex_unlock(&S.lora_mu);
}

/* A Prometheus label value: backslash, double quote and newline escaped. */
static void label_escape(char *out, size_t cap, const char *v) {
    size_t n = 0;
    for (; *v && n + 3 < cap; v++) {
        if (*v == '\\' || *v == '"') out[n++] = '\\';
        if (*v == '\n') {
            out[n++] = '\\';
            out[n++] = 'n';
            continue;
        }
        out[n++] = *v;
    }
    out[n] = 0;
}

/* Per-adapter series from llmrt_engine_lora_list (nothing when none is registered). */
static void lora_metrics(sbuf *b) {
    int32_t n = llmrt_engine_lora_list(S.engine, NULL, 0);
    if (n <= 0) return;
    llmrt_lora_info *info = calloc((size_t)n, sizeof *info);
    if (!info) return;
    for (int32_t i = 0; i < n; i++) info[i].struct_size = sizeof info[i];
    int32_t got = llmrt_engine_lora_list(S.engine, info, n);
    if (got < n) n = got < 0 ? 0 : got; /* one was unloaded meanwhile */
    static const struct {
        const char *name, *type, *help;
    } series[] = {
        {"llmrt_lora_requests_total", "counter", "Requests submitted with each LoRA adapter."},
        {"llmrt_lora_generated_tokens_total", "counter",
         "Tokens generated by the finished requests of each LoRA adapter."},
        {"llmrt_lora_loads_total", "counter",
         "Times each LoRA adapter was copied into an engine slot."},
        {"llmrt_lora_resident", "gauge",
         "1 when the LoRA adapter is in an engine slot now, else 0."},
        {"llmrt_lora_bytes", "gauge", "fp32 bytes of each LoRA adapter's A and B matrices."},
    };
    for (size_t s = 0; s < sizeof series / sizeof series[0]; s++) {
        char line[512];
        int  k = snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s %s\n", series[s].name,
                          series[s].help, series[s].name, series[s].type);
        sbuf_add(b, line, (size_t)k);
        for (int32_t i = 0; i < n; i++) {
            char     label[400];
            uint64_t v = s == 0 ? info[i].n_requests : s == 1 ? info[i].n_generated
                       : s == 2 ? info[i].n_loads    : s == 3 ? (uint64_t)info[i].resident
                                                              : info[i].bytes;
            label_escape(label, sizeof label, info[i].name);
            k = snprintf(line, sizeof line, "%s{adapter=\"%s\"} %llu\n", series[s].name, label,
                         (unsigned long long)v);
            sbuf_add(b, line, (size_t)k);
        }
    }
    free(info);
}

static enum MHD_Result handle_metrics(struct MHD_Connection *c) {
    size_t len = 0;
    llmrt_engine_metrics_prometheus(S.engine, NULL, 0, &len);
    sbuf b = {0};
    char *text = malloc(len + 1);
    if (text && llmrt_engine_metrics_prometheus(S.engine, text, len + 1, &len) == LLMRT_OK)
        sbuf_add(&b, text, len);
    free(text);
    static const char head[] = "# HELP llmrt_http_requests_total HTTP responses by status code.\n"
                               "# TYPE llmrt_http_requests_total counter\n";
    sbuf_add(&b, head, sizeof head - 1);
    for (int code = 100; code < 600; code++) {
        long n = atomic_load(&S.http_codes[code]) + (code == 200); /* + this response */
        if (!n) continue;
        char line[96];
        int  k = snprintf(line, sizeof line, "llmrt_http_requests_total{code=\"%d\"} %ld\n", code, n);
        sbuf_add(&b, line, (size_t)k);
    }
    pthread_mutex_lock(&S.mu);
    long inflight = S.in_flight;
    pthread_mutex_unlock(&S.mu);
    char line[160];
    int  k = snprintf(line, sizeof line,
                      "# HELP llmrt_http_requests_in_flight Generation requests being served.\n"
                      "# TYPE llmrt_http_requests_in_flight gauge\n"
                      "llmrt_http_requests_in_flight %ld\n", inflight);
    sbuf_add(&b, line, (size_t)k);
    lora_metrics(&b);
    enum MHD_Result rc =
        send_bytes(c, 200, "text/plain; version=0.0.4; charset=utf-8", b.p ? b.p : "", b.len, 0);
    free(b.p);
    return rc;
}

static cJSON *model_card(const char *id, const char *root, const char *parent, double created) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", created);
    cJSON_AddStringToObject(m, "owned_by", "llmrt");
    cJSON_AddStringToObject(m, "root", root);
    cJSON_AddItemToObject(m, "parent", parent ? cJSON_CreateString(parent) : cJSON_CreateNull());
    cJSON_AddNumberToObject(m, "max_model_len", S.max_context);
    return m;
}

/* The base model, then every served adapter with "parent": the base model's id (vLLM). */
static enum MHD_Result handle_models(struct MHD_Connection *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(o, "data");
    double now  = (double)time(NULL);
    cJSON_AddItemToArray(data, model_card(S.name, S.model_path ? S.model_path : S.name, NULL, now));
    pthread_mutex_lock(&S.lora_mu);
    for (int32_t i = 0; i < S.n_adapters; i++)
        cJSON_AddItemToArray(data, model_card(S.adapters[i].name, S.adapters[i].path, S.name, now));
    pthread_mutex_unlock(&S.lora_mu);
    return send_json(c, 200, o);
}

/* POST /v1/load_lora_adapter {"lora_name", "lora_path"} (vLLM's; --allow-lora-runtime-updates):
 * read on this connection's thread while the engine keeps serving. */
static enum MHD_Result handle_load_lora(struct MHD_Connection *c, const srv_request *req) {
    char msg[1400];
    if (!strcmp(req->lora_name, S.name)) {
        snprintf(msg, sizeof msg, "The lora adapter name '%s' is the base model's name.", S.name);
        return send_error(c, 400, "invalid_request_error", msg, "lora_name", NULL);
    }
    if (adapter_served(req->lora_name)) {
        snprintf(msg, sizeof msg, "The lora adapter '%s' has already been loaded.", req->lora_name);
        return send_error(c, 400, "invalid_request_error", msg, "lora_name", NULL);
    }
    llmrt_status st = llmrt_engine_lora_load(S.engine, req->lora_name, req->lora_path);
    if (st != LLMRT_OK) {
        snprintf(msg, sizeof msg, "%s: %s", llmrt_status_str(st), llmrt_last_error());
        bool dead = st == LLMRT_ERR_DEAD;
        return send_error(c, dead ? 503 : 400, dead ? "server_error" : "invalid_request_error", msg,
                          dead ? NULL : "lora_path", NULL);
    }
    if (!adapter_add(req->lora_name, req->lora_path)) {
        llmrt_engine_lora_unload(S.engine, req->lora_name);
        return send_error(c, 500, "server_error", "out of memory", NULL, NULL);
    }
    fprintf(stderr, "llmrt serve: LoRA adapter %s loaded from %s\n", req->lora_name,
            req->lora_path);
    snprintf(msg, sizeof msg, "Success: LoRA adapter '%s' added successfully.", req->lora_name);
    return send_bytes(c, 200, "text/plain; charset=utf-8", msg, strlen(msg), 0);
}

/* POST /v1/unload_lora_adapter {"lora_name"}: requests already running with it finish with it. */
static enum MHD_Result handle_unload_lora(struct MHD_Connection *c, const srv_request *req) {
    char msg[400];
    pthread_mutex_lock(&S.lora_mu);
    int32_t i = adapter_find_locked(req->lora_name);
    if (i >= 0) {
        llmrt_engine_lora_unload(S.engine, req->lora_name); /* cannot fail for a served name */
        memmove(&S.adapters[i], &S.adapters[i + 1],
                (size_t)(S.n_adapters - i - 1) * sizeof *S.adapters);
        S.n_adapters--; /* the others keep their load order */
    }
    pthread_mutex_unlock(&S.lora_mu);
    if (i < 0) {
        snprintf(msg, sizeof msg, "The lora adapter '%s' cannot be found.", req->lora_name);
        return send_error(c, 404, "invalid_request_error", msg, "lora_name", "model_not_found");
    }
    fprintf(stderr, "llmrt serve: LoRA adapter %s unloaded\n", req->lora_name);
    snprintf(msg, sizeof msg, "Success: LoRA adapter '%s' removed successfully.", req->lora_name);
    return send_bytes(c, 200, "text/plain; charset=utf-8", msg, strlen(msg), 0);
}


static enum MHD_Result bad_model(struct MHD_Connection *c, const srv_request *req) {
    char names[1024], msg[1400];
    served_names(names, sizeof names);
    snprintf(msg, sizeof msg, "The model `%.200s` does not exist (this server serves %s).",
             req->model, names);
    return send_error(c, 404, "invalid_request_error", msg, "model", "model_not_found");
}

/* The messages as the model's template takes them: content-part lists as given when the
 * template iterates over content, else joined into strings (vLLM's "content format" rule;
 * llmrt_chat_template_takes_parts). */
static const char *chat_messages_json(const srv_request *req) {
    if (req->has_content_parts && !llmrt_chat_template_takes_parts(S.model, S.chat_template))
        return req->messages_flat_json;
    return req->messages_json;
}

static enum MHD_Result handle_tokenize(struct MHD_Connection *c, const srv_request *req) {
    char   *text = NULL;
    size_t  len  = 0;
    bool    parse_special = false;
    if (req->n_messages) {
        const char  *msgs = chat_messages_json(req);
        llmrt_status st   = llmrt_chat_apply_template_json(S.model, S.chat_template, msgs,
                                                           req->tools_json,
                                                           req->add_generation_prompt, NULL, 0,
                                                           &len);
        if (st == LLMRT_OK || st == LLMRT_ERR_BUFFER_TOO_SMALL) {
            text = malloc(len + 1);
            st   = text ? llmrt_chat_apply_template_json(S.model, S.chat_template, msgs,
                                                         req->tools_json,
                                                         req->add_generation_prompt, text,
                                                         len + 1, &len)
                        : LLMRT_ERR_OUT_OF_MEMORY;
        }
        if (st != LLMRT_OK) {
            free(text);
            return send_error(c, 400, "invalid_request_error", llmrt_last_error(), "messages", NULL);
        }
        parse_special = true; /* the template's own markers */
    } else {
        text = strdup(req->prompts[0].text);
        len  = req->prompts[0].text_len;
        if (!text) return send_error(c, 500, "server_error", "out of memory", NULL, NULL);
    }
    int32_t      n  = 0;
    llmrt_status st = llmrt_tokenize(S.model, text, len, req->add_special_tokens, parse_special, NULL,
                                     0, &n);
    int32_t *ids = NULL;
    if (st == LLMRT_OK || st == LLMRT_ERR_BUFFER_TOO_SMALL) {
        ids = malloc(((size_t)n + 1) * sizeof *ids);
        st  = ids ? llmrt_tokenize(S.model, text, len, req->add_special_tokens, parse_special, ids,
                                   n, &n)
                  : LLMRT_ERR_OUT_OF_MEMORY;
    }
    free(text);
    if (st != LLMRT_OK) {
        free(ids);
        return send_error(c, 400, "invalid_request_error", llmrt_last_error(), "prompt", NULL);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "count", n);
    cJSON_AddNumberToObject(o, "max_model_len", S.max_context);
    cJSON *arr = cJSON_AddArrayToObject(o, "tokens");
    for (int32_t i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(ids[i]));
    if (req->return_token_strs) {
        cJSON *strs = cJSON_AddArrayToObject(o, "token_strs");
        for (int32_t i = 0; i < n; i++) {
            char          t[800];
            unsigned char raw[256];
            size_t        n_raw;
            srv_token_text(ids[i], t, sizeof t, raw, &n_raw);
            cJSON_AddItemToArray(strs, cJSON_CreateString(t));
        }
    } else {
        cJSON_AddNullToObject(o, "token_strs");
    }
    free(ids);
    return send_json(c, 200, o);
}

static enum MHD_Result handle_detokenize(struct MHD_Connection *c, const srv_request *req) {
    for (int32_t i = 0; i < req->n_tokens; i++)
        if (req->tokens[i] >= S.vocab_size) {
            char msg[128];
            snprintf(msg, sizeof msg, "token id %d is out of range (vocabulary size %d)",
                     req->tokens[i], S.vocab_size);
            return send_error(c, 400, "invalid_request_error", msg, "tokens", NULL);
        }
    size_t       len = 0;
    llmrt_status st  = llmrt_detokenize(S.model, req->tokens, req->n_tokens, false, NULL, 0, &len);
    char        *text = NULL;
    if (st == LLMRT_OK || st == LLMRT_ERR_BUFFER_TOO_SMALL) {
        text = malloc(len + 1);
        st   = text ? llmrt_detokenize(S.model, req->tokens, req->n_tokens, false, text, len + 1, &len)
                    : LLMRT_ERR_OUT_OF_MEMORY;
    }
    if (st != LLMRT_OK) {
        free(text);
        return send_error(c, 400, "invalid_request_error", llmrt_last_error(), "tokens", NULL);
    }
    text[len] = 0;
    if (!cli_utf8_valid(text, len)) { /* a cut multi-byte character: keep the JSON valid */
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)text[i] >= 0x80) text[i] = '?';
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "prompt", text);
    free(text);
    return send_json(c, 200, o);
}

/* Whether the peer of a connection closed it (a pipelined next request is not a close). */
static bool client_gone(int fd) {
    if (fd < 0) return false;
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLHUP | POLLERR | POLLRDHUP)) return true;
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* Chat / completions: submit the job's sequences, then answer (non-streaming: wait here). */
static enum MHD_Result handle_generate(struct MHD_Connection *c, conn *cn, srv_request *req) {
    for (int32_t i = 0; i < req->n_bias; i++) /* the engine checks too; this names the field */
        if (req->bias_ids[i] >= S.vocab_size) {
            char msg[160];
            snprintf(msg, sizeof msg,
                     "'logit_bias': token id %d is out of range (vocabulary size %d)",
                     req->bias_ids[i], S.vocab_size);
            srv_request_free(req);
            return send_error(c, 400, "invalid_request_error", msg, "logit_bias", NULL);
        }
    pthread_mutex_lock(&S.mu);
    if (S.in_flight >= S.max_concurrency) {
        pthread_mutex_unlock(&S.mu);
        srv_request_free(req);
        return send_error_ra(c, 429, "rate_limit_error",
                             "too many requests in flight (--max-concurrency); retry later", NULL,
                             NULL, 1);
    }
    S.in_flight++;
    cn->in_flight = true;
    pthread_mutex_unlock(&S.mu);

    srv_job *j = calloc(1, sizeof *j);
    int32_t  n_prompts = req->kind == SRV_CHAT ? 1 : req->n_prompts;
    if (!j || !(j->seqs = calloc((size_t)n_prompts * req->n, sizeof *j->seqs))) {
        free(j);
        srv_request_free(req);
        return send_error(c, 500, "server_error", "out of memory", NULL, NULL);
    }
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->req     = *req;
    memset(req, 0, sizeof *req);
    j->n_seq   = n_prompts * j->req.n;
    j->refs    = 1;
    j->created = (long)time(NULL);
    snprintf(j->id, sizeof j->id, "%s-%lx%08lx", j->req.kind == SRV_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long)atomic_fetch_add(&S.next_id, 1) + 1, (unsigned long)j->created);
    cn->job = j;

    const char *msgs = j->req.kind == SRV_CHAT ? chat_messages_json(&j->req) : NULL;
    for (int32_t i = 0; i < j->n_seq; i++) {
        j->seqs[i].job          = j;
        j->seqs[i].index        = i;
        j->seqs[i].prompt_index = i / j->req.n;
    }
    /* One engine request per prompt with sampling n: the prompt is prefilled once and its KV
     * shared by the n sequences (seed + k for sequence k, as before); output.index picks the
     * choice. */
    for (int32_t i = 0; i < j->n_seq; i += j->req.n) {
        srv_seq *s      = &j->seqs[i];
        llmrt_prompt p  = {.struct_size = sizeof p, .chat_template = S.chat_template, .user_data = s};
        /* "model" names the base model (checked by the router) or an adapter */
        if (j->req.model && strcmp(j->req.model, S.name)) p.lora_adapter = j->req.model;
        if (msgs) {
            p.messages_json = msgs;
            p.tools_json    = j->req.tools_json;
        } else if (j->req.prompts[s->prompt_index].text) {
            p.text     = j->req.prompts[s->prompt_index].text;
            p.text_len = j->req.prompts[s->prompt_index].text_len;
        } else {
            p.tokens   = j->req.prompts[s->prompt_index].ids;
            p.n_tokens = j->req.prompts[s->prompt_index].n_ids;
        }
        llmrt_sampling_params sp = srv_request_sampling(&j->req, &S.base, 0);
        sp.struct_size           = sizeof sp;
        sp.n                     = j->req.n;
        pthread_mutex_lock(&j->mu);
        j->refs += j->req.n; /* one per sequence, dropped by its final output */
        pthread_mutex_unlock(&j->mu);
        uint64_t     id;
        llmrt_status st = llmrt_engine_submit(S.engine, &p, &sp, &id);
        if (st != LLMRT_OK) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", llmrt_last_error());
            pthread_mutex_lock(&j->mu);
            j->refs -= j->req.n;
            pthread_mutex_unlock(&j->mu);
            abort_job(j);
            if (st == LLMRT_ERR_NOT_FOUND && p.lora_adapter) /* unloaded since the router's look */
                return bad_model(c, &j->req);
            bool dead = st == LLMRT_ERR_DEAD;
            return send_error(c, dead ? 503 : 400, dead ? "server_error" : "invalid_request_error",
                              msg, dead ? NULL : (j->req.kind == SRV_CHAT ? "messages" : "prompt"),
                              NULL);
        }
        pthread_mutex_lock(&j->mu);
        for (int32_t k = i; k < i + j->req.n; k++) j->seqs[k].id = id;
        pthread_mutex_unlock(&j->mu);
    }

    if (j->req.stream) {
        struct MHD_Response *r =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, srv_stream_reader, j, NULL);
        if (!r) {
            abort_job(j);
            return MHD_NO;
        }
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        enum MHD_Result rc = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        count_code(200);
        return rc;
    }
    /* Non-streaming: wait here (this connection's own thread). MHD does not watch the socket
     * meanwhile, so look at it each half second: a client that hung up is aborted. */
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    int fd = ci ? ci->connect_fd : -1;
    double next_look = now_s() + 0.5;
    pthread_mutex_lock(&j->mu);
    while (j->n_done < j->n_seq && !atomic_load(&S.hard_stop)) {
        struct timespec ts;
        deadline_in(&ts, 0.5);
        pthread_cond_timedwait(&j->cv, &j->mu, &ts);
        if (now_s() >= next_look) {
            next_look = now_s() + 0.5;
            if (client_gone(fd)) {
                pthread_mutex_unlock(&j->mu);
                abort_job(j);
                return MHD_NO; /* closes the connection; on_completed frees the rest */
            }
        }
    }
    bool complete = j->n_done == j->n_seq;
    const char *err = NULL;
    for (int32_t i = 0; i < j->n_seq; i++)
        if (j->seqs[i].finish == LLMRT_FINISH_ERROR) err = j->seqs[i].error;
    cJSON *o = complete && !err ? srv_final_json(j) : NULL;
    char errbuf[256];
    snprintf(errbuf, sizeof errbuf, "%s", err ? err : "");
    pthread_mutex_unlock(&j->mu);
    if (!complete) {
        abort_job(j);
        return send_error(c, 503, "server_error", "the server is shutting down", NULL, NULL);
    }
    if (err) return send_error(c, 500, "server_error", errbuf, NULL, NULL);
    return send_json(c, 200, o);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
    (void)cls;
    (void)version;
    conn *cn = *con_cls;
    if (!cn) {
        if (!(cn = calloc(1, sizeof *cn))) return MHD_NO;
        cn->t_start = now_s();
        snprintf(cn->endpoint, sizeof cn->endpoint, "%s", url);
        cn->log = S.log_fd >= 0 && strcmp(url, "/health") && strcmp(url, "/metrics") &&
                  strcmp(url, "/openapi.json");
        const union MHD_ConnectionInfo *ai =
            cn->log ? MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS) : NULL;
        if (ai && ai->client_addr) {
            char h[64] = "", p[16] = "";
            socklen_t len = ai->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                                    : sizeof(struct sockaddr_in);
            if (!getnameinfo(ai->client_addr, len, h, sizeof h, p, sizeof p,
                             NI_NUMERICHOST | NI_NUMERICSERV))
                snprintf(cn->client, sizeof cn->client, "%s%s%s:%s", strchr(h, ':') ? "[" : "", h,
                         strchr(h, ':') ? "]" : "", p);
        }
        const union MHD_ConnectionInfo *fi =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        cn->fd   = fi ? fi->connect_fd : -1; /* still watched: the body must arrive in time too */
        *con_cls = cn;
        return MHD_YES;
    }
    tl_conn = cn;
    if (*upload_size) { /* the body, in pieces: kept up to the limit, the rest discarded */
        if (!cn->too_big && cn->body.len + *upload_size > S.max_body) {
            cn->too_big = true;
            free(cn->body.p);
            cn->body = (sbuf){0};
        }
        if (!cn->too_big && !sbuf_add(&cn->body, upload, *upload_size)) cn->too_big = true;
        *upload_size = 0;
        return MHD_YES;
    }
    if (cn->fd >= 0) { /* the whole request is in: what follows is ours to take time over */
        srv_guard_request_arrived(cn->fd);
        cn->fd = -1;
    }
    bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    if (!strcmp(url, "/health")) {
        if (!get) return method_not_allowed(c, "GET");
        llmrt_engine_metrics m = {.struct_size = sizeof m};
        bool ok = llmrt_engine_get_metrics(S.engine, &m) == LLMRT_OK && m.healthy &&
                  !atomic_load(&S.draining);
        return ok ? send_bytes(c, 200, "text/plain", "ok\n", 3, 0)
                  : send_bytes(c, 503, "text/plain", "unavailable\n", 12, 0);
    }
    if (!strcmp(url, "/metrics")) return get ? handle_metrics(c) : method_not_allowed(c, "GET");
    if (!strcmp(url, "/openapi.json"))
        return get ? send_bytes(c, 200, "application/json", S.openapi, strlen(S.openapi), 0)
                   : method_not_allowed(c, "GET");
    srv_kind kind;
    bool     known = true;
    if (!strcmp(url, "/v1/chat/completions")) kind = SRV_CHAT;
    else if (!strcmp(url, "/v1/completions")) kind = SRV_COMPLETION;
    else if (!strcmp(url, "/tokenize")) kind = SRV_TOKENIZE;
    else if (!strcmp(url, "/detokenize")) kind = SRV_DETOKENIZE;
    else if (!strcmp(url, "/v1/models")) kind = SRV_CHAT, known = false;
    else if (!strcmp(url, "/v1/load_lora_adapter")) kind = SRV_LOAD_LORA;
    else if (!strcmp(url, "/v1/unload_lora_adapter")) kind = SRV_UNLOAD_LORA;
    else {
        char msg[320];
        snprintf(msg, sizeof msg, "no route %.256s", url);
        return send_error(c, 404, "invalid_request_error", msg, NULL, "not_found");
    }
    if (!authorized(c))
        return send_error(c, 401, "invalid_request_error", "Incorrect API key provided.", NULL,
                          "invalid_api_key");
    if (!known) return get ? handle_models(c) : method_not_allowed(c, "GET");
    if (!post) goto not_allowed;
    if ((kind == SRV_LOAD_LORA || kind == SRV_UNLOAD_LORA) && !S.allow_lora_updates) {
        char msg[320];
        snprintf(msg, sizeof msg, "no route %.200s (the server was started without "
                                  "--allow-lora-runtime-updates)", url);
        return send_error(c, 404, "invalid_request_error", msg, NULL, "not_found");
    }
    if (atomic_load(&S.draining))
        return send_error_ra(c, 503, "server_error", "the server is shutting down", NULL, NULL, 5);
    if (cn->too_big) {
        char msg[128];
        snprintf(msg, sizeof msg, "the request body exceeds %zu bytes (--max-body-bytes)", S.max_body);
        return send_error(c, 413, "invalid_request_error", msg, NULL, NULL);
    }
    /* a JSON body: a Content-Type other than application/json (parameters aside) is refused;
     * none at all is taken as JSON */
    const char *ctype = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    if (ctype) {
        while (*ctype == ' ' || *ctype == '\t') ctype++;
        size_t n = strcspn(ctype, "; \t");
        if (n != 16 || strncasecmp(ctype, "application/json", 16)) {
            char m[200];
            snprintf(m, sizeof m, "Content-Type must be application/json, got \"%.100s\"", ctype);
            return send_error(c, 400, "invalid_request_error", m, NULL, "invalid_content_type");
        }
    }
    srv_request req;
    char        param[128], msg[512];
    if (srv_request_parse(cn->body.p ? cn->body.p : "", cn->body.len, kind, &req, param,
                          sizeof param, msg, sizeof msg) < 0)
        return send_error(c, 400, "invalid_request_error", msg, param, NULL);
    if (req.model && strcmp(req.model, S.name) && !adapter_served(req.model)) {
        enum MHD_Result rc = bad_model(c, &req);
        srv_request_free(&req);
        return rc;
    }
    enum MHD_Result rc;
    if (kind == SRV_LOAD_LORA) rc = handle_load_lora(c, &req);
    else if (kind == SRV_UNLOAD_LORA) rc = handle_unload_lora(c, &req);
    else if (kind == SRV_TOKENIZE) rc = handle_tokenize(c, &req);
    else if (kind == SRV_DETOKENIZE) rc = handle_detokenize(c, &req);
    else return handle_generate(c, cn, &req); /* owns req */
    srv_request_free(&req);
    return rc;
not_allowed:
    return method_not_allowed(c, "POST");
}

/* The request is over (answered, failed, or the client went away). */
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode why) {
    (void)cls;
    (void)why;
    conn *cn = *con_cls;
    if (!cn) return;
    const union MHD_ConnectionInfo *fi = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (fi) srv_guard_await_request(fi->connect_fd); /* keep-alive: the next request */
    if (tl_conn == cn) tl_conn = NULL;
    if (cn->log) {
        if (!cn->status) cn->status = 499; /* no answer was queued: the client went away */
        log_request(cn);
    }
    if (cn->job) {
        abort_job(cn->job); /* unfinished sequences only: a client that left frees its blocks */
        job_unref(cn->job);
    }
    if (cn->in_flight) {
        pthread_mutex_lock(&S.mu);
        S.in_flight--;
        pthread_cond_broadcast(&S.cv);
        pthread_mutex_unlock(&S.mu);
    }
    free(cn->body.p);
    free(cn);
    *con_cls = NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* The command                                                                              */
/* ---------------------------------------------------------------------------------------- */

static void usage(FILE *f) {
    fprintf(f, "usage: llmrt serve [options]\n"
               "An OpenAI-compatible HTTP server: POST /v1/chat/completions, /v1/completions,\n"
               "/tokenize, /detokenize; GET /v1/models, /health, /metrics, /openapi.json.\n"
               "      --host H              address to listen on (default 127.0.0.1)\n"
               "      --port P              TCP port (default 8000; 0 = any free port)\n"
               "      --api-key KEY         require Authorization: Bearer KEY on /v1/*,\n"
               "                            /tokenize and /detokenize\n"
               "      --served-model-name N the model name clients use (default: the model\n"
               "                            file or directory name)\n"
               "      --max-concurrency N   generation requests in flight; more get 429\n"
               "                            (default 256)\n"
               "      --max-body-bytes N    request body limit; more gets 413 (default 1048576)\n"
               "      --timeout S           idle connection timeout in seconds (default 60)\n"
               "      --drain-timeout S     on SIGTERM/SIGINT, let requests in flight finish for\n"
               "                            up to S seconds (default 30), then exit 0\n"
               "      --log-requests FILE   append one JSON line per finished API request (id,\n"
               "                            time, endpoint, model, status, token counts,\n"
               "                            ttft_ms, e2e_ms, finish_reasons, client); no text\n"
               "      --log-text            also log the prompt/messages (tool calls and tool\n"
               "                            results too) and completion text\n"
               "      --log-redact          with --log-text: e-mail addresses, phone numbers\n"
               "                            and ID-like numbers become [EMAIL] [PHONE] [ID]\n"
               "      --allow-lora-runtime-updates  enable POST /v1/load_lora_adapter\n"
               "                            {\"lora_name\", \"lora_path\"} and\n"
               "                            /v1/unload_lora_adapter {\"lora_name\"} (vLLM's)\n"
               "LoRA: each --lora-module NAME=PATH (below) is served as model NAME:\n"
               "\"model\": NAME selects it and /v1/models lists it.\n"
               "  -h, --help\n"
               "Sampling options are the defaults of requests that do not set a field.\n");
    cli_common_usage(f);
}

/* --NAME: the shared checked parser (host/cli/cli_args.c) */
static int parse_num(const char *arg, const char *name, long long lo, long long hi, long long *out) {
    char    opt[64];
    int64_t v;
    snprintf(opt, sizeof opt, "--%s", name);
    if (cli_arg_i64(opt, arg, lo, hi, &v) < 0) return -1;
    *out = v;
    return 0;
}

int cli_serve(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    c.lora_modules_ok = true;
    const char *host = "127.0.0.1", *name = NULL, *log_path = NULL;
    bool        log_text = false, log_redact = false;
    long long   port = 8000, max_conc = 256, max_body = 1 << 20, timeout = 60, drain = 30;
    enum { O_HOST = 2000, O_PORT, O_KEY, O_NAME, O_CONC, O_BODY, O_TIMEOUT, O_DRAIN, O_LOG, O_LOG_TEXT,
           O_LOG_REDACT, O_LORA_UPDATES };
    static const struct option own[] = {
        {"host", required_argument, 0, O_HOST},
        {"port", required_argument, 0, O_PORT},
        {"api-key", required_argument, 0, O_KEY},
        {"served-model-name", required_argument, 0, O_NAME},
        {"max-concurrency", required_argument, 0, O_CONC},
        {"max-body-bytes", required_argument, 0, O_BODY},
        {"timeout", required_argument, 0, O_TIMEOUT},
        {"drain-timeout", required_argument, 0, O_DRAIN},
        {"log-requests", required_argument, 0, O_LOG},
        {"log-text", no_argument, 0, O_LOG_TEXT},
        {"log-redact", no_argument, 0, O_LOG_REDACT},
        {"allow-lora-runtime-updates", no_argument, 0, O_LORA_UPDATES},
        {"help", no_argument, 0, 'h'},
    };
    const struct option *opts = cli_options_with(own, sizeof own / sizeof own[0]);
    int                  o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "m:t:n:h", opts, NULL)) != -1) {
        int r = cli_common_parse(&c, o, optarg);
        if (r < 0) return 2;
        if (r > 0) continue;
        switch (o) {
        case O_HOST: host = optarg; break;
        case O_PORT: if (parse_num(optarg, "port", 0, 65535, &port) < 0) return 2; break;
        case O_KEY: S.api_key = optarg; break;
        case O_NAME: name = optarg; break;
        case O_CONC: if (parse_num(optarg, "max-concurrency", 1, 1 << 20, &max_conc) < 0) return 2; break;
        case O_BODY: if (parse_num(optarg, "max-body-bytes", 1, (long long)1 << 32, &max_body) < 0) return 2; break;
        case O_TIMEOUT: if (parse_num(optarg, "timeout", 1, 86400, &timeout) < 0) return 2; break;
        case O_DRAIN: if (parse_num(optarg, "drain-timeout", 0, 86400, &drain) < 0) return 2; break;
        case O_LOG: log_path = optarg; break;
        case O_LOG_TEXT: log_text = true; break;
        case O_LOG_REDACT: log_redact = true; break;
        case O_LORA_UPDATES: S.allow_lora_updates = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "llmrt serve: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (c.lora_name) {
        fprintf(stderr, "llmrt serve: --lora-name is for generate, chat and batch; a request "
                        "chooses an adapter with \"model\": NAME\n");
        return 2;
    }
    if (S.api_key && !*S.api_key) {
        fprintf(stderr, "llmrt serve: --api-key must not be empty\n");
        return 2;
    }
    if ((log_text || log_redact) && !log_path) {
        fprintf(stderr, "llmrt serve: --log-text and --log-redact need --log-requests FILE\n");
        return 2;
    }
    if (log_redact && !log_text)
        fprintf(stderr, "llmrt serve: --log-redact has no effect without --log-text (no text is "
                        "logged)\n");
    if (log_path) {
        if (log_text && log_redact) {
            char err[256];
            if (!(S.redactor = srv_redactor_create(err, sizeof err))) {
                fprintf(stderr, "llmrt serve: --log-redact: %s\n", err);
                return 1;
            }
        }
        S.log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (S.log_fd < 0) {
            fprintf(stderr, "llmrt serve: --log-requests %s: %s\n", log_path, strerror(errno));
            srv_redactor_destroy(S.redactor);
            return 1;
        }
        S.log_text = log_text;
    }
    S.max_concurrency = (long)max_conc;
    S.max_body        = (size_t)max_body;
    S.chat_template   = c.chat_template;
    if (name) {
        snprintf(S.name, sizeof S.name, "%s", name);
    } else {
        char path[4096];
        snprintf(path, sizeof path, "%s", c.model_path ? c.model_path : "model");
        size_t n = strlen(path);
        while (n > 1 && path[n - 1] == '/') path[--n] = 0;
        const char *base = strrchr(path, '/');
        snprintf(S.name, sizeof S.name, "%s", base ? base + 1 : path);
    }
    S.model_path = c.model_path;
    if (cli_lora_module_find(&c, S.name) >= 0) {
        fprintf(stderr, "llmrt serve: --lora-module %s: the name is the base model's served name "
                        "(--served-model-name)\n", S.name);
        return 2;
    }

    /* Resolve the address before the (slow) model load. */
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *ai = NULL;
    char port_s[16];
    snprintf(port_s, sizeof port_s, "%lld", port);
    int gai = getaddrinfo(host, port_s, &hints, &ai);
    if (gai || !ai) {
        fprintf(stderr, "llmrt serve: cannot resolve --host %s: %s\n", host, gai_strerror(gai));
        return 2;
    }

    /* SIGTERM/SIGINT go to sigwait() below; every thread started from here on inherits the mask.
     * SIGPIPE: a write to a closed socket is an error return, not a death. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    srv_raise_open_files_limit();

    S.model = cli_load_model(c.model_path, c.threads, c.load_format);
    if (!S.model) {
        freeaddrinfo(ai);
        return 1;
    }
    llmrt_model_info info = {.struct_size = sizeof info};
    llmrt_model_get_info(S.model, &info);
    S.max_context = info.max_context;
    S.vocab_size  = info.vocab_size;
    if (!(S.openapi = srv_openapi_document(S.vocab_size))) {
        fprintf(stderr, "llmrt serve: out of memory\n");
        llmrt_model_destroy(S.model);
        freeaddrinfo(ai);
        return 1;
    }
    if (!(S.engine = cli_engine_create(&c, S.model, "llmrt serve"))) {
        llmrt_model_destroy(S.model);
        freeaddrinfo(ai);
        return 1;
    }
    for (int32_t i = 0; i < c.n_lora_modules; i++) {
        if (!adapter_add(c.lora_modules[i].name, c.lora_modules[i].path)) {
            fprintf(stderr, "llmrt serve: out of memory\n");
            llmrt_engine_destroy(S.engine);
            llmrt_model_destroy(S.model);
            freeaddrinfo(ai);
            return 1;
        }
    }
    S.base = cli_common_sampling(&c, S.model);
    if (llmrt_engine_start_loop(S.engine, on_output, NULL) != LLMRT_OK) {
        fprintf(stderr, "llmrt serve: %s\n", llmrt_last_error());
        llmrt_engine_destroy(S.engine);
        llmrt_model_destroy(S.model);
        freeaddrinfo(ai);
        return 1;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)timeout, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, NULL, MHD_OPTION_CONNECTION_LIMIT, (unsigned)2048,
        MHD_OPTION_NOTIFY_CONNECTION, srv_guard_on_connection, NULL,
        /* a thread per connection: small stacks (the handlers keep little on theirs) */
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)512 * 1024, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!d) {
        fprintf(stderr, "llmrt serve: cannot listen on %s:%lld: %s\n", host, port, strerror(errno));
        llmrt_engine_destroy(S.engine);
        llmrt_model_destroy(S.model);
        return 1;
    }
    bool guard_started = srv_guard_start((double)timeout);
    /* well inside --timeout, at most every 15 s as sse-starlette's default ping */
    S.keepalive_s = (double)timeout / 2 < 15 ? (double)timeout / 2 : 15;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    unsigned bound = di ? di->port : (unsigned)port;
    fprintf(stderr, "llmrt serve: listening on http://%s%s%s:%u (model %s)\n",
            strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", bound, S.name);
    for (int32_t i = 0; i < c.n_lora_modules; i++)
        fprintf(stderr, "llmrt serve: model %s: LoRA adapter %s\n", c.lora_modules[i].name,
                c.lora_modules[i].path);
    fflush(stderr);

    int sig = 0;
    while (sigwait(&sigs, &sig) != 0) {}
    fprintf(stderr, "llmrt serve: %s: draining (up to %lld s)\n",
            sig == SIGTERM ? "SIGTERM" : "SIGINT", drain);
    atomic_store(&S.draining, true);
    double end = now_s() + (double)drain;
    pthread_mutex_lock(&S.mu);
    while (S.in_flight > 0 && now_s() < end) {
        struct timespec ts;
        deadline_in(&ts, 0.1);
        pthread_cond_timedwait(&S.cv, &S.mu, &ts);
    }
    long left = S.in_flight;
    pthread_mutex_unlock(&S.mu);
    if (left) fprintf(stderr, "llmrt serve: drain timeout: cutting %ld request(s)\n", left);
    atomic_store(&S.hard_stop, true);
    MHD_stop_daemon(d); /* joins the connection threads; on_completed aborts what is left */
    if (guard_started) srv_guard_stop();
    llmrt_engine_stop_loop(S.engine);
    llmrt_engine_destroy(S.engine);
    llmrt_model_destroy(S.model);
    free(S.adapters);
    if (S.log_fd >= 0) close(S.log_fd);
    srv_redactor_destroy(S.redactor);
    fprintf(stderr, "llmrt serve: stopped\n");
    return 0;
}

#else /* built without libmicrohttpd */
#include <stdio.h>

#include "server.h"

int cli_serve(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "llmrt serve: this build has no HTTP server (libmicrohttpd-dev was not found "
                    "at configure time; .ci/setup installs it)\n");
    return 2;
}
#endif
