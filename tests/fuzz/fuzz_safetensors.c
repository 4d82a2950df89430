/* libFuzzer harness: the safetensors reader must reject any malformed input with a status, never
 * crash, leak or read outside the buffer. Accepted files are walked so that ASan checks that every
 * tensor's bytes lie inside the input. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "format/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    llmrt_st_file f;
    llmrt_error err;
    if (llmrt_safetensors_parse(data, size, "fuzz.safetensors", &f, &err) != LLMRT_OK) {
        /* a failed parse leaves nothing to free and always says why */
        if (f.tensors || f.n_tensors || err.msg[0] == 0) __builtin_trap();
        return 0;
    }
    volatile uint8_t sink = 0;
    for (int64_t i = 0; i < f.n_tensors; i++) {
        const llmrt_st_tensor *t = &f.tensors[i];
        if (t->nbytes) sink ^= t->data[0] ^ t->data[t->nbytes - 1];
        if (llmrt_safetensors_find(&f, t->name) != t) __builtin_trap();
    }
    (void)sink;
    llmrt_safetensors_close(&f);
    return 0;
}
