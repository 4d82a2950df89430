/* GGUF block-quantised files on the CUDA backend (cuda/ggml_matmul.h), under cusim or on a GPU:
 * the tiny Llama written by llama.cpp's own quantiser as Q4_K_M (Q4_K + Q6_K tensors), Q5_K_M,
 * Q6_K, Q5_0, Q5_1, Q3_K_M and Q2_K (tests/data/tiny/llama_k256_*.gguf, see test_kquant_gguf),
 * and the Q8_0 file. Per file:
 *   1. the load keeps every matrix in its GGUF blocks: no allow_fallback, n_fallbacks 0;
 *   2. all golden sequences in one batch (prefill: the tensor-core GEMM) against the fp64 forward
 *      over the dequantised weights in the golden (HF transformers in float64):
 *      max |cuda - fp64| <= TOL * max|logit|;
 *   3. a prompt, then teacher-forced decode steps of one token (the GEMV) against the CPU
 *      backend's logits (fp32, its own K-quant kernels) on the same file, same bound.
 * TOL is the CUDA backend's fp16 bound (test_cuda_backend's TOL_F16): fp16 activations and,
 * on the GEMM path, fp16-rounded weights; with bf16 activations (Q4_K_M and Q5_0 files) its bf16
 * bound TOL_BF16. Measured figures are printed per file.
 * Also: f32 activations (the kernels take fp16 / bf16 only) fail the load naming the type unless
 * allow_fallback, which dequantises and says so; tensor parallel 2 on the Q5_0 file (o_proj /
 * down_proj cut into whole 32-blocks, the rest by rows) matches the CPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_backend.h"
#include "golden.h"
#include "llmrt_experimental.h"
#include "test_util.h"

#define TOL      3e-2
#define TOL_BF16 1.5e-1
#define BLOCK    16
#define N_STEPS  6
#define N_PROMPT 12

static llmrt_model *load(const char *path, llmrt_device device, llmrt_activation_dtype act,
                         bool allow_fallback, int32_t tp) {
    llmrt_model_params p = llmrt_model_default_params();
    p.device = device;
    p.n_threads = 2;
    p.activation_dtype = act;
    p.allow_fallback = allow_fallback;
    p.tensor_parallel = tp;
    llmrt_model *m = NULL;
    llmrt_status s = llmrt_model_load(path, &p, &m);
    CHECK_MSG(s == LLMRT_OK, "load %s on %s (tp %d): %s %s", path,
              device == LLMRT_DEVICE_CUDA ? "cuda" : "cpu", tp, llmrt_status_str(s),
              llmrt_last_error());
    return s == LLMRT_OK ? m : NULL;
}

static double max_rel_err(const float *a, const float *ref, int64_t rows, int32_t V) {
    double worst = 0;
    for (int64_t r = 0; r < rows; r++) {
        double e, m;
        golden_compare(a + r * V, ref + r * V, V, &e, &m);
        double rel = m > 0 ? e / m : e;
        if (!(rel <= worst)) worst = rel; /* NaN sticks */
    }
    return worst;
}

/* Every golden sequence in one batch; logits in the golden's row order (sequence by sequence). */
static llmrt_status golden_batch(llmrt_model *m, const golden *g, float *ordered) {
    int32_t T = 0, max_blocks = 0;
    for (int32_t s = 0; s < g->n_seqs; s++) {
        T += g->seq_len[s];
        int32_t nb = (g->seq_len[s] + BLOCK - 1) / BLOCK;
        if (nb > max_blocks) max_blocks = nb;
    }
    int32_t *tok = malloc((size_t)T * 4), *pos = malloc((size_t)T * 4),
            *seq = malloc((size_t)T * 4);
    int32_t *outs = malloc((size_t)T * 4), *table = malloc((size_t)g->n_seqs * max_blocks * 4);
    int64_t *row = malloc((size_t)T * 8), r0 = 0;
    float *lg = malloc((size_t)T * g->vocab * 4);
    for (int32_t b = 0; b < g->n_seqs * max_blocks; b++)
        table[b] = b;
    int32_t t = 0;
    for (int32_t s = 0; s < g->n_seqs; s++) {
        for (int32_t k = 0; k < g->seq_len[s]; k++, t++)
            tok[t] = g->seq_ids[s][k], pos[t] = k, seq[t] = s, outs[t] = t, row[t] = r0 + k;
        r0 += g->seq_len[s];
    }
    llmrt_kv_cache_params kp = llmrt_kv_cache_default_params();
    kp.block_size = BLOCK;
    kp.n_blocks = g->n_seqs * max_blocks;
    llmrt_kv_cache *kv = NULL;
    llmrt_status st = llmrt_kv_cache_create(m, &kp, &kv);
    if (st == LLMRT_OK) {
        llmrt_batch b = {.n_tokens = T,
                         .tokens = tok,
                         .positions = pos,
                         .seq_ids = seq,
                         .n_seqs = g->n_seqs,
                         .max_blocks_per_seq = max_blocks,
                         .block_tables = table,
                         .n_outputs = T,
                         .output_tokens = outs};
        st = llmrt_forward(kv, &b, lg, (int64_t)T * g->vocab);
    }
    if (st == LLMRT_OK)
        for (int32_t i = 0; i < T; i++)
            memcpy(ordered + row[i] * g->vocab, lg + (int64_t)i * g->vocab, (size_t)g->vocab * 4);
    CHECK_MSG(st == LLMRT_OK, "golden batch: %s %s", llmrt_status_str(st), llmrt_last_error());
    llmrt_kv_cache_destroy(kv);
    free(tok), free(pos), free(seq), free(outs), free(table), free(row), free(lg);
    return st;
}

