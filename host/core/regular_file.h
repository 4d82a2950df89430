/* Opening files that must be regular files (models, configs, tokenizers, batch inputs).
 * A FIFO, a socket or a device at such a path would block open() or read() forever (a FIFO
 * without a writer) or read garbage, and a directory "reads" as an error far from its cause.
 * Every opener of an input file goes through here: the path is opened with O_NONBLOCK (so a
 * FIFO cannot block the open), checked with fstat, and refused with a message naming it unless
 * it is a regular file; only then is O_NONBLOCK cleared and the descriptor handed out. */
#ifndef LLMRT_CORE_REGULAR_FILE_H
#define LLMRT_CORE_REGULAR_FILE_H

#include <stdio.h>
#include <sys/stat.h>

#include "error.h"

/* Opens `path` read-only; returns the descriptor (O_CLOEXEC, blocking) or -1 with `err` set
 * (LLMRT_ERR_IO) naming the path and what it is instead. `st` (optional) receives its fstat. */
int llmrt_open_regular_file(const char *path, struct stat *st, llmrt_error *err);

/* The same as a read-only stdio stream ("rb"). */
FILE *llmrt_fopen_regular_file(const char *path, llmrt_error *err);

/* For optional files: 1 when `path` is a regular file, 0 when nothing is there (ENOENT), -1
 * with `err` set when something else is there (a FIFO, a directory, ...) or stat fails. */
int llmrt_probe_regular_file(const char *path, llmrt_error *err);

/* "a FIFO", "a directory", ... for messages. */
const char *llmrt_file_kind(mode_t mode);

#endif
