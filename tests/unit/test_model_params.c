/* The llmrt_model_params fields that replaced the library's environment variables:
 *   - defaults; an older, smaller struct_size loads with the defaults of the newer fields;
 *   - out-of-range values are LLMRT_ERR_INVALID_ARG naming the field;
 *   - dequantize_weights loads a 4-bit GGUF without "q4" (what LLMRT_NO_Q4=1 did), the default
 *     keeps it 4-bit, and the environment variable no longer changes anything;
 *   - cpu_isa GENERIC / AVX2 / AVX512 all load and give the same greedy logits' argmax;
 *   - a load with no fallback reports n_fallbacks 0 and "" in llmrt_model_info. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llmrt_experimental.h"
#include "test_util.h"

#define Q4_GGUF LLMRT_TEST_DATA_DIR "/tiny/llama_q4_0.gguf"

static llmrt_model *load(const llmrt_model_params *p, const char *path) {
    llmrt_model *m = NULL;
    llmrt_status s = llmrt_model_load(path, p, &m);
    CHECK_MSG(s == LLMRT_OK, "load %s: %s %s", path, llmrt_status_str(s), llmrt_last_error());
    return m;
}

static void info_of(llmrt_model *m, llmrt_model_info *info) {
    memset(info, 0, sizeof *info);
    info->struct_size = sizeof *info;
    CHECK(m && llmrt_model_get_info(m, info) == LLMRT_OK);
}

int main(void) {
    llmrt_model_params d = llmrt_model_default_params();
    CHECK(d.struct_size == sizeof d);
    CHECK(d.tp_timeout_s == 0 && d.tp_spin_us == -1);
    CHECK(d.activation_dtype == LLMRT_ACTIVATION_AUTO && d.cpu_isa == LLMRT_CPU_ISA_AUTO);
    CHECK(!d.dequantize_weights && !d.allow_fallback);
    CHECK(d.kv_cache_dtype == LLMRT_KV_CACHE_AUTO);
    /* the new fields start past the 0.1.0 struct's end (its padding included) */
    CHECK(offsetof(llmrt_model_params, tp_timeout_s) >=
          ((offsetof(llmrt_model_params, tensor_parallel) + sizeof(int32_t) + 7) & ~(size_t)7));

    /* an older header: struct_size up to tensor_parallel, garbage after it is not read */
    llmrt_model_params old = d;
    old.struct_size        = (uint32_t)offsetof(llmrt_model_params, tp_timeout_s);
    old.n_threads          = 1;
    old.dequantize_weights = true;                   /* past struct_size: ignored */
    old.cpu_isa            = (llmrt_cpu_isa)99;      /* past struct_size: ignored */
    llmrt_model     *m     = load(&old, Q4_GGUF);
    llmrt_model_info info;
    info_of(m, &info);
    CHECK_MSG(strstr(info.weight_format, "q4") != NULL, "old struct: %s", info.weight_format);
    CHECK(info.n_fallbacks == 0 && info.fallback[0] == 0);
    llmrt_model_destroy(m);

    /* out of range */
    llmrt_model_params p = d;
    llmrt_model       *bad = NULL;
    p.cpu_isa              = (llmrt_cpu_isa)7;
    CHECK_STATUS(llmrt_model_load(Q4_GGUF, &p, &bad), LLMRT_ERR_INVALID_ARG, "cpu_isa");
    p                  = d;
    p.activation_dtype = (llmrt_activation_dtype)-2;
    CHECK_STATUS(llmrt_model_load(Q4_GGUF, &p, &bad), LLMRT_ERR_INVALID_ARG, "activation_dtype");
    p                = d;
    p.kv_cache_dtype = (llmrt_kv_cache_dtype)5; /* one past LLMRT_KV_CACHE_FP32 */
    CHECK_STATUS(llmrt_model_load(Q4_GGUF, &p, &bad), LLMRT_ERR_INVALID_ARG, "kv_cache_dtype");
    p                 = d; /* more threads to pin than CPUs to pin them to */
    p.cpu_pin_threads = true;
    p.n_threads       = (int32_t)sysconf(_SC_NPROCESSORS_ONLN) + 1;
    CHECK_STATUS(llmrt_model_load(Q4_GGUF, &p, &bad), LLMRT_ERR_INVALID_ARG, "cpu_pin_threads");
    p.n_threads       = 1;
    p.tensor_parallel = 2;
    CHECK_STATUS(llmrt_model_load(Q4_GGUF, &p, &bad), LLMRT_ERR_UNSUPPORTED, "cpu_pin_threads");
    p            = d;
    p.tp_spin_us = -5;
    CHECK_STATUS(llmrt_model_load(Q4_GGUF, &p, &bad), LLMRT_ERR_INVALID_ARG, "tp_spin_us");
    CHECK(bad == NULL);

    /* dequantize_weights, and the old environment variable has no effect on the library */
    p                    = d;
    p.n_threads          = 1;
    p.dequantize_weights = true;
    m                    = load(&p, Q4_GGUF);
    info_of(m, &info);
    CHECK_MSG(strstr(info.weight_format, "q4") == NULL, "dequantize_weights: %s",
              info.weight_format);
    CHECK(info.n_fallbacks == 0); /* asked for: not a fallback */
    llmrt_model_destroy(m);

    /* an 8-bit KV cache: 1-byte elements in the info, and a pool of Hkv * (hd + 4) bytes per
     * layer's K (and V) slot */
    p                = d;
    p.n_threads      = 1;
    p.kv_cache_dtype = LLMRT_KV_CACHE_INT8;
    m                = load(&p, Q4_GGUF);
    info_of(m, &info);
    CHECK(info.kv_elem_bytes == 1);
    llmrt_kv_cache       *kv8 = NULL;
    llmrt_kv_cache_params kp8 = llmrt_kv_cache_default_params();
    kp8.max_tokens            = 32;
    CHECK(m && llmrt_kv_cache_create(m, &kp8, &kv8) == LLMRT_OK);
    CHECK_MSG(llmrt_kv_cache_bytes_per_token(kv8) ==
                  2LL * info.n_layers * info.n_kv_heads * (info.head_dim + 4),
              "int8 KV: %lld bytes per token", (long long)llmrt_kv_cache_bytes_per_token(kv8));
    llmrt_kv_cache_destroy(kv8);
    llmrt_model_destroy(m);
    /* a bf16 KV cache on the CPU: 2-byte elements, Hkv * hd * 2 bytes per slot, no scales */
    p.kv_cache_dtype = LLMRT_KV_CACHE_BF16;
    m                = load(&p, Q4_GGUF);
    info_of(m, &info);
    CHECK(info.kv_elem_bytes == 2);
    kv8 = NULL;
    CHECK(m && llmrt_kv_cache_create(m, &kp8, &kv8) == LLMRT_OK);
    CHECK_MSG(llmrt_kv_cache_bytes_per_token(kv8) ==
                  2LL * info.n_layers * info.n_kv_heads * info.head_dim * 2,
              "bf16 KV: %lld bytes per token", (long long)llmrt_kv_cache_bytes_per_token(kv8));
    llmrt_kv_cache_destroy(kv8);
    llmrt_model_destroy(m);
    /* AUTO on the CPU: fp32 with exact matmuls, bf16 with int8 matmuls or bf16 activations;
     * FP32 keeps fp32 in any mode (an unknown value is refused above) */
    static const struct {
        llmrt_cpu_matmul       mm;
        llmrt_activation_dtype act;
        llmrt_kv_cache_dtype   kv;
        int32_t                bytes;
    } kv_cases[] = {
        {LLMRT_CPU_MATMUL_EXACT, LLMRT_ACTIVATION_AUTO, LLMRT_KV_CACHE_AUTO, 4},
        {LLMRT_CPU_MATMUL_INT8, LLMRT_ACTIVATION_AUTO, LLMRT_KV_CACHE_AUTO, 2},
        {LLMRT_CPU_MATMUL_EXACT, LLMRT_ACTIVATION_BF16, LLMRT_KV_CACHE_AUTO, 2},
        {LLMRT_CPU_MATMUL_INT8, LLMRT_ACTIVATION_AUTO, LLMRT_KV_CACHE_FP32, 4},
        {LLMRT_CPU_MATMUL_EXACT, LLMRT_ACTIVATION_BF16, LLMRT_KV_CACHE_FP32, 4},
        {LLMRT_CPU_MATMUL_EXACT, LLMRT_ACTIVATION_AUTO, LLMRT_KV_CACHE_FP32, 4},
    };
    for (size_t i = 0; i < sizeof kv_cases / sizeof kv_cases[0]; i++) {
        p                  = d;
        p.n_threads        = 1;
        p.cpu_matmul       = kv_cases[i].mm;
        p.activation_dtype = kv_cases[i].act;
        p.kv_cache_dtype   = kv_cases[i].kv;
        m                  = load(&p, Q4_GGUF);
        info_of(m, &info);
        CHECK_MSG(info.kv_elem_bytes == kv_cases[i].bytes,
                  "matmul %d activations %d kv_cache_dtype %d: %d-byte KV elements, expected %d",
                  (int)kv_cases[i].mm, (int)kv_cases[i].act, (int)kv_cases[i].kv,
                  info.kv_elem_bytes, kv_cases[i].bytes);
        llmrt_model_destroy(m);
    }

    p                = d;
    p.n_threads      = 1;
    p.kv_cache_dtype = LLMRT_KV_CACHE_INT8;
    setenv("LLMRT_NO_Q4", "1", 1);
    p.dequantize_weights = false;
    m                    = load(&p, Q4_GGUF);
    info_of(m, &info);
    CHECK_MSG(strstr(info.weight_format, "q4") != NULL, "LLMRT_NO_Q4 still read: %s",
              info.weight_format);
    llmrt_model_destroy(m);
    unsetenv("LLMRT_NO_Q4");

    /* every CPU kernel set loads and runs */
    static const llmrt_cpu_isa isas[] = {LLMRT_CPU_ISA_GENERIC, LLMRT_CPU_ISA_AVX2,
                                         LLMRT_CPU_ISA_AVX512, LLMRT_CPU_ISA_AUTO};
    int32_t argmax[4];
    for (int i = 0; i < 4; i++) {
        p           = d;
        p.n_threads = 1;
        p.cpu_isa   = isas[i];
        m           = load(&p, Q4_GGUF);
        argmax[i]   = -1;
        if (!m) continue;
        info_of(m, &info);
        llmrt_kv_cache_params kp = llmrt_kv_cache_default_params();
        kp.n_blocks              = 2;
        llmrt_kv_cache *kv       = NULL;
        CHECK(llmrt_kv_cache_create(m, &kp, &kv) == LLMRT_OK);
        int32_t     tok[3] = {1, 5, 9}, pos[3] = {0, 1, 2}, seq[3] = {0, 0, 0}, table[1] = {0};
        llmrt_batch b      = {.n_tokens = 3, .tokens = tok, .positions = pos, .seq_ids = seq,
                              .n_seqs = 1, .max_blocks_per_seq = 1, .block_tables = table};
        float      *lg     = malloc((size_t)info.vocab_size * sizeof(float));
        if (kv && lg && llmrt_forward(kv, &b, lg, info.vocab_size) == LLMRT_OK) {
            argmax[i] = 0;
            for (int32_t v = 1; v < info.vocab_size; v++)
                if (lg[v] > lg[argmax[i]]) argmax[i] = v;
        }
        free(lg);
        llmrt_kv_cache_destroy(kv);
        llmrt_model_destroy(m);
        CHECK_MSG(argmax[i] >= 0 && argmax[i] == argmax[0], "cpu_isa %d: argmax %d vs %d",
                  (int)isas[i], argmax[i], argmax[0]);
    }
    return test_summary("test_model_params");
}
