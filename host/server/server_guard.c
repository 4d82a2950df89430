/* llmrt serve: clients that send a request too slowly, and the descriptor limit. */
#ifdef LLMRT_HAVE_MHD
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "server_internal.h"

/* Slow requests (slowloris). MHD's --timeout is an idle timeout: a client sending a header or
 * body byte every second never trips it and holds a thread forever. So every connection is
 * watched from its start (MHD_CONNECTION_NOTIFY_STARTED) until its request is complete, headers
 * and body (the on_request call with no more upload data), and again from the end of each
 * request (keep-alive) to the next one's end; one whose request takes longer than --timeout
 * seconds to arrive is shut down (shutdown(2): its own thread then sees the end of the stream
 * and MHD closes it). The entry is removed at
 * MHD_CONNECTION_NOTIFY_CLOSED, before MHD closes the descriptor, so a reused one is never hit. */
typedef struct watch {
    int           fd;
    double        since; /* waiting for headers since; 0: a request is being handled */
    struct watch *next;
} watch;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    watch          *head;
    double          limit;
    bool            stop;
} W = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void watch_set(int fd, double since) {
    pthread_mutex_lock(&W.mu);
    for (watch *w = W.head; w; w = w->next)
        if (w->fd == fd) w->since = since;
    pthread_mutex_unlock(&W.mu);
}

void srv_guard_on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    (void)cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        watch *w = ci ? calloc(1, sizeof *w) : NULL;
        if (!w) return;
        w->fd    = ci->connect_fd;
        w->since = now_s();
        pthread_mutex_lock(&W.mu);
        w->next = W.head;
        W.head  = w;
        pthread_mutex_unlock(&W.mu);
        *socket_context = w;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        pthread_mutex_lock(&W.mu);
        for (watch **pp = &W.head; *pp; pp = &(*pp)->next)
            if (*pp == *socket_context) {
                *pp = (*pp)->next;
                break;
            }
        pthread_mutex_unlock(&W.mu);
        free(*socket_context);
        *socket_context = NULL;
    }
}

/* A connection is a descriptor (and a thread): the common soft limit of 1024 descriptors would
 * refuse clients long before the 2048-connection cap, so the soft limit goes up to what the hard
 * one allows, as nginx's worker_rlimit_nofile does. Best effort: a refusal keeps the old limit. */
void srv_raise_open_files_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            fprintf(stderr, "llmrt serve: cannot raise the open-files limit: %s\n", strerror(errno));
    }
}

static void *watchdog(void *arg) {
    (void)arg;
    pthread_mutex_lock(&W.mu);
    while (!W.stop) {
        struct timespec ts;
        deadline_in(&ts, 0.25);
        pthread_cond_timedwait(&W.cv, &W.mu, &ts);
        double now = now_s();
        for (watch *w = W.head; w; w = w->next)
            if (w->since > 0 && now - w->since > W.limit) {
                shutdown(w->fd, SHUT_RDWR);
                w->since = 0;
            }
    }
    pthread_mutex_unlock(&W.mu);
    return NULL;
}

static pthread_t watchdog_thread;

bool srv_guard_start(double limit_s) {
    W.limit = limit_s;
    return pthread_create(&watchdog_thread, NULL, watchdog, NULL) == 0;
}

void srv_guard_stop(void) {
    pthread_mutex_lock(&W.mu);
    W.stop = true;
    pthread_cond_broadcast(&W.cv);
    pthread_mutex_unlock(&W.mu);
    pthread_join(watchdog_thread, NULL);
}

void srv_guard_request_arrived(int fd) { watch_set(fd, 0); }

void srv_guard_await_request(int fd) { watch_set(fd, now_s()); }
#endif
