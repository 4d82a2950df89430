/* llmrt bench serve / sweep: online serving load against the engine, in process.
 *
 * serve: N requests with fixed or random (min:max) input/output lengths (random token ids, EOS
 * ignored so output lengths are exact) or prompts from a JSONL file; arrivals all at once or
 * Poisson at a given rate; at most C in flight. Every token delivery is timestamped when
 * llmrt_engine_step hands it over, which is when a serving frontend would send it.
 * sweep: the same load at several concurrencies (or input lengths), one row each.
 * Output: human table, JSON (vLLM's field names) or CSV; the roofline next to the figures. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../host/cli/cli.h"
#include "../host/cli/cli_args.h"
#include "../host/cli/cli_options.h"
#include "bench.h"
#include "bench_metrics.h"
#include "bench_report.h"
#include "bench_workload.h"
#include "llmrt_experimental.h"

typedef enum { OUT_TABLE, OUT_JSON, OUT_CSV } out_format;

typedef struct serve_cfg {
    int32_t     num_prompts;
    int32_t     in_min, in_max, out_min, out_max;
    const char *dataset;
    double      rate;            /* requests/s; <= 0: all at once */
    int32_t     max_concurrency; /* 0: unlimited */
    uint64_t    seed;
    bench_slo   slo;
} serve_cfg;

typedef struct serve_result {
    bench_summary summary;
    int64_t       preemptions;
    double        prefix_hit_rate;
    int64_t       steps;
    double        roofline_gbps;   /* achieved weight + KV read bandwidth during the run */
} serve_result;

/* --------------------------------------------------------------------------------------------- */
/* the run                                                                                       */
/* --------------------------------------------------------------------------------------------- */

static int run_load(llmrt_model *model, const cli_common *common, const serve_cfg *cfg,
                    const req_spec *specs, int32_t n, serve_result *res) {
    llmrt_engine *engine = NULL;
    if (llmrt_engine_create(model, &common->engine, &engine) != LLMRT_OK) {
        fprintf(stderr, "llmrt bench: %s\n", llmrt_last_error());
        return -1;
    }
    llmrt_sampling_params sp = cli_common_sampling(common, model);
    sp.ignore_eos            = !cfg->dataset || sp.ignore_eos;
    bench_timeline *tl       = calloc((size_t)n, sizeof *tl);
    double         *arrival  = calloc((size_t)n, sizeof *arrival);
    bool            alloc_ok = tl && arrival;
    for (int32_t i = 0; alloc_ok && i < n; i++)
        alloc_ok = (tl[i].t_tokens = bench_alloc_token_times(specs[i].max_tokens)) != NULL;
    if (!alloc_ok) {
        fprintf(stderr, "llmrt bench: out of memory for %d requests' timelines\n", n);
        for (int32_t i = 0; tl && i < n; i++) free(tl[i].t_tokens);
        free(tl);
        free(arrival);
        llmrt_engine_destroy(engine);
        return -1;
    }
    bench_workload_arrivals(n, cfg->rate, cfg->seed, arrival);
    double  t0 = cli_now();
    int32_t next = 0, inflight = 0, done = 0, rc = 0;
    while (done < n) {
        double now = cli_now() - t0;
        while (next < n && arrival[next] <= now &&
               (cfg->max_concurrency == 0 || inflight < cfg->max_concurrency)) {
            llmrt_prompt p = {.struct_size = sizeof p, .user_data = &tl[next]};
            if (specs[next].text) {
                p.text     = specs[next].text;
                p.text_len = strlen(specs[next].text);
            } else {
                p.tokens   = specs[next].ids;
                p.n_tokens = specs[next].n_ids;
            }
            sp.max_tokens = specs[next].max_tokens;
            uint64_t id;
            tl[next].t_submit = cli_now();
            if (llmrt_engine_submit(engine, &p, &sp, &id) != LLMRT_OK) {
                fprintf(stderr, "llmrt bench: request %d: %s\n", next, llmrt_last_error());
                tl[next].failed = true;
                done++;
            } else {
                inflight++;
            }
            next++;
        }
        if (inflight == 0) {
            if (next < n) usleep(bench_wait_us(arrival[next] - now));
            continue;
        }
        const llmrt_output *outs;
        int32_t             n_out;
        if (llmrt_engine_step(engine, &outs, &n_out) != LLMRT_OK) {
            fprintf(stderr, "llmrt bench: %s\n", llmrt_last_error());
            rc = -1;
            break;
        }
        for (int32_t k = 0; k < n_out; k++) {
            const llmrt_output *o = &outs[k];
            bench_timeline     *r = o->user_data;
            for (int32_t j = 0; j < o->n_tokens; j++) r->t_tokens[r->n_tokens++] = o->t_now;
            r->n_prompt = o->n_prompt_tokens;
            r->n_cached = o->n_cached_tokens;
            if (o->finish != LLMRT_FINISH_NONE) {
                r->failed = o->finish == LLMRT_FINISH_ERROR || o->finish == LLMRT_FINISH_ABORT;
                done++;
                inflight--;
            }
        }
    }
    double duration = cli_now() - t0;
    bench_summarize(tl, n, duration, &cfg->slo, &res->summary);
    llmrt_engine_metrics m = {.struct_size = sizeof m};
    llmrt_engine_get_metrics(engine, &m);
    res->preemptions     = m.preemptions;
    res->prefix_hit_rate = m.prefix_cache_hit_rate;
    res->steps           = m.steps;
    /* bytes read: every step reads all weights once; every generated token reads the K/V of its
     * context (prompt + half its output on average) */
    llmrt_model_info info = {.struct_size = sizeof info};
    llmrt_model_get_info(model, &info);
    double kv_per_token = bench_kv_bytes_per_token(&info);
    double ctx_avg      = res->summary.completed
                              ? ((double)res->summary.total_input_tokens +
                                 res->summary.total_output_tokens / 2.0) / res->summary.completed
                              : 0;
    double bytes = (double)m.steps * (double)info.weight_bytes +
                   (double)res->summary.total_output_tokens * ctx_avg * kv_per_token;
    res->roofline_gbps = duration > 0 ? bytes / duration / 1e9 : 0;
    for (int32_t i = 0; i < n; i++) free(tl[i].t_tokens);
    free(tl);
    free(arrival);
    llmrt_engine_destroy(engine);
    return rc;
}

