/* GPTQ and AWQ checkpoints (host/model/gptq.c, gptq8.c, gptq_dynamic.c, awq.c):
 *
 * 1. Goldens: every checkpoint of tests/data/gptq/ that has a golden file in
 *    tests/data/gptq/golden/ (python/tools/make_gptq_fixtures.py, make_gptq_peer_fixtures.py,
 *    make_awq_peer_fixtures.py; the format of the JSON files in tests/data/golden) loads in the
 *    weight format its golden's "expect_weight_format" names (default q4; q8_0; q8_z = 8-bit
 *    asym / act-order / short last groups kept packed without allow_fallback; f32 = 8-bit
 *    dequantised, refused without allow_fallback), and its logits are within 1e-4 * max |logit|
 *    of the reference (test_golden_logits' tolerance) and within 1e-5 * max |logit| of
 *    LLMRT_NO_Q4=1 (dequantised at load), one batch and chunked, bit-identical between the two
 *    (batch invariance), 1 and 2 threads. The test fails if there is no golden at all.
 * 2. Checkpoints built here in C from tests/data/tiny/llama_f32 with round-to-nearest GPTQ
 *    quantization written in the exact AutoGPTQ/GPTQModel layout (reference/kernels.md §3):
 *    sym/asym, checkpoint_format gptq (v1: packed zero words minus 0x11111111, GPTQModel's way;
 *    every asym one holds zero points of 0, whose nibbles borrow from the next) and gptq_v2,
 *    group sizes 32 and -1, 128 over K = 64 and 160 (short last groups), act-order with a
 *    non-monotonic g_idx, config in config.json or
 *    quantize_config.json, fp16 or fp32 scales, quantized lm_head, an lm_head bias. Group size
 *    16 (valid GPTQ, not a multiple of the CPU kernels' 32): the load fails with
 *    LLMRT_ERR_UNSUPPORTED naming the tensor, and with allow_fallback loads dequantised,
 *    reported in llmrt_model_info (n_fallbacks, fallback) and by one WARN log message. Each is
 *    compared with an fp32 HF checkpoint of the weights this test dequantises itself from the
 *    values it packed (w = s * (q - z)): identical logits bit for bit without act-order (the
 *    4-bit kernels dequantise exactly and sum in the fp32 path's order), within 1e-5 * max
 *    |logit| with act-order (the columns are summed in permuted order). LLMRT_NO_Q4=1
 *    (dequantised at load) must agree the same way.
 * 3. Loader errors, each naming the tensor or key: bad bits, bad group size, g_idx out of range,
 *    a group with the wrong number of rows, wrong scales shape, missing qzeros, wrong dtype,
 *    qweight without a quantization config, other quant methods and formats, AWQ versions,
 *    GPTQModel "dynamic" rules (unsupported patterns and keys, an override that changes the
 *    tensor shapes, an excluded module stored quantized), model_file_base_name with a path.
 * 4. Bad 8-bit GPTQ and AWQ files (a peer fixture with one tensor broken: Q8_0 and Q8_Z
 *    qweight truncated, qzeros of the wrong shape, g_idx out of range; short-last-group files
 *    whose scales or g_idx disagree with ceil(K / group_size) groups, 4- and 8-bit) and a
 *    missing model_file_base_name file: errors naming the tensor or file. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/half.h"
#include "golden.h"
#include "format/safetensors.h"
#include "test_util.h"

#define HF_TOL  1e-4
#define ACT_TOL 1e-5
#define BLOCK   16

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static int64_t n_zero0; /* v1 zero points of 0 packed by quantize_linear (borrows) */
static uint32_t urand(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng >> 33);
}

#include "gptq_golden.h" /* load_gptq_golden */
#include "packed_run.h"  /* load, weight_format, run_all, chunk_pattern */

/* --------------------------------------------------------------------------------------------- */
/* 1. goldens of tests/data/gptq                                                                 */
/* --------------------------------------------------------------------------------------------- */

static void test_goldens(void) {
    const char *dir = LLMRT_TEST_DATA_DIR "/gptq/golden";
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0) continue;
        n++;
        golden g;
        if (load_gptq_golden(dir, e->d_name, &g) != 0) {
            CHECK_MSG(0, "golden %s unreadable", e->d_name);
            golden_free(&g);
            continue;
        }
        int64_t total = 0;
        for (int32_t s = 0; s < g.n_seqs; s++)
            total += g.seq_len[s];
        CHECK_MSG(total == g.n_rows, "%s: %lld logits rows for %lld positions", e->d_name,
                  (long long)g.n_rows, (long long)total);
        float *whole = calloc((size_t)(total * g.vocab), 4),
              *chunked = calloc((size_t)(total * g.vocab), 4);
        bool quantized = cJSON_GetObjectItem(g.root, "quantization") != NULL;
        /* the peer-written goldens say how the matrices must load: q4, q8_0 (8-bit sym), q8_z
         * (8-bit asym / act-order / short groups, kept packed without allow_fallback) or f32
         * (dequantised at load under allow_fallback) */
        const cJSON *ef     = cJSON_GetObjectItem(g.root, "expect_weight_format");
        const char  *expect = cJSON_IsString(ef) ? ef->valuestring : "q4";
        if (cJSON_IsArray(ef)) expect = ""; /* a mix: each element is checked below */
        if (strcmp(expect, "f32") == 0) { /* refused without allow_fallback, naming a tensor */
            llmrt_model_params mp  = llmrt_model_default_params();
            llmrt_model       *bad = NULL;
            mp.n_threads           = 1;
            CHECK_STATUS(llmrt_model_load(g.model_path, &mp, &bad), LLMRT_ERR_UNSUPPORTED,
                         "does not map onto Q8_0 / Q8_Z");
            CHECK(bad == NULL);
            printf("%-26s without allow_fallback: %s\n", e->d_name, llmrt_last_error());
        }
        load_allow_fallback = strcmp(expect, "f32") == 0;
        for (int threads = 1; threads <= 2 && total == g.n_rows; threads++) {
            llmrt_model *m = load(g.model_path, threads, 0);
            if (!m) break;
            char fmt[32];
            weight_format(m, fmt, sizeof fmt);
            if (quantized)
                CHECK_MSG(strstr(fmt, expect) != NULL, "%s: weights are %s, expected %s",
                          e->d_name, fmt, expect);
            for (const cJSON *x = cJSON_IsArray(ef) ? ef->child : NULL; x; x = x->next)
                CHECK_MSG(cJSON_IsString(x) && strstr(fmt, x->valuestring) != NULL,
                          "%s: weights are %s, expected %s among them", e->d_name, fmt,
                          cJSON_IsString(x) ? x->valuestring : "?");
            double max_err, max_ref, e_deq = 0;
            if (threads == 1) {
                CHECK_STATUS(run_all(m, g.n_seqs, g.seq_ids, g.seq_len, NULL, 0, g.vocab, whole),
                             LLMRT_OK, NULL);
                if (quantized) { /* against the load-time dequantisation */
                    llmrt_model *md = load(g.model_path, 1, 1);
                    if (md) {
                        CHECK_STATUS(
                            run_all(md, g.n_seqs, g.seq_ids, g.seq_len, NULL, 0, g.vocab, chunked),
                            LLMRT_OK, NULL);
                        golden_compare(whole, chunked, total * g.vocab, &e_deq, &max_ref);
                        CHECK_MSG(e_deq <= ACT_TOL * max_ref,
                                  "%s: 4-bit vs LLMRT_NO_Q4 %.3g > "
                                  "%.0e * %.3g",
                                  e->d_name, e_deq, ACT_TOL, max_ref);
                    }
                    llmrt_model_destroy(md);
                }
                golden_compare(whole, g.logits, total * g.vocab, &max_err, &max_ref);
                printf("%-26s (%s) vs reference: max|err| %.3g (max|logit| %.3g); vs "
                       "LLMRT_NO_Q4 %.3g\n",
                       e->d_name, fmt, max_err, max_ref, e_deq);
                CHECK_MSG(max_err <= HF_TOL * max_ref, "%s: max|err| %.3g > %.0e * %.3g", e->d_name,
                          max_err, HF_TOL, max_ref);
            }
            CHECK_STATUS(run_all(m, g.n_seqs, g.seq_ids, g.seq_len, chunk_pattern, N_CHUNKS,
                                 g.vocab, chunked),
                         LLMRT_OK, NULL);
            CHECK_MSG(memcmp(whole, chunked, (size_t)(total * g.vocab) * 4) == 0,
                      "%s: chunked logits (%d threads) differ from the one-batch run", e->d_name,
                      threads);
            llmrt_model_destroy(m);
        }
        load_allow_fallback = false;
        free(whole);
        free(chunked);
        golden_free(&g);
    }
    if (d) closedir(d);
    printf("%d GPTQ golden file(s) in %s\n", n, dir);
    CHECK_MSG(n > 0, "no GPTQ golden files in %s (python/tools generates them)", dir);
}

