/* llmrt predict: run the model on a prompt of token ids, print the top next-token predictions
 * and a greedy continuation, with prompt and generation speed on stderr. (Text in, text out
 * arrives with the tokenizer; this command is the raw-ids view of the same forward.) */
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_args.h"
#include "llmrt_experimental.h"

/* SmolLM2's chat template applied to "What is the capital of France?" (with its default system
 * prompt), as token ids: the default prompt when --tokens is not given. */
static const char *default_prompt_ids =
    "1,9690,198,2683,359,253,5356,5646,11173,3365,3511,308,34519,28,7018,411,407,19712,8182,2,198,1,4093,198,1780,314,260,3575,282,4649,47,2,198,1,520,9531,198";

static void usage(FILE *f) {
    fprintf(f,
            "usage: llmrt predict [options]\n"
            "  -m, --model PATH        HF checkpoint directory or .gguf file (default: %s)\n"
            "      --load-format F     auto | hf | gguf | random (default auto)\n"
            "  -p, --tokens IDS        comma-separated prompt token ids (default: a ChatML\n"
            "                          question for SmolLM2)\n"
            "  -n, --n-predict N       greedy tokens to generate (default 16)\n"
            "      --top K             next-token candidates to print (default 5)\n"
            "  -t, --threads N         CPU threads (default: all cores)\n"
            CLI_DEVICE_USAGE
            CLI_TP_USAGE
            "  -h, --help\n",
            cli_default_model()[0] ? cli_default_model() : "none installed");
}