/* --------------------------------------------------------------------------------------------- */
/* output                                                                                        */
/* --------------------------------------------------------------------------------------------- */

static void print_table_header(FILE *f, const char *sweep_name) {
    fprintf(f, "%8s %6s %9s %9s %10s %10s %10s %10s %10s %9s %9s %7s %7s\n",
            sweep_name ? sweep_name : "", "reqs", "out tok/s", "tot tok/s", "req/s", "TTFT p50",
            "TTFT p99", "TPOT p50", "ITL p99", "E2E p50", "GB/s", "preempt", "prefix");
}

static void print_table_row(FILE *f, int32_t sweep_value, const serve_result *r,
                            const bench_context *ctx) {
    const bench_summary *s = &r->summary;
    fprintf(f, "%8d %6d %9.1f %9.1f %10.3f %8.1fms %8.1fms %8.1fms %8.1fms %8.0fms %5.1f/%2.0f%% %7lld %6.0f%%\n",
            sweep_value, s->completed, s->output_throughput, s->total_token_throughput,
            s->request_throughput, s->ttft_ms.median, s->ttft_ms.p99, s->tpot_ms.median,
            s->itl_ms.p99, s->e2el_ms.median, r->roofline_gbps,
            ctx->peak_gbps > 0 ? 100.0 * r->roofline_gbps / ctx->peak_gbps : 0.0,
            (long long)r->preemptions, 100.0 * r->prefix_hit_rate);
}

static void print_json_row(FILE *f, const char *sweep_key, int32_t sweep_value,
                           const serve_result *r, const bench_context *ctx, bool first) {
    fprintf(f, "%s  {", first ? "" : ",\n");
    if (sweep_key) fprintf(f, "\"%s\": %d,\n", sweep_key, sweep_value);
    bench_summary_json(f, &r->summary);
    fprintf(f, ",\n  \"num_preemptions\": %lld, \"prefix_cache_hit_rate\": %.4f, \"engine_steps\": %lld,"
               "\n  \"achieved_read_gbps\": %.3f, \"fraction_of_peak_bandwidth\": %.4f}",
            (long long)r->preemptions, r->prefix_hit_rate, (long long)r->steps, r->roofline_gbps,
            ctx->peak_gbps > 0 ? r->roofline_gbps / ctx->peak_gbps : 0.0);
}

/* --------------------------------------------------------------------------------------------- */
/* command line                                                                                  */
/* --------------------------------------------------------------------------------------------- */