/* --------------------------------------------------------------------------------------------- */
/* 2. checkpoints built here                                                                     */
/* --------------------------------------------------------------------------------------------- */

/* One tensor of a safetensors file being written. */
typedef struct entry {
    char name[128];
    char dtype[8]; /* "F32", "F16", "I32" */
    int n_dims;
    int64_t shape[2];
    uint8_t *data;
    size_t bytes;
} entry;

typedef struct entries {
    entry *e;
    int n, cap;
} entries;

static entry *add(entries *es, const char *name, const char *dtype, int n_dims, int64_t d0,
                  int64_t d1, size_t elem) {
    if (!es->e) { /* fixed capacity: entry pointers stay valid while more are added */
        es->cap = 512;
        es->e = calloc((size_t)es->cap, sizeof *es->e);
    }
    if (es->n == es->cap) {
        fprintf(stderr, "test_gptq: too many tensors\n");
        abort();
    }
    entry *e = &es->e[es->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    snprintf(e->dtype, sizeof e->dtype, "%s", dtype);
    e->n_dims = n_dims;
    e->shape[0] = d0;
    e->shape[1] = d1;
    e->bytes = (size_t)(d0 * (n_dims > 1 ? d1 : 1)) * elem;
    e->data = calloc(e->bytes ? e->bytes : 1, 1);
    return e;
}

static entry *find_entry(entries *es, const char *name) {
    for (int i = 0; i < es->n; i++)
        if (!strcmp(es->e[i].name, name)) return &es->e[i];
    return NULL;
}

static void remove_entry(entries *es, const char *name) {
    for (int i = 0; i < es->n; i++)
        if (!strcmp(es->e[i].name, name)) {
            free(es->e[i].data);
            es->e[i] = es->e[--es->n];
            return;
        }
}

static void free_entries(entries *es) {
    for (int i = 0; i < es->n; i++)
        free(es->e[i].data);
    free(es->e);
    memset(es, 0, sizeof *es);
}

static entries copy_entries(const entries *src) {
    entries c = {0};
    for (int i = 0; i < src->n; i++) {
        const entry *s = &src->e[i];
        entry *e = add(&c, s->name, s->dtype, s->n_dims, s->shape[0], s->shape[1], 1);
        free(e->data);
        e->bytes = s->bytes;
        e->data = malloc(s->bytes ? s->bytes : 1);
        memcpy(e->data, s->data, s->bytes);
    }
    return c;
}

static void write_safetensors(const char *path, const entries *es) {
    cJSON *h = cJSON_CreateObject();
    size_t off = 0;
    for (int i = 0; i < es->n; i++) {
        const entry *e = &es->e[i];
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "dtype", e->dtype);
        cJSON *shape = cJSON_AddArrayToObject(t, "shape");
        for (int d = 0; d < e->n_dims; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)e->shape[d]));
        cJSON *offs = cJSON_AddArrayToObject(t, "data_offsets");
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + e->bytes)));
        cJSON_AddItemToObject(h, e->name, t);
        off += e->bytes;
    }
    char *text = cJSON_PrintUnformatted(h);
    size_t len = strlen(text), padded = (len + 7) & ~(size_t)7;
    uint64_t n = padded;
    FILE *f = fopen(path, "wb");
    fwrite(&n, 8, 1, f);
    fwrite(text, 1, len, f);
    for (size_t i = len; i < padded; i++)
        fputc(' ', f);
    for (int i = 0; i < es->n; i++)
        fwrite(es->e[i].data, 1, es->e[i].bytes, f);
    fclose(f);
    free(text);
    cJSON_Delete(h);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *t = malloc((size_t)n + 1);
    t[fread(t, 1, (size_t)n, f)] = 0;
    fclose(f);
    return t;
}

typedef struct qopts {
    int32_t gs; /* -1 or > 0 */
    int sym, v2, act, lm_head, lm_bias, f32_scales;
    int config_in_json; /* 1: config.json quantization_config, 0: quantize_config.json */
} qopts;

static uint32_t rd32(const uint8_t *p, int64_t i) {
    uint32_t v;
    memcpy(&v, p + 4 * i, 4);
    return v;
}
static void wr32(uint8_t *p, int64_t i, uint32_t v) {
    memcpy(p + 4 * i, &v, 4);
}

/* Quantizes W [N, K] (fp32) the GPTQ way into entries P.qweight/qzeros/scales/g_idx, and writes
 * the weights this test dequantises from the packed values into deq [N, K]. */
