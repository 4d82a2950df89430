/* `llmrt bench tokenizer`: single-thread tokenizer throughput (encode MB/s and tokens/s, decode
 * tokens/s) of a tokenizer.json or GGUF tokenizer on a text file, the whole file as one text.
 * Compare with python/tools/bench_tokenizer.py, which times the `tokenizers` package the same
 * way on the same file. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llmrt_experimental.h"
#include "../host/cli/cli.h"
#include "../host/cli/cli_args.h"

int bench_tokenizer_main(int argc, char **argv);

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = cli_fopen_regular(path);
    if (!f) {
        fprintf(stderr, "llmrt bench tokenizer: %s\n", llmrt_last_error());
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char  *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *b2 = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
            if (!b2) free(buf);
            buf = b2;
            cap *= 2;
        }
    }
    fclose(f);
    *len = n;
    return buf;
}

int bench_tokenizer_main(int argc, char **argv) {
    const char *tok_path = NULL, *text_path = NULL, *config = NULL;
    double      min_time = 1.0;
    int         reps     = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) config = argv[++i];
        else if (!strcmp(argv[i], "--time") && i + 1 < argc) {
            if (cli_arg_double("--time", argv[++i], 1e-6, 3600, &min_time) < 0) return 2;
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            if (cli_arg_int("--reps", argv[++i], 1, 1000, &reps) < 0) return 2;
        }
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) tok_path = text_path = NULL, i = argc;
        else if (!tok_path) tok_path = argv[i];
        else if (!text_path) text_path = argv[i];
        else tok_path = NULL, i = argc;
    }
    if (!tok_path || !text_path) {
        fprintf(stderr,
                "usage: llmrt bench tokenizer TOKENIZER TEXT_FILE [--config tokenizer_config.json]\n"
                "                             [--time SECONDS_PER_REP] [--reps N]\n"
                "  TOKENIZER: a tokenizer.json, a directory holding one, or a .gguf file.\n"
                "  Encodes the whole file as one text (no special-token parsing, no BOS/EOS) on one\n"
                "  thread; prints the median of N repetitions of at least SECONDS each (default 5 x 1 s).\n");
        return 2;
    }
    double                t0 = now_s();
    llmrt_text_tokenizer *tk = NULL;
    if (llmrt_text_tokenizer_load(tok_path, config, &tk) != LLMRT_OK) {
        fprintf(stderr, "llmrt bench tokenizer: %s\n", llmrt_last_error());
        return 1;
    }
    double load_s = now_s() - t0;
    size_t len    = 0;
    char  *text   = read_file(text_path, &len);
    if (!text) {
        fprintf(stderr, "llmrt bench tokenizer: cannot read %s\n", text_path);
        llmrt_text_tokenizer_destroy(tk);
        return 1;
    }
    /* the size query, then the ids; the timed encodes write into a buffer of that size */
    int32_t  n   = 0;
    int32_t *ids = NULL, *scratch = NULL;
    llmrt_status s = llmrt_text_tokenizer_encode(tk, text, len, false, false, NULL, 0, &n);
    if (s == LLMRT_ERR_BUFFER_TOO_SMALL || (s == LLMRT_OK && n == 0)) {
        size_t cap = n > 0 ? (size_t)n : 1;
        ids        = malloc(cap * sizeof *ids);
        scratch    = malloc(cap * sizeof *scratch);
        s = ids && scratch ? llmrt_text_tokenizer_encode(tk, text, len, false, false, ids, n, &n)
                           : LLMRT_ERR_OUT_OF_MEMORY;
    }
    if (s != LLMRT_OK) {
        fprintf(stderr, "llmrt bench tokenizer: %s\n",
                s == LLMRT_ERR_OUT_OF_MEMORY && !(ids && scratch) ? "out of memory" : llmrt_last_error());
        free(ids);
        free(scratch);
        free(text);
        llmrt_text_tokenizer_destroy(tk);
        return 1;
    }
    /* decoded text: the source's bytes, give or take normalisation; sized by a query */
    size_t dec_cap = 0;
    s              = llmrt_text_tokenizer_decode(tk, ids, n, false, NULL, 0, &dec_cap);
    char *dec_buf  = NULL;
    if (s == LLMRT_ERR_BUFFER_TOO_SMALL && dec_cap < SIZE_MAX) {
        dec_buf = malloc(++dec_cap);
        s       = dec_buf ? LLMRT_OK : LLMRT_ERR_OUT_OF_MEMORY;
    }
    if (s != LLMRT_OK) {
        fprintf(stderr, "llmrt bench tokenizer: %s\n",
                s == LLMRT_ERR_OUT_OF_MEMORY ? "out of memory" : llmrt_last_error());
        free(ids);
        free(scratch);
        free(text);
        llmrt_text_tokenizer_destroy(tk);
        return 1;
    }
    double *enc = calloc((size_t)reps, sizeof *enc), *dec = calloc((size_t)reps, sizeof *dec);
    double *str = calloc((size_t)reps, sizeof *str);
    int     rc  = enc && dec && str ? 0 : 1;
    for (int r = 0; r < reps && rc == 0; r++) {
        /* encode: as many whole-text calls as fit in min_time */
        long   iters = 0;
        double start = now_s(), el;
        do {
            int32_t m = 0;
            if (llmrt_text_tokenizer_encode(tk, text, len, false, false, scratch, n, &m) != LLMRT_OK)
                rc = 1;
            iters++;
        } while ((el = now_s() - start) < min_time && rc == 0);
        enc[r] = el / (double)iters;
        iters  = 0;
        start  = now_s();
        do {
            size_t sl;
            if (llmrt_text_tokenizer_decode(tk, ids, n, false, dec_buf, dec_cap, &sl) != LLMRT_OK)
                rc = 1;
            iters++;
        } while ((el = now_s() - start) < min_time && rc == 0);
        dec[r] = el / (double)iters;
        /* streaming: one detokenizer push per token, as a server does */
        iters = 0;
        start = now_s();
        do {
            llmrt_text_detokenizer *d = NULL;
            const char             *delta;
            size_t                  dl;
            if (llmrt_text_detokenizer_create_from_tokenizer(tk, false, &d) != LLMRT_OK) rc = 1;
            for (int32_t i = 0; i < n && rc == 0; i++)
                if (llmrt_text_detokenizer_push(d, ids[i], &delta, &dl) != LLMRT_OK) rc = 1;
            if (rc == 0 && llmrt_text_detokenizer_flush(d, &delta, &dl) != LLMRT_OK) rc = 1;
            llmrt_text_detokenizer_destroy(d);
            iters++;
        } while ((el = now_s() - start) < min_time && rc == 0);
        str[r] = el / (double)iters;
    }
    if (rc == 0) {
        qsort(enc, (size_t)reps, sizeof *enc, cmp_double);
        qsort(dec, (size_t)reps, sizeof *dec, cmp_double);
        qsort(str, (size_t)reps, sizeof *str, cmp_double);
        double e = enc[reps / 2], d = dec[reps / 2], sd = str[reps / 2];
        printf("tokenizer: %s (%d ids, loaded in %.3f s)\n", tok_path,
               llmrt_text_tokenizer_vocab_size(tk), load_s);
        printf("text:      %s (%zu bytes -> %lld tokens)\n", text_path, len, (long long)n);
        printf("encode:    %8.2f MB/s  %8.3f M tokens/s  (%.1f us per text, median of %d)\n",
               (double)len / e / 1e6, (double)n / e / 1e6, e * 1e6, reps);
        printf("decode:    %8.2f MB/s  %8.3f M tokens/s  (%.1f us per text)\n", (double)len / d / 1e6,
               (double)n / d / 1e6, d * 1e6);
        printf("stream:    %8.2f MB/s  %8.3f M tokens/s  (%.2f us per token, detokenizer push)\n",
               (double)len / sd / 1e6, (double)n / sd / 1e6, sd * 1e6 / (double)(n ? n : 1));
    } else {
        fprintf(stderr, "llmrt bench tokenizer: %s\n", enc && dec && str ? llmrt_last_error() : "out of memory");
    }
    free(enc);
    free(dec);
    free(str);
    free(dec_buf);
    free(ids);
    free(scratch);
    free(text);
    llmrt_text_tokenizer_destroy(tk);
    return rc;
}
