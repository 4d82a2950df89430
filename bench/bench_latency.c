/* llmrt bench latency: offline prompt-processing and generation speed, llama-bench style.
 * For each thread count: R repetitions of (prefill P random tokens after a context of depth d,
 * then G greedy decode steps). Prompt tokens/s = P / prefill time; generation tokens/s =
 * (G - 1) / time of decode steps 2..G (each step one forward of one token). Mean ± stddev over
 * repetitions. Roofline: bytes read per decode step = weight bytes + KV bytes of the context;
 * compared with the machine's measured read bandwidth at the same thread count. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../host/cli/cli.h"
#include "bench.h"
#include "bench_report.h"
#include "llmrt_experimental.h"

typedef struct stats {
    double mean, sd;
} stats;

static stats stats_of(const double *v, int n) {
    stats s = {0, 0};
    for (int i = 0; i < n; i++) s.mean += v[i];
    s.mean /= n;
    for (int i = 0; i < n; i++) s.sd += (v[i] - s.mean) * (v[i] - s.mean);
    s.sd = n > 1 ? sqrt(s.sd / (n - 1)) : 0.0;
    return s;
}

/* One repetition; returns 0 and fills pp / tg tokens/s. */
static int run_once(llmrt_model *model, const llmrt_model_info *info, int32_t depth, int32_t P,
                    int32_t G, uint64_t seed, double *pp, double *tg) {
    int32_t               total = depth + P + G;
    llmrt_kv_cache_params kp    = llmrt_kv_cache_default_params();
    kp.n_blocks                 = (total + kp.block_size - 1) / kp.block_size;
    llmrt_kv_cache *kv          = NULL;
    if (llmrt_kv_cache_create(model, &kp, &kv) != LLMRT_OK) {
        fprintf(stderr, "llmrt bench: %s\n", llmrt_last_error());
        return -1;
    }
    int32_t n_max  = depth > P ? depth : P;
    int32_t *tok   = malloc((size_t)n_max * sizeof *tok), *pos = malloc((size_t)n_max * sizeof *pos);
    int32_t *seq   = calloc((size_t)n_max, sizeof *seq), *table = malloc((size_t)kp.n_blocks * 4);
    float   *logit = malloc((size_t)info->vocab_size * sizeof *logit);
    for (int32_t b = 0; b < kp.n_blocks; b++) table[b] = b;
    llmrt_status s = LLMRT_OK;
    /* context depth, not timed */
    for (int32_t i = 0; i < depth; i++) {
        seed   = seed * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (int32_t)((seed >> 33) % (uint64_t)info->vocab_size);
        pos[i] = i;
    }
    llmrt_batch b = {.tokens = tok, .positions = pos, .seq_ids = seq, .n_seqs = 1,
                     .max_blocks_per_seq = kp.n_blocks, .block_tables = table};
    if (depth > 0) {
        b.n_tokens = depth;
        s          = llmrt_forward(kv, &b, logit, info->vocab_size);
    }
    for (int32_t i = 0; i < P; i++) {
        seed   = seed * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (int32_t)((seed >> 33) % (uint64_t)info->vocab_size);
        pos[i] = depth + i;
    }
    b.n_tokens = P;
    double t0  = cli_now();
    if (s == LLMRT_OK && P > 0) s = llmrt_forward(kv, &b, logit, info->vocab_size);
    double t1 = cli_now();
    *pp       = P > 0 ? P / (t1 - t0) : 0.0;
    double tg_time = 0.0;
    for (int32_t i = 0; i < G && s == LLMRT_OK; i++) {
        int32_t t = 0, p = depth + P + i;
        for (int32_t v = 1; v < info->vocab_size; v++)
            if (logit[v] > logit[t]) t = v;
        llmrt_batch one = b;
        one.n_tokens    = 1;
        one.tokens      = &t;
        one.positions   = &p;
        double a        = cli_now();
        s               = llmrt_forward(kv, &one, logit, info->vocab_size);
        if (i > 0) tg_time += cli_now() - a; /* step 1 may still warm caches */
    }
    *tg = G > 1 ? (G - 1) / tg_time : 0.0;
    if (s != LLMRT_OK) fprintf(stderr, "llmrt bench: %s\n", llmrt_last_error());
    free(tok);
    free(pos);
    free(seq);
    free(table);
    free(logit);
    llmrt_kv_cache_destroy(kv);
    return s == LLMRT_OK ? 0 : -1;
}