static void quantize_linear(entries *es, const char *prefix, const float *W, int64_t N, int64_t K,
                            const qopts *o, float *deq) {
    /* ceil: a short last group when gs does not divide K (GPTQModel's layout) */
    int64_t gs = o->gs == -1 ? K : o->gs, G = (K + gs - 1) / gs;
    int32_t *gidx = malloc((size_t)K * 4), *perm = malloc((size_t)K * 4);
    for (int64_t k = 0; k < K; k++)
        perm[k] = (int32_t)k;
    if (o->act)
        for (int64_t k = K - 1; k > 0; k--) {
            int64_t j = urand() % (uint64_t)(k + 1);
            int32_t t = perm[k];
            perm[k] = perm[j];
            perm[j] = t;
        }
    for (int64_t p = 0; p < K; p++)
        gidx[perm[p]] = (int32_t)(p / gs); /* position in perm / gs */
    char name[160];
    snprintf(name, sizeof name, "%s.qweight", prefix);
    entry *qw = add(es, name, "I32", 2, K / 8, N, 4);
    snprintf(name, sizeof name, "%s.qzeros", prefix);
    entry *qz = add(es, name, "I32", 2, G, N / 8, 4);
    snprintf(name, sizeof name, "%s.scales", prefix);
    entry *sc = add(es, name, o->f32_scales ? "F32" : "F16", 2, G, N, o->f32_scales ? 4 : 2);
    snprintf(name, sizeof name, "%s.g_idx", prefix);
    entry *gi = add(es, name, "I32", 1, K, 0, 4);
    memcpy(gi->data, gidx, (size_t)K * 4);
    float *s = malloc((size_t)(G * N) * 4);
    int *z = malloc((size_t)(G * N) * sizeof(int));
    for (int64_t g = 0; g < G; g++)
        for (int64_t n = 0; n < N; n++) {
            float mn = 0, mx = 0;
            for (int64_t k = 0; k < K; k++)
                if (gidx[k] == g) {
                    float v = W[n * K + k];
                    mn = v < mn ? v : mn;
                    mx = v > mx ? v : mx;
                }
            float sv;
            int zv;
            if (o->sym) {
                float am = fabsf(mn) > mx ? fabsf(mn) : mx;
                sv = 2 * am / 15;
                zv = 8;
            } else {
                /* zero points of 0 (in the middle and at the top nibble of a qzeros word), so
                 * that v1 packing borrows across nibbles and out of the word */
                if (n % 8 == 2 || n % 8 == 7) mn = 0;
                sv = (mx - mn) / 15;
                zv = (int)lrintf(-mn / (sv > 0 ? sv : 1));
            }
            if (!(sv > 0)) sv = 1e-3f;
            sv = llmrt_f16_to_f32(llmrt_f32_to_f16(sv)); /* scales are fp16 values */
            s[g * N + n] = sv;
            z[g * N + n] = zv < 0 ? 0 : zv > 15 ? 15 : zv;
            uint16_t h = llmrt_f32_to_f16(sv);
            if (o->f32_scales)
                memcpy(sc->data + 4 * (g * N + n), &sv, 4);
            else
                memcpy(sc->data + 2 * (g * N + n), &h, 2);
        }
    /* qzeros: the zero points packed 8 to a word; v1 then subtracts 0x11111111 from each word
     * (GPTQModel's v2 -> v1 conversion: a zero of 0 becomes 0xF and borrows from the next) */
    for (int64_t g = 0; g < G; g++)
        for (int64_t n = 0; n < N; n++) {
            wr32(qz->data, g * (N / 8) + n / 8,
                 rd32(qz->data, g * (N / 8) + n / 8) | (uint32_t)z[g * N + n] << (4 * (n % 8)));
            n_zero0 += !o->v2 && z[g * N + n] == 0;
        }
    if (!o->v2)
        for (int64_t i = 0; i < G * (N / 8); i++)
            wr32(qz->data, i, rd32(qz->data, i) - 0x11111111u);
    for (int64_t k = 0; k < K; k++)
        for (int64_t n = 0; n < N; n++) {
            int64_t g = gidx[k];
            float sv = s[g * N + n];
            int q = (int)lrintf(W[n * K + k] / sv) + z[g * N + n];
            q = q < 0 ? 0 : q > 15 ? 15 : q;
            wr32(qw->data, (k / 8) * N + n,
                 rd32(qw->data, (k / 8) * N + n) | (uint32_t)q << (4 * (k % 8)));
        }
    /* the reference dequantisation, from the packed tensors by the documented formula */
    for (int64_t k = 0; k < K; k++)
        for (int64_t n = 0; n < N; n++) {
            int64_t g = (int32_t)rd32(gi->data, k);
            uint32_t q = (rd32(qw->data, (k / 8) * N + n) >> (4 * (k % 8))) & 15;
            float zf = (float)z[g * N + n]; /* the zero point itself, before packing */
            float sv = s[g * N + n];
            deq[n * K + k] = sv * ((float)q - zf);
        }
    free(gidx);
    free(perm);
    free(s);
    free(z);
}

static bool is_linear(const char *name) {
    static const char *const sfx[] = {"q_proj.weight",   "k_proj.weight",    "v_proj.weight",
                                      "o_proj.weight",   "gate_proj.weight", "up_proj.weight",
                                      "down_proj.weight"};
    for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
        size_t n = strlen(name), m = strlen(sfx[i]);
        if (n > m && !strcmp(name + n - m, sfx[i])) return true;
    }
    return false;
}

static char tmp_root[512];

static void make_dir(const char *p) {
    mkdir(p, 0755);
}

/* Builds GPTQ checkpoint entries (q) and the fp32 reference entries (ref) from llama_f32. */
static void build(const qopts *o, entries *q, entries *ref) {
    llmrt_st_file src;
    llmrt_error err = {0};
    memset(q, 0, sizeof *q);
    memset(ref, 0, sizeof *ref);
    CHECK(llmrt_safetensors_open(LLMRT_TEST_DATA_DIR "/tiny/llama_f32/model.safetensors", &src,
                                 &err) == LLMRT_OK);
    for (int64_t i = 0; i < src.n_tensors; i++) {
        const llmrt_st_tensor *t = &src.tensors[i];
        int64_t d0 = (int64_t)t->shape[0], d1 = t->n_dims > 1 ? (int64_t)t->shape[1] : 0;
        bool quant = t->n_dims == 2 &&
                     (is_linear(t->name) || (o->lm_head && !strcmp(t->name, "lm_head.weight")));
        entry *r = add(ref, t->name, "F32", t->n_dims, d0, d1, 4);
        if (quant) {
            char prefix[128];
            snprintf(prefix, sizeof prefix, "%.*s", (int)(strlen(t->name) - 7), t->name);
            float *W = malloc(t->nbytes);
            memcpy(W, t->data, t->nbytes);
            quantize_linear(q, prefix, W, d0, d1, o, (float *)r->data);
            free(W);
            if (o->lm_bias && !strcmp(t->name, "lm_head.weight")) {
                entry *b = add(q, "lm_head.bias", "F16", 1, d0, 0, 2);
                for (int64_t n = 0; n < d0; n++) {
                    uint16_t h = llmrt_f32_to_f16((float)(urand() % 2001) / 1000.0f - 1.0f);
                    memcpy(b->data + 2 * n, &h, 2);
                }
            }
        } else {
            entry *c = add(q, t->name, "F32", t->n_dims, d0, d1, 4);
            memcpy(c->data, t->data, t->nbytes);
            memcpy(r->data, t->data, t->nbytes);
        }
    }
    llmrt_safetensors_close(&src);
}

static char *quant_config_text(const qopts *o, const char *extra) {
    static char buf[1024];
    snprintf(buf, sizeof buf,
             "{\"quant_method\": \"gptq\", \"bits\": 4, \"group_size\": %d, \"desc_act\": %s, "
             "\"sym\": %s, \"checkpoint_format\": \"%s\", \"lm_head\": %s, \"true_sequential\": "
             "true, \"damp_percent\": 0.01%s}",
             o->gs, o->act ? "true" : "false", o->sym ? "true" : "false",
             o->v2 ? "gptq_v2" : "gptq", o->lm_head ? "true" : "false", extra ? extra : "");
    return buf;
}

