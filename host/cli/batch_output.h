/* The output file of `llmrt batch`: checked, whole-record appends and the resume scan.
 *
 * Durability contract (also in `llmrt batch --help` and the README):
 * - a record is one JSON line, handed to write(2) in one call as soon as its request finishes
 *   (so it survives a kill of llmrt); a short write is continued, and a write that fails leaves
 *   the file cut back to its last complete record, then stops the job with a message naming the
 *   file (nothing written before is lost, no torn line stays behind);
 * - fdatasync(2) every BATCH_SYNC_RECORDS records or BATCH_SYNC_SECONDS seconds, whichever comes
 *   first, and at the end (so a power loss costs at most that much, and resume redoes it);
 * - on start the whole existing file is validated: every line a JSON object with a string
 *   custom_id (or, for an input line that had none, "custom_id": null and its "line"), no
 *   record twice. A torn last line (an interrupted write) is cut off; damage
 *   anywhere else is refused with the line number, since repairing it would drop records. */
#ifndef LLMRT_CLI_BATCH_OUTPUT_H
#define LLMRT_CLI_BATCH_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "id_set.h"

#include <cjson/cJSON.h>

#define BATCH_SYNC_RECORDS 64
#define BATCH_SYNC_SECONDS 5.0

typedef struct batch_output {
    const char *path;
    int         fd;              /* O_WRONLY | O_APPEND, -1 when closed */
    off_t       committed;       /* size of the file up to its last complete record */
    int64_t     unsynced;        /* records written since the last fdatasync */
    double      last_sync;       /* cli_now() of the last fdatasync */
    bool        failed;          /* a write failed: the job must stop */
} batch_output;

/* The key of a record in the sets of done and seen records: "i" + its custom_id, or, for an
 * input line without a string custom_id (its error record has "custom_id": null), "l" + its
 * line number; the prefixes keep any custom_id ("line-7" too) apart from any line. malloc'd;
 * NULL when out of memory. */
char *batch_record_key(const char *custom_id, int64_t line_no);
/* The key of an output record (a parsed line); NULL when it has neither a string custom_id nor
 * a null one with an integer "line" >= 1, or when out of memory. */
char *batch_record_key_of(const cJSON *record);

/* Validates (and repairs a torn tail of) the existing file at `path`, adding its records' keys
 * (batch_record_key) to `done`; a missing file is empty. -1 with a message on stderr when the file cannot be read,
 * is not a regular file, or is damaged before its last line. */
int batch_output_scan(const char *path, id_set *done);

/* Opens `path` for appending (creating it), takes an exclusive flock(2) on it for the life of
 * the job (a second job on the same output is refused: it would redo the same lines), then
 * batch_output_scan()s it into `done`. -1 with a message on stderr. */
int batch_output_open(batch_output *o, const char *path, id_set *done);

/* Appends one record (`json` without its newline). 0, or -1 with a message on stderr and the
 * file cut back to its last complete record; after a failure every later call fails too. */
int batch_output_write(batch_output *o, const char *json);

/* fdatasync when the cadence says so (force: now). -1 with a message on failure. */
int batch_output_sync(batch_output *o, bool force);

/* Syncs and closes; -1 with a message when either fails. Safe on a closed output. */
int batch_output_close(batch_output *o);

#endif
