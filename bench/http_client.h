/* A streaming HTTP client for the benchmark (libcurl's multi interface): one thread drives any
 * number of concurrent POSTs whose responses are Server-Sent Events. Each `data:` line of a
 * successful (2xx) response is handed over as it arrives, timestamped with cli_now(); an error
 * response's body is kept (its first KiB) for the report. Built without libcurl, creating a
 * client fails with a message. */
#ifndef LLMRT_BENCH_HTTP_CLIENT_H
#define LLMRT_BENCH_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct http_client http_client;

/* One `data:` field: its value without "data:" and the one optional space after it, len bytes,
 * NUL-terminated; received at time t (cli_now()). */
typedef void (*http_event_fn)(void *user, const char *data, size_t len, double t);

typedef struct http_result {
    void       *user;
    long        status;     /* HTTP status; 0 when no response came (transport error) */
    bool        transport_error;
    const char *error;      /* curl's message for a transport error, else NULL */
    const char *error_body; /* the body of a non-2xx response (truncated), else "" */
} http_result;

typedef void (*http_done_fn)(const http_result *r, void *ctx);

/* NULL (message printed) when libcurl is missing or cannot start. */
http_client *http_client_create(int max_connections);
void         http_client_destroy(http_client *c);
/* Starts a POST of a JSON body (copied) to url, with "Authorization: Bearer api_key" when
 * api_key is non-NULL. timeout_s > 0 limits the whole transfer. 0, or -1 (message printed). */
int http_client_post_sse(http_client *c, const char *url, const char *api_key, const char *body,
                         double connect_timeout_s, double timeout_s, http_event_fn on_event,
                         void *user);
/* Moves every transfer forward, waiting up to timeout_ms for network activity; calls on_done for
 * each finished transfer. Returns the number still running, -1 on an internal error. */
int http_client_poll(http_client *c, int timeout_ms, http_done_fn on_done, void *ctx);
/* A blocking GET (small responses): 0 with *status and *body (malloc'd, NUL-terminated) set, or
 * -1 on a transport error with its message in err. */
int http_get(const char *url, const char *api_key, double timeout_s, long *status, char **body,
             char *err, size_t err_size);
/* The libcurl version string ("" without libcurl). */
const char *http_client_version(void);

#endif
