/* llmrt bench latency: offline prompt-processing and generation speed, llama-bench style.
 * For each thread count, batch size B and prompt length P: W warm-up runs (not counted), then R
 * repetitions of
 *   - prefill: sequence 0 gets a context of depth d (not timed), then P random prompt tokens in
 *     one forward, timed: TTFT = that forward (logits copied back to the host), prompt tok/s =
 *     P / TTFT;
 *   - sequences 1..B-1 share sequence 0's full KV blocks (as prefix caching would) and prefill
 *     only the tokens of its last, partial block (not timed): every sequence then holds d + P
 *     tokens of context without B prefills;
 *   - G decode steps, each one forward of B tokens (one per sequence, greedy): TPOT = mean time
 *     of steps 2..G (step 1 may still warm caches), generation tok/s = B / TPOT.
 * Mean ± stddev over the repetitions. Roofline: bytes read per decode step = weight bytes + B x
 * KV bytes of the context, against the machine's read bandwidth (CPU: measured at the same
 * thread count; GPU: datasheet); prefill FLOPs against the fp32 FMA probe (CPU) or the dense
 * fp16 tensor peak (GPU). A case whose d + P + G exceeds the model's context is refused before
 * anything runs. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../host/cli/cli.h"
#include "../host/cli/cli_args.h"
#include "bench.h"
#include "bench_report.h"
#include "llmrt_experimental.h"

typedef struct stats {
    double mean, sd;
} stats;

static stats stats_of(const double *v, int n) {
    stats s = {0, 0};
    for (int i = 0; i < n; i++)
        s.mean += v[i];
    s.mean /= n;
    for (int i = 0; i < n; i++)
        s.sd += (v[i] - s.mean) * (v[i] - s.mean);
    s.sd = n > 1 ? sqrt(s.sd / (n - 1)) : 0.0;
    return s;
}

/* One benchmark case: B sequences, d context tokens, P prompt tokens, G generated tokens. */
typedef struct latency_case {
    int32_t batch, depth, prompt, gen;
} latency_case;

/* What one repetition measured. */
typedef struct latency_sample {
    double ttft_s, step_s; /* prefill forward of P tokens; mean decode step (steps 2..G) */
} latency_sample;

static int32_t argmax(const float *v, int32_t n) {
    int32_t t = 0;
    for (int32_t i = 1; i < n; i++)
        if (v[i] > v[t]) t = i;
    return t;
}

static uint64_t next_random(uint64_t *seed) {
    *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
    return *seed >> 33;
}

/* The buffers of one repetition: sized for the largest forward (max(d, P, B x block) tokens). */
typedef struct run_buffers {
    int32_t *tok, *pos, *seq, *table;
    float *logits;
} run_buffers;

static void run_buffers_free(run_buffers *b) {
    free(b->tok);
    free(b->pos);
    free(b->seq);
    free(b->table);
    free(b->logits);
}