/* N_PROMPT tokens of `ids` in one step, then N_STEPS single-token steps (teacher-forced with the
 * following ids): 1 + N_STEPS rows of logits. */
static llmrt_status prompt_then_decode(llmrt_model *m, const int32_t *ids, int32_t V, float *out) {
    llmrt_kv_cache_params kp = llmrt_kv_cache_default_params();
    kp.block_size = BLOCK;
    kp.n_blocks = (N_PROMPT + N_STEPS + BLOCK - 1) / BLOCK;
    llmrt_kv_cache *kv = NULL;
    llmrt_status st = llmrt_kv_cache_create(m, &kp, &kv);
    int32_t table[8] = {1, 0, 2, 3, 4, 5, 6, 7}, pos[N_PROMPT], seq[N_PROMPT] = {0};
    for (int32_t i = 0; i < N_PROMPT; i++)
        pos[i] = i;
    for (int32_t step = 0; step <= N_STEPS && st == LLMRT_OK; step++) {
        int32_t n = step == 0 ? N_PROMPT : 1, p0 = step == 0 ? 0 : N_PROMPT + step - 1;
        llmrt_batch b = {.n_tokens = n,
                         .tokens = ids + p0,
                         .positions = pos,
                         .seq_ids = seq,
                         .n_seqs = 1,
                         .max_blocks_per_seq = kp.n_blocks,
                         .block_tables = table};
        if (step > 0) pos[0] = p0;
        st = llmrt_forward(kv, &b, out + (int64_t)step * V, V);
    }
    CHECK_MSG(st == LLMRT_OK, "decode: %s %s", llmrt_status_str(st), llmrt_last_error());
    llmrt_kv_cache_destroy(kv);
    return st;
}

/* The longest golden sequence (at least N_PROMPT + N_STEPS tokens). */
static const int32_t *long_sequence(const golden *g) {
    int32_t best = 0;
    for (int32_t s = 1; s < g->n_seqs; s++)
        if (g->seq_len[s] > g->seq_len[best]) best = s;
    return g->seq_len[best] >= N_PROMPT + N_STEPS ? g->seq_ids[best] : NULL;
}