static void usage(FILE *f) {
    fprintf(f, "usage: llmrt bench latency [options]\n"
               "  -m, --model PATH      model (default: %s)\n"
               "      --load-format F   auto | hf | gguf | random\n"
               "  -p, --prompt N        prompt tokens (default 128)\n"
               "  -n, --gen N           generated tokens (default 32)\n"
               "  -d, --depth N         context tokens before the prompt (default 0)\n"
               "  -r, --reps N          repetitions (default 3)\n"
               "  -t, --threads LIST    comma-separated thread counts (default 1,2)\n"
               "      --format F        table | json | csv (default table)\n"
               "      --device D        cuda | cpu (default: cuda when a device is present)\n"
               "      --tp N            tensor-parallel ranks (mpirun -np N for processes); the\n"
               "                        all-reduce time per forward is reported\n"
               "      --cpu-matmul M    exact (default) | int8 | bf16 | int8,bf16 (llmrt --help)\n"
               "      --kv-cache-dtype T  auto (default) | int8 | fp8 | fp8_e4m3 (llmrt --help)\n",
            cli_default_model());
}

typedef struct latency_row {
    int32_t threads;
    stats   pp, tg, ttft, tpot, e2e;
    double  bytes, gbps, peak_gbps, flops_per_token, gflops, peak_gflops;
    double  ar_calls, ar_bytes, ar_ms; /* tensor parallel: all-reduce per forward (leader) */
} latency_row;

