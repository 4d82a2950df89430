/* LoRA adapters on the CUDA backend (under cusim in CI, on a GPU with `ctest -L gpu`) against
 * the CPU backend, through the executor's slots and the public forward (llmrt_batch.lora_slots):
 *  - three sequences on slots 0, 1 and none in one batch, prefill then 12 decode steps of one
 *    token each (the decode kernel path), logits within tolerance of the CPU's at every step;
 *  - a slot refilled with another adapter and emptied between forwards;
 *  - per-token scales (0 gives the base model's logits exactly on the CUDA backend too);
 *  - fp16 activations (TOL 3e-2, as test_cuda_backend states) and the fp32 reference mode
 *    (TOL 1e-4), bf16 activations (1.5e-1).
 * The adapters are PEFT's (tests/data/lora: tiny_r8_all on all seven projections, tiny_r16_qv). */
#include <stdlib.h>
#include <string.h>

#include "api/api_model.h"
#include "golden.h"
#include "llmrt_experimental.h"
#include "test_util.h"

#define N_SEQ  3
#define N_STEP 12

static llmrt_model *load(llmrt_device dev, llmrt_activation_dtype act) {
    llmrt_model_params p = llmrt_model_default_params();
    p.device = dev;
    p.n_threads = 2;
    p.activation_dtype = act;
    llmrt_model *m = NULL;
    CHECK_STATUS(llmrt_model_load(test_data_path("tiny/llama_f32"), &p, &m), LLMRT_OK, NULL);
    return m;
}

static bool set_slot(llmrt_model *m, int32_t slot, const char *adapter) {
    llmrt_error err = {0};
    llmrt_lora_file f = {0};
    bool ok = (!adapter || llmrt_lora_file_load(test_data_path(adapter), &m->rank->cfg, &f, &err) ==
                               LLMRT_OK) &&
              (m->rank->lora || m->exec->ops->lora_init(m->exec, 3, &err) == LLMRT_OK) &&
              m->exec->ops->lora_set(m->exec, slot, adapter ? test_data_path(adapter) : NULL,
                                     adapter ? &f : NULL, &err) == LLMRT_OK;
    CHECK_MSG(ok, "slot %d <- %s: %s", slot, adapter ? adapter : "(empty)", err.msg);
    llmrt_lora_file_free(&f);
    return ok;
}

/* N_SEQ sequences of 9, 13 and 6 tokens prefilled in one batch, then N_STEP decode steps of one
 * token per sequence (the token fed is fixed, so both backends see the same inputs); the logits
 * of every step [N_STEP + 1][N_SEQ][V]. */
static float *run(llmrt_model *m, const int32_t *slots, const float *scales, int32_t vocab) {
    static const int32_t lens[N_SEQ] = {9, 13, 6};
    llmrt_kv_cache_params kp = llmrt_kv_cache_default_params();
    kp.block_size = 16, kp.n_blocks = N_SEQ * 2;
    llmrt_kv_cache *kv = NULL;
    if (llmrt_kv_cache_create(m, &kp, &kv) != LLMRT_OK) return NULL;
    int32_t table[N_SEQ * 2] = {5, 0, 3, 1, 4, 2};
    float *out = calloc((size_t)(N_STEP + 1) * N_SEQ * vocab, sizeof(float));
    int32_t tok[64], pos[64], seq[64], sl[64];
    float sc[64];
    int32_t T = 0;
    for (int32_t s = 0; s < N_SEQ; s++)
        for (int32_t k = 0; k < lens[s]; k++, T++) {
            tok[T] = 1 + (s * 53 + k * 19) % 300, pos[T] = k, seq[T] = s;
            sl[T] = slots[s], sc[T] = scales[s];
        }
    llmrt_batch b = {.n_tokens = T,
                     .tokens = tok,
                     .positions = pos,
                     .seq_ids = seq,
                     .n_seqs = N_SEQ,
                     .max_blocks_per_seq = 2,
                     .block_tables = table,
                     .lora_slots = sl,
                     .lora_scales = sc};
    llmrt_status st = llmrt_forward(kv, &b, out, (int64_t)N_SEQ * vocab);
    for (int32_t step = 1; step <= N_STEP && st == LLMRT_OK; step++) {
        for (int32_t s = 0; s < N_SEQ; s++) {
            tok[s] = 7 + (step * 31 + s * 17) % 290, pos[s] = lens[s] + step - 1, seq[s] = s;
            sl[s] = slots[s], sc[s] = scales[s];
        }
        b.n_tokens = N_SEQ;
        st = llmrt_forward(kv, &b, out + (int64_t)step * N_SEQ * vocab, (int64_t)N_SEQ * vocab);
    }
    CHECK_STATUS(st, LLMRT_OK, NULL);
    llmrt_kv_cache_destroy(kv);
    return out;
}

