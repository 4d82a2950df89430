/* The benchmark's streaming HTTP client: libcurl's multi interface, one thread, curl_multi_poll.
 * SSE framing (https://html.spec.whatwg.org/multipage/server-sent-events.html): lines end in
 * LF, CRLF or CR; a line "data:VALUE" (one leading space of VALUE dropped) is one data field;
 * comments (":...") and the other fields (event, id, retry) are ignored. OpenAI-compatible servers
 * send one data line per event, so every data line is handed over as it is complete. */
#include "http_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../host/cli/cli.h"

#ifdef LLMRT_HAVE_CURL
#include <curl/curl.h>

#define ERR_BODY_MAX 1024

typedef struct xfer {
    CURL              *easy;
    struct curl_slist *headers;
    char              *body;
    http_event_fn      on_event;
    void              *user;
    char              *line; /* the incomplete line so far */
    size_t             line_len, line_cap;
    bool               last_cr; /* the previous byte ended a line with CR (a LF may follow) */
    char               err_body[ERR_BODY_MAX + 1];
    size_t             err_len;
    long               status; /* known once the headers are in */
    char               curl_err[CURL_ERROR_SIZE];
    struct xfer       *prev, *next; /* the client's list of transfers in flight */
} xfer;

struct http_client {
    CURLM *multi;
    xfer  *head;
};

static void list_remove(http_client *c, xfer *x) {
    if (x->prev) x->prev->next = x->next;
    else c->head = x->next;
    if (x->next) x->next->prev = x->prev;
}

static int curl_ready;

const char *http_client_version(void) {
    return curl_version();
}

http_client *http_client_create(int max_connections) {
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            fprintf(stderr, "llmrt bench: libcurl failed to initialise\n");
            return NULL;
        }
        curl_ready = 1;
    }
    http_client *c = calloc(1, sizeof *c);
    c->multi       = curl_multi_init();
    if (!c->multi) {
        fprintf(stderr, "llmrt bench: curl_multi_init failed\n");
        free(c);
        return NULL;
    }
    /* keep-alive connections for every concurrent transfer */
    if (max_connections > 0) curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)max_connections);
    return c;
}

static void xfer_free(xfer *x) {
    if (!x) return;
    curl_slist_free_all(x->headers);
    free(x->body);
    free(x->line);
    free(x);
}

void http_client_destroy(http_client *c) {
    if (!c) return;
    /* transfers still in flight (an aborted run): detach and free them */
    while (c->head) {
        xfer *x = c->head;
        list_remove(c, x);
        curl_multi_remove_handle(c->multi, x->easy);
        curl_easy_cleanup(x->easy);
        xfer_free(x);
    }
    curl_multi_cleanup(c->multi);
    free(c);
}

static void line_done(xfer *x) {
    if (x->line_len >= 5 && !memcmp(x->line, "data:", 5)) {
        size_t off = 5;
        if (off < x->line_len && x->line[off] == ' ') off++;
        x->line[x->line_len] = 0;
        x->on_event(x->user, x->line + off, x->line_len - off, cli_now());
    }
    x->line_len = 0;
}

static void line_push(xfer *x, char ch) {
    if (x->line_len + 2 > x->line_cap) {
        x->line_cap = x->line_cap ? 2 * x->line_cap : 4096;
        x->line     = realloc(x->line, x->line_cap);
    }
    x->line[x->line_len++] = ch;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *p) {
    xfer  *x = p;
    size_t n = size * nmemb;
    if (x->status == 0) curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
    if (x->status < 200 || x->status >= 300) { /* an error response: keep the start of its body */
        size_t room = ERR_BODY_MAX - x->err_len, k = n < room ? n : room;
        memcpy(x->err_body + x->err_len, data, k);
        x->err_len += k;
        x->err_body[x->err_len] = 0;
        return n;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = data[i];
        if (ch == '\n') {
            if (x->last_cr) { /* the LF of a CRLF: the line was done at the CR */
                x->last_cr = false;
                continue;
            }
            line_done(x);
        } else if (ch == '\r') {
            line_done(x);
            x->last_cr = true;
            continue;
        } else {
            line_push(x, ch);
        }
        x->last_cr = false;
    }
    return n;
}

int http_client_post_sse(http_client *c, const char *url, const char *api_key, const char *body,
                         double connect_timeout_s, double timeout_s, http_event_fn on_event,
                         void *user) {
    xfer *x     = calloc(1, sizeof *x);
    x->easy     = curl_easy_init();
    x->body     = strdup(body);
    x->on_event = on_event;
    x->user     = user;
    if (!x->easy) {
        fprintf(stderr, "llmrt bench: curl_easy_init failed\n");
        xfer_free(x);
        return -1;
    }
    x->headers = curl_slist_append(x->headers, "Content-Type: application/json");
    x->headers = curl_slist_append(x->headers, "Accept: text/event-stream");
    if (api_key && *api_key) {
        size_t len  = strlen(api_key) + 32;
        char  *auth = malloc(len);
        snprintf(auth, len, "Authorization: Bearer %s", api_key);
        x->headers = curl_slist_append(x->headers, auth);
        free(auth);
    }
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(x->body));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->curl_err);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "llmrt-bench");
    /* no "Expect: 100-continue" round trip before large bodies */
    x->headers = curl_slist_append(x->headers, "Expect:");
    if (connect_timeout_s > 0)
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(connect_timeout_s * 1e3));
    if (timeout_s > 0) curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(timeout_s * 1e3));
    CURLMcode mc = curl_multi_add_handle(c->multi, e);
    if (mc != CURLM_OK) {
        fprintf(stderr, "llmrt bench: curl_multi_add_handle: %s\n", curl_multi_strerror(mc));
        curl_easy_cleanup(e);
        xfer_free(x);
        return -1;
    }
    x->next = c->head;
    if (c->head) c->head->prev = x;
    c->head = x;
    return 0;
}