int bench_latency_main(int argc, char **argv) {
    const char *model_path = cli_default_model(), *threads_text = "1,2", *format = "table";
    int32_t     P = 128, G = 32, depth = 0, reps = 3;
    llmrt_load_format fmt = LLMRT_LOAD_AUTO;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"prompt", required_argument, 0, 'p'},
        {"gen", required_argument, 0, 'n'},   {"depth", required_argument, 0, 'd'},
        {"reps", required_argument, 0, 'r'},  {"threads", required_argument, 0, 't'},
        {"load-format", required_argument, 0, 'f'}, {"format", required_argument, 0, 'F'},
        {"device", required_argument, 0, 'D'}, {"tp", required_argument, 0, 'T'},
        {"cpu-matmul", required_argument, 0, 'M'},
        {"kv-cache-dtype", required_argument, 0, 'K'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:p:n:d:r:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model_path = optarg; break;
        case 'p': P = atoi(optarg); break;
        case 'n': G = atoi(optarg); break;
        case 'd': depth = atoi(optarg); break;
        case 'r': reps = atoi(optarg); break;
        case 't': threads_text = optarg; break;
        case 'F': format = optarg; break;
        case 'f':
            fmt = !strcmp(optarg, "random") ? LLMRT_LOAD_RANDOM
                  : !strcmp(optarg, "hf")   ? LLMRT_LOAD_HF
                  : !strcmp(optarg, "gguf") ? LLMRT_LOAD_GGUF
                                            : LLMRT_LOAD_AUTO;
            break;
        case 'D':
            if (cli_parse_device(optarg) < 0) return 2;
            break;
        case 'T':
            if (cli_parse_tp(optarg) < 0) return 2;
            break;
        case 'M':
            if (cli_parse_cpu_matmul(optarg) < 0) return 2;
            break;
        case 'K':
            if ((cli_load.kv_cache_dtype = cli_kv_cache_dtype_of(optarg)) < 0) {
                fprintf(stderr, "llmrt bench latency: --kv-cache-dtype must be auto, int8, fp8 or "
                                "fp8_e4m3, got \"%s\"\n", optarg);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (P < 1 || G < 2 || depth < 0 || reps < 1 || reps > 1000) {
        fprintf(stderr, "llmrt bench latency: -p >= 1, -n >= 2, -d >= 0, -r in [1, 1000]\n");
        return 2;
    }
    bool json = !strcmp(format, "json"), csv = !strcmp(format, "csv");
    int32_t *threads = NULL;
    int32_t  n_thr   = cli_parse_int_list(threads_text, "--threads", &threads);
    if (n_thr <= 0) return 2;
    if (n_thr > 1 && cli_tp > 1) {
        /* a TP group's follower processes serve one model, then exit */
        fprintf(stderr, "llmrt bench latency: --tp takes one --threads value (threads per rank)\n");
        free(threads);
        return 2;
    }
    latency_row  *rows = calloc((size_t)n_thr, sizeof *rows);
    bench_context ctx  = {.argc = argc, .argv = argv, .model_path = model_path};
    ctx.engine         = llmrt_engine_default_params();
    int rc = 0;
    for (int32_t ti = 0; ti < n_thr && rc == 0; ti++) {
        llmrt_model *model = cli_load_model(model_path, threads[ti], fmt);
        if (!model) {
            rc = 1;
            break;
        }
        ctx.info.struct_size = sizeof ctx.info;
        llmrt_model_get_info(model, &ctx.info);
        double *pp = calloc((size_t)reps, sizeof *pp), *tg = calloc((size_t)reps, sizeof *tg);
        double *ttft = calloc((size_t)reps, sizeof *ttft), *tpot = calloc((size_t)reps, sizeof *tpot);
        double *e2e = calloc((size_t)reps, sizeof *e2e);
        for (int r = 0; r < reps && rc == 0; r++) {
            rc      = run_once(model, &ctx.info, depth, P, G, 0x5eed + (uint64_t)r, &pp[r], &tg[r]);
            ttft[r] = 1e3 * P / pp[r];   /* the prefill forward produces the first token */
            tpot[r] = 1e3 / tg[r];
            e2e[r]  = ttft[r] + tpot[r] * (G - 1);
        }
        if (rc == 0) {
            latency_row *row = &rows[ti];
            row->threads     = threads[ti];
            row->pp = stats_of(pp, reps), row->tg = stats_of(tg, reps);
            row->ttft = stats_of(ttft, reps), row->tpot = stats_of(tpot, reps);
            row->e2e = stats_of(e2e, reps);
            /* decode reads every weight once, plus K and V of the context (fp32 on the CPU
             * unless --kv-cache-dtype says 8 bits) */
            double kv_bytes = bench_kv_bytes_per_token(&ctx.info) * (depth + P + G / 2.0);
            row->bytes      = (double)ctx.info.weight_bytes + kv_bytes;
            row->gbps       = row->tg.mean * row->bytes / 1e9;
            /* prefill: 2 FLOPs per weight per token + attention (QK and PV: 4 * ctx * heads * hd
             * per layer, ctx averaging depth + P/2) */
            row->flops_per_token = 2.0 * (double)ctx.info.n_params +
                                   4.0 * ctx.info.n_layers * ctx.info.n_heads * ctx.info.head_dim *
                                       (depth + P / 2.0);
            row->gflops      = row->pp.mean * row->flops_per_token / 1e9;
            ctx.threads      = threads[ti];
            bench_context_measure(&ctx);
            row->peak_gbps   = ctx.peak_gbps;
            row->peak_gflops = ctx.peak_gflops;
            llmrt_tp_stats tps = {.struct_size = sizeof tps};
            if (llmrt_model_get_tp_stats(model, &tps) == LLMRT_OK && tps.n_forwards > 0) {
                row->ar_calls = (double)tps.n_all_reduce / (double)tps.n_forwards;
                row->ar_bytes = (double)tps.bytes / (double)tps.n_forwards;
                row->ar_ms    = 1e3 * tps.seconds / (double)tps.n_forwards;
            }
        }
        free(pp);
        free(tg);
        free(ttft);
        free(tpot);
        free(e2e);
        llmrt_model_destroy(model);
    }
    if (rc == 0) {
        if (json) {
            printf("{\n");
            bench_context_json(stdout, &ctx);
            printf(",\n  \"results\": [");
        } else if (csv) {
            printf("threads,n_prompt,n_gen,depth,prompt_tps_mean,prompt_tps_std,gen_tps_mean,"
                   "gen_tps_std,ttft_ms_mean,tpot_ms_mean,e2e_ms_mean,bytes_per_token,achieved_gbps,"
                   "fraction_of_peak_bandwidth,prefill_flops_per_token,achieved_prefill_gflops\n");
        } else {
            bench_context_print(stdout, &ctx);
            printf("%7s %6s %5s %5s %17s %15s %9s %9s %8s %13s %14s\n", "threads", "prompt", "gen",
                   "depth", "prompt tok/s", "gen tok/s", "TTFT ms", "TPOT ms", "GB/tok",
                   "decode GB/s", "prefill GF/s");
        }
        for (int32_t ti = 0; ti < n_thr; ti++) {
            latency_row *r = &rows[ti];
            double       fb = r->peak_gbps > 0 ? r->gbps / r->peak_gbps : 0;
            double       ff = r->peak_gflops > 0 ? r->gflops / r->peak_gflops : 0;
            if (json)
                printf("%s\n    {\"threads\": %d, \"n_prompt\": %d, \"n_gen\": %d, \"depth\": %d, "
                       "\"prompt_tps_mean\": %.3f, \"prompt_tps_std\": %.3f, \"gen_tps_mean\": %.3f, "
                       "\"gen_tps_std\": %.3f, \"ttft_ms_mean\": %.3f, \"tpot_ms_mean\": %.3f, "
                       "\"e2e_ms_mean\": %.3f, \"bytes_per_token\": %.0f, \"achieved_gbps\": %.3f, "
                       "\"peak_read_gbps\": %.3f, \"fraction_of_peak_bandwidth\": %.4f, "
                       "\"prefill_flops_per_token\": %.0f, \"achieved_prefill_gflops\": %.3f, "
                       "\"peak_fp32_gflops\": %.3f, \"fraction_of_peak_flops\": %.4f}",
                       ti ? "," : "", r->threads, P, G, depth, r->pp.mean, r->pp.sd, r->tg.mean,
                       r->tg.sd, r->ttft.mean, r->tpot.mean, r->e2e.mean, r->bytes, r->gbps,
                       r->peak_gbps, fb, r->flops_per_token, r->gflops, r->peak_gflops, ff);
            else if (csv)
                printf("%d,%d,%d,%d,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.0f,%.3f,%.4f,%.0f,%.3f\n",
                       r->threads, P, G, depth, r->pp.mean, r->pp.sd, r->tg.mean, r->tg.sd,
                       r->ttft.mean, r->tpot.mean, r->e2e.mean, r->bytes, r->gbps, fb,
                       r->flops_per_token, r->gflops);
            else
                printf("%7d %6d %5d %5d %9.1f ± %5.1f %7.2f ± %5.2f %9.1f %9.2f %8.3f %6.2f (%3.0f%%) "
                       "%6.1f (%3.0f%%)\n", r->threads, P, G, depth, r->pp.mean, r->pp.sd,
                       r->tg.mean, r->tg.sd, r->ttft.mean, r->tpot.mean, r->bytes / 1e9, r->gbps,
                       100 * fb, r->gflops, 100 * ff);
        }
        if (json) printf("\n  ]\n}\n");
        for (int32_t ti = 0; ti < n_thr && !json && !csv; ti++)
            if (rows[ti].ar_calls > 0)
                printf("# tensor parallel %d (%s): per forward %.0f all-reduces, %.1f KB, %.3f ms "
                       "in collectives (mean over prefill and decode forwards; %.0f%% of a decode "
                       "step); GB/tok is the leader's shard\n",
                       ctx.info.tp_size, ctx.info.tp_comm, rows[ti].ar_calls,
                       rows[ti].ar_bytes / 1e3, rows[ti].ar_ms,
                       100.0 * rows[ti].ar_ms / rows[ti].tpot.mean);
        if (!json && !csv)
            printf("# percentages: of the roofline reference above (measured at the same thread count "
                   "on the CPU, datasheet on a GPU)\n");
    }
    free(rows);
    free(threads);
    return rc;
}

int bench_membw_main(int argc, char **argv) {
    const char *threads_text = argc > 1 ? argv[1] : "1,2";
    int32_t    *threads      = NULL;
    int32_t     n            = cli_parse_int_list(threads_text, "threads", &threads);
    if (n <= 0) {
        fprintf(stderr, "usage: llmrt bench membw [THREADS,...]\n");
        return 2;
    }
    /* read: the roofline reference; the other columns are second methods (bench/membw.c) */
    printf("# llmrt bench membw: 1 GiB of buffers per probe, best of 5 taken in turns, GB/s\n"
           "# read: SIMD loads, 8 accumulators per thread (the roofline reference)\n"
           "# copy: non-temporal stores, read + write bytes; triad: a = b + s c, STREAM's 3 arrays\n"
           "# read-scalar: the probe before issue 21 (8 scalar sums), for comparison\n"
           "%8s %10s %10s %10s %12s\n", "threads", "read", "copy", "triad", "read-scalar");
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