static void usage(FILE *f, bool sweep) {
    fprintf(f,
            "usage: llmrt bench %s [options]\n"
            "  --num-prompts N          requests (default 32)\n"
            "  --input-len N|MIN:MAX    prompt tokens (random ids; default 128)\n"
            "  --output-len N|MIN:MAX   generated tokens (EOS ignored; default 64)\n"
            "  --dataset FILE.jsonl     prompts {\"prompt\": ..., \"output_len\": n} instead\n"
            "  --request-rate R         Poisson arrivals per second (default: all at once)\n"
            "  --max-concurrency C      requests in flight at most (default: unlimited)\n"
            "  --goodput ttft:MS,tpot:MS,e2el:MS   SLOs for request_goodput\n"
            "  --workload-seed S        workload seed (default 0; --seed is the sampling seed)\n"
            "  --format table|json|csv  (default table)    -o, --output FILE\n",
            sweep ? "sweep" : "serve");
    if (!sweep)
        fprintf(f, "  --base-url URL           an OpenAI-compatible server over HTTP instead "
                   "(llmrt bench serve --base-url URL --help)\n");
    if (sweep)
        fprintf(f, "  --concurrency LIST       sweep max concurrency (default 1,4,16,64)\n"
                   "  --input-lens LIST        sweep prompt length instead\n");
    cli_common_usage(f);
}