/* Writes dir/{config.json, quantize_config.json?, model.safetensors}. qconf NULL: none. */
static void write_checkpoint(const char *dir, const entries *es, const char *qconf, int in_json) {
    make_dir(dir);
    char path[1024];
    char *cfg = read_text(LLMRT_TEST_DATA_DIR "/tiny/llama_f32/config.json");
    cJSON *root = cJSON_Parse(cfg);
    free(cfg);
    if (qconf && in_json) cJSON_AddItemToObject(root, "quantization_config", cJSON_Parse(qconf));
    char *text = cJSON_Print(root);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, text);
    free(text);
    cJSON_Delete(root);
    snprintf(path, sizeof path, "%s/quantize_config.json", dir);
    if (qconf && !in_json)
        write_text(path, qconf);
    else
        unlink(path);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_safetensors(path, es);
}

static int32_t seq_a[] = {1,   287, 25, 102, 49, 202, 169, 9,  77, 310, 5,  64, 128,
                          200, 3,   44, 45,  46, 250, 251, 17, 18, 19,  20, 21};
static int32_t seq_b[] = {1, 42, 171, 273, 214, 94, 23, 159, 260, 275, 239};

/* WARN messages of the library (llmrt_log_set) */
static int  n_warnings;
static char last_warning[512];

static void count_warning(llmrt_log_level level, const char *msg, void *data) {
    (void)data;
    if (level != LLMRT_LOG_WARN) return;
    n_warnings++;
    snprintf(last_warning, sizeof last_warning, "%s", msg);
}

static void test_built(const char *label, qopts o) {
    entries q, ref;
    n_zero0 = 0;
    build(&o, &q, &ref);
    /* every asym v1 checkpoint holds zero points of 0 (their words borrow), the rest none */
    CHECK_MSG((n_zero0 > 0) == (!o.sym && !o.v2), "%s: %lld v1 zero points of 0", label,
              (long long)n_zero0);
    char qdir[1024], rdir[1024];
    snprintf(qdir, sizeof qdir, "%s/%s", tmp_root, label);
    snprintf(rdir, sizeof rdir, "%s/%s_ref", tmp_root, label);
    write_checkpoint(qdir, &q, quant_config_text(&o, NULL), o.config_in_json);
    write_checkpoint(rdir, &ref, NULL, 0);

    int32_t *ids[2] = {seq_a, seq_b}, lens[2] = {25, 11}, V = 320;
    int64_t n = 36 * V;
    float *lq = malloc((size_t)n * 4), *lr = malloc((size_t)n * 4), *ld = malloc((size_t)n * 4);
    float *lc = malloc((size_t)n * 4);
    /* group sizes the CPU kernels do not take: the load fails naming the tensor unless
     * allow_fallback, which dequantises them, reports it in llmrt_model_info and logs a WARN */
    bool cpu_q4 = o.gs % 32 == 0 || o.gs == -1;
    if (!cpu_q4) {
        llmrt_model_params mp = llmrt_model_default_params();
        mp.n_threads          = 1;
        llmrt_model *bad      = NULL;
        CHECK_STATUS(llmrt_model_load(qdir, &mp, &bad), LLMRT_ERR_UNSUPPORTED,
                     "tensor model.layers.0.self_attn.q_proj.weight: the cpu backend cannot run");
        CHECK(bad == NULL);
        printf("%-28s without allow_fallback: %s\n", label, llmrt_last_error());
        load_allow_fallback = true;
        llmrt_log_set(LLMRT_LOG_WARN, count_warning, NULL);
    }
    llmrt_model *mr = load(rdir, 1, 0), *mq = load(qdir, 1, 0), *md = load(qdir, 1, 1);
    if (!cpu_q4) {
        llmrt_log_set(LLMRT_LOG_ERROR, NULL, NULL);
        load_allow_fallback = false;
        llmrt_model_info info = {.struct_size = sizeof info};
        if (mq) llmrt_model_get_info(mq, &info);
        char want[64];
        snprintf(want, sizeof want, "q4->f32 dequantised: %d matrices (", info.n_fallbacks);
        /* every linear of the 3 layers (7 each), the lm_head too when it is quantized */
        CHECK_MSG(mq && info.n_fallbacks >= 7 * 3 && strstr(info.fallback, want) == info.fallback &&
                      strstr(info.fallback, "multiples of 32") != NULL,
                  "%s: n_fallbacks %d, fallback \"%s\"", label, info.n_fallbacks, info.fallback);
        CHECK_MSG(n_warnings == 1 && strstr(last_warning, "q4->f32 dequantised at load"),
                  "%s: %d warnings, last \"%s\"", label, n_warnings, last_warning);
        if (md) llmrt_model_get_info(md, &info); /* dequantize_weights: asked for, no fallback */
        CHECK(md && info.n_fallbacks == 0 && info.fallback[0] == 0);
        n_warnings = 0;
    }
    if (mr && mq && md) {
        char fmt[32], fmtd[32];
        weight_format(mq, fmt, sizeof fmt);
        weight_format(md, fmtd, sizeof fmtd);
        if (o.gs % 32 == 0 || o.gs == -1)
            CHECK_MSG(strstr(fmt, "q4") != NULL, "%s: loaded as %s, not 4-bit", label, fmt);
        else /* group sizes the CPU kernels do not take are dequantised at load */
            CHECK_MSG(strstr(fmt, "q4") == NULL, "%s: loaded as %s", label, fmt);
        CHECK_MSG(strstr(fmtd, "q4") == NULL, "%s: LLMRT_NO_Q4=1 loaded %s", label, fmtd);
        CHECK_STATUS(run_all(mr, 2, ids, lens, NULL, 0, V, lr), LLMRT_OK, NULL);
        CHECK_STATUS(run_all(mq, 2, ids, lens, NULL, 0, V, lq), LLMRT_OK, NULL);
        CHECK_STATUS(run_all(md, 2, ids, lens, NULL, 0, V, ld), LLMRT_OK, NULL);
        CHECK_STATUS(run_all(mq, 2, ids, lens, chunk_pattern, N_CHUNKS, V, lc), LLMRT_OK, NULL);
        CHECK_MSG(memcmp(lq, lc, (size_t)n * 4) == 0, "%s: chunked differs from one batch", label);
        if (o.lm_bias) { /* logits - bias of the reference: the bias is the only difference */
            llmrt_st_file f;
            llmrt_error err = {0};
            char p[1100];
            snprintf(p, sizeof p, "%s/model.safetensors", qdir);
            CHECK(llmrt_safetensors_open(p, &f, &err) == LLMRT_OK);
            const llmrt_st_tensor *b = llmrt_safetensors_find(&f, "lm_head.bias");
            for (int64_t r = 0; r < 36 && b; r++)
                for (int64_t v = 0; v < V; v++) {
                    uint16_t h;
                    memcpy(&h, b->data + 2 * v, 2);
                    float bias = llmrt_f16_to_f32(h);
                    lq[r * V + v] -= bias;
                    ld[r * V + v] -= bias;
                }
            llmrt_safetensors_close(&f);
        }
        double e_q, e_d, max_ref;
        golden_compare(lq, lr, n, &e_q, &max_ref);
        golden_compare(ld, lr, n, &e_d, &max_ref);
        bool bitwise = !o.act && !o.lm_bias;
        printf("%-28s (%s) vs fp32 reference: 4-bit max|diff| %.3g, LLMRT_NO_Q4 %.3g (max|logit| "
               "%.3g)\n",
               label, fmt, e_q, e_d, max_ref);
        double tol = o.lm_bias ? 1e-6 : ACT_TOL; /* subtracting the bias rounds once more */
        if (bitwise) {
            CHECK_MSG(memcmp(lq, lr, (size_t)n * 4) == 0,
                      "%s: 4-bit logits differ from the fp32 "
                      "reference (max %.3g)",
                      label, e_q);
            CHECK_MSG(memcmp(ld, lr, (size_t)n * 4) == 0,
                      "%s: LLMRT_NO_Q4 logits differ from the "
                      "fp32 reference (max %.3g)",
                      label, e_d);
        } else {
            CHECK_MSG(e_q <= tol * max_ref, "%s: 4-bit %.3g > %.0e * %.3g", label, e_q, tol,
                      max_ref);
            CHECK_MSG(e_d <= tol * max_ref, "%s: NO_Q4 %.3g > %.0e * %.3g", label, e_d, tol,
                      max_ref);
        }
    }
    llmrt_model_destroy(mr);
    llmrt_model_destroy(mq);
    llmrt_model_destroy(md);
    free(lq);
    free(lr);
    free(ld);
    free(lc);
    free_entries(&q);
    free_entries(&ref);
}

