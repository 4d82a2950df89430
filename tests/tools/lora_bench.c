/* Multi-LoRA on the CPU, through the public API: decode and prefill throughput of one batch of
 * requests whose adapters are spread over 0, 1, 4 and 16 distinct adapters (issue 15's
 * target: 16 distinct adapters cost <= 1.3x the time of none at batch 16), plus each adapter's
 * load time and bytes. Configurations alternate within each round; medians of the rounds. A
 * development tool (bench/lora_cpu.sh runs it), not a test: nothing is asserted.
 *
 * usage: lora_bench -m MODEL -a DIR1,DIR2,... [-b 16] [-p 128] [-n 64] [-t THREADS] [-r 3]
 *                   [--mix 0,1,4,16] */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llmrt.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct run_result {
    double prefill_tok_s; /* prompt tokens / time until every request has its first token */
    double decode_tok_s;  /* tokens after each first one / the time after the last first one */
} run_result;

/* One batch of b requests, request i on adapter i % mix ("" when mix is 0). */
static int run_batch(llmrt_engine *e, int32_t b, int32_t p_len, int32_t n_out, int32_t mix,
                     char names[][16], int32_t vocab, run_result *res) {
    int32_t *ids = malloc((size_t)p_len * sizeof *ids);
    uint64_t rng = 12345;
    llmrt_sampling_params sp = llmrt_sampling_default_params();
    sp.temperature = 0;
    sp.max_tokens = n_out;
    sp.ignore_eos = true;
    double t0 = now_s();
    for (int32_t i = 0; i < b; i++) {
        for (int32_t k = 0; k < p_len; k++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            ids[k] = (int32_t)((rng >> 33) % (uint64_t)vocab);
        }
        llmrt_prompt p = {.struct_size = sizeof p,
                          .tokens = ids,
                          .n_tokens = p_len,
                          .lora_adapter = mix > 0 ? names[i % mix] : NULL};
        uint64_t id;
        if (llmrt_engine_submit(e, &p, &sp, &id) != LLMRT_OK) {
            fprintf(stderr, "lora_bench: submit: %s\n", llmrt_last_error());
            free(ids);
            return -1;
        }
    }
    free(ids);
    int32_t firsts = 0, done = 0;
    int64_t after_first = 0;
    double t_first = 0;
    while (done < b) {
        const llmrt_output *o;
        int32_t n;
        if (llmrt_engine_step(e, &o, &n) != LLMRT_OK) {
            fprintf(stderr, "lora_bench: step: %s\n", llmrt_last_error());
            return -1;
        }
        for (int32_t i = 0; i < n; i++) {
            const llmrt_output *oi =
                (const llmrt_output *)((const char *)o + (size_t)i * o->struct_size);
            if (oi->n_tokens > 0 && oi->n_generated == oi->n_tokens) {
                firsts++;
                after_first += oi->n_tokens - 1;
                if (firsts == b) t_first = now_s();
            } else if (firsts == b) {
                after_first += oi->n_tokens;
            }
            if (oi->finish != LLMRT_FINISH_NONE) done++;
        }
    }
    double t1 = now_s();
    res->prefill_tok_s = (double)b * p_len / (t_first - t0);
    res->decode_tok_s = (double)(b * (n_out - 1)) / (t1 - t_first);
    (void)after_first;
    return 0;
}

