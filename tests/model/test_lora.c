/* LoRA adapters end to end, against PEFT itself (tests/data/lora, python/tools/
 * make_lora_golden.py):
 *  1. golden logits of tiny Llamas with PEFT adapters (r 4..64, alpha != r, rslora, regex
 *     targets with rank/alpha patterns, layers_to_transform) and llama.cpp's GGUF conversion,
 *     merged at load and unmerged (per-token slots), every position;
 *  2. SmolLM2 with adapters on q/v and on all modules (last-position logits);
 *  3. bad adapters -> the status and a message naming the field;
 *  4. the engine: 16 requests over 4 adapters + none give each request the greedy tokens it
 *     gets alone, and alone with its adapter merged; the prefix cache never shares KV across
 *     adapters; a slot budget of 2 serving 5 adapters; unloading with requests running.
 * Tolerance: fp32 activations, max |err| <= 1e-4 * max |logit| (the foundation tests'), merged
 * (into fp32 weights) and unmerged alike. */
#include <stdlib.h>
#include <string.h>

#include "api/api_model.h"
#include "core/json_util.h"
#include "golden.h"
#include "llmrt_experimental.h"
#include "test_util.h"

#define REL_TOL 1e-4

typedef struct lora_golden {
    cJSON *root;
    int32_t vocab, n_seqs, lens[8], *ids[8];
    float *logits;
    int64_t n_rows;
    bool last_only;
} lora_golden;

static int golden_open(const char *name, lora_golden *g) {
    memset(g, 0, sizeof *g);
    char path[2048];
    llmrt_error err = {0};
    snprintf(path, sizeof path, "%s/lora/golden/%s.json", LLMRT_TEST_DATA_DIR, name);
    if (llmrt_json_parse_file(path, 1 << 24, &g->root, &err) != LLMRT_OK) return -1;
    g->vocab = (int32_t)cJSON_GetObjectItem(g->root, "vocab_size")->valuedouble;
    for (const cJSON *s = cJSON_GetObjectItem(g->root, "sequences")->child; s && g->n_seqs < 8;
         s = s->next, g->n_seqs++)
        g->ids[g->n_seqs] = golden_int_array(s, &g->lens[g->n_seqs]);
    const char *rows = cJSON_GetStringValue(cJSON_GetObjectItem(g->root, "logits_rows"));
    g->last_only = rows && strstr(rows, "last position");
    snprintf(path, sizeof path, "%s/lora/golden/%s", LLMRT_TEST_DATA_DIR,
             cJSON_GetStringValue(cJSON_GetObjectItem(g->root, "logits_file")));
    int64_t n = 0;
    g->logits = golden_read_f32(path, &n);
    g->n_rows = g->vocab ? n / g->vocab : 0;
    return g->logits ? 0 : -1;
}

static void golden_close(lora_golden *g) {
    for (int32_t i = 0; i < g->n_seqs; i++)
        free(g->ids[i]);
    free(g->logits);
    cJSON_Delete(g->root);
}

static const char *gstr(const lora_golden *g, const char *key) {
    return cJSON_GetStringValue(cJSON_GetObjectItem(g->root, key));
}

/* Every sequence whole in one batch (tokens interleaved, scrambled blocks); logits of every
 * position (or each sequence's last) in golden row order. slot >= 0: every token on it. */