/* --------------------------------------------------------------------------------------------- */
/* 3. loader errors                                                                              */
/* --------------------------------------------------------------------------------------------- */

#define DOWN "model.layers.1.mlp.down_proj" /* K = 160, N = 64 */

static void expect_error(const char *label, const entries *es, const char *qconf, llmrt_status want,
                         const char *needle) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/err_%s", tmp_root, label);
    write_checkpoint(dir, es, qconf, 1);
    llmrt_model_params mp = llmrt_model_default_params();
    mp.n_threads = 1;
    llmrt_model *m = NULL;
    llmrt_status s = llmrt_model_load(dir, &mp, &m);
    CHECK_MSG(s == want, "%s: status %s, expected %s (%s)", label, llmrt_status_str(s),
              llmrt_status_str(want), llmrt_last_error());
    if (s != LLMRT_OK) {
        CHECK_MSG(strstr(llmrt_last_error(), needle) != NULL, "%s: message \"%s\" lacks \"%s\"",
                  label, llmrt_last_error(), needle);
        printf("error %-14s -> %s: %s\n", label, llmrt_status_str(s), llmrt_last_error());
    } else {
        printf("       %-14s -> loads\n", label);
    }
    llmrt_model_destroy(m);
}

static void test_errors(void) {
    qopts o = {.gs = 32, .sym = 1, .config_in_json = 1};
    entries base, ref;
    build(&o, &base, &ref);
    free_entries(&ref);
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "%s", quant_config_text(&o, NULL));

    /* config */
    char bad[1024];
    snprintf(bad, sizeof bad, "{\"quant_method\": \"gptq\", \"bits\": 3, \"group_size\": 32}");
    expect_error("bits3", &base, bad, LLMRT_ERR_UNSUPPORTED, "bits = 3");
    snprintf(bad, sizeof bad, "{\"quant_method\": \"gptq\", \"bits\": 5, \"group_size\": 32}");
    expect_error("bits5", &base, bad, LLMRT_ERR_FORMAT, "bits = 5");
    snprintf(bad, sizeof bad, "{\"quant_method\": \"gptq\", \"bits\": 4, \"group_size\": 0}");
    expect_error("group0", &base, bad, LLMRT_ERR_FORMAT, "group_size = 0");
    snprintf(bad, sizeof bad, "{\"quant_method\": \"gptq\", \"bits\": 4, \"group_size\": -7}");
    expect_error("group-7", &base, bad, LLMRT_ERR_FORMAT, "group_size = -7");
    snprintf(bad, sizeof bad, "{\"quant_method\": \"gptq\", \"bits\": 4}");
    expect_error("no_group", &base, bad, LLMRT_ERR_MODEL_MISMATCH, "group_size");
    snprintf(bad, sizeof bad, "{\"quant_method\": \"awq\", \"bits\": 4, \"group_size\": 32}");
    expect_error("awq_gptq_tensors", &base, bad, LLMRT_ERR_MODEL_MISMATCH,
                 "q_proj.qweight has shape [8, 64], expected [64, 8]");
    snprintf(bad, sizeof bad,
             "{\"quant_method\": \"awq\", \"bits\": 4, \"group_size\": 32, \"version\": "
             "\"gemv\"}");
    expect_error("awq_gemv", &base, bad, LLMRT_ERR_UNSUPPORTED,
                 "AWQ version \"gemv\" is not supported (supported: gemm)");
    snprintf(bad, sizeof bad,
             "{\"quant_method\": \"awq\", \"w_bit\": 4, \"q_group_size\": 32, "
             "\"zero_point\": false}");
    expect_error("awq_no_zero", &base, bad, LLMRT_ERR_UNSUPPORTED, "AWQ zero_point = false");
    snprintf(bad, sizeof bad, "{\"quant_method\": \"awq\", \"w_bit\": 3, \"q_group_size\": 32}");
    expect_error("awq_bits3", &base, bad, LLMRT_ERR_UNSUPPORTED, "AWQ bits = 3");
    snprintf(bad, sizeof bad, "{\"quant_method\": \"awq\", \"w_bit\": 4}");
    expect_error("awq_no_group", &base, bad, LLMRT_ERR_MODEL_MISMATCH,
                 "\"group_size\" (or \"q_group_size\") is missing");
    snprintf(bad, sizeof bad,
             "{\"bits\": 4, \"group_size\": 32, \"checkpoint_format\": \"marlin\"}");
    expect_error("marlin", &base, bad, LLMRT_ERR_UNSUPPORTED, "marlin");
    snprintf(bad, sizeof bad, "{\"bits\": 4, \"group_size\": 32, \"pack_dtype\": \"int16\"}");
    expect_error("pack_int16", &base, bad, LLMRT_ERR_UNSUPPORTED, "pack_dtype");
    snprintf(bad, sizeof bad,
             "{\"bits\": 4, \"group_size\": 32, \"dynamic\": {\"-:.*down.*\": {}}}");
    expect_error("dynamic_excludes", &base, bad, LLMRT_ERR_MODEL_MISMATCH,
                 "model.layers.0.mlp.down_proj.qweight: a \"-:\" dynamic rule says "
                 "model.layers.0.mlp.down_proj is not quantized");
    snprintf(bad, sizeof bad,
             "{\"bits\": 4, \"group_size\": 32, \"dynamic\": {\"+:.*?down\": {\"bits\": 8}}}");
    expect_error("dynamic_lazy", &base, bad, LLMRT_ERR_UNSUPPORTED,
                 "dynamic \"+:.*?down\": the pattern is not supported");
    snprintf(bad, sizeof bad,
             "{\"bits\": 4, \"group_size\": 32, \"dynamic\": {\"a{1,3}\": {}, \"b++\": {}}}");
    expect_error("dynamic_counted", &base, bad, LLMRT_ERR_UNSUPPORTED,
                 "dynamic \"a{1,3}\": the pattern is not supported");
    snprintf(bad, sizeof bad,
             "{\"bits\": 4, \"group_size\": 32, \"dynamic\": {\"b++\": {}}}");
    expect_error("dynamic_stacked", &base, bad, LLMRT_ERR_UNSUPPORTED,
                 "dynamic \"b++\": the pattern is not supported");
    /* bracket expressions with Python escapes: layer 1's down_proj (\d and a literal '.') */
    snprintf(bad, sizeof bad,
             "{\"bits\": 4, \"group_size\": 32, \"dynamic\": {\"+:model[.]layers[\\\\.]"
             "[\\\\d]\\\\.mlp\\\\.down_proj\": {\"bits\": 8}}}");
    expect_error("dynamic_bracket", &base, bad, LLMRT_ERR_MODEL_MISMATCH,
                 "model.layers.0.mlp.down_proj.qweight has shape [20, 64], expected [40, 64]");
    snprintf(bad, sizeof bad,
             "{\"bits\": 4, \"group_size\": 32, \"dynamic\": {\"lm_head\": {\"bits\": 3}}}");
    expect_error("dynamic_bits3", &base, bad, LLMRT_ERR_UNSUPPORTED,
                 "dynamic \"lm_head\": bits = 3 is not supported");
    snprintf(bad, sizeof bad,
             "{\"bits\": 4, \"group_size\": 32, \"dynamic\": {\".*\\\\.1\\\\..*\": "
             "{\"format\": \"gptq_v2\"}}}");
    expect_error("dynamic_format", &base, bad, LLMRT_ERR_UNSUPPORTED,
                 "format \"gptq_v2\" differs from the base config's \"gptq\"");
    snprintf(bad, sizeof bad,
             "{\"bits\": 4, \"group_size\": 32, \"dynamic\": [\"lm_head\"]}");
    expect_error("dynamic_array", &base, bad, LLMRT_ERR_FORMAT, "\"dynamic\" must be an object");
    /* an 8-bit override of a 4-bit Linear: its tensors are 4-bit-shaped */
    snprintf(bad, sizeof bad,
             "{\"bits\": 4, \"group_size\": 32, \"dynamic\": {\"+:model\\\\.layers\\\\.1"
             "\\\\.mlp\\\\.down_proj\": {\"bits\": 8}}}");
    expect_error("dynamic_bits8", &base, bad, LLMRT_ERR_MODEL_MISMATCH,
                 DOWN ".qweight has shape [20, 64], expected [40, 64]");
    snprintf(bad, sizeof bad,
             "{\"bits\": 4, \"group_size\": 32, \"model_file_base_name\": \"../model\"}");
    expect_error("base_name_path", &base, bad, LLMRT_ERR_FORMAT,
                 "model_file_base_name \"../model\" must name a file in the checkpoint directory");
    /* group_size 96 over q_proj's K = 64: one short group (GPTQModel's ceil(K / gs)), but the
     * file holds the qzeros of two */
    snprintf(bad, sizeof bad, "{\"bits\": 4, \"group_size\": 96}");
    expect_error("group96", &base, bad, LLMRT_ERR_MODEL_MISMATCH,
                 "model.layers.0.self_attn.q_proj.qzeros has shape [2, 8], expected [1, 8]");
    expect_error("no_config", &base, NULL, LLMRT_ERR_FORMAT, "quantization_config");

    /* tensors */
    entries e = copy_entries(&base);
    wr32(find_entry(&e, DOWN ".g_idx")->data, 5, 5); /* G = 5: out of range */
    expect_error("gidx_range", &e, cfg, LLMRT_ERR_MODEL_MISMATCH, DOWN ".g_idx[5] = 5");
    free_entries(&e);

    e = copy_entries(&base);
    wr32(find_entry(&e, DOWN ".g_idx")->data, 0, 1); /* group 0: 31 rows, group 1: 33 */
    expect_error("gidx_count", &e, cfg, LLMRT_ERR_MODEL_MISMATCH, "group 0 has 31 rows");
    free_entries(&e);

    e = copy_entries(&base);
    entry *sc = find_entry(&e, DOWN ".scales");
    sc->shape[0] = 4; /* [G-1, N] */
    sc->bytes = (size_t)(4 * 64 * 2);
    expect_error("scales_shape", &e, cfg, LLMRT_ERR_MODEL_MISMATCH,
                 DOWN ".scales has shape [4, 64]");
    free_entries(&e);

    e = copy_entries(&base);
    remove_entry(&e, DOWN ".qzeros");
    expect_error("no_qzeros", &e, cfg, LLMRT_ERR_MODEL_MISMATCH, DOWN ".qzeros is missing");
    free_entries(&e);

    e = copy_entries(&base);
    remove_entry(&e, DOWN ".scales");
    expect_error("no_scales", &e, cfg, LLMRT_ERR_MODEL_MISMATCH, DOWN ".scales is missing");
    free_entries(&e);

    e = copy_entries(&base);
    entry *qw = find_entry(&e, DOWN ".qweight");
    qw->shape[0] = 19; /* K/8 = 20 */
    qw->bytes = (size_t)(19 * 64 * 4);
    expect_error("qweight_shape", &e, cfg, LLMRT_ERR_MODEL_MISMATCH,
                 DOWN ".qweight has shape [19, 64]");
    free_entries(&e);

    e = copy_entries(&base);
    snprintf(find_entry(&e, DOWN ".qweight")->dtype, 8, "F32");
    expect_error("qweight_dtype", &e, cfg, LLMRT_ERR_UNSUPPORTED, DOWN ".qweight has dtype F32");
    free_entries(&e);

    e = copy_entries(&base);
    entry *qz = find_entry(&e, DOWN ".qzeros");
    qz->shape[1] = 16; /* N/8 = 8 */
    qz->bytes = (size_t)(5 * 16 * 4);
    free(qz->data);
    qz->data = calloc(qz->bytes, 1);
    expect_error("qzeros_shape", &e, cfg, LLMRT_ERR_MODEL_MISMATCH,
                 DOWN ".qzeros has shape [5, 16]");
    free_entries(&e);

    e = copy_entries(&base);
    entry *gi = find_entry(&e, DOWN ".g_idx");
    gi->shape[0] = 128;
    gi->bytes = 128 * 4;
    expect_error("gidx_shape", &e, cfg, LLMRT_ERR_MODEL_MISMATCH, DOWN ".g_idx has shape [128]");
    free_entries(&e);

    /* a missing g_idx means k / group_size: loads */
    e = copy_entries(&base);
    remove_entry(&e, DOWN ".g_idx");
    expect_error("no_gidx_ok", &e, cfg, LLMRT_OK, "");
    free_entries(&e);
    free_entries(&base);
}