static int serve_or_sweep(int argc, char **argv, bool sweep) {
    cli_common c;
    cli_common_init(&c);
    c.sampling.temperature = 0; /* benchmark greedy unless asked */
    serve_cfg  cfg = {.num_prompts = 32, .in_min = 128, .in_max = 128, .out_min = 64, .out_max = 64};
    out_format fmt       = OUT_TABLE;
    int        fmt_index = 0;
    const char *out_path = NULL, *conc_list = "1,4,16,64", *len_list = NULL;
    enum { O_NUM = 3000, O_IN, O_OUT, O_DATA, O_RATE, O_CONC, O_GOOD, O_WSEED, O_FMT, O_SWC, O_SWL };
    static const struct option own[] = {
        {"num-prompts", required_argument, 0, O_NUM},   {"input-len", required_argument, 0, O_IN},
        {"output-len", required_argument, 0, O_OUT},    {"dataset", required_argument, 0, O_DATA},
        {"request-rate", required_argument, 0, O_RATE}, {"max-concurrency", required_argument, 0, O_CONC},
        {"goodput", required_argument, 0, O_GOOD},      {"workload-seed", required_argument, 0, O_WSEED},
        {"format", required_argument, 0, O_FMT},        {"output", required_argument, 0, 'o'},
        {"concurrency", required_argument, 0, O_SWC},   {"input-lens", required_argument, 0, O_SWL},
        {"help", no_argument, 0, 'h'},
    };
    const struct option *opts = cli_options_with(own, sizeof own / sizeof own[0]);
    int                  o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "m:t:o:h", opts, NULL)) != -1) {
        int r = cli_common_parse(&c, o, optarg);
        if (r < 0) return 2;
        if (r > 0) continue;
        switch (o) {
        case O_NUM:
            if (cli_arg_i32("--num-prompts", optarg, 1, BENCH_MAX_PROMPTS, &cfg.num_prompts)) return 2;
            break;
        case O_IN: if (bench_parse_range("--input-len", optarg, &cfg.in_min, &cfg.in_max)) return 2; break;
        case O_OUT: if (bench_parse_range("--output-len", optarg, &cfg.out_min, &cfg.out_max)) return 2; break;
        case O_DATA: cfg.dataset = optarg; break;
        case O_RATE:
            if (bench_parse_rate(optarg, &cfg.rate)) return 2;
            break;
        case O_CONC:
            if (cli_arg_i32("--max-concurrency", optarg, 0, 1 << 20, &cfg.max_concurrency)) return 2;
            break;
        case O_GOOD: if (bench_parse_slo(optarg, &cfg.slo)) return 2; break;
        case O_WSEED:
            if (cli_arg_u64("--workload-seed", optarg, UINT64_MAX, &cfg.seed)) return 2;
            break;
        case O_FMT:
            if (bench_parse_format(optarg, &fmt_index)) return 2;
            else fmt = (out_format)fmt_index;
            break;
        case 'o': out_path = optarg; break;
        case O_SWC: conc_list = optarg; break;
        case O_SWL: len_list = optarg; break;
        case 'h': usage(stdout, sweep); return 0;
        default: usage(stderr, sweep); return 2;
        }
    }
    int32_t *values = NULL, n_values = 1;
    const char *sweep_key = NULL;
    if (sweep) {
        sweep_key = len_list ? "input_len" : "max_concurrency";
        n_values  = len_list ? cli_arg_int_list("--input-lens", len_list, 1, BENCH_MAX_LEN, 4096, &values)
                             : cli_arg_int_list("--concurrency", conc_list, 1, 1 << 20, 4096, &values);
        if (n_values <= 0) return 2;
    }
    if (cfg.dataset && bench_workload_check_dataset(cfg.dataset) != 0) return 1;
    llmrt_model *model = cli_load_model(c.model_path, c.threads, c.load_format);
    if (!model) return 1;
    bench_context ctx = {.argc = argc, .argv = argv, .model_path = c.model_path,
                         .threads = c.threads, .engine = c.engine};
    ctx.info.struct_size = sizeof ctx.info;
    llmrt_model_get_info(model, &ctx.info);
    if (ctx.threads == 0) ctx.threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    bench_context_measure(&ctx);
    FILE *f = out_path ? fopen(out_path, "w") : stdout;
    if (!f) {
        fprintf(stderr, "llmrt bench: cannot write %s\n", out_path);
        llmrt_model_destroy(model);
        return 1;
    }
    if (fmt == OUT_TABLE) {
        bench_context_print(f, &ctx);
        print_table_header(f, sweep_key ? (len_list ? "in_len" : "conc") : NULL);
    } else if (fmt == OUT_JSON) {
        fprintf(f, "{\n");
        bench_context_json(f, &ctx);
        fprintf(f, ",\n  \"results\": [\n");
    } else {
        fprintf(f, "%s%s", sweep_key ? sweep_key : "", sweep_key ? "," : "");
        bench_summary_csv_header(f);
        fprintf(f, ",num_preemptions,prefix_cache_hit_rate,achieved_read_gbps\n");
    }
    int rc = 0;
    for (int32_t v = 0; v < n_values && rc == 0; v++) {
        serve_cfg run = cfg;
        if (sweep && len_list) run.in_min = run.in_max = values[v];
        if (sweep && !len_list) run.max_concurrency = values[v];
        req_spec *specs = NULL;
        int32_t   n     = run.num_prompts;
        if (run.dataset) {
            if (bench_workload_dataset(run.dataset, run.num_prompts, run.out_max, &specs, &n) < 0) {
                rc = 1;
                break;
            }
        } else {
            specs = bench_workload_random(run.num_prompts, run.in_min, run.in_max, run.out_min,
                                          run.out_max, run.seed, ctx.info.vocab_size);
            if (!specs) {
                rc = 1;
                break;
            }
        }
        serve_result res = {0};
        rc               = run_load(model, &c, &run, specs, n, &res) < 0 ? 1 : 0;
        int32_t shown    = sweep ? values[v] : run.max_concurrency;
        if (rc == 0) {
            if (fmt == OUT_TABLE) print_table_row(f, shown, &res, &ctx);
            else if (fmt == OUT_JSON) print_json_row(f, sweep_key, shown, &res, &ctx, v == 0);
            else {
                if (sweep_key) fprintf(f, "%d,", shown);
                bench_summary_csv_row(f, &res.summary);
                fprintf(f, ",%lld,%.4f,%.3f\n", (long long)res.preemptions, res.prefix_hit_rate,
                        res.roofline_gbps);
            }
            fflush(f);
        }
        bench_workload_free(specs, n);
    }
    if (fmt == OUT_JSON) fprintf(f, "\n  ]\n}\n");
    if (fmt == OUT_TABLE)
        fprintf(f, "# GB/s: weights read once per engine step + K/V read per generated token, over "
                   "the run's wall time; %% of the measured read bandwidth\n");
    llmrt_tp_stats tps = {.struct_size = sizeof tps};
    if (fmt == OUT_TABLE && llmrt_model_get_tp_stats(model, &tps) == LLMRT_OK && tps.n_forwards > 0)
        fprintf(f, "# tensor parallel %d (%s): %lld engine steps, %.1f all-reduces and %.3f ms in "
                   "collectives per step (leader's wall time, all runs)\n",
                ctx.info.tp_size, ctx.info.tp_comm, (long long)tps.n_forwards,
                (double)tps.n_all_reduce / (double)tps.n_forwards,
                1e3 * tps.seconds / (double)tps.n_forwards);
    /* a results file on a full disk must not pass for a finished run */
    if (out_path && (ferror(f) | fclose(f)) != 0) {
        fprintf(stderr, "llmrt bench: writing %s failed\n", out_path);
        rc = 1;
    }
    free(values);
    llmrt_model_destroy(model);
    return rc;
}

int bench_http_serve_main(int argc, char **argv); /* bench_http.c */

int bench_serve_main(int argc, char **argv) {
    /* --base-url: an OpenAI-compatible server over HTTP instead of the engine in process */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--base-url") || !strncmp(argv[i], "--base-url=", 11))
            return bench_http_serve_main(argc, argv);
    return serve_or_sweep(argc, argv, false);
}

int bench_sweep_main(int argc, char **argv) {
    return serve_or_sweep(argc, argv, true);
}