int http_client_poll(http_client *c, int timeout_ms, http_done_fn on_done, void *ctx) {
    int       running = 0;
    CURLMcode mc      = curl_multi_perform(c->multi, &running);
    if (mc != CURLM_OK) {
        fprintf(stderr, "llmrt bench: curl_multi_perform: %s\n", curl_multi_strerror(mc));
        return -1;
    }
    CURLMsg *msg;
    int      left;
    bool     finished = false;
    while ((msg = curl_multi_info_read(c->multi, &left))) {
        if (msg->msg != CURLMSG_DONE) continue;
        xfer *x = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        CURLcode cc = msg->data.result;
        if (x->line_len > 0 && x->status >= 200 && x->status < 300) line_done(x); /* no final EOL */
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
        http_result r = {.user = x->user, .status = x->status, .error_body = x->err_body};
        if (cc != CURLE_OK) {
            r.transport_error = true;
            r.error           = x->curl_err[0] ? x->curl_err : curl_easy_strerror(cc);
        }
        on_done(&r, ctx);
        list_remove(c, x);
        curl_multi_remove_handle(c->multi, x->easy);
        curl_easy_cleanup(x->easy);
        xfer_free(x);
        finished = true;
    }
    if (running > 0 && !finished) {
        mc = curl_multi_poll(c->multi, NULL, 0, timeout_ms, NULL);
        if (mc != CURLM_OK) {
            fprintf(stderr, "llmrt bench: curl_multi_poll: %s\n", curl_multi_strerror(mc));
            return -1;
        }
    }
    return running;
}

typedef struct membuf {
    char  *p;
    size_t len;
} membuf;

static size_t on_write_mem(char *data, size_t size, size_t nmemb, void *p) {
    membuf *b = p;
    size_t  n = size * nmemb;
    if (b->len + n > ((size_t)1 << 24)) return 0; /* 16 MiB: not a listing any more */
    b->p = realloc(b->p, b->len + n + 1);
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = 0;
    return n;
}

int http_get(const char *url, const char *api_key, double timeout_s, long *status, char **body,
             char *err, size_t err_size) {
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            snprintf(err, err_size, "libcurl failed to initialise");
            return -1;
        }
        curl_ready = 1;
    }
    CURL *e = curl_easy_init();
    if (!e) {
        snprintf(err, err_size, "curl_easy_init failed");
        return -1;
    }
    char               cerr[CURL_ERROR_SIZE] = "";
    struct curl_slist *h = NULL;
    membuf             b = {.p = calloc(1, 1)};
    if (api_key && *api_key) {
        size_t len  = strlen(api_key) + 32;
        char  *auth = malloc(len);
        snprintf(auth, len, "Authorization: Bearer %s", api_key);
        h = curl_slist_append(h, auth);
        free(auth);
    }
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write_mem);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "llmrt-bench");
    if (timeout_s > 0) curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(timeout_s * 1e3));
    CURLcode cc = curl_easy_perform(e);
    int      rc = 0;
    if (cc != CURLE_OK) {
        snprintf(err, err_size, "%s", cerr[0] ? cerr : curl_easy_strerror(cc));
        free(b.p);
        rc = -1;
    } else {
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
        *body = b.p;
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    return rc;
}

#else /* built without libcurl */

int http_get(const char *url, const char *api_key, double timeout_s, long *status, char **body,
             char *err, size_t err_size) {
    (void)url, (void)api_key, (void)timeout_s, (void)status, (void)body;
    snprintf(err, err_size, "this llmrt was built without libcurl");
    return -1;
}

const char *http_client_version(void) {
    return "";
}

http_client *http_client_create(int max_connections) {
    (void)max_connections;
    fprintf(stderr, "llmrt bench: --base-url needs libcurl, and this llmrt was built without it "
                    "(apt-get install libcurl4-openssl-dev, then reconfigure)\n");
    return NULL;
}

void http_client_destroy(http_client *c) {
    (void)c;
}

int http_client_post_sse(http_client *c, const char *url, const char *api_key, const char *body,
                         double connect_timeout_s, double timeout_s, http_event_fn on_event,
                         void *user) {
    (void)c, (void)url, (void)api_key, (void)body, (void)connect_timeout_s, (void)timeout_s;
    (void)on_event, (void)user;
    return -1;
}

int http_client_poll(http_client *c, int timeout_ms, http_done_fn on_done, void *ctx) {
    (void)c, (void)timeout_ms, (void)on_done, (void)ctx;
    return -1;
}

#endif