static float *run(llmrt_model *m, const lora_golden *g, int32_t slot, float scale) {
    int32_t total = 0, max_blocks = 0;
    for (int32_t s = 0; s < g->n_seqs; s++) {
        total += g->lens[s];
        if ((g->lens[s] + 15) / 16 > max_blocks) max_blocks = (g->lens[s] + 15) / 16;
    }
    llmrt_kv_cache_params kp = llmrt_kv_cache_default_params();
    kp.block_size = 16;
    kp.n_blocks = g->n_seqs * max_blocks;
    llmrt_kv_cache *kv = NULL;
    if (llmrt_kv_cache_create(m, &kp, &kv) != LLMRT_OK) return NULL;
    int32_t *tok = malloc((size_t)total * 4), *pos = malloc((size_t)total * 4);
    int32_t *seq = malloc((size_t)total * 4), *outs = malloc((size_t)total * 4);
    int32_t *slots = malloc((size_t)total * 4), *table = malloc((size_t)kp.n_blocks * 4);
    float *scales = malloc((size_t)total * 4);
    int32_t row_of[8], T = 0, n_out = 0;
    for (int32_t s = 0, r = 0; s < g->n_seqs; s++) {
        row_of[s] = g->last_only ? s : r;
        r += g->lens[s];
        for (int32_t b = 0; b < max_blocks; b++)
            table[s * max_blocks + b] = kp.n_blocks - 1 - (b * g->n_seqs + s);
    }
    int32_t *out_row = malloc((size_t)total * 4);
    for (int32_t k = 0; T < total; k++)
        for (int32_t s = 0; s < g->n_seqs; s++)
            if (k < g->lens[s]) {
                tok[T] = g->ids[s][k], pos[T] = k, seq[T] = s;
                slots[T] = slot, scales[T] = scale;
                if (!g->last_only || k == g->lens[s] - 1) {
                    out_row[n_out] = g->last_only ? row_of[s] : row_of[s] + k;
                    outs[n_out++] = T;
                }
                T++;
            }
    float *lg = malloc((size_t)n_out * g->vocab * sizeof(float));
    float *res = malloc((size_t)g->n_rows * g->vocab * sizeof(float));
    llmrt_batch b = {.n_tokens = T,
                     .tokens = tok,
                     .positions = pos,
                     .seq_ids = seq,
                     .n_seqs = g->n_seqs,
                     .max_blocks_per_seq = max_blocks,
                     .block_tables = table,
                     .n_outputs = n_out,
                     .output_tokens = outs,
                     .lora_slots = slot >= 0 ? slots : NULL,
                     .lora_scales = scales};
    llmrt_status st = llmrt_forward(kv, &b, lg, (int64_t)n_out * g->vocab);
    CHECK_STATUS(st, LLMRT_OK, NULL);
    for (int32_t i = 0; i < n_out && st == LLMRT_OK; i++)
        memcpy(res + (int64_t)out_row[i] * g->vocab, lg + (int64_t)i * g->vocab,
               (size_t)g->vocab * sizeof(float));
    free(tok), free(pos), free(seq), free(outs), free(slots), free(table), free(scales);
    free(out_row), free(lg);
    llmrt_kv_cache_destroy(kv);
    if (st != LLMRT_OK) free(res), res = NULL;
    return res;
}

static void compare(const char *what, const lora_golden *g, const float *ours, double tol) {
    if (!ours) {
        CHECK_MSG(0, "%s: no logits", what);
        return;
    }
    double max_err, max_ref;
    golden_compare(ours, g->logits, g->n_rows * g->vocab, &max_err, &max_ref);
    CHECK_MSG(max_err <= tol * max_ref, "%s: max |err| %.3g > %.0e * max |logit| %.3g", what,
              max_err, tol, max_ref);
    printf("%-44s max|err| %.3g (max|logit| %.3g)\n", what, max_err, max_ref);
}

static int32_t load_tp = 0; /* tensor_parallel of load() */

static llmrt_model *load(const char *base, const char *merge_path, bool dequantize) {
    llmrt_model_params mp = llmrt_model_default_params();
    mp.n_threads = 2;
    mp.tensor_parallel = load_tp;
    mp.dequantize_weights = dequantize;
    const char *paths[1] = {merge_path};
    if (merge_path) mp.lora_paths = paths, mp.n_loras = 1;
    llmrt_model *m = NULL;
    CHECK_STATUS(llmrt_model_load(base, &mp, &m), LLMRT_OK, merge_path);
    return m;
}

/* Slot 1 of the model's executor holds the adapter at `path` (slot 0 stays empty). */
static bool set_slot(llmrt_model *m, const char *path) {
    llmrt_error err = {0};
    llmrt_lora_file f = {0};
    bool ok = llmrt_lora_file_load(path, &m->rank->cfg, &f, &err) == LLMRT_OK &&
              (m->rank->lora || m->exec->ops->lora_init(m->exec, 2, &err) == LLMRT_OK) &&
              m->exec->ops->lora_set(m->exec, 1, path, &f, &err) == LLMRT_OK;
    CHECK_MSG(ok, "%s: %s", path, err.msg);
    llmrt_lora_file_free(&f);
    return ok;
}