/* --------------------------------------------------------------------------------------------- */
/* 4. bad 8-bit GPTQ and AWQ files: a peer-written fixture with one tensor broken                */
/* --------------------------------------------------------------------------------------------- */

static entries read_entries(const char *path) {
    entries       es  = {0};
    llmrt_st_file f;
    llmrt_error   err = {0};
    CHECK_MSG(llmrt_safetensors_open(path, &f, &err) == LLMRT_OK, "%s: %s", path, err.msg);
    for (int64_t i = 0; i < f.n_tensors; i++) {
        const llmrt_st_tensor *t = &f.tensors[i];
        entry *e = add(&es, t->name, llmrt_dtype_name(t->dtype), t->n_dims, (int64_t)t->shape[0],
                       t->n_dims > 1 ? (int64_t)t->shape[1] : 0, 1);
        free(e->data);
        e->bytes = t->nbytes;
        e->data  = malloc(t->nbytes ? t->nbytes : 1);
        memcpy(e->data, t->data, t->nbytes);
    }
    llmrt_safetensors_close(&f);
    return es;
}

/* `fixture` (tests/data/gptq/NAME) with its tensors replaced by `es` (and its config.json
 * replaced by `config` when not NULL) must fail to load with `want` and a message holding
 * `needle`. */
static void expect_peer_error(const char *label, const char *fixture, const entries *es,
                              const char *config, llmrt_status want, const char *needle) {
    char dir[1024], path[1200], src[1200];
    snprintf(dir, sizeof dir, "%s/err_%s", tmp_root, label);
    make_dir(dir);
    snprintf(src, sizeof src, "%s/gptq/%s/config.json", LLMRT_TEST_DATA_DIR, fixture);
    char *text = config ? NULL : read_text(src);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, config ? config : text);
    free(text);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_safetensors(path, es);
    llmrt_model_params mp = llmrt_model_default_params();
    mp.n_threads          = 1;
    mp.allow_fallback     = true; /* the errors must come from the checks, not the fallback */
    llmrt_model *m        = NULL;
    CHECK_STATUS(llmrt_model_load(dir, &mp, &m), want, needle);
    CHECK(m == NULL);
    printf("error %-14s -> %s\n", label, llmrt_last_error());
    llmrt_model_destroy(m);
}

