/* libFuzzer harness: encoding arbitrary bytes (invalid UTF-8, NULs, special-token strings) with
 * the Mistral tokenizer (SentencePiece-style BPE with byte fallback), and decoding arbitrary ids.
 * Checks, besides ASan/UBSan: ids in range; decode gives valid UTF-8; streaming the ids gives
 * exactly the one-shot decode; and decode(encode(x)) == x for valid UTF-8 x without "▁" encoded
 * with specials off (the tokenizer is lossless there).
 *
 * Input: byte 0 = flags (bit 0 add_special, bit 1 parse_special), the rest = text. The tokenizer
 * is LLMRT_FUZZ_TOKENIZER_JSON if defined at build time, else
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    bool        add = data[0] & 1, parse = data[0] & 2;
    const char *text = (const char *)data + 1;
    size_t      len  = size - 1;
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
        size_t s_len;
        char  *s = stream(ids, n, skip, &s_len);
        if (s_len != one_len || memcmp(s, one, one_len) != 0) __builtin_trap();
        if (!skip && !add && !parse && llmrt_utf8_valid(text, len) && !memmem(text, len, "\xe2\x96\x81", 3) &&
            (one_len != len || memcmp(one, text, len) != 0))
            __builtin_trap();
        free(s);
        free(one);
    }
    free(ids);
    /* the same bytes as ids: decode must cope with any sequence of valid ids */
    int64_t  m    = (int64_t)(len / 2);
    int32_t *rand = malloc((size_t)(m ? m : 1) * sizeof *rand);
    for (int64_t i = 0; i < m; i++) rand[i] = (int32_t)(((uint8_t)text[2 * i] << 8 | (uint8_t)text[2 * i + 1]) % nv);
    char  *one = NULL;
    size_t one_len, s_len;
    if (llmrt_tokenizer_decode(tk, rand, m, false, &one, &one_len, &err) != LLMRT_OK) __builtin_trap();
    if (!llmrt_utf8_valid(one, one_len)) __builtin_trap();
    free(stream(rand, m, false, &s_len));
    free(one);
    free(rand);
    return 0;
}