static void compare(const char *what, const float *gpu, const float *cpu, int32_t vocab,
                    double tol) {
    double worst = 0;
    for (int64_t r = 0; gpu && cpu && r < (int64_t)(N_STEP + 1) * N_SEQ; r++) {
        double e, ref;
        golden_compare(gpu + r * vocab, cpu + r * vocab, vocab, &e, &ref);
        if (ref > 0 && e / ref > worst) worst = e / ref;
    }
    CHECK_MSG(gpu && cpu && worst <= tol, "%s: worst row error %.3g > %.1e", what, worst, tol);
    printf("%-40s worst row |cuda - cpu| / max|cpu| %.3g\n", what, worst);
}

static void test_act(llmrt_activation_dtype act, const char *name, double tol) {
    llmrt_model *cpu = load(LLMRT_DEVICE_CPU, LLMRT_ACTIVATION_AUTO);
    llmrt_model *gpu = load(LLMRT_DEVICE_CUDA, act);
    if (!cpu || !gpu) goto out;
    int32_t vocab = cpu->rank->cfg.vocab_size;
    if (!set_slot(cpu, 0, "lora/tiny_r8_all") || !set_slot(cpu, 1, "lora/tiny_r16_qv") ||
        !set_slot(gpu, 0, "lora/tiny_r8_all") || !set_slot(gpu, 1, "lora/tiny_r16_qv"))
        goto out;
    int32_t slots[N_SEQ] = {0, 1, -1};
    float scales[N_SEQ] = {1.0f, 0.5f, 1.0f};
    float *c = run(cpu, slots, scales, vocab), *g = run(gpu, slots, scales, vocab);
    char what[96];
    snprintf(what, sizeof what, "%s: slots 0, 1, none", name);
    compare(what, g, c, vocab, tol);
    /* the adapters matter: the slot rows differ from the base model's */
    int32_t none[N_SEQ] = {-1, -1, -1};
    float *base = run(gpu, none, scales, vocab);
    double e = 0, ref = 0;
    if (base && g) golden_compare(g, base, vocab, &e, &ref);
    CHECK_MSG(e > 0.1 * ref, "%s: the adapter barely changes the logits (%.3g of %.3g)", name, e,
              ref);
    /* scale 0 on a filled slot is the base model, bit for bit */
    float zero[N_SEQ] = {0.0f, 0.0f, 0.0f};
    float *z = run(gpu, slots, zero, vocab);
    CHECK_MSG(z && base && memcmp(z, base, (size_t)(N_STEP + 1) * N_SEQ * vocab * 4) == 0,
              "%s: scale 0 is not the base model", name);
    /* refill slot 0 with the other adapter, empty slot 1 */
    set_slot(cpu, 0, "lora/tiny_r16_qv"), set_slot(gpu, 0, "lora/tiny_r16_qv");
    set_slot(cpu, 1, NULL), set_slot(gpu, 1, NULL);
    float *c2 = run(cpu, slots, scales, vocab), *g2 = run(gpu, slots, scales, vocab);
    snprintf(what, sizeof what, "%s: refilled and emptied", name);
    compare(what, g2, c2, vocab, tol);
    free(c), free(g), free(base), free(z), free(c2), free(g2);
out:
    llmrt_model_destroy(gpu);
    llmrt_model_destroy(cpu);
}

int main(void) {
    llmrt_model_params p = llmrt_model_default_params();
    p.device = LLMRT_DEVICE_CUDA;
    llmrt_model *probe = NULL;
    if (llmrt_model_load(test_data_path("tiny/llama_f32"), &p, &probe) == LLMRT_ERR_UNSUPPORTED) {
        printf("test_cuda_lora: no CUDA device: %s\n", llmrt_last_error());
        return 77;
    }
    llmrt_model_destroy(probe);
    test_act(LLMRT_ACTIVATION_F32, "fp32 reference mode", 1e-4);
    test_act(LLMRT_ACTIVATION_F16, "fp16 activations", 3e-2);
    test_act(LLMRT_ACTIVATION_BF16, "bf16 activations", 1.5e-1);
    return test_summary("test_cuda_lora");
}