#define Q8  "peer_b8_g32_sym_v1"
#define Q8Z "peer_b8_g32_asym_v1"
#define SHORT8 "peer_b8_g256_asym_v2_short"
#define SHORT4 "peer_b4_g256_asym_v1_short"
#define DOWN0 "model.layers.0.mlp.down_proj"
#define AWQ "awq_g64"
#define GATE0 "model.layers.0.mlp.gate_proj"

static void test_peer_errors(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/gptq/%s/model.safetensors", LLMRT_TEST_DATA_DIR, Q8);
    entries q8 = read_entries(path);
    /* gate_proj: N = 384, K = 128, group 32 -> qweight [32, 384], qzeros [4, 96] */
    entries e = copy_entries(&q8);
    find_entry(&e, GATE0 ".qzeros")->shape[1] = 48;
    find_entry(&e, GATE0 ".qzeros")->bytes /= 2;
    expect_peer_error("q8_qzeros", Q8, &e, NULL, LLMRT_ERR_MODEL_MISMATCH,
                      GATE0 ".qzeros has shape [4, 48], expected [4, 96]");
    free_entries(&e);
    e = copy_entries(&q8);
    int32_t big = 7;
    memcpy(find_entry(&e, GATE0 ".g_idx")->data + 4 * 5, &big, 4);
    expect_peer_error("q8_g_idx", Q8, &e, NULL, LLMRT_ERR_MODEL_MISMATCH,
                      GATE0 ".g_idx[5] = 7 is outside [0, 4)");
    free_entries(&e);
    e = copy_entries(&q8);
    snprintf(find_entry(&e, GATE0 ".scales")->dtype, 8, "I16");
    expect_peer_error("q8_scales", Q8, &e, NULL, LLMRT_ERR_UNSUPPORTED,
                      GATE0 ".scales has dtype I16 (supported: F16, BF16, F32)");
    free_entries(&e);
    e = copy_entries(&q8);
    remove_entry(&e, GATE0 ".qweight");
    expect_peer_error("q8_no_qweight", Q8, &e, NULL, LLMRT_ERR_MODEL_MISMATCH,
                      "tensor " GATE0 ".weight (or " GATE0 ".qweight) is missing");
    free_entries(&e);
    free_entries(&q8);

    /* Q8_Z (8-bit asym, kept packed): the same checks reach it */
    snprintf(path, sizeof path, "%s/gptq/%s/model.safetensors", LLMRT_TEST_DATA_DIR, Q8Z);
    entries q8z = read_entries(path);
    e = copy_entries(&q8z);
    find_entry(&e, GATE0 ".qweight")->shape[0] = 31; /* truncated: one word row short */
    find_entry(&e, GATE0 ".qweight")->bytes -= 4 * 384;
    expect_peer_error("q8z_qweight", Q8Z, &e, NULL, LLMRT_ERR_MODEL_MISMATCH,
                      GATE0 ".qweight has shape [31, 384], expected [32, 384]");
    free_entries(&e);
    e = copy_entries(&q8z);
    find_entry(&e, GATE0 ".qzeros")->shape[0] = 2;
    find_entry(&e, GATE0 ".qzeros")->bytes /= 2;
    expect_peer_error("q8z_qzeros", Q8Z, &e, NULL, LLMRT_ERR_MODEL_MISMATCH,
                      GATE0 ".qzeros has shape [2, 96], expected [4, 96]");
    free_entries(&e);
    e = copy_entries(&q8z);
    int32_t neg = -1;
    memcpy(find_entry(&e, GATE0 ".g_idx")->data + 4 * 9, &neg, 4);
    expect_peer_error("q8z_g_idx", Q8Z, &e, NULL, LLMRT_ERR_MODEL_MISMATCH,
                      GATE0 ".g_idx[9] = -1 is outside [0, 4)");
    free_entries(&e);
    /* fp32 scales of which one is not an fp16 value: not kept packed; without allow_fallback
     * refused naming the tensor and the scale, with it dequantised to fp32 and reported */
    e               = copy_entries(&q8z);
    entry   *sc     = find_entry(&e, GATE0 ".scales");
    size_t   n_sc   = sc->bytes / 2;
    float   *sc32   = malloc(n_sc * 4);
    for (size_t i = 0; i < n_sc; i++) {
        uint16_t h;
        memcpy(&h, sc->data + 2 * i, 2);
        sc32[i] = llmrt_f16_to_f32(h);
    }
    sc32[7] *= 1.0f + 0x1p-20f; /* [0][7] */
    free(sc->data);
    sc->data  = (uint8_t *)sc32;
    sc->bytes = n_sc * 4;
    snprintf(sc->dtype, sizeof sc->dtype, "F32");
    char dir8[1024], p8[1200];
    snprintf(dir8, sizeof dir8, "%s/q8z_f32_scale", tmp_root);
    make_dir(dir8);
    snprintf(path, sizeof path, "%s/gptq/%s/config.json", LLMRT_TEST_DATA_DIR, Q8Z);
    char *cfg8 = read_text(path);
    snprintf(p8, sizeof p8, "%s/config.json", dir8);
    write_text(p8, cfg8);
    free(cfg8);
    snprintf(p8, sizeof p8, "%s/model.safetensors", dir8);
    write_safetensors(p8, &e);
    free_entries(&e);
    llmrt_model_params mp8 = llmrt_model_default_params();
    mp8.n_threads          = 1;
    llmrt_model *m8        = NULL;
    CHECK_STATUS(llmrt_model_load(dir8, &mp8, &m8), LLMRT_ERR_UNSUPPORTED,
                 GATE0 ": this 8-bit GPTQ matrix [384, 128] (group size 32) does not map onto "
                       "Q8_0 / Q8_Z blocks the backend runs: F32 scales[0][7] not an fp16 value");
    CHECK(m8 == NULL);
    mp8.allow_fallback = true;
    CHECK_STATUS(llmrt_model_load(dir8, &mp8, &m8), LLMRT_OK, NULL);
    llmrt_model_info info8 = {.struct_size = sizeof info8};
    if (m8) llmrt_model_get_info(m8, &info8);
    CHECK_MSG(m8 && info8.n_fallbacks == 1 && strstr(info8.weight_format, "f32") &&
                  strstr(info8.weight_format, "q8_z") &&
                  strstr(info8.fallback, "F32 scales[0][7] not an fp16 value"),
              "fp32 scale fallback: %d fallbacks (%s), weights %s", info8.n_fallbacks,
              m8 ? info8.fallback : "-", m8 ? info8.weight_format : "(not loaded)");
    llmrt_model_destroy(m8);
    free_entries(&q8z);

    /* short last groups (group 256): down_proj K = 384 has groups of 256 + 128 */
    snprintf(path, sizeof path, "%s/gptq/%s/model.safetensors", LLMRT_TEST_DATA_DIR, SHORT8);
    entries sh = read_entries(path);
    e = copy_entries(&sh);
    find_entry(&e, DOWN0 ".scales")->shape[0] = 1; /* the file says one group, K says two */
    find_entry(&e, DOWN0 ".scales")->bytes /= 2;
    expect_peer_error("short_scales", SHORT8, &e, NULL, LLMRT_ERR_MODEL_MISMATCH,
                      DOWN0 ".scales has shape [1, 128], expected [2, 128]");
    free_entries(&e);
    e = copy_entries(&sh);
    int32_t one = 1; /* row 0 moved to the short group: 255 + 129 rows */
    memcpy(find_entry(&e, DOWN0 ".g_idx")->data, &one, 4);
    expect_peer_error("short_g_idx", SHORT8, &e, NULL, LLMRT_ERR_MODEL_MISMATCH,
                      DOWN0 ".g_idx: group 0 has 255 rows, expected 256 (group_size 256, "
                      "in_features 384)");
    free_entries(&e);
    free_entries(&sh);
    snprintf(path, sizeof path, "%s/gptq/%s/model.safetensors", LLMRT_TEST_DATA_DIR, SHORT4);
    sh = read_entries(path);
    e = copy_entries(&sh);
    memcpy(find_entry(&e, DOWN0 ".g_idx")->data + 4 * 383, &(int32_t){0}, 4);
    expect_peer_error("short4_g_idx", SHORT4, &e, NULL, LLMRT_ERR_MODEL_MISMATCH,
                      DOWN0 ".g_idx: group 0 has 257 rows, expected 256 (group_size 256, "
                      "in_features 384)");
    free_entries(&e);
    free_entries(&sh);

    snprintf(path, sizeof path, "%s/gptq/%s/model.safetensors", LLMRT_TEST_DATA_DIR, AWQ);
    entries awq = read_entries(path);
    /* AWQ gate_proj: qweight [128, 48], qzeros [2, 48], scales [2, 384] */
    e = copy_entries(&awq);
    find_entry(&e, GATE0 ".qweight")->shape[0] = 64;
    find_entry(&e, GATE0 ".qweight")->bytes /= 2;
    expect_peer_error("awq_qweight", AWQ, &e, NULL, LLMRT_ERR_MODEL_MISMATCH,
                      GATE0 ".qweight has shape [64, 48], expected [128, 48]");
    free_entries(&e);
    e = copy_entries(&awq);
    add(&e, GATE0 ".g_idx", "I32", 1, 128, 0, 4);
    expect_peer_error("awq_g_idx", AWQ, &e, NULL, LLMRT_ERR_MODEL_MISMATCH,
                      GATE0 ".g_idx: AWQ checkpoints have no g_idx");
    free_entries(&e);
    free_entries(&awq);

    /* model_file_base_name names a file that is not there: the open fails naming it */
    snprintf(path, sizeof path, "%s/gptq/%s/quantize_config.json", LLMRT_TEST_DATA_DIR,
             "peer_b4_g128_act_asym_v1");
    char *qc = read_text(path);
    char dir[1024], p2[1200];
    snprintf(dir, sizeof dir, "%s/err_base_name_missing", tmp_root);
    make_dir(dir);
    snprintf(p2, sizeof p2, "%s/quantize_config.json", dir);
    write_text(p2, qc);
    free(qc);
    snprintf(path, sizeof path, "%s/gptq/%s/config.json", LLMRT_TEST_DATA_DIR,
             "peer_b4_g128_act_asym_v1");
    char *cfg = read_text(path);
    snprintf(p2, sizeof p2, "%s/config.json", dir);
    write_text(p2, cfg);
    free(cfg);
    llmrt_model_params mp = llmrt_model_default_params();
    llmrt_model       *m  = NULL;
    CHECK_STATUS(llmrt_model_load(dir, &mp, &m), LLMRT_ERR_IO, "gptq_model-4bit-128g.safetensors");
    printf("error %-14s -> %s\n", "base_name_gone", llmrt_last_error());
    llmrt_model_destroy(m);
}

