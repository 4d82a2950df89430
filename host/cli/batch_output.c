#include "batch_output.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "llmrt_experimental.h"

/* --------------------------------------------------------------------------------------------- */
/* resume scan                                                                                   */
/* --------------------------------------------------------------------------------------------- */

/* Reads the whole file; NULL with a message on stderr. */
static char *read_whole(int fd, const char *path, off_t size) {
    size_t bytes;
    if (size < 0 || (uint64_t)size >= SIZE_MAX || __builtin_add_overflow((size_t)size, 1, &bytes)) {
        fprintf(stderr, "llmrt batch: %s: too large to read back\n", path);
        return NULL;
    }
    char *buf = malloc(bytes);
    if (!buf) {
        fprintf(stderr, "llmrt batch: %s: out of memory reading it back\n", path);
        return NULL;
    }
    size_t got = 0;
    while (got < (size_t)size) {
        ssize_t r = pread(fd, buf + got, (size_t)size - got, (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            fprintf(stderr, "llmrt batch: reading %s: %s\n", path, r < 0 ? strerror(errno) : "file shrank");
            free(buf);
            return NULL;
        }
        got += (size_t)r;
    }
    buf[got] = 0;
    return buf;
}

char *batch_record_key(const char *custom_id, int64_t line_no) {
    size_t n   = custom_id ? strlen(custom_id) + 2 : 24;
    char  *key = malloc(n);
    if (key && custom_id) snprintf(key, n, "i%s", custom_id);
    else if (key) snprintf(key, n, "l%lld", (long long)line_no);
    return key;
}

char *batch_record_key_of(const cJSON *record) {
    const cJSON *id   = cJSON_GetObjectItemCaseSensitive(record, "custom_id");
    const cJSON *line = cJSON_GetObjectItemCaseSensitive(record, "line");
    if (!cJSON_IsObject(record)) return NULL;
    if (cJSON_IsString(id)) return batch_record_key(id->valuestring, 0);
    /* a JSON number is a double: compared as one before the conversion */
    if (cJSON_IsNull(id) && cJSON_IsNumber(line) && line->valuedouble >= 1 &&
        line->valuedouble <= 9007199254740991.0 && floor(line->valuedouble) == line->valuedouble)
        return batch_record_key(NULL, (int64_t)line->valuedouble);
    return NULL;
}

/* Checks one complete line (NUL-terminated, without its newline); NULL when it is a valid
 * record (its key added to `in_file` and `done`), else why not. Repeats are looked for within
 * this file only: a data-parallel shard may repeat records of the merged output (the merge
 * drops them). */
static const char *check_record(const char *line, id_set *in_file, id_set *done) {
    if (!line[0]) return "empty line";
    cJSON *root = cJSON_Parse(line);
    if (!root) return "not valid JSON";
    char       *key    = batch_record_key_of(root);
    const char *reason = NULL;
    if (!key) reason = "no string \"custom_id\" (nor a null one with its input \"line\")";
    else if (id_set_has(in_file, key))
        reason = key[0] == 'i' ? "repeats a custom_id of an earlier line"
                               : "repeats the record of an input line of an earlier line";
    else if (!id_set_add(in_file, key) || !id_set_add(done, key)) reason = "out of memory";
    free(key);
    cJSON_Delete(root);
    return reason;
}

/* Opens the output with `access` (O_RDWR / O_WRONLY | O_APPEND), creating it, and checks it is
 * a regular file: O_NONBLOCK so that a FIFO at the path cannot block the open (it is refused),
 * cleared again after the check. *st: its fstat. -1 (said on stderr) or the descriptor. */
static int open_output_file(const char *path, int access, struct stat *st) {
    int fd = open(path, access | O_CREAT | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0644);
    if (fd < 0) {
        fprintf(stderr, "llmrt batch: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    int flags = fcntl(fd, F_GETFL);
    if (fstat(fd, st) != 0 || flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        fprintf(stderr, "llmrt batch: cannot open %s: %s\n", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st->st_mode)) {
        fprintf(stderr, "llmrt batch: %s: not a regular file; --output must be one (it is read "
                        "back to resume)\n", path);
        close(fd);
        return -1;
    }
    return fd;
}

int batch_output_scan(const char *path, id_set *done) {
    struct stat st;
    int         fd = open_output_file(path, O_RDWR, &st);
    if (fd < 0) return -1;
    char *buf = read_whole(fd, path, st.st_size);
    if (!buf) {
        close(fd);
        return -1;
    }
    int     rc      = 0;
    int64_t line_no = 0;
    id_set  in_file = {0};
    char   *line    = buf, *end;
    for (; rc == 0 && (end = memchr(line, '\n', (size_t)(buf + st.st_size - line))); line = end + 1) {
        line_no++;
        *end               = 0;
        const char *reason = check_record(line, &in_file, done);
        if (reason) {
            fprintf(stderr, "llmrt batch: %s line %lld: %s. Only the last line can be torn by an "
                            "interrupted write; damage before it is not repaired (that would drop "
                            "records): fix or delete that line, then rerun\n",
                    path, (long long)line_no, reason);
            rc = -1;
        }
    }
    off_t keep = (off_t)(line - buf);
    if (rc == 0 && keep != st.st_size) {
        /* a record is complete only with its newline: whatever follows the last one is the
         * remains of an interrupted write, redone by this run */
        fprintf(stderr, "llmrt batch: %s line %lld is a partial record (interrupted write): "
                        "removed\n", path, (long long)line_no + 1);
        if (ftruncate(fd, keep) != 0 || fdatasync(fd) != 0) {
            fprintf(stderr, "llmrt batch: cutting the partial record off %s: %s\n", path,
                    strerror(errno));
            rc = -1;
        }
    }
    free(buf);
    id_set_free(&in_file);
    if (close(fd) != 0 && rc == 0) {
        fprintf(stderr, "llmrt batch: closing %s: %s\n", path, strerror(errno));
        rc = -1;
    }
    return rc;
}

/* --------------------------------------------------------------------------------------------- */
/* appending                                                                                     */
/* --------------------------------------------------------------------------------------------- */

int batch_output_open(batch_output *o, const char *path, id_set *done) {
    *o = (batch_output){.path = path, .fd = -1, .last_sync = cli_now()};
    int present = 0; /* checked on the descriptor too */
    if (llmrt_file_probe_regular(path, &present) != LLMRT_OK) {
        fprintf(stderr, "llmrt batch: --output %s (it is read back to resume)\n",
                llmrt_last_error());
        return -1;
    }
    struct stat st;
    int         fd = open_output_file(path, O_WRONLY | O_APPEND, &st);
    if (fd < 0) return -1;
    /* two jobs appending to one output would both redo the same lines: duplicates */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "llmrt batch: %s: %s\n", path,
                errno == EWOULDBLOCK ? "another llmrt batch job is writing it"
                                     : strerror(errno));
        close(fd);
        return -1;
    }
    /* under the lock: validate, cut a torn tail, then count only complete records */
    if (batch_output_scan(path, done) != 0 || fstat(fd, &st) != 0) {
        close(fd);
        return -1;
    }
    o->fd        = fd;
    o->committed = st.st_size;
    return 0;
}

/* A failed append: cut the file back to its last complete record so that no torn line is left
 * between records (a later successful append would bury it in the middle of the file). */
static int fail_write(batch_output *o, int err) {
    o->failed = true;
    fprintf(stderr, "\nllmrt batch: writing %s failed: %s; the job stops here (the %lld bytes of "
                    "complete records already in it are kept: rerun the same command to "
                    "resume)\n", o->path, strerror(err), (long long)o->committed);
    if (ftruncate(o->fd, o->committed) != 0)
        fprintf(stderr, "llmrt batch: cutting the partial record off %s failed too (%s): the "
                        "next run removes it\n", o->path, strerror(errno));
    return -1;
}

int batch_output_write(batch_output *o, const char *json) {
    if (o->failed || o->fd < 0) return -1;
    size_t   n = strlen(json);
    size_t total;
    if (__builtin_add_overflow(n, 1, &total)) return fail_write(o, EOVERFLOW);
    char *line = malloc(total);
    if (!line) return fail_write(o, ENOMEM);
    memcpy(line, json, n);
    line[n] = '\n';
    /* one write of the whole line, so that a kill leaves it out rather than in pieces; a short
     * write (a signal, a filling disk) is continued, since O_APPEND keeps the rest adjacent */
    size_t off = 0;
    int    err = 0;
    while (off < total) {
        ssize_t w = write(o->fd, line + off, total - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            err = w < 0 ? errno : EIO;
            break;
        }
        off += (size_t)w;
    }
    free(line);
    if (off < total) return fail_write(o, err);
    o->committed += (off_t)total;
    o->unsynced++;
    return batch_output_sync(o, false);
}

int batch_output_sync(batch_output *o, bool force) {
    if (o->failed || o->fd < 0) return -1;
    double now = cli_now();
    if (!force && o->unsynced < BATCH_SYNC_RECORDS && now - o->last_sync < BATCH_SYNC_SECONDS)
        return 0;
    if (o->unsynced > 0 && fdatasync(o->fd) != 0) return fail_write(o, errno);
    o->unsynced  = 0;
    o->last_sync = now;
    return 0;
}

int batch_output_close(batch_output *o) {
    if (o->fd < 0) return 0;
    int rc = o->failed ? -1 : batch_output_sync(o, true);
    if (o->failed) (void)fdatasync(o->fd); /* best effort for the complete records kept */
    if (close(o->fd) != 0 && rc == 0) {
        fprintf(stderr, "llmrt batch: closing %s: %s\n", o->path, strerror(errno));
        rc = -1;
    }
    o->fd = -1;
    return rc;
}
