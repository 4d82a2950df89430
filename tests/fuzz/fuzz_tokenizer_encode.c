/* libFuzzer harness: encoding arbitrary bytes (invalid UTF-8, NULs, special-token strings) with
 * the Mistral tokenizer (SentencePiece-style BPE with byte fallback), and decoding arbitrary ids.
 * Checks, besides ASan/UBSan: ids in range; decode gives valid UTF-8; streaming the ids gives
 * exactly the one-shot decode; and decode(encode(x)) == x for valid UTF-8 x without "▁" encoded
 * with specials off (the tokenizer is lossless there).
 *
 * Input: byte 0 = flags (bit 0 add_special, bit 1 parse_special; bits 2-4 pick the streaming
 * check, the dearest, which runs at most once and on the first MAX_STREAM ids: 0/1 = the
 * encoded ids without/with skip_special, 2/3 = the random ids without/with it, 4-7 = none),
 * the rest = text, of which only the first MAX_TEXT bytes are used: speed comes from many short
 * inputs (the tokenizer is loaded once; longer texts only repeat what short ones cover, at a cost
 * superlinear in length). The tokenizer is LLMRT_FUZZ_TOKENIZER_JSON if defined at build time, else
 * tests/data/tokenizers/mistral/tokenizer.json relative to the working directory. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_util.h"
#include "tokenizer/tokenizer.h"

#ifndef LLMRT_FUZZ_TOKENIZER_JSON
#define LLMRT_FUZZ_TOKENIZER_JSON "tests/data/tokenizers/mistral/tokenizer.json"
#endif

#define MAX_TEXT 256
#define MAX_STREAM 16

static llmrt_tokenizer *tk;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    llmrt_error err;
    if (llmrt_tokenizer_load_hf(LLMRT_FUZZ_TOKENIZER_JSON, NULL, &tk, &err) != LLMRT_OK) {
        fprintf(stderr, "fuzz_tokenizer_encode: %s\n", err.msg);
        abort();
    }
    return 0;
}

static char *stream(const int32_t *ids, int64_t n, bool skip, size_t *len) {
    llmrt_error        err;
    llmrt_detokenizer *d = NULL;
    if (llmrt_detokenizer_create(tk, skip, &d, &err) != LLMRT_OK) __builtin_trap();
    size_t cap = 64, used = 0;
    char  *acc = malloc(cap);
    for (int64_t i = 0; i <= n; i++) {
        const char  *delta;
        size_t       dl;
        llmrt_status st = i < n ? llmrt_detokenizer_push(d, ids[i], &delta, &dl, &err)
                                : llmrt_detokenizer_flush(d, &delta, &dl, &err);
        if (st != LLMRT_OK || !llmrt_utf8_valid(delta, dl)) __builtin_trap();
        if (used + dl + 1 > cap) {
            cap = (used + dl + 1) * 2;
            acc = realloc(acc, cap);
        }
        memcpy(acc + used, delta, dl);
        used += dl;
    }
    llmrt_detokenizer_destroy(d);
    *len = used;
    return acc;
}

/* a byte-fallback token, "<0xNN>" */
static bool is_byte(int32_t id) {
    const char *p = llmrt_tokenizer_piece(tk, id);
    return p && strlen(p) == 6 && !memcmp(p, "<0x", 3) && p[5] == '>';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    /* streaming re-decodes a window per id: at most once per input, as the flags pick */
    int         sel = (data[0] >> 2) & 7;
    bool        add = data[0] & 1, parse = data[0] & 2, stream_skip = sel & 1;
    bool        stream_ids = sel < 2, stream_rand = sel == 2 || sel == 3;
    const char *text = (const char *)data + 1;
    size_t      len  = size - 1 < MAX_TEXT ? size - 1 : MAX_TEXT;
    llmrt_error err;
    int32_t    *ids = NULL;
    int64_t     n   = 0;
    if (llmrt_tokenizer_encode(tk, text, len, add, parse, &ids, &n, &err) != LLMRT_OK) __builtin_trap();
    int32_t nv = llmrt_tokenizer_vocab_size(tk);
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= nv) __builtin_trap();
    for (int skip = 0; skip <= 1; skip++) {
        char  *one = NULL;
        size_t one_len;
        if (llmrt_tokenizer_decode(tk, ids, n, skip, &one, &one_len, &err) != LLMRT_OK) __builtin_trap();
        if (!llmrt_utf8_valid(one, one_len)) __builtin_trap();
        /* the first MAX_STREAM ids, or a few more so as not to cut a run of byte tokens (a run
         * cut short may be invalid UTF-8, which one-shot decoding turns into U+FFFD as a whole,
         * a case streaming cannot follow: see detokenizer.c) */
        if (skip == stream_skip && stream_ids) {
            int64_t k = n < MAX_STREAM ? n : MAX_STREAM;
            while (k < n && (is_byte(ids[k - 1]) || is_byte(ids[k]))) k++; /* whole byte runs */
            char   *ref = one;
            size_t  ref_len = one_len, s_len;
            if (k < n && llmrt_tokenizer_decode(tk, ids, k, skip, &ref, &ref_len, &err) != LLMRT_OK)
                __builtin_trap();
            char *s = stream(ids, k, skip, &s_len);
            if (s_len != ref_len || memcmp(s, ref, ref_len) != 0) __builtin_trap();
            free(s);
            if (ref != one) free(ref);
        }
        if (!skip && !add && !parse && llmrt_utf8_valid(text, len) && !memmem(text, len, "\xe2\x96\x81", 3) &&
            (one_len != len || memcmp(one, text, len) != 0))
            __builtin_trap();
        free(one);
    }
    free(ids);
    /* the same bytes as ids: decode must cope with any sequence of valid ids */
    int64_t  m    = (int64_t)(len / 2);
    int32_t *rand = malloc((size_t)(m ? m : 1) * sizeof *rand);
    for (int64_t i = 0; i < m; i++) rand[i] = (int32_t)(((uint8_t)text[2 * i] << 8 | (uint8_t)text[2 * i + 1]) % nv);
    char  *one = NULL;
    size_t one_len, s_len;
    if (llmrt_tokenizer_decode(tk, rand, m, stream_skip, &one, &one_len, &err) != LLMRT_OK) __builtin_trap();
    if (!llmrt_utf8_valid(one, one_len)) __builtin_trap();
    /* valid UTF-8 deltas only: garbage ids may stream differently from the one-shot decode
     * (a byte-fallback run that turns out invalid, see detokenizer.c); garbage grows the
     * detokenizer's window to its cap */
    if (stream_rand) free(stream(rand, m < MAX_STREAM ? m : MAX_STREAM, stream_skip, &s_len));
    free(one);
    free(rand);
    return 0;
}