static int argmax(const float *v, int32_t n) {
    int best = 0;
    for (int32_t i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

static void print_top(const float *logits, int32_t vocab, int k) {
    double mx = logits[argmax(logits, vocab)], sum = 0.0;
    for (int32_t i = 0; i < vocab; i++) sum += exp((double)logits[i] - mx);
    int32_t *picked = calloc((size_t)k, sizeof *picked);
    for (int r = 0; r < k && picked; r++) {
        int best = -1;
        for (int32_t i = 0; i < vocab; i++) {
            bool used = false;
            for (int q = 0; q < r; q++) used |= picked[q] == i;
            if (!used && (best < 0 || logits[i] > logits[best])) best = i;
        }
        picked[r] = best;
        printf("  #%d  token %6d  logit %9.4f  p %.4f\n", r + 1, best, logits[best],
               exp((double)logits[best] - mx) / sum);
    }
    free(picked);
}

static llmrt_load_format parse_format(const char *s) {
    if (!strcmp(s, "hf")) return LLMRT_LOAD_HF;
    if (!strcmp(s, "gguf")) return LLMRT_LOAD_GGUF;
    if (!strcmp(s, "random")) return LLMRT_LOAD_RANDOM;
    if (!strcmp(s, "auto")) return LLMRT_LOAD_AUTO;
    return (llmrt_load_format)-1;
}

int cli_predict(int argc, char **argv) {
    const char       *model_path = cli_default_model();
    const char       *ids_text   = default_prompt_ids;
    int               n_predict = 16, top = 5, threads = 0;
    llmrt_load_format format    = LLMRT_LOAD_AUTO;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},   {"tokens", required_argument, 0, 'p'},
        {"n-predict", required_argument, 0, 'n'}, {"top", required_argument, 0, 'k'},
        {"threads", required_argument, 0, 't'}, {"load-format", required_argument, 0, 'f'},
        {"device", required_argument, 0, 'D'},  {"tp", required_argument, 0, 'T'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:p:n:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model_path = optarg; break;
        case 'p': ids_text = optarg; break;
        case 'n':
            if (cli_arg_int("--n-predict", optarg, 0, 1 << 20, &n_predict) < 0) return 2;
            break;
        case 'k':
            if (cli_arg_int("--top", optarg, 0, INT32_MAX, &top) < 0) return 2;
            break;
        case 't':
            if (cli_arg_int("--threads", optarg, 0, CLI_MAX_THREADS, &threads) < 0) return 2;
            break;
        case 'f':
            format = parse_format(optarg);
            if ((int)format < 0) {
                fprintf(stderr, "llmrt predict: --load-format must be auto, hf, gguf or random\n");
                return 2;
            }
            break;
        case 'D':
            if (cli_parse_device(optarg) < 0) return 2;
            break;
        case 'T':
            if (cli_parse_tp(optarg) < 0) return 2;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    int32_t *prompt   = NULL;
    int32_t  n_prompt = cli_arg_int_list("--tokens", ids_text, 0, INT32_MAX, CLI_MAX_PROMPT_IDS,
                                         &prompt);
    if (n_prompt <= 0) return 2;
    llmrt_model *model = cli_load_model(model_path, threads, format);
    if (!model) {
        free(prompt);
        return 1;
    }
    llmrt_model_info info = {.struct_size = sizeof info};
    llmrt_model_get_info(model, &info);
    if (top > info.vocab_size) top = info.vocab_size;

    int32_t               total = n_prompt + n_predict;
    llmrt_kv_cache_params kp    = llmrt_kv_cache_default_params();
    kp.n_blocks                 = (total + kp.block_size - 1) / kp.block_size;
    llmrt_kv_cache *kv          = NULL;
    int32_t        *positions   = malloc((size_t)n_prompt * sizeof *positions);
    int32_t        *seq_ids     = calloc((size_t)n_prompt, sizeof *seq_ids);
    int32_t        *table       = malloc((size_t)(kp.n_blocks ? kp.n_blocks : 1) * sizeof *table);
    float          *logits      = malloc((size_t)info.vocab_size * sizeof *logits);
    int             rc          = 1;
    llmrt_status    s           = llmrt_kv_cache_create(model, &kp, &kv);
    if (s != LLMRT_OK || !positions || !seq_ids || !table || !logits) {
        fprintf(stderr, "llmrt predict: %s\n", s ? llmrt_last_error() : "out of memory");
        goto done;
    }
    for (int32_t i = 0; i < n_prompt; i++) positions[i] = i;
    for (int32_t b = 0; b < kp.n_blocks; b++) table[b] = b;

    llmrt_batch batch = {.n_tokens = n_prompt, .tokens = prompt, .positions = positions,
                         .seq_ids = seq_ids, .n_seqs = 1, .max_blocks_per_seq = kp.n_blocks,
                         .block_tables = table};
    double t0 = cli_now();
    s         = llmrt_forward(kv, &batch, logits, info.vocab_size);
    double t1 = cli_now();
    if (s != LLMRT_OK) {
        fprintf(stderr, "llmrt predict: %s: %s\n", llmrt_status_str(s), llmrt_last_error());
        goto done;
    }
    printf("model: %s (%s, %lld params, %d layers)\n", model_path, info.weight_format,
           (long long)info.n_params, info.n_layers);
    printf("prompt: %d tokens\nnext-token predictions:\n", n_prompt);
    print_top(logits, info.vocab_size, top);
    printf("greedy continuation:");
    double gen_time = 0.0;
    for (int32_t i = 0; i < n_predict; i++) {
        int32_t tok = argmax(logits, info.vocab_size), pos = n_prompt + i;
        printf(" %d", tok);
        fflush(stdout);
        if (i + 1 == n_predict) break;
        llmrt_batch step = {.n_tokens = 1, .tokens = &tok, .positions = &pos, .seq_ids = seq_ids,
                            .n_seqs = 1, .max_blocks_per_seq = kp.n_blocks, .block_tables = table};
        double a = cli_now();
        s        = llmrt_forward(kv, &step, logits, info.vocab_size);
        gen_time += cli_now() - a;
        if (s != LLMRT_OK) {
            fprintf(stderr, "\nllmrt predict: %s: %s\n", llmrt_status_str(s), llmrt_last_error());
            goto done;
        }
    }
    printf("\n");
    fprintf(stderr, "prompt: %d tokens in %.3f s (%.1f tok/s); generation: %d tokens in %.3f s "
                    "(%.1f tok/s)\n", n_prompt, t1 - t0, n_prompt / (t1 - t0), n_predict - 1,
            gen_time, n_predict > 1 ? (n_predict - 1) / gen_time : 0.0);
    rc = 0;
done:
    llmrt_kv_cache_destroy(kv);
    llmrt_model_destroy(model);
    free(prompt);
    free(positions);
    free(seq_ids);
    free(table);
    free(logits);
    return rc;
}
