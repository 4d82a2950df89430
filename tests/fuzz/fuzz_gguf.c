/* libFuzzer harness: the GGUF reader must reject any malformed input with a status, never crash,
 * leak, allocate by an unchecked count or read outside the buffer. Accepted files are walked
 * (metadata strings and arrays, tensor data) and the getters exercised so that ASan checks that
 * every pointer handed out lies inside the input; the first block of each block-quantised tensor
 * is dequantised (format/ggml_quants.h) from whatever bytes it holds. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "format/ggml_quants.h"
#include "format/gguf.h"

static volatile uint8_t sink;

static void touch(const void *p, uint64_t n) {
    if (n) sink ^= ((const uint8_t *)p)[0] ^ ((const uint8_t *)p)[n - 1];
}

static void walk_kv(const llmrt_gguf_file *f, const llmrt_gguf_kv *kv) {
    static const uint64_t elem_size[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    llmrt_error err;
    uint64_t u;
    int64_t i;
    double d;
    bool b;
    llmrt_gguf_str s;
    const llmrt_gguf_kv *a;
    (void)llmrt_gguf_get_u64(f, kv->key, true, &u, &err);
    (void)llmrt_gguf_get_i64(f, kv->key, true, &i, &err);
    (void)llmrt_gguf_get_f64(f, kv->key, true, &d, &err);
    (void)llmrt_gguf_get_bool(f, kv->key, true, &b, &err);
    if (llmrt_gguf_get_str(f, kv->key, true, &s, &err) == LLMRT_OK) touch(s.ptr, s.len);
    if (kv->type != LLMRT_GGUF_ARRAY) return;
    if (llmrt_gguf_get_arr(f, kv->key, kv->arr_type, true, &a, &err) != LLMRT_OK || a != kv)
        __builtin_trap();
    if (kv->arr_type == LLMRT_GGUF_STRING) {
        for (uint64_t k = 0; k < kv->arr_n; k++)
            touch(kv->arr_strs[k].ptr, kv->arr_strs[k].len);
    } else {
        touch(kv->arr_data, kv->arr_n * elem_size[kv->arr_type]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    llmrt_gguf_file f;
    llmrt_error err;
    if (llmrt_gguf_parse(data, size, "fuzz.gguf", &f, &err) != LLMRT_OK) {
        /* a failed parse leaves nothing to free and always says why */
        if (f.kvs || f.tensors || f.n_kv || f.n_tensors || err.msg[0] == 0) __builtin_trap();
        return 0;
    }
    for (int64_t k = 0; k < f.n_kv; k++) {
        if (llmrt_gguf_find_kv(&f, f.kvs[k].key) != &f.kvs[k]) __builtin_trap();
        walk_kv(&f, &f.kvs[k]);
    }
    for (int64_t t = 0; t < f.n_tensors; t++) {
        if (llmrt_gguf_find_tensor(&f, f.tensors[t].name) != &f.tensors[t]) __builtin_trap();
        touch(f.tensors[t].data, f.tensors[t].nbytes);
        /* block types: the first block dequantised from whatever bytes it holds (the reference
         * dequantisers must stay inside the block the parser sized) */
        const llmrt_gguf_tensor *ti = &f.tensors[t];
        if (llmrt_ggml_is_block(ti->dtype) && ti->nbytes >= (uint64_t)llmrt_dtype_block_bytes(ti->dtype)) {
            float blk[256];
            llmrt_ggml_dequant_block(ti->dtype, ti->data, blk);
            touch(blk, sizeof blk[0]);
        }
    }
    llmrt_gguf_close(&f);
    return 0;
}
