#include "batch_shards.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch_output.h"
#include "cli.h"
#include "id_set.h"
#include "llmrt_experimental.h"

int batch_shards_init(batch_shards *s, const char *out_path, int32_t tp) {
    if (llmrt_mpi_world_info(&s->world_rank, &s->world_size) != LLMRT_OK) {
        fprintf(stderr, "llmrt batch --data-parallel: %s\n", llmrt_last_error());
        return -1;
    }
    if (s->world_size % tp != 0) {
        fprintf(stderr, "llmrt batch --data-parallel: the job's %d processes do not form groups of "
                        "--tp %d\n", s->world_size, tp);
        return -1;
    }
    s->on       = true;
    s->n_groups = s->world_size / tp;
    s->group    = s->world_rank / tp;
    int n = snprintf(s->shard_path, sizeof s->shard_path, "%s.dp%d-of-%d", out_path, s->group,
                     s->n_groups);
    if (n < 0 || (size_t)n >= sizeof s->shard_path) {
        fprintf(stderr, "llmrt batch --data-parallel: output path too long\n");
        return -1;
    }
    return 0;
}

bool batch_shards_owns(const batch_shards *s, int64_t line_no) {
    return !s->on || (line_no - 1) % s->n_groups == s->group;
}

/* Reads a whole file (NUL-terminated); NULL when it does not exist or is not a regular file. */
static char *read_all(const char *path, size_t *len) {
    int present = 0;
    if (llmrt_file_probe_regular(path, &present) != LLMRT_OK || !present) return NULL;
    FILE *f = cli_fopen_regular(path);
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char  *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
        n += got;
        if (n + 1 == cap) {
            char *b2 = realloc(buf, cap *= 2);
            if (!b2) {
                free(buf);
                buf = NULL;
            } else {
                buf = b2;
            }
        }
    }
    fclose(f);
    if (buf) buf[n] = 0;
    *len = n;
    return buf;
}

int batch_shards_merge(const batch_shards *s, const char *out_path) {
    if (llmrt_mpi_world_barrier() != LLMRT_OK) {
        fprintf(stderr, "llmrt batch --data-parallel: %s\n", llmrt_last_error());
        return -1;
    }
    if (s->world_rank != 0) return 0;
    id_set ids = {0};
    size_t len = 0;
    /* the same checked, whole-record appends as the job's (a failure names the file, keeps
     * the complete records and leaves the shards for a rerun to merge) */
    batch_output out;
    int          rc     = batch_output_open(&out, out_path, &ids); /* ids: those already in it */
    int64_t      merged = 0;
    for (int32_t g = 0; g < s->n_groups && rc == 0; g++) {
        char path[4200];
        snprintf(path, sizeof path, "%s.dp%d-of-%d", out_path, g, s->n_groups);
        char *text = read_all(path, &len);
        if (!text) continue;
        for (char *line = text, *end; (end = strchr(line, '\n')) != NULL && rc == 0;
             line = end + 1) {
            *end           = 0;
            cJSON       *o  = cJSON_Parse(line);
            char *key = batch_record_key_of(o);
            bool  dup = key && id_set_has(&ids, key);
            if (!dup && key) id_set_add(&ids, key);
            free(key);
            cJSON_Delete(o);
            if (!dup && batch_output_write(&out, line) != 0) rc = -1;
            merged += !dup;
        }
        free(text);
        if (rc == 0 && batch_output_sync(&out, true) == 0) unlink(path);
    }
    if (batch_output_close(&out) != 0) rc = -1;
    if (rc != 0) fprintf(stderr, "llmrt batch: merging the shards into %s failed\n", out_path);
    else fprintf(stderr, "llmrt batch: merged %lld lines of %d shards into %s\n",
                 (long long)merged, s->n_groups, out_path);
    id_set_free(&ids);
    return rc;
}
