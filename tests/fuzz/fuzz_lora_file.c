/* libFuzzer harness: the LoRA adapter loader (host/format/lora_file.c) must refuse any malformed
 * adapter with a status and a message, never crash, leak, hang on a regular expression or read
 * outside a file; an accepted adapter must be consistent (ranks, sizes) and every A / B value it
 * hands out finite and inside its allocation (ASan checks the reads).
 *
 * Input: byte 0 picks the format.
 *   even: a PEFT directory. Bytes 1-2 (little-endian) are the length of adapter_config.json,
 *         which follows; the rest is adapter_model.safetensors. Bit 1 of byte 0 writes the rest
 *         as adapter_model.bin instead (the pickle refusal).
 *   odd:  the rest is a GGUF adapter file.
 * One temporary directory is reused for every input; the model config is fixed and tiny
 * (D 32, 2 heads, 1 KV head, head_dim 16, F 48, 2 layers). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format/lora_file.h"

static char dir[64], config_path[96], st_path[96], bin_path[96], gguf_path[96];

/* libFuzzer ends with exit(): the reused files go with it */
static void cleanup(void) {
    unlink(config_path);
    unlink(st_path);
    unlink(bin_path);
    unlink(gguf_path);
    rmdir(dir);
}

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/fuzz_lora_file_XXXXXX");
    if (!mkdtemp(dir)) __builtin_trap();
    snprintf(config_path, sizeof config_path, "%s/adapter_config.json", dir);
    snprintf(st_path, sizeof st_path, "%s/adapter_model.safetensors", dir);
    snprintf(bin_path, sizeof bin_path, "%s/adapter_model.bin", dir);
    snprintf(gguf_path, sizeof gguf_path, "%s.gguf", dir);
    atexit(cleanup);
}

static void write_all(const char *path, const uint8_t *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) __builtin_trap();
    if (n && fwrite(data, 1, n, f) != n) __builtin_trap();
    fclose(f);
}

static llmrt_model_config tiny_config(void) {
    llmrt_model_config c = {0};
    c.vocab_size         = 32;
    c.hidden_size        = 32;
    c.intermediate_size  = 48;
    c.n_layers           = 2;
    c.n_heads            = 2;
    c.n_kv_heads         = 1;
    c.head_dim           = 16;
    c.max_context        = 64;
    return c;
}

/* Every pair's arrays are read end to end (ASan), and the totals agree with the pairs. */
static void check_loaded(const llmrt_lora_file *f, const llmrt_model_config *cfg) {
    int32_t  n_pairs = 0, max_rank = 0;
    uint64_t bytes   = 0;
    if (f->n_layers != cfg->n_layers || !f->pairs || !f->mem) __builtin_trap();
    for (int32_t i = 0; i < f->n_layers * LLMRT_LORA_N_TARGETS; i++) {
        const llmrt_lora_pair *p = &f->pairs[i];
        int64_t                n, k;
        llmrt_lora_target_shape(cfg, (llmrt_lora_target)(i % LLMRT_LORA_N_TARGETS), &n, &k);
        if (p->rank == 0) {
            if (p->a || p->b) __builtin_trap();
            continue;
        }
        if (p->rank < 0 || p->rank > n || p->rank > k || p->rank > LLMRT_LORA_MAX_RANK ||
            !p->a || !p->b || p->scale - p->scale != 0)
            __builtin_trap();
        for (int64_t j = 0; j < p->rank * k; j++)
            if (p->a[j] - p->a[j] != 0) __builtin_trap(); /* NaN or inf */
        for (int64_t j = 0; j < n * p->rank; j++)
            if (p->b[j] - p->b[j] != 0) __builtin_trap();
        n_pairs++;
        max_rank = p->rank > max_rank ? p->rank : max_rank;
        bytes += (uint64_t)(p->rank * (n + k)) * sizeof(float);
    }
    if (n_pairs == 0 || n_pairs != f->n_pairs || max_rank != f->max_rank || bytes != f->bytes)
        __builtin_trap();
    if (strcmp(f->format, "peft") != 0 && strcmp(f->format, "gguf") != 0) __builtin_trap();
}

static const char *prepare(const uint8_t *data, size_t size) {
    if (data[0] & 1) {
        write_all(gguf_path, data + 1, size - 1);
        return gguf_path;
    }
    size_t n_config = size >= 3 ? (size_t)(data[1] | data[2] << 8) : 0;
    size_t rest_at  = size >= 3 ? 3 : size;
    if (n_config > size - rest_at) n_config = size - rest_at;
    write_all(config_path, data + rest_at, n_config);
    rest_at += n_config;
    bool bin = data[0] & 2;
    unlink(bin ? st_path : bin_path);
    write_all(bin ? bin_path : st_path, data + rest_at, size - rest_at);
    return dir;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!dir[0]) setup();
    if (size == 0) return 0;
    llmrt_model_config cfg  = tiny_config();
    const char        *path = prepare(data, size);
    llmrt_lora_file    f;
    llmrt_error        err = {0};
    if (llmrt_lora_file_load(path, &cfg, &f, &err) != LLMRT_OK) {
        /* a failed load leaves nothing to free and always says why */
        static const llmrt_lora_file zero;
        if (memcmp(&f, &zero, sizeof f) != 0 || err.msg[0] == 0) __builtin_trap();
        return 0;
    }
    check_loaded(&f, &cfg);
    llmrt_lora_file_free(&f);
    return 0;
}