int main(void) {
    snprintf(tmp_root, sizeof tmp_root, "%s/test_gptq_XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp_root)) {
        CHECK_MSG(0, "cannot create a temporary directory");
        return test_summary("test_gptq");
    }
    test_built("g32_sym_v1", (qopts){.gs = 32, .sym = 1, .config_in_json = 1});
    test_built("g32_asym_v1", (qopts){.gs = 32, .sym = 0, .config_in_json = 1});
    test_built("g32_asym_v2_act", (qopts){.gs = 32, .sym = 0, .v2 = 1, .act = 1});
    test_built("gall_sym_v2_f32scales",
               (qopts){.gs = -1, .sym = 1, .v2 = 1, .f32_scales = 1, .config_in_json = 1});
    test_built("g32_asym_act_lmhead",
               (qopts){.gs = 32, .sym = 0, .act = 1, .lm_head = 1, .config_in_json = 1});
    test_built("g32_sym_lmhead_bias",
               (qopts){.gs = 32, .sym = 1, .lm_head = 1, .lm_bias = 1, .config_in_json = 1});
    /* short last groups (group 128: K = 64 is one group of 64, down_proj's K = 160 is 128 + 32):
     * padded with zero-input columns, natural order and act-order */
    test_built("g128_asym_short", (qopts){.gs = 128, .sym = 0, .v2 = 1, .config_in_json = 1});
    test_built("g128_asym_act_short", (qopts){.gs = 128, .sym = 0, .act = 1, .config_in_json = 1});
    test_built("g16_sym_v1_dequantised", (qopts){.gs = 16, .sym = 1, .config_in_json = 1});
    test_errors();
    test_peer_errors();
    test_goldens();
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_root);
    return test_summary("test_gptq");
}