/* One repetition of case `c` (see the comment at the top); 0 on success. */
static int run_once(llmrt_model *model, const llmrt_model_info *info, const latency_case *c,
                    uint64_t seed, latency_sample *out) {
    const int32_t B = c->batch, shared = c->depth + c->prompt, total = shared + c->gen;
    llmrt_kv_cache_params kp = llmrt_kv_cache_default_params();
    const int32_t bs = kp.block_size, per_seq = (total + bs - 1) / bs, n_full = shared / bs;
    const int32_t own = per_seq - n_full, tail = shared - n_full * bs;
    kp.n_blocks = per_seq + (B - 1) * own;
    llmrt_kv_cache *kv = NULL;
    if (llmrt_kv_cache_create(model, &kp, &kv) != LLMRT_OK) {
        fprintf(stderr, "llmrt bench latency: batch %d, %d-token context: %s\n", B, total,
                llmrt_last_error());
        return -1;
    }
    int32_t n_max = c->depth > c->prompt ? c->depth : c->prompt;
    if (n_max < B * bs) n_max = B * bs;
    run_buffers buf = {
        .tok = malloc((size_t)n_max * sizeof(int32_t)),
        .pos = malloc((size_t)n_max * sizeof(int32_t)),
        .seq = malloc((size_t)n_max * sizeof(int32_t)),
        .table = malloc((size_t)B * per_seq * sizeof(int32_t)),
        .logits = malloc((size_t)B * info->vocab_size * sizeof(float)),
    };
    if (!buf.tok || !buf.pos || !buf.seq || !buf.table || !buf.logits) {
        fprintf(stderr, "llmrt bench latency: out of memory (batch %d)\n", B);
        run_buffers_free(&buf);
        llmrt_kv_cache_destroy(kv);
        return -1;
    }
    /* block tables [B, per_seq]: sequence 0 owns 0..per_seq-1; sequence s shares its n_full
     * full blocks and owns `own` blocks after them */
    for (int32_t s = 0; s < B; s++)
        for (int32_t j = 0; j < per_seq; j++)
            buf.table[(size_t)s * per_seq + j] =
                s == 0 || j < n_full ? j : per_seq + (s - 1) * own + (j - n_full);
    /* the shared context's token ids: drawn once, the same for every sequence */
    int32_t *ctx_tok = malloc((size_t)(shared > 0 ? shared : 1) * sizeof *ctx_tok);
    if (!ctx_tok) {
        run_buffers_free(&buf);
        llmrt_kv_cache_destroy(kv);
        return -1;
    }
    for (int32_t i = 0; i < shared; i++)
        ctx_tok[i] = (int32_t)(next_random(&seed) % (uint64_t)info->vocab_size);
    memset(buf.seq, 0, (size_t)n_max * sizeof(int32_t));
    llmrt_batch b = {.tokens = buf.tok,
                     .positions = buf.pos,
                     .seq_ids = buf.seq,
                     .n_seqs = 1,
                     .max_blocks_per_seq = per_seq,
                     .block_tables = buf.table};
    llmrt_status s = LLMRT_OK;
    /* sequence 0: the context depth (not timed), then the prompt (timed) */
    for (int phase = 0; phase < 2 && s == LLMRT_OK; phase++) {
        int32_t first = phase == 0 ? 0 : c->depth, n = phase == 0 ? c->depth : c->prompt;
        if (n == 0) continue;
        for (int32_t i = 0; i < n; i++)
            buf.tok[i] = ctx_tok[first + i], buf.pos[i] = first + i;
        b.n_tokens = n;
        double t0 = cli_now();
        s = llmrt_forward(kv, &b, buf.logits, info->vocab_size);
        if (phase == 1) out->ttft_s = cli_now() - t0;
    }
    int32_t first_token = argmax(buf.logits, info->vocab_size);
    /* sequences 1..B-1: only the tokens of the last, partial shared block (not timed) */
    if (s == LLMRT_OK && B > 1 && tail > 0) {
        int32_t n = 0;
        for (int32_t q = 1; q < B; q++)
            for (int32_t i = n_full * bs; i < shared; i++, n++)
                buf.tok[n] = ctx_tok[i], buf.pos[n] = i, buf.seq[n] = q - 1;
        llmrt_batch rest = b;
        rest.n_tokens = n, rest.n_seqs = B - 1, rest.block_tables = buf.table + per_seq;
        s = llmrt_forward(kv, &rest, buf.logits, (int64_t)B * info->vocab_size);
    }
    /* G decode steps of B tokens, one per sequence */
    double step_time = 0.0;
    for (int32_t q = 0; q < B; q++)
        buf.tok[q] = first_token, buf.seq[q] = q;
    for (int32_t i = 0; i < c->gen && s == LLMRT_OK; i++) {
        for (int32_t q = 0; q < B; q++) {
            buf.pos[q] = shared + i;
            if (i > 0)
                buf.tok[q] = argmax(buf.logits + (size_t)q * info->vocab_size, info->vocab_size);
        }
        llmrt_batch step = b;
        step.n_tokens = B, step.n_seqs = B;
        double t0 = cli_now();
        s = llmrt_forward(kv, &step, buf.logits, (int64_t)B * info->vocab_size);
        if (i > 0) step_time += cli_now() - t0; /* step 1 may still warm caches */
    }
    out->step_s = c->gen > 1 ? step_time / (c->gen - 1) : 0.0;
    if (s != LLMRT_OK) fprintf(stderr, "llmrt bench latency: %s\n", llmrt_last_error());
    free(ctx_tok);
    run_buffers_free(&buf);
    llmrt_kv_cache_destroy(kv);
    return s == LLMRT_OK ? 0 : -1;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: llmrt bench latency [options]\n"
            "  -m, --model PATH      model (default: %s)\n"
            "      --load-format F   auto | hf | gguf | random\n"
            "  -p, --prompt LIST     prompt tokens, comma-separated (default 128)\n"
            "  -b, --batch LIST      sequences decoding together, comma-separated (default 1)\n"
            "  -n, --gen N           generated tokens per sequence (default 32, >= 2)\n"
            "  -d, --depth N         context tokens before the prompt (default 0)\n"
            "  -r, --reps N          timed repetitions per case (default 3)\n"
            "  -w, --warmup N        untimed runs before them (default 1)\n"
            "  -t, --threads LIST    comma-separated thread counts (default 1,2)\n"
            "      --format F        table | json | csv (default table)\n"
            "      --device D        cuda | cpu (default: cuda when a device is present)\n"
            "      --tp N            tensor-parallel ranks (mpirun -np N for processes); the\n"
            "                        all-reduce time per forward is reported\n"
            "      --cpu-matmul M    exact (default) | int8 | bf16 | int8,bf16 (llmrt --help)\n"
            "      --enforce-eager   CUDA: decode without CUDA graphs (alias --no-cuda-graphs;\n"
            "                        default: graphs), to compare the two\n"

            "      --kv-cache-dtype T  auto (default) | int8 | fp8 | fp8_e4m3 | bf16 | fp32\n"
            "      --cpu-pin         bind the CPU threads one per allowed CPU (llmrt --help)\n",
            cli_default_model());
}