/* 1 + 2: one adapter against its golden, merged and unmerged, PEFT and GGUF files. */
static void test_golden(const char *name) {
    lora_golden g;
    if (golden_open(name, &g) != 0) {
        CHECK_MSG(0, "cannot read golden %s", name);
        return;
    }
    char base[2048], adapter[2048], label[128];
    const char *model_dir = gstr(&g, "model_dir");
    snprintf(base, sizeof base, "%s", model_dir ? test_data_path(model_dir) : LLMRT_DEFAULT_MODEL);
    const char *files[2] = {gstr(&g, "adapter_dir"), gstr(&g, "adapter_gguf")};
    for (int f = 0; f < 2; f++) {
        if (!files[f]) continue;
        snprintf(adapter, sizeof adapter, "%s", test_data_path(files[f]));
        const char *kind = f ? "gguf" : "peft";
        /* unmerged: per-token slots on the base as stored (SmolLM2: 4-bit) */
        llmrt_model *m = load(base, NULL, false);
        if (m && set_slot(m, adapter)) {
            float *ours = run(m, &g, 1, 1.0f);
            snprintf(label, sizeof label, "%s %s unmerged%s", name, kind, load_tp ? " tp2" : "");
            compare(label, &g, ours, REL_TOL);
            free(ours);
            /* scale 0.0 on slot 1 must give the base model's logits exactly */
            float *zero = run(m, &g, 1, 0.0f), *plain = run(m, &g, -1, 1.0f);
            CHECK_MSG(zero && plain &&
                          memcmp(zero, plain, (size_t)g.n_rows * g.vocab * sizeof(float)) == 0,
                      "%s: scale 0 differs from no adapter", name);
            free(zero), free(plain);
        }
        llmrt_model_destroy(m);
        /* merged at load (a 4-bit base dequantised first, as the reference did) */
        m = load(base, adapter, !model_dir);
        if (m) {
            llmrt_model_info info = {.struct_size = sizeof info};
            llmrt_model_get_info(m, &info);
            CHECK_MSG(info.n_lora_merged == 1, "%s: n_lora_merged %d", name, info.n_lora_merged);
            float *ours = run(m, &g, -1, 1.0f);
            snprintf(label, sizeof label, "%s %s merged%s", name, kind, load_tp ? " tp2" : "");
            compare(label, &g, ours, REL_TOL);
            free(ours);
        }
        llmrt_model_destroy(m);
    }
    golden_close(&g);
}

/* A quantised base keeps a load-time adapter unmerged and says so; its engine applies it to
 * requests that name no adapter without giving it a name (a user's adapter may take any); two
 * such adapters are refused at load. */
static void test_unmerged_on_q4(void) {
    llmrt_model *m = load(LLMRT_DEFAULT_MODEL, test_data_path("lora/smollm2_qv"), false);
    if (!m) return;
    llmrt_model_info info = {.struct_size = sizeof info};
    llmrt_model_get_info(m, &info);
    CHECK_MSG(info.n_lora_unmerged == 1 && info.n_lora_merged == 0,
              "q4 base: merged %d unmerged %d", info.n_lora_merged, info.n_lora_unmerged);
    llmrt_engine_params ep = llmrt_engine_default_params();
    llmrt_engine *e = NULL;
    CHECK_STATUS(llmrt_engine_create(m, &ep, &e), LLMRT_OK, NULL);
    CHECK(e && llmrt_engine_lora_list(e, NULL, 0) == 0);
    CHECK_STATUS(llmrt_engine_lora_load(e, "base-lora", test_data_path("lora/smollm2_all")),
                 LLMRT_OK, NULL);
    llmrt_engine_destroy(e);
    llmrt_model_destroy(m);
    llmrt_model_params mp = llmrt_model_default_params();
    const char *two[2] = {test_data_path("lora/smollm2_qv"), test_data_path("lora/smollm2_all")};
    mp.lora_paths = two, mp.n_loras = 2;
    CHECK_STATUS(llmrt_model_load(LLMRT_DEFAULT_MODEL, &mp, &m), LLMRT_ERR_UNSUPPORTED,
                 "one can be applied unmerged");
}

