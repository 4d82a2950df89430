#include "mapped_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "regular_file.h"

llmrt_status llmrt_mapped_file_open(const char *path, llmrt_mapped_file *out, llmrt_error *err) {
    memset(out, 0, sizeof *out);
    struct stat st;
    int         fd = llmrt_open_regular_file(path, &st, err);
    if (fd < 0) return err ? err->status : LLMRT_ERR_IO;
    out->size = (uint64_t)st.st_size;
    if (out->size > 0) {
        void *p = mmap(NULL, (size_t)out->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return llmrt_err(err, LLMRT_ERR_IO, "%s: mmap failed: %s", path, strerror(e));
        }
        out->data = p;
    }
    close(fd);
    out->path = strdup(path);
    if (!out->path) {
        llmrt_mapped_file_close(out);
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    return LLMRT_OK;
}

void llmrt_mapped_file_close(llmrt_mapped_file *file) {
    if (file->data) munmap((void *)file->data, (size_t)file->size);
    free(file->path);
    memset(file, 0, sizeof *file);
}

llmrt_status llmrt_read_text_file(const char *path, uint64_t max_bytes, char **out, uint64_t *len,
                                  llmrt_error *err) {
    *out   = NULL;
    FILE *f = llmrt_fopen_regular_file(path, err);
    if (!f) return err ? err->status : LLMRT_ERR_IO;
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return llmrt_err(err, LLMRT_ERR_IO, "%s: cannot seek", path);
    }
    long size = ftell(f);
    if (size < 0 || (uint64_t)size > max_bytes) {
        fclose(f);
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: size %ld exceeds the limit of %llu bytes",
                         path, size, (unsigned long long)max_bytes);
    }
    rewind(f);
    char *buf = malloc((size_t)size + 1);
    if (!buf) {
        fclose(f);
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    size_t got = fread(buf, 1, (size_t)size, f);
    fclose(f);
    if (got != (size_t)size) {
        free(buf);
        return llmrt_err(err, LLMRT_ERR_IO, "%s: short read", path);
    }
    buf[size] = 0;
    *out      = buf;
    if (len) *len = (uint64_t)size;
    return LLMRT_OK;
}