typedef struct latency_row {
    int32_t threads;
    latency_case c;
    bool ok;
    stats pp, tg, ttft, tpot;
    double bytes, gbps, peak_gbps, flops_per_token, gflops, peak_gflops;
    double ar_calls, ar_bytes, ar_ms; /* tensor parallel: all-reduce per forward (leader) */
} latency_row;

/* Runs warm-ups + reps of one case and fills its row; 0 on success. */
static int measure_case(llmrt_model *model, bench_context *ctx, int32_t warmup, int32_t reps,
                        latency_row *row) {
    const latency_case *c = &row->c;
    double *pp = calloc((size_t)reps, sizeof *pp), *tg = calloc((size_t)reps, sizeof *tg);
    double *ttft = calloc((size_t)reps, sizeof *ttft), *tpot = calloc((size_t)reps, sizeof *tpot);
    int rc = pp && tg && ttft && tpot ? 0 : -1;
    for (int r = -warmup; r < reps && rc == 0; r++) {
        latency_sample smp = {0};
        rc = run_once(model, &ctx->info, c, 0x5eed + (uint64_t)(r + warmup), &smp);
        if (rc != 0 || r < 0) continue;
        ttft[r] = 1e3 * smp.ttft_s;
        tpot[r] = 1e3 * smp.step_s;
        pp[r] = c->prompt / smp.ttft_s;
        tg[r] = c->batch / smp.step_s;
    }
    if (rc == 0) {
        row->ok = true;
        row->pp = stats_of(pp, reps), row->tg = stats_of(tg, reps);
        row->ttft = stats_of(ttft, reps), row->tpot = stats_of(tpot, reps);
        /* a decode step reads every weight once, plus K and V of every sequence's context */
        double ctx_tokens = c->depth + c->prompt + c->gen / 2.0;
        row->bytes = (double)ctx->info.weight_bytes +
                     c->batch * bench_kv_bytes_per_token(&ctx->info) * ctx_tokens;
        row->gbps = row->bytes / (row->tpot.mean / 1e3) / 1e9;
        /* prefill: 2 FLOPs per matmul weight per token + attention (QK and PV: 4 * ctx * heads
         * * hd per layer, ctx averaging depth + P/2). The embedding table is a lookup, and the
         * output projection (the same table when tied) runs for the last prompt token only:
         * counted per token, they overstated a small model's prefill FLOPs (SmolLM2: by 27 %) */
        double embed = (double)ctx->info.vocab_size * ctx->info.hidden_size;
        double lm_head_per_token = c->prompt > 0 ? 2.0 * embed / c->prompt : 0.0;
        double per_token_params =
            (double)ctx->info.n_params - (ctx->info.tie_word_embeddings ? 1.0 : 2.0) * embed;
        if (per_token_params < 0) per_token_params = 0; /* a sharded or unusual count */
        row->flops_per_token = 2.0 * per_token_params + lm_head_per_token +
                               4.0 * ctx->info.n_layers * ctx->info.n_heads * ctx->info.head_dim *
                                   (c->depth + c->prompt / 2.0);
        row->gflops = row->pp.mean * row->flops_per_token / 1e9;
        row->peak_gbps = ctx->peak_gbps;
        row->peak_gflops = ctx->peak_gflops;
        llmrt_tp_stats tps = {.struct_size = sizeof tps};
        if (llmrt_model_get_tp_stats(model, &tps) == LLMRT_OK && tps.n_forwards > 0) {
            row->ar_calls = (double)tps.n_all_reduce / (double)tps.n_forwards;
            row->ar_bytes = (double)tps.bytes / (double)tps.n_forwards;
            row->ar_ms = 1e3 * tps.seconds / (double)tps.n_forwards;
        }
    }
    free(pp);
    free(tg);
    free(ttft);
    free(tpot);
    return rc;
}