static void test_file(const char *name, int32_t tp, llmrt_activation_dtype act) {
    double tol = act == LLMRT_ACTIVATION_BF16 ? TOL_BF16 : TOL;
    const char *an = act == LLMRT_ACTIVATION_BF16 ? "bf16" : "f16";
    golden g;
    if (golden_load(name, &g) != 0) {
        CHECK_MSG(0, "cannot load golden %s", name);
        return;
    }
    int64_t rows = 0;
    for (int32_t s = 0; s < g.n_seqs; s++)
        rows += g.seq_len[s];
    int32_t V = g.vocab;
    const int32_t *ids = long_sequence(&g);
    CHECK_MSG(ids != NULL, "%s: no golden sequence of %d tokens", name, N_PROMPT + N_STEPS);
    llmrt_model *cpu = load(g.model_path, LLMRT_DEVICE_CPU, LLMRT_ACTIVATION_AUTO, false, 1);
    llmrt_model *gpu = load(g.model_path, LLMRT_DEVICE_CUDA, act, false, tp);
    float *batch = malloc((size_t)(rows * V) * 4);
    float *ref = malloc((size_t)((1 + N_STEPS) * V) * 4),
          *got = malloc((size_t)((1 + N_STEPS) * V) * 4);
    if (cpu && gpu && ids) {
        llmrt_model_info info = {.struct_size = sizeof info};
        llmrt_model_get_info(gpu, &info);
        CHECK_MSG(info.n_fallbacks == 0, "%s on cuda: %d matrices fell back (%s)", name,
                  info.n_fallbacks, info.fallback);
        double e_batch = 1e9, e_dec = 1e9;
        if (golden_batch(gpu, &g, batch) == LLMRT_OK)
            e_batch = max_rel_err(batch, g.logits, rows, V);
        if (prompt_then_decode(cpu, ids, V, ref) == LLMRT_OK &&
            prompt_then_decode(gpu, ids, V, got) == LLMRT_OK)
            e_dec = max_rel_err(got, ref, 1 + N_STEPS, V);
        CHECK_MSG(e_batch <= tol, "%s (tp %d, %s): batch vs fp64: %.3g of max|logit| > %.3g", name,
                  tp, an, e_batch, tol);
        CHECK_MSG(e_dec <= tol,
                  "%s (tp %d, %s): decode vs the CPU backend: %.3g of max|logit| > %.3g", name, tp,
                  an, e_dec, tol);
        printf("%-18s %-4s tp %d weights %-8s batch vs fp64 %.2e, prompt + %d decode steps vs "
               "cpu %.2e\n",
               name, an, tp, info.weight_format, e_batch, N_STEPS, e_dec);
    }
    free(batch), free(ref), free(got);
    llmrt_model_destroy(cpu);
    llmrt_model_destroy(gpu);
    golden_free(&g);
}

/* f32 activations (the CUDA backend's reference mode): the block kernels decline, so the load
 * fails naming the tensor, the type and why unless allow_fallback, which dequantises them and
 * reports it. */
static void test_f32_refused(void) {
    const char *path = LLMRT_TEST_DATA_DIR "/tiny/llama_k256_q4_k_m.gguf";
    llmrt_model_params p = llmrt_model_default_params();
    p.device = LLMRT_DEVICE_CUDA;
    p.activation_dtype = LLMRT_ACTIVATION_F32;
    llmrt_model *m = NULL;
    CHECK_STATUS(llmrt_model_load(path, &p, &m), LLMRT_ERR_UNSUPPORTED, "allow_fallback");
    const char *e = llmrt_last_error();
    CHECK_MSG(strstr(e, "Q4_K") && strstr(e, "fp16 or bf16 activations only (F32 here)"),
              "f32 load error: %s", e);
    printf("f32, no fallback: %s\n", e);
    m = load(path, LLMRT_DEVICE_CUDA, LLMRT_ACTIVATION_F32, true, 1);
    llmrt_model_info info = {.struct_size = sizeof info};
    if (m) llmrt_model_get_info(m, &info);
    CHECK_MSG(m && info.n_fallbacks > 0, "f32 with allow_fallback: %d fallbacks", info.n_fallbacks);
    llmrt_model_destroy(m);
}

int main(void) {
    if (llmrt_backend_cuda_device_count() == 0) {
        printf("SKIP: no CUDA device\n");
        return 77;
    }
    static const char *const files[] = {
        "llama_k256_q4_k_m", "llama_k256_q5_k_m", "llama_k256_q6_k", "llama_k256_q5_0",
        "llama_k256_q5_1",   "llama_k256_q3_k_m", "llama_k256_q2_k", "llama_q8_0_gguf"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        test_file(files[i], 1, LLMRT_ACTIVATION_F16);
    /* bf16 activations: the same kernels with bf16 x and the bf16 mma */
    test_file("llama_k256_q4_k_m", 1, LLMRT_ACTIVATION_BF16);
    test_file("llama_k256_q5_0", 1, LLMRT_ACTIVATION_BF16);
    if (llmrt_backend_cuda_device_count() >= 2)
        test_file("llama_k256_q5_0", 2, LLMRT_ACTIVATION_F16);
    else
        printf("tensor parallel 2: skipped (one CUDA device)\n");
    test_f32_refused();
    return test_summary("test_cuda_kquant");
}
