/* llmrt serve, inside: what server.c (HTTP, handlers, the command), server_stream.c (response
 * JSON and the SSE producer) and server_guard.c (slow-request watchdog) share. Not a public
 * interface: the server is a tool on top of include/llmrt.h. */
#ifndef LLMRT_SERVER_INTERNAL_H
#define LLMRT_SERVER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "llmrt.h"
#include "redact.h"
#include "server_request.h"

/* A growing byte buffer, always NUL-terminated. */
typedef struct sbuf {
    char  *p;
    size_t len, cap;
} sbuf;

bool   sbuf_add(sbuf *b, const void *s, size_t n); /* false: out of memory (b unchanged) */
double now_s(void);                                  /* CLOCK_MONOTONIC seconds */
void   deadline_in(struct timespec *ts, double seconds); /* CLOCK_REALTIME now + seconds */

/* ---------------------------------------------------------------------------------------- */
/* Server state                                                                             */
/* ---------------------------------------------------------------------------------------- */

/* A LoRA adapter served as a model name (--lora-module, POST /v1/load_lora_adapter). */
typedef struct srv_adapter {
    char name[128];
    char path[1024];
} srv_adapter;

typedef struct srv_state {
    llmrt_model          *model;
    llmrt_engine         *engine;
    llmrt_sampling_params base;
    const char           *chat_template;
    char                  name[256];
    const char           *api_key;
    int32_t               max_context, vocab_size;
    char                 *openapi; /* GET /openapi.json, with the model's limits */
    double                keepalive_s; /* a stream with no event this long gets ": keep-alive" */
    long                  max_concurrency;
    size_t                max_body;
    pthread_mutex_t       mu;        /* in_flight, draining */
    pthread_cond_t        cv;
    long                  in_flight; /* generation requests accepted and not completed */
    atomic_bool           draining;  /* new requests: 503 */
    atomic_bool           hard_stop; /* drain time over: cut the rest */
    atomic_long           http_codes[600];
    atomic_ulong          next_id;
    /* --log-requests: one JSON line per finished request, one write() each under log_mu */
    int                   log_fd;        /* -1: off */
    bool                  log_text;      /* --log-text: prompt/messages and completion text */
    srv_redactor         *redactor;      /* --log-redact */
    pthread_mutex_t       log_mu;
    atomic_bool           log_failed;    /* a failed write was reported (once) */
    /* LoRA adapters served as model names (vLLM's --lora-modules), under lora_mu */
    const char           *model_path;    /* the base model's root in /v1/models */
    bool                  allow_lora_updates; /* --allow-lora-runtime-updates: load/unload routes */
    pthread_mutex_t       lora_mu;
    srv_adapter          *adapters;
    int32_t               n_adapters, cap_adapters;
} srv_state;

extern srv_state S; /* the one server of the process (server.c) */

/* One engine request: sequence `index` of a job (choice index). */
typedef struct srv_seq {
    struct srv_job     *job;
    int32_t             index, prompt_index;
    uint64_t            id;
    sbuf                text;
    int32_t            *tok;      /* [n_lp] */
    float              *lp;       /* [n_lp] */
    int32_t            *top_ids;  /* [n_lp * n_top] */
    float              *top_lps;
    int32_t             n_lp, cap_lp, n_top;
    llmrt_finish_reason finish;
    char                error[256];
    int32_t             n_prompt, n_cached, n_gen;
    /* streaming cursors */
    size_t              text_sent;
    int32_t             lp_sent;
    bool                finish_sent;
} srv_seq;

enum { PH_ROLE, PH_DELTAS, PH_TAIL, PH_END };

typedef struct srv_job {
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    int             refs;
    srv_request     req;
    int32_t         n_seq, n_done;
    srv_seq        *seqs;
    char            id[48];
    long            created;
    double          t_first; /* the first token of any sequence (CLOCK_MONOTONIC), 0: none */
    /* streaming */
    int             phase;
    sbuf            out;
    size_t          out_off;
} srv_job;


/* --- server_stream.c: response bodies ------------------------------------------------------ */

/* "stop", "length", ... as OpenAI spells a finish reason */
const char *srv_finish_str(llmrt_finish_reason f);
/* The text of one token, valid UTF-8 (invalid bytes become U+FFFD), and its raw bytes. */
void srv_token_text(int32_t id, char *out, size_t cap, unsigned char *raw, size_t *n_raw);
/* Prompt, cached-prompt and generated tokens of a job (its mutex held, or the job finished). */
void srv_job_token_counts(const srv_job *j, int64_t *prompt, int64_t *cached, int64_t *gen);
/* The whole non-streaming answer (chat.completion / text_completion). */
cJSON *srv_final_json(const srv_job *j);
/* MHD content reader of a streaming answer: SSE events as the engine delivers them. */
ssize_t srv_stream_reader(void *cls, uint64_t pos, char *buf, size_t max);

/* --- server_guard.c: requests that arrive too slowly, descriptors --------------------------- */

bool srv_guard_start(double limit_s); /* the watchdog thread; false: could not start it */
void srv_guard_stop(void);
/* MHD_OPTION_NOTIFY_CONNECTION: connections are watched from their start */
void srv_guard_on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                             enum MHD_ConnectionNotificationCode code);
void srv_guard_request_arrived(int fd); /* headers and body are in: stop watching */
void srv_guard_await_request(int fd);   /* keep-alive: watch again for the next request */
void srv_raise_open_files_limit(void);

#endif