static void print_row(const latency_row *r, bool json, bool csv, bool first) {
    double fb = r->peak_gbps > 0 ? r->gbps / r->peak_gbps : 0;
    double ff = r->peak_gflops > 0 ? r->gflops / r->peak_gflops : 0;
    const latency_case *c = &r->c;
    if (!r->ok) {
        if (!json && !csv)
            printf("%7d %5d %6d %5d %5d   failed (the message above)\n", r->threads, c->batch,
                   c->prompt, c->gen, c->depth);
        return;
    }
    if (json)
        printf("%s\n    {\"threads\": %d, \"batch\": %d, \"n_prompt\": %d, \"n_gen\": %d, "
               "\"depth\": %d, \"prompt_tps_mean\": %.3f, \"prompt_tps_std\": %.3f, "
               "\"gen_tps_mean\": %.3f, \"gen_tps_std\": %.3f, \"ttft_ms_mean\": %.3f, "
               "\"ttft_ms_std\": %.3f, \"tpot_ms_mean\": %.3f, \"tpot_ms_std\": %.3f, "
               "\"e2e_ms_mean\": %.3f, "
               "\"bytes_per_step\": %.0f, \"achieved_gbps\": %.3f, \"peak_gbps\": %.3f, "
               "\"fraction_of_peak_bandwidth\": %.4f, \"prefill_flops_per_token\": %.0f, "
               "\"achieved_prefill_gflops\": %.3f, \"peak_gflops\": %.3f, "
               "\"fraction_of_peak_flops\": %.4f}",
               first ? "" : ",", r->threads, c->batch, c->prompt, c->gen, c->depth, r->pp.mean,
               r->pp.sd, r->tg.mean, r->tg.sd, r->ttft.mean, r->ttft.sd, r->tpot.mean, r->tpot.sd,
               r->ttft.mean + r->tpot.mean * (c->gen - 1), r->bytes, r->gbps, r->peak_gbps, fb,
               r->flops_per_token, r->gflops, r->peak_gflops, ff);
    else if (csv)
        printf("%d,%d,%d,%d,%d,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.0f,%.3f,%.4f,%.0f,%.3f,%.4f\n",
               r->threads, c->batch, c->prompt, c->gen, c->depth, r->pp.mean, r->pp.sd, r->tg.mean,
               r->tg.sd, r->ttft.mean, r->tpot.mean, r->bytes, r->gbps, fb, r->flops_per_token,
               r->gflops, ff);
    else
        printf("%7d %5d %6d %5d %5d %9.1f ± %5.1f %8.2f ± %6.2f %8.1f ± %4.1f %8.2f %8.3f "
               "%7.1f (%3.0f%%) %8.1f (%3.0f%%)\n",
               r->threads, c->batch, c->prompt, c->gen, c->depth, r->pp.mean, r->pp.sd, r->tg.mean,
               r->tg.sd, r->ttft.mean, r->ttft.sd, r->tpot.mean, r->bytes / 1e9, r->gbps, 100 * fb,
               r->gflops, 100 * ff);
}

