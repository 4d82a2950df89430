#include "regular_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

const char *llmrt_file_kind(mode_t mode) {
    if (S_ISREG(mode)) return "a regular file";
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    return "not a regular file";
}

int llmrt_open_regular_file(const char *path, struct stat *st_out, llmrt_error *err) {
    /* O_NONBLOCK: opening a FIFO for reading without a writer returns at once instead of
     * waiting for one */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        llmrt_err(err, LLMRT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        llmrt_err(err, LLMRT_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        llmrt_err(err, LLMRT_ERR_IO, "%s: is %s, not a regular file", path,
                  llmrt_file_kind(st.st_mode));
        return -1;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        int e = errno;
        close(fd);
        llmrt_err(err, LLMRT_ERR_IO, "%s: fcntl: %s", path, strerror(e));
        return -1;
    }
    if (st_out) *st_out = st;
    return fd;
}

FILE *llmrt_fopen_regular_file(const char *path, llmrt_error *err) {
    int fd = llmrt_open_regular_file(path, NULL, err);
    if (fd < 0) return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        int e = errno;
        close(fd);
        llmrt_err(err, LLMRT_ERR_IO, "%s: cannot open: %s", path, strerror(e));
    }
    return f;
}

int llmrt_probe_regular_file(const char *path, llmrt_error *err) {
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT) return 0;
        llmrt_err(err, LLMRT_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        llmrt_err(err, LLMRT_ERR_IO, "%s: is %s, not a regular file", path,
                  llmrt_file_kind(st.st_mode));
        return -1;
    }
    return 1;
}
