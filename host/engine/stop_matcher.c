/* Stop-string matching on streamed text. The pending buffer holds the held-back suffix plus the
 * new delta; text handed out is not copied: it is a prefix of the buffer, which is compacted at
 * the start of the next call (so the pointer stays valid until then). */
#include "stop_matcher.h"

#include <stdlib.h>
#include <string.h>

struct llmrt_stop_matcher {
    char   *stops[LLMRT_STOP_MAX_STRINGS];
    size_t  lens[LLMRT_STOP_MAX_STRINGS];
    int32_t n_stops;
    size_t  max_len;

    char  *buf;
    size_t len, cap;
    size_t consumed; /* bytes of buf handed out by the last call, dropped on the next */

    bool    stopped;
    int32_t which;
};

llmrt_status llmrt_stop_matcher_create(const char *const *stops, int32_t n_stops,
                                       llmrt_stop_matcher **out, llmrt_error *err) {
    if (!out) return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "stop strings: out is NULL");
    *out = NULL;
    if (n_stops < 0 || n_stops > LLMRT_STOP_MAX_STRINGS)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "stop: %d stop strings, at most %d allowed",
                         (int)n_stops, LLMRT_STOP_MAX_STRINGS);
    if (n_stops > 0 && !stops)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "stop: the list of %d strings is NULL",
                         (int)n_stops);
    for (int32_t i = 0; i < n_stops; i++) {
        if (!stops[i])
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "stop[%d] is NULL", (int)i);
        size_t n = strlen(stops[i]);
        if (n == 0)
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "stop[%d] is an empty string", (int)i);
        if (n > LLMRT_STOP_MAX_BYTES)
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                             "stop[%d] is %zu bytes long, at most %d allowed", (int)i, n,
                             LLMRT_STOP_MAX_BYTES);
    }
    llmrt_stop_matcher *m = calloc(1, sizeof *m);
    if (!m) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "stop: allocation failed");
    m->which = -1;
    for (int32_t i = 0; i < n_stops; i++) {
        m->lens[i]  = strlen(stops[i]);
        m->stops[i] = malloc(m->lens[i]);
        if (!m->stops[i]) {
            llmrt_stop_matcher_destroy(m);
            return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "stop: allocation failed");
        }
        memcpy(m->stops[i], stops[i], m->lens[i]);
        m->n_stops = i + 1;
        if (m->lens[i] > m->max_len) m->max_len = m->lens[i];
    }
    *out = m;
    return LLMRT_OK;
}

void llmrt_stop_matcher_destroy(llmrt_stop_matcher *m) {
    if (!m) return;
    for (int32_t i = 0; i < m->n_stops; i++) free(m->stops[i]);
    free(m->buf);
    free(m);
}

bool llmrt_stop_matcher_stopped(const llmrt_stop_matcher *m) {
    return m->stopped;
}

static void compact(llmrt_stop_matcher *m) {
    if (m->consumed == 0) return;
    memmove(m->buf, m->buf + m->consumed, m->len - m->consumed);
    m->len -= m->consumed;
    m->consumed = 0;
}

/* Length of the longest proper suffix of buf[0..n) that is a prefix of some stop string. */
static size_t held_suffix(const llmrt_stop_matcher *m, const char *buf, size_t n) {
    size_t k = m->max_len > 0 ? m->max_len - 1 : 0;
    if (k > n) k = n;
    for (; k > 0; k--)
        for (int32_t i = 0; i < m->n_stops; i++)
            if (m->lens[i] > k && memcmp(buf + n - k, m->stops[i], k) == 0) return k;
    return 0;
}

llmrt_status llmrt_stop_matcher_feed(llmrt_stop_matcher *m, const char *delta, size_t len,
                                     const char **emit, size_t *emit_len, bool *stopped,
                                     int32_t *which, llmrt_error *err) {
    *emit     = "";
    *emit_len = 0;
    if (stopped) *stopped = m->stopped;
    if (which) *which = m->which;
    if (m->stopped) return LLMRT_OK;
    if (len > 0 && !delta)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "stop: NULL delta of %zu bytes", len);
    compact(m);
    if (m->len + len > m->cap) {
        size_t cap = m->cap ? m->cap : 64;
        while (cap < m->len + len) cap *= 2;
        char *p = realloc(m->buf, cap);
        if (!p) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "stop: buffer of %zu bytes", cap);
        m->buf = p;
        m->cap = cap;
    }
    if (len > 0) memcpy(m->buf + m->len, delta, len);
    size_t old = m->len;
    m->len += len;

    /* A match must end inside the new bytes: one ending earlier was found by an earlier call,
     * and none can start before the buffer since the held suffix covers every open prefix. */
    for (size_t end = old + 1; end <= m->len; end++) {
        int32_t best = -1;
        for (int32_t i = 0; i < m->n_stops; i++) {
            size_t n = m->lens[i];
            if (n <= end && (best < 0 || n > m->lens[best]) &&
                m->buf[end - 1] == m->stops[i][n - 1] &&
                memcmp(m->buf + end - n, m->stops[i], n) == 0)
                best = i;
        }
        if (best >= 0) {
            m->stopped  = true;
            m->which    = best;
            *emit       = m->buf;
            *emit_len   = end - m->lens[best];
            m->consumed = m->len; /* the rest (the match and after) is dropped */
            if (stopped) *stopped = true;
            if (which) *which = best;
            return LLMRT_OK;
        }
    }
    size_t hold = held_suffix(m, m->buf, m->len);
    *emit       = m->buf;
    *emit_len   = m->len - hold;
    m->consumed = m->len - hold;
    return LLMRT_OK;
}

void llmrt_stop_matcher_flush(llmrt_stop_matcher *m, const char **emit, size_t *emit_len) {
    *emit     = "";
    *emit_len = 0;
    if (m->stopped) return;
    compact(m);
    *emit       = m->buf ? m->buf : "";
    *emit_len   = m->len;
    m->consumed = m->len;
}