int bench_latency_main(int argc, char **argv) {
    const char *model_path = cli_default_model(), *threads_text = "1,2", *format = "table";
    const char *prompt_text = "128", *batch_text = "1";
    int32_t G = 32, depth = 0, reps = 3, warmup = 1;
    llmrt_load_format fmt = LLMRT_LOAD_AUTO;
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"prompt", required_argument, 0, 'p'},
                                         {"batch", required_argument, 0, 'b'},
                                         {"gen", required_argument, 0, 'n'},
                                         {"depth", required_argument, 0, 'd'},
                                         {"reps", required_argument, 0, 'r'},
                                         {"warmup", required_argument, 0, 'w'},
                                         {"threads", required_argument, 0, 't'},
                                         {"load-format", required_argument, 0, 'f'},
                                         {"format", required_argument, 0, 'F'},
                                         {"device", required_argument, 0, 'D'},
                                         {"tp", required_argument, 0, 'T'},
                                         {"cpu-matmul", required_argument, 0, 'M'},
                                         {"enforce-eager", no_argument, 0, 'E'},
                                         {"no-cuda-graphs", no_argument, 0, 'E'},
                                         {"kv-cache-dtype", required_argument, 0, 'K'},
                                         {"cpu-pin", no_argument, 0, 'P'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:p:b:n:d:r:w:t:h", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'm':
            model_path = optarg;
            break;
        case 'p':
            prompt_text = optarg;
            break;
        case 'b':
            batch_text = optarg;
            break;
        case 'n':
            bad = cli_arg_i32("-n/--gen", optarg, 2, 1 << 20, &G);
            break;
        case 'd':
            bad = cli_arg_i32("-d/--depth", optarg, 0, 1 << 24, &depth);
            break;
        case 'r':
            bad = cli_arg_i32("-r/--reps", optarg, 1, 1000, &reps);
            break;
        case 'w':
            bad = cli_arg_i32("-w/--warmup", optarg, 0, 100, &warmup);
            break;
        case 't':
            threads_text = optarg;
            break;
        case 'F': {
            static const char *const formats[] = {"table", "json", "csv", NULL};
            int i = 0;
            bad = cli_arg_enum("--format", optarg, formats, &i);
            format = formats[i];
            break;
        }
        case 'f': {
            /* in llmrt_load_format order */
            static const char *const loads[] = {"auto", "hf", "gguf", "random", NULL};
            int i = 0;
            bad = cli_arg_enum("--load-format", optarg, loads, &i);
            fmt = (llmrt_load_format)i;
            break;
        }
        case 'D':
            bad = cli_parse_device(optarg) < 0 ? -1 : 0;
            break;
        case 'T':
            bad = cli_parse_tp(optarg) < 0 ? -1 : 0;
            break;
        case 'M':
            bad = cli_parse_cpu_matmul(optarg) < 0 ? -1 : 0;
            break;
        case 'E':
            cli_load.enforce_eager = true;
            break;
        case 'P':
            cli_load.cpu_pin_threads = true;
            break;
        case 'K': {
            static const char *const kvs[] = {"auto", "int8", "fp8", "fp8_e4m3", "bf16", "fp32",
                                              NULL};
            int i = 0;
            bad = cli_arg_enum("--kv-cache-dtype", optarg, kvs, &i);
            if (!bad) cli_load.kv_cache_dtype = cli_kv_cache_dtype_of(kvs[i]);
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (bad) return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "llmrt bench latency: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    bool json = !strcmp(format, "json"), csv = !strcmp(format, "csv");
    int32_t *threads = NULL, *prompts = NULL, *batches = NULL;
    int32_t n_thr = cli_arg_int_list("-t/--threads", threads_text, 1, 4096, 256, &threads);
    int32_t n_p =
        n_thr > 0 ? cli_arg_int_list("-p/--prompt", prompt_text, 1, 1 << 24, 256, &prompts) : -1;
    int32_t n_b = n_p > 0 ? cli_arg_int_list("-b/--batch", batch_text, 1, 4096, 256, &batches) : -1;
    if (n_b <= 0) {
        free(threads);
        free(prompts);
        return 2;
    }
    if (n_thr > 1 && cli_tp > 1) {
        /* a TP group's follower processes serve one model, then exit */
        fprintf(stderr, "llmrt bench latency: --tp takes one --threads value (threads per rank)\n");
        free(threads), free(prompts), free(batches);
        return 2;
    }
    int32_t n_rows = n_thr * n_b * n_p;
    latency_row *rows = calloc((size_t)n_rows, sizeof *rows);
    bench_context ctx = {.argc = argc, .argv = argv, .model_path = model_path};
    ctx.engine = llmrt_engine_default_params();
    int rc = rows ? 0 : 1, failed = 0;
    for (int32_t ti = 0; ti < n_thr && rc == 0; ti++) {
        llmrt_model *model = cli_load_model(model_path, threads[ti], fmt);
        if (!model) {
            rc = 1;
            break;
        }
        ctx.info.struct_size = sizeof ctx.info;
        llmrt_model_get_info(model, &ctx.info);
        /* a case beyond the model's context is refused before anything runs */
        for (int32_t pi = 0; pi < n_p && rc == 0; pi++)
            if ((int64_t)depth + prompts[pi] + G > ctx.info.max_context) {
                fprintf(stderr,
                        "llmrt bench latency: -d %d + -p %d + -n %d = %lld tokens exceed "
                        "the model's context of %d (max_position_embeddings)\n",
                        depth, prompts[pi], G, (long long)depth + prompts[pi] + G,
                        ctx.info.max_context);
                rc = 2;
            }
        ctx.threads = threads[ti];
        if (rc == 0) bench_context_measure(&ctx);
        for (int32_t bi = 0; bi < n_b && rc == 0; bi++)
            for (int32_t pi = 0; pi < n_p; pi++) {
                latency_row *row = &rows[(ti * n_b + bi) * n_p + pi];
                row->threads = threads[ti];
                row->c = (latency_case){
                    .batch = batches[bi], .depth = depth, .prompt = prompts[pi], .gen = G};
                /* a failing case (e.g. its KV cache does not fit) is reported; the rest run */
                if (measure_case(model, &ctx, warmup, reps, row) != 0) failed++;
            }
        llmrt_model_get_info(model, &ctx.info); /* after the runs: the decode steps graphs ran */
        llmrt_model_destroy(model);
    }
    if (rc == 0) {
        if (json) {
            printf("{\n");
            bench_context_json(stdout, &ctx);
            printf(",\n  \"warmup_runs\": %d, \"reps\": %d,\n  \"results\": [", warmup, reps);
        } else if (csv) {
            printf("threads,batch,n_prompt,n_gen,depth,prompt_tps_mean,prompt_tps_std,"
                   "gen_tps_mean,gen_tps_std,ttft_ms_mean,tpot_ms_mean,bytes_per_step,"
                   "achieved_gbps,fraction_of_peak_bandwidth,prefill_flops_per_token,"
                   "achieved_prefill_gflops,fraction_of_peak_flops\n");
        } else {
            bench_context_print(stdout, &ctx);
            printf("# %d warm-up run(s) per case not counted; ± is the stddev over %d reps\n",
                   warmup, reps);
            printf("%7s %5s %6s %5s %5s %17s %17s %15s %8s %8s %15s %15s\n", "threads", "batch",
                   "prompt", "gen", "depth", "prompt tok/s", "gen tok/s", "TTFT ms", "TPOT ms",
                   "GB/step", "decode GB/s", "prefill GF/s");
        }
        bool first = true;
        for (int32_t i = 0; i < n_rows; i++) {
            print_row(&rows[i], json, csv, first);
            if (rows[i].ok) first = false;
        }
        if (json) printf("\n  ]\n}\n");
        for (int32_t i = 0; i < n_rows && !json && !csv; i++)
            if (rows[i].ar_calls > 0)
                printf("# tensor parallel %d (%s), batch %d, prompt %d: per forward %.0f "
                       "all-reduces, %.1f KB, %.3f ms in collectives (mean over prefill and "
                       "decode forwards; %.0f%% of a decode step); GB/step is the leader's shard\n",
                       ctx.info.tp_size, ctx.info.tp_comm, rows[i].c.batch, rows[i].c.prompt,
                       rows[i].ar_calls, rows[i].ar_bytes / 1e3, rows[i].ar_ms,
                       100.0 * rows[i].ar_ms / rows[i].tpot.mean);
        if (!json && !csv)
            printf("# gen tok/s = batch / TPOT; GB/step = weights + batch x KV context read per "
                   "decode step; percentages: of the roofline reference above (measured at the "
                   "same thread count on the CPU, datasheet on a GPU)\n");
    }
    free(rows);
    free(threads);
    free(prompts);
    free(batches);
    return rc ? rc : failed ? 1 : 0;
}

int bench_membw_main(int argc, char **argv) {
    const char *threads_text = argc > 1 ? argv[1] : "1,2";
    int32_t *threads = NULL;
    int32_t n = cli_arg_int_list("threads", threads_text, 1, 4096, 256, &threads);
    if (n <= 0) {
        fprintf(stderr, "usage: llmrt bench membw [THREADS,...]\n");
        return 2;
    }
    /* read: the roofline reference; the other columns are second methods (bench/membw.c) */
    printf(
        "# llmrt bench membw: 1 GiB of buffers per probe, best of 5 taken in turns, GB/s\n"
        "# read: SIMD loads, 8 accumulators per thread (the roofline reference)\n"
        "# copy: non-temporal stores, read + write bytes; triad: a = b + s c, STREAM's 3 arrays\n"
        "# read-scalar: the probe before issue 21 (8 scalar sums), for comparison\n"
        "%8s %10s %10s %10s %12s\n",
        "threads", "read", "copy", "triad", "read-scalar");
    static const int modes[4] = {BENCH_MEMBW_READ, BENCH_MEMBW_COPY, BENCH_MEMBW_TRIAD,
                                 BENCH_MEMBW_READ_SCALAR};
    for (int32_t i = 0; i < n; i++) {
        /* the probes take turns, one repetition each, so that on a shared machine a burst of
         * someone else's traffic does not fall on one column only */
        double best[4] = {0};
        for (int r = 0; r < 5; r++)
            for (int m = 0; m < 4; m++) {
                double g = bench_membw(threads[i], (size_t)1 << 30, modes[m], 1);
                if (g > best[m]) best[m] = g;
            }
        printf("%8d %10.2f %10.2f %10.2f %12.2f\n", threads[i], best[0], best[1], best[2], best[3]);
    }
    free(threads);
    return 0;
}