static void print_cpu(void) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0) {
            printf("cpu: %s", strchr(line, ':') + 2);
            break;
        }
    if (f) fclose(f);
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *adapters = NULL, *mix_list = "0,1,4,16";
    int32_t b = 16, p_len = 128, n_out = 64, threads = 0, rounds = 3;
    static const struct option opts[] = {{"mix", required_argument, NULL, 'x'}, {0}};
    int c;
    while ((c = getopt_long(argc, argv, "m:a:b:p:n:t:r:", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            model_path = optarg;
            break;
        case 'a':
            adapters = optarg;
            break;
        case 'b':
            b = atoi(optarg);
            break;
        case 'p':
            p_len = atoi(optarg);
            break;
        case 'n':
            n_out = atoi(optarg);
            break;
        case 't':
            threads = atoi(optarg);
            break;
        case 'r':
            rounds = atoi(optarg);
            break;
        case 'x':
            mix_list = optarg;
            break;
        default:
            return 2;
        }
    }
    if (!model_path || !adapters || b < 1 || p_len < 1 || n_out < 2 || rounds < 1 || rounds > 50) {
        fprintf(stderr, "usage: lora_bench -m MODEL -a DIR1,DIR2,... [-b 16] [-p 128] [-n 64] "
                        "[-t THREADS] [-r 3] [--mix 0,1,4,16]\n");
        return 2;
    }
    int32_t mixes[8], n_mix = 0;
    for (const char *s = mix_list; s && *s && n_mix < 8;
         s = strchr(s, ',') ? strchr(s, ',') + 1 : NULL)
        mixes[n_mix++] = atoi(s);
    llmrt_model_params mp = llmrt_model_default_params();
    mp.n_threads = threads;
    llmrt_model *model = NULL;
    if (llmrt_model_load(model_path, &mp, &model) != LLMRT_OK) {
        fprintf(stderr, "lora_bench: %s\n", llmrt_last_error());
        return 1;
    }
    llmrt_model_info info = {.struct_size = sizeof info};
    llmrt_model_get_info(model, &info);
    llmrt_engine_params ep = llmrt_engine_default_params();
    ep.max_seqs = b;
    ep.max_loras = 16;
    ep.prefix_caching = false; /* every round recomputes its prompts */
    ep.kv_tokens = (int64_t)b * (p_len + n_out + 16);
    llmrt_engine *e = NULL;
    if (llmrt_engine_create(model, &ep, &e) != LLMRT_OK) {
        fprintf(stderr, "lora_bench: %s\n", llmrt_last_error());
        return 1;
    }
    print_cpu();
    printf("model: %s (%s), batch %d, prompt %d, output %d, %d rounds\n", model_path,
           info.weight_format, b, p_len, n_out, rounds);
    char names[16][16];
    int32_t n_adapters = 0;
    char *list = strdup(adapters);
    for (char *tok = strtok(list, ","); tok && n_adapters < 16; tok = strtok(NULL, ",")) {
        snprintf(names[n_adapters], sizeof names[0], "a%d", n_adapters);
        double t0 = now_s();
        if (llmrt_engine_lora_load(e, names[n_adapters], tok) != LLMRT_OK) {
            fprintf(stderr, "lora_bench: %s\n", llmrt_last_error());
            return 1;
        }
        double dt = now_s() - t0;
        llmrt_lora_info li[16];
        for (int i = 0; i < 16; i++)
            li[i].struct_size = sizeof li[i];
        llmrt_engine_lora_list(e, li, 16);
        printf("adapter %s: %s, rank %d, %d modules, %.1f MB fp32, loaded in %.1f ms\n",
               names[n_adapters], tok, li[n_adapters].max_rank, li[n_adapters].n_modules,
               li[n_adapters].bytes / 1e6, dt * 1e3);
        n_adapters++;
    }
    free(list);
    double(*pre)[50] = calloc(8, sizeof *pre), (*dec)[50] = calloc(8, sizeof *dec);
    run_result warm;
    run_batch(e, b, p_len, 4, 0, names, info.vocab_size, &warm); /* warm-up */
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < n_mix; i++) {
            int32_t mix = mixes[i] <= n_adapters ? mixes[i] : n_adapters;
            run_result res;
            if (run_batch(e, b, p_len, n_out, mix, names, info.vocab_size, &res) != 0) return 1;
            pre[i][r] = res.prefill_tok_s;
            dec[i][r] = res.decode_tok_s;
        }
    double base_dec = 0;
    printf("%-18s %14s %14s %16s\n", "distinct adapters", "prefill tok/s", "decode tok/s",
           "decode time x");
    for (int i = 0; i < n_mix; i++) {
        double p = median(pre[i], rounds), d = median(dec[i], rounds);
        if (i == 0) base_dec = d;
        printf("%-18d %14.1f %14.1f %16.2f\n", mixes[i] <= n_adapters ? mixes[i] : n_adapters, p, d,
               base_dec / d);
    }
    free(pre);
    free(dec);
    llmrt_engine_destroy(e);
    llmrt_model_destroy(model);
    return 0;
}