/* 3: adapters that must be refused, with the field named. */
static void test_bad(void) {
    static const struct {
        const char *dir;
        llmrt_status want;
        const char *needle;
    } cases[] = {
        {"lora/bad/dora", LLMRT_ERR_UNSUPPORTED, "dora"},
        {"lora/bad/modules_to_save", LLMRT_ERR_UNSUPPORTED, "modules_to_save"},
        {"lora/bad/rank_mismatch", LLMRT_ERR_MODEL_MISMATCH, "lora_A"},
        {"lora/bad/missing_lora_B", LLMRT_ERR_MODEL_MISMATCH, "lora_B"},
        {"lora/no_such_adapter", LLMRT_ERR_IO, "no_such_adapter"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        llmrt_model_params mp = llmrt_model_default_params();
        const char *p[1] = {test_data_path(cases[i].dir)};
        mp.lora_paths = p;
        mp.n_loras = 1;
        llmrt_model *m = NULL;
        CHECK_STATUS(llmrt_model_load(test_data_path("tiny/llama_f32"), &mp, &m), cases[i].want,
                     cases[i].needle);
        CHECK(m == NULL);
        llmrt_model_destroy(m);
    }
}

/* ---- 4: the engine ------------------------------------------------------------------------- */

#define N_GEN 10

static const char *const tiny_adapters[] = {"lora/tiny_r8_all", "lora/tiny_r16_qv",
                                            "lora/tiny_pattern", "lora/tiny_layers",
                                            "lora/tiny_r8_all.gguf"};

static llmrt_engine *engine_with(llmrt_model *m, int32_t max_loras, int32_t n_adapters) {
    llmrt_engine_params ep = llmrt_engine_default_params();
    ep.kv_tokens = 4096;
    ep.max_loras = max_loras;
    llmrt_engine *e = NULL;
    CHECK_STATUS(llmrt_engine_create(m, &ep, &e), LLMRT_OK, NULL);
    for (int32_t i = 0; e && i < n_adapters; i++) {
        char name[16];
        snprintf(name, sizeof name, "a%d", i);
        CHECK_STATUS(llmrt_engine_lora_load(e, name, test_data_path(tiny_adapters[i])), LLMRT_OK,
                     name);
    }
    return e;
}

/* Prompt i: 5..11 tokens; i >= 100: 40 tokens (two full KV blocks for the prefix cache). */
static void prompt_of(int32_t i, int32_t *ids, int32_t *n) {
    *n = i >= 100 ? 40 : 5 + i % 7;
    for (int32_t k = 0; k < *n; k++)
        ids[k] = 1 + (i * 37 + k * 11) % 300;
}

/* Submits requests [0, n) (request i on adapter names[i], NULL = none) and collects their
 * greedy tokens into out[i][N_GEN]. */
static void run_requests(llmrt_engine *e, int32_t n, const char *const *names, const int32_t *which,
                         int32_t out[][N_GEN], int64_t *cached) {
    llmrt_sampling_params sp = llmrt_sampling_default_params();
    sp.temperature = 0, sp.max_tokens = N_GEN, sp.ignore_eos = true;
    int32_t *count = calloc((size_t)n, sizeof *count);
    memset(out, 0xff, (size_t)n * sizeof out[0]); /* -1: a request that produced nothing */
    for (int32_t i = 0; i < n; i++) {
        int32_t ids[48], len;
        prompt_of(which ? which[i] : i, ids, &len);
        llmrt_prompt p = {.struct_size = sizeof p,
                          .tokens = ids,
                          .n_tokens = len,
                          .lora_adapter = names[i],
                          .user_data = (void *)(intptr_t)i};
        uint64_t id;
        CHECK_STATUS(llmrt_engine_submit(e, &p, &sp, &id), LLMRT_OK, NULL);
    }
    for (int32_t guard = 0; llmrt_engine_pending(e) > 0 && guard < 10000; guard++) {
        const llmrt_output *o;
        int32_t k;
        if (llmrt_engine_step(e, &o, &k) != LLMRT_OK) break;
        for (int32_t j = 0; j < k; j++) {
            const llmrt_output *oj =
                (const llmrt_output *)((const char *)o + (size_t)j * o->struct_size);
            int32_t i = (int32_t)(intptr_t)oj->user_data;
            CHECK_MSG(oj->finish != LLMRT_FINISH_ERROR, "request %d: %s", i,
                      oj->error_message ? oj->error_message : "");
            for (int32_t t = 0; t < oj->n_tokens && count[i] < N_GEN; t++)
                out[i][count[i]++] = oj->tokens[t];
            if (cached) cached[i] = oj->n_cached_tokens;
        }
    }
    for (int32_t i = 0; i < n; i++)
        CHECK_MSG(count[i] == N_GEN, "request %d: %d tokens", i, count[i]);
    free(count);
}

static void test_mixed_batch(void) {
    llmrt_model *m = load(test_data_path("tiny/llama_f32"), NULL, false);
    llmrt_engine *e = m ? engine_with(m, 8, 4) : NULL;
    if (!e) return;
    const char *names[16];
    static const char *const ad[] = {"a0", "a1", "a2", "a3", NULL};
    for (int32_t i = 0; i < 16; i++)
        names[i] = ad[i % 5];
    int32_t batch[16][N_GEN], alone[1][N_GEN];
    run_requests(e, 16, names, NULL, batch, NULL);
    int differ_alone = 0, differ_merged = 0, differ_base = 0;
    for (int32_t i = 0; i < 16; i++) {
        int32_t which = i;
        run_requests(e, 1, &names[i], &which, alone, NULL);
        differ_alone += memcmp(batch[i], alone[0], sizeof alone[0]) != 0;
        if (names[i]) { /* the same request, alone, with the adapter merged into the weights */
            llmrt_model *mm =
                load(test_data_path("tiny/llama_f32"), test_data_path(tiny_adapters[i % 5]), false);
            llmrt_engine *me = mm ? engine_with(mm, 1, 0) : NULL;
            const char *none[1] = {NULL};
            memset(alone, 0xff, sizeof alone);
            if (me) run_requests(me, 1, none, &which, alone, NULL);
            differ_merged += memcmp(batch[i], alone[0], sizeof alone[0]) != 0;
            llmrt_engine_destroy(me);
            llmrt_model_destroy(mm);
            const char *base[1] = {NULL}; /* and the adapter must matter */
            run_requests(e, 1, base, &which, alone, NULL);
            differ_base += memcmp(batch[i], alone[0], sizeof alone[0]) != 0;
        }
    }
    CHECK_MSG(differ_alone == 0, "%d of 16 requests differ from running alone", differ_alone);
    CHECK_MSG(differ_merged == 0, "%d of 13 adapted requests differ from their merged run",
              differ_merged);
    CHECK_MSG(differ_base >= 6, "only %d of 13 adapted requests differ from the base model",
              differ_base);
    printf("mixed batch: 16 requests over 4 adapters + none: alone %d, merged %d differ; "
           "%d differ from the base\n",
           differ_alone, differ_merged, differ_base);

    /* the prefix cache: the same prompt under a0 twice, then a1, then none */
    const char *seq[4] = {"a0", "a0", "a1", NULL};
    int32_t same[4] = {100, 100, 100, 100}, out4[4][N_GEN];
    int64_t cached[4] = {0};
    for (int32_t i = 0; i < 4; i++)
        run_requests(e, 1, &seq[i], &same[i], &out4[i], &cached[i]);
    CHECK_MSG(cached[1] > 0, "the second a0 request found no cached prefix");
    CHECK_MSG(cached[2] == 0 && cached[3] == 0,
              "a1 / the base model reused KV computed under a0 (%lld, %lld cached tokens)",
              (long long)cached[2], (long long)cached[3]);
    CHECK(memcmp(out4[0], out4[1], sizeof out4[0]) == 0);

    /* unknown adapter names are refused at submit, naming what is loaded */
    llmrt_sampling_params sp = llmrt_sampling_default_params();
    int32_t ids[3] = {1, 2, 3};
    llmrt_prompt p = {.struct_size = sizeof p, .tokens = ids, .n_tokens = 3, .lora_adapter = "zz"};
    uint64_t id;
    CHECK_STATUS(llmrt_engine_submit(e, &p, &sp, &id), LLMRT_ERR_NOT_FOUND, "a0, a1");
    CHECK_STATUS(llmrt_engine_lora_load(e, "a0", test_data_path(tiny_adapters[0])),
                 LLMRT_ERR_INVALID_ARG, "already loaded");
    CHECK_STATUS(llmrt_engine_lora_load(e, "bad name", test_data_path(tiny_adapters[0])),
                 LLMRT_ERR_INVALID_ARG, "name");
    llmrt_engine_destroy(e);
    llmrt_model_destroy(m);
}

/* 2 slots serving 5 adapters over time; unloading while requests run. */
static void test_eviction_and_unload(void) {
    llmrt_model *m = load(test_data_path("tiny/llama_f32"), NULL, false);
    llmrt_engine *e2 = m ? engine_with(m, 2, 5) : NULL;
    if (!e2) return;
    const char *names[10];
    static const char *const ad[] = {"a0", "a1", "a2", "a3", "a4"};
    for (int32_t i = 0; i < 10; i++)
        names[i] = ad[i % 5];
    int32_t budget[10][N_GEN], ref[10][N_GEN];
    run_requests(e2, 10, names, NULL, budget, NULL);
    llmrt_lora_info info[5];
    for (int i = 0; i < 5; i++)
        info[i].struct_size = sizeof info[i];
    CHECK(llmrt_engine_lora_list(e2, info, 5) == 5);
    uint64_t loads = 0;
    int resident = 0;
    for (int i = 0; i < 5; i++)
        loads += info[i].n_loads, resident += info[i].resident;
    CHECK_MSG(loads > 5 && resident <= 2, "2 slots over 5 adapters: %llu loads, %d resident",
              (unsigned long long)loads, resident);
    llmrt_engine_destroy(e2);
    llmrt_engine *e8 = engine_with(m, 8, 5); /* the same requests with room for all */
    if (e8) run_requests(e8, 10, names, NULL, ref, NULL);
    CHECK_MSG(memcmp(budget, ref, sizeof ref) == 0, "eviction changed some request's tokens");

    /* unload a0 while its request runs: it finishes as it would have; a new one is refused */
    llmrt_sampling_params sp = llmrt_sampling_default_params();
    sp.temperature = 0, sp.max_tokens = N_GEN, sp.ignore_eos = true;
    int32_t ids[16], len, got = 0, toks[N_GEN];
    prompt_of(0, ids, &len);
    llmrt_prompt p = {
        .struct_size = sizeof p, .tokens = ids, .n_tokens = len, .lora_adapter = "a0"};
    uint64_t id;
    CHECK_STATUS(llmrt_engine_submit(e8, &p, &sp, &id), LLMRT_OK, NULL);
    const llmrt_output *o;
    int32_t k;
    for (int step = 0; llmrt_engine_pending(e8) > 0 && step < 100; step++) {
        CHECK(llmrt_engine_step(e8, &o, &k) == LLMRT_OK);
        if (step == 1) CHECK_STATUS(llmrt_engine_lora_unload(e8, "a0"), LLMRT_OK, NULL);
        for (int32_t j = 0; j < k && got < N_GEN; j++)
            for (int32_t t = 0; t < o[j].n_tokens && got < N_GEN; t++)
                toks[got++] = o[j].tokens[t];
    }
    CHECK_MSG(got == N_GEN && memcmp(toks, ref[0], sizeof toks) == 0,
              "a request running through its adapter's unload changed (%d tokens)", got);
    CHECK_STATUS(llmrt_engine_submit(e8, &p, &sp, &id), LLMRT_ERR_NOT_FOUND, "a0");
    CHECK_STATUS(llmrt_engine_lora_unload(e8, "a0"), LLMRT_ERR_NOT_FOUND, "a0");
    CHECK(llmrt_engine_lora_list(e8, NULL, 0) == 4);
    llmrt_engine_destroy(e8);
    llmrt_model_destroy(m);
}

int main(void) {
    static const char *const tiny[] = {"tiny_r8_all", "tiny_r16_qv", "tiny_r64_rslora",
                                       "tiny_pattern", "tiny_layers"};
    for (size_t i = 0; i < sizeof tiny / sizeof tiny[0]; i++)
        test_golden(tiny[i]);
    /* tensor parallel (ranks as threads): A and B split as their base layer is */
    load_tp = 2;
    test_golden("tiny_r8_all");
    test_golden("tiny_pattern");
    load_tp = 0;
    test_golden("smollm2_qv");
    test_golden("smollm2_all");
    test_unmerged_on_q4();
    test_bad();
    test_mixed_batch();
    test_eviction_and_unload();
    return test_summary("test_lora");
}
