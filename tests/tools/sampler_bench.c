/* Times one llmrt_sampler_sample call over a vocabulary-sized row of logits (engine/sampler.h),
 * best of 5 runs of 200 calls, and prints a hash of the chosen tokens and the sum of their
 * logprobs, so two builds can be compared for speed and for identical results. Every call
 * computes the chosen token's logprob (the engine always asks for it), so greedy is an argmax
 * plus the log-sum-exp, and temperature adds the normaliser and the CDF scan. A development tool,
 * not a test (tests/unit/test_sampler.c checks the results).
 *
 * usage: sampler_bench [-V vocab] [-T temperature]   (defaults: SmolLM2's 49152, greedy) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/sampler.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void print_cpu(void) {
    char  line[256];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0) {
            printf("# cpu:%s", strchr(line, ':') + 1);
            break;
        }
    if (f) fclose(f);
}

int main(int argc, char **argv) {
    long   V    = 49152;
    double temp = 0.0;
    for (int i = 1; i < argc; i += 2) {
        char *end = NULL;
        if (i + 1 >= argc || (strcmp(argv[i], "-V") != 0 && strcmp(argv[i], "-T") != 0)) {
            fprintf(stderr, "usage: %s [-V vocab] [-T temperature]\n", argv[0]);
            return 2;
        }
        if (argv[i][1] == 'V') V = strtol(argv[i + 1], &end, 10);
        else temp = strtod(argv[i + 1], &end);
        if (end == argv[i + 1] || *end != '\0') {
            fprintf(stderr, "sampler_bench: %s \"%s\" is not a number\n", argv[i], argv[i + 1]);
            return 2;
        }
    }
    if (V < 1 || V > (1L << 24)) {
        fprintf(stderr, "sampler_bench: -V %ld must be in [1, 2^24]\n", V);
        return 2;
    }
    if (!(temp >= 0.0 && temp <= 100.0)) {
        fprintf(stderr, "sampler_bench: -T %g must be in [0, 100]\n", temp);
        return 2;
    }
    float *l = malloc((size_t)V * sizeof *l);
    if (!l) return 1;
    srand(1);
    for (long i = 0; i < V; i++) l[i] = (float)rand() / (float)RAND_MAX * 20.0f - 10.0f;
    llmrt_sampling_config c = llmrt_sampling_default_config();
    c.temperature = (float)temp, c.logprobs = true, c.has_seed = true, c.seed = 5;
    llmrt_sampler *s;
    llmrt_error    err;
    int32_t        prompt = 1;
    if (llmrt_sampler_create(&c, (int32_t)V, &prompt, 1, &s, &err) != LLMRT_OK) {
        fprintf(stderr, "sampler_bench: %s\n", err.msg);
        return 1;
    }
    llmrt_sample_result r;
    double              best = 1e30, lp_sum = 0.0;
    unsigned            hash = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t = now_s();
        for (int i = 0; i < 200; i++) {
            l[(long)i * 7 % V] += 0.001f; /* a different row each call */
            if (llmrt_sampler_sample(s, l, &r, &err) != LLMRT_OK) {
                fprintf(stderr, "sampler_bench: %s\n", err.msg);
                return 1;
            }
            hash = hash * 31u + (unsigned)r.token;
            lp_sum += r.logprob;
        }
        t = (now_s() - t) / 200;
        if (t < best) best = t;
    }
    print_cpu();
    printf("vocab %ld, temperature %g: %.1f us per sample (best of 5 x 200); tokens hash %u, "
           "logprob sum %.17g\n",
           V, temp, best * 1e6, hash, lp_sum);
    llmrt_sampler_destroy(s);
    free(l);
    return 0;
}
