/* llmrt bench serve --base-url URL: the serving benchmark as an HTTP client of an OpenAI-compatible
 * server (ours, vLLM, llama.cpp's llama-server, llama-cpp-python, ...).
 *
 * The workload is the in-process mode's (bench_workload.c: same options and seeds, same prompts,
 * output lengths and arrival times). Each request is a streaming POST (stream: true,
 * stream_options.include_usage) made with libcurl's multi interface: one thread drives up to
 * `concurrency` transfers. Timings, per request, on this client's clock (cli_now):
 *   submit = the request handed to libcurl;
 *   a "delivery" = an SSE chunk whose choices[0].text (completions) or choices[0].delta.content
 *   (chat) is non-empty; TTFT = first delivery - submit; ITL = gaps between deliveries (a chunk
 *   may carry several tokens: ITL is per chunk, as vLLM's benchmark_serving measures it);
 *   E2E = last delivery - submit.
 * Output tokens come from the usage block (completion_tokens) when the server sends it, else one
 * per chunk; the report says which ("token_count_source"). TPOT = (E2E - TTFT) / (tokens - 1). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "../host/cli/cli.h"
#include "../host/cli/cli_args.h"
#include "../host/cli/cli_json.h"
#include "../host/cli/cli_options.h"
#include "bench_metrics.h"
#include "bench_report.h"
#include "bench_workload.h"
#include "http_client.h"
#include "llmrt_git_rev.h"
#include "llmrt.h"

int bench_http_serve_main(int argc, char **argv);

typedef enum { OUT_TABLE, OUT_JSON, OUT_CSV } out_format;
typedef enum { PROMPT_IDS, PROMPT_TEXT } prompt_format;

typedef struct http_cfg {
    const char   *base_url, *endpoint, *model_name, *api_key;
    bool          chat;
    prompt_format prompt;
    int32_t       num_prompts, in_min, in_max, out_min, out_max, vocab;
    const char   *dataset;
    double        rate;
    int32_t       concurrency; /* 0: unlimited */
    uint64_t      seed;
    bench_slo     slo;
    double        connect_timeout_s, request_timeout_s;
    float         temperature;
    bool          ignore_eos;
} http_cfg;

/* One request's state while it streams */
typedef struct hreq {
    bench_timeline *tl;
    int32_t         cap;          /* of tl->t_tokens */
    int32_t         n_prompt_sent; /* ids sent (ids format), or ids before detokenizing */
    int64_t         usage_prompt, usage_completion;
    bool            have_usage, saw_done, stream_error, chat;
    char            err[256];
} hreq;

/* failures by kind: an HTTP status ("500"), "transport" or "stream" */
#define MAX_ERR_KINDS 16
typedef struct err_table {
    char    key[MAX_ERR_KINDS][16];
    int32_t count[MAX_ERR_KINDS];
    char    example[MAX_ERR_KINDS][256];
    int     n;
} err_table;

static void err_add(err_table *t, const char *key, const char *example) {
    int i;
    for (i = 0; i < t->n; i++)
        if (!strcmp(t->key[i], key)) break;
    if (i == t->n) {
        if (t->n == MAX_ERR_KINDS) i = MAX_ERR_KINDS - 1; /* the last slot takes the rest */
        else {
            t->n++;
            snprintf(t->key[i], sizeof t->key[i], "%s", key);
            snprintf(t->example[i], sizeof t->example[i], "%s", example ? example : "");
            /* one line */
            for (char *p = t->example[i]; *p; p++)
                if (*p == '\n' || *p == '\r') *p = ' ';
        }
    }
    t->count[i]++;
}

/* --------------------------------------------------------------------------------------------- */
/* requests                                                                                      */
/* --------------------------------------------------------------------------------------------- */

static const char *const words[] = {
    "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be",
    "by", "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have",
    "an", "had", "they", "you", "were", "their", "one", "all", "we", "can", "her", "has", "there",
    "been", "if", "more", "when", "will", "would", "who", "so", "no", "time", "river", "light",
    "number", "house", "world", "water", "small", "system", "morning", "table", "question",
    "garden", "music", "window"};

/* The prompt text of random ids: the model's detokenization when a model is loaded, else one
 * word per id from a fixed list. */
static char *ids_to_text(const llmrt_model *model, const int32_t *ids, int32_t n) {
    if (model) {
        size_t len = 0;
        llmrt_detokenize(model, ids, n, true, NULL, 0, &len);
        char *t = malloc(len + 1);
        if (llmrt_detokenize(model, ids, n, true, t, len + 1, &len) == LLMRT_OK) return t;
        free(t);
    }
    size_t nw = sizeof words / sizeof words[0], cap = 1;
    for (int32_t i = 0; i < n; i++) cap += strlen(words[(uint32_t)ids[i] % nw]) + 1;
    char *t = malloc(cap), *p = t;
    *p      = 0;
    for (int32_t i = 0; i < n; i++) p += sprintf(p, "%s%s", i ? " " : "", words[(uint32_t)ids[i] % nw]);
    return t;
}

static char *request_body(const http_cfg *cfg, const req_spec *s, const llmrt_model *model) {
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "model", cfg->model_name);
    char *text = NULL;
    if (s->text) text = strdup(s->text);
    else if (cfg->prompt == PROMPT_TEXT || cfg->chat) text = ids_to_text(model, s->ids, s->n_ids);
    if (cfg->chat) {
        cJSON *msgs = cJSON_AddArrayToObject(b, "messages");
        cJSON *m    = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "user");
        cJSON_AddStringToObject(m, "content", text);
        cJSON_AddItemToArray(msgs, m);
    } else if (text) {
        cJSON_AddStringToObject(b, "prompt", text);
    } else {
        cJSON *ids = cJSON_AddArrayToObject(b, "prompt");
        for (int32_t k = 0; k < s->n_ids; k++) cJSON_AddItemToArray(ids, cJSON_CreateNumber(s->ids[k]));
    }
    free(text);
    cJSON_AddNumberToObject(b, "max_tokens", s->max_tokens);
    cJSON_AddNumberToObject(b, "temperature", cfg->temperature);
    if (cfg->ignore_eos) cJSON_AddBoolToObject(b, "ignore_eos", true);
    cJSON_AddBoolToObject(b, "stream", true);
    cJSON *so = cJSON_AddObjectToObject(b, "stream_options");
    cJSON_AddBoolToObject(so, "include_usage", true);
    char *out = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    return out;
}

static void on_event(void *user, const char *data, size_t len, double t) {
    hreq *r = user;
    if (len == 6 && !memcmp(data, "[DONE]", 6)) {
        r->saw_done = true;
        return;
    }
    cJSON *j = cJSON_ParseWithLength(data, len);
    if (!j) {
        if (!r->stream_error) snprintf(r->err, sizeof r->err, "not JSON in the stream: %.80s", data);
        r->stream_error = true;
        return;
    }
    const cJSON *e = cJSON_GetObjectItem(j, "error");
    if (e && !cJSON_IsNull(e)) {
        const cJSON *msg = cJSON_GetObjectItem(e, "message");
        if (!r->stream_error)
            snprintf(r->err, sizeof r->err, "error in the stream: %s",
                     cJSON_IsString(msg) ? msg->valuestring : cJSON_IsString(e) ? e->valuestring : "?");
        r->stream_error = true;
    }
    const cJSON *u = cJSON_GetObjectItem(j, "usage");
    if (cJSON_IsObject(u)) {
        const cJSON *ct = cJSON_GetObjectItem(u, "completion_tokens");
        const cJSON *pt = cJSON_GetObjectItem(u, "prompt_tokens");
        /* a server's numbers are outside input too: range-checked before conversion */
        char    msg[200];
        int64_t v;
        if (ct && !cJSON_IsNull(ct)) {
            if (cli_json_int(ct, "usage.completion_tokens", 0, INT32_MAX, &v, msg, sizeof msg) == 0) {
                r->usage_completion = v;
                r->have_usage       = true;
            } else if (!r->stream_error) {
                snprintf(r->err, sizeof r->err, "bad usage in the stream: %s", msg);
                r->stream_error = true;
            }
        }
        if (pt && !cJSON_IsNull(pt)) {
            if (cli_json_int(pt, "usage.prompt_tokens", 0, INT32_MAX, &v, msg, sizeof msg) == 0) {
                r->usage_prompt = v;
            } else if (!r->stream_error) {
                snprintf(r->err, sizeof r->err, "bad usage in the stream: %s", msg);
                r->stream_error = true;
            }
        }
    }
    const cJSON *choices = cJSON_GetObjectItem(j, "choices");
    const cJSON *c0      = cJSON_IsArray(choices) ? cJSON_GetArrayItem(choices, 0) : NULL;
    if (c0) {
        const cJSON *txt = r->chat ? cJSON_GetObjectItem(cJSON_GetObjectItem(c0, "delta"), "content")
                                   : cJSON_GetObjectItem(c0, "text");
        if (cJSON_IsString(txt) && txt->valuestring[0]) {
            bench_timeline *tl = r->tl;
            if (tl->n_tokens == r->cap) { /* a server sending more events than max_tokens */
                int32_t cap = r->cap <= (INT32_MAX - 8) / 2 ? 2 * r->cap + 8 : INT32_MAX;
                double *tt  = cap > r->cap ? realloc(tl->t_tokens, (size_t)cap * sizeof(double)) : NULL;
                if (tt) {
                    tl->t_tokens = tt;
                    r->cap       = cap;
                }
            }
            if (tl->n_tokens < r->cap) tl->t_tokens[tl->n_tokens++] = t; /* else: not timed */
        }
    }
    cJSON_Delete(j);
}

typedef struct run_state {
    hreq     *reqs;
    int32_t   done, inflight;
    err_table errs;
} run_state;

static void on_done(const http_result *res, void *ctx) {
    run_state *st = ctx;
    hreq      *r  = res->user;
    st->done++;
    st->inflight--;
    char key[16];
    if (res->transport_error) {
        r->tl->failed = true;
        err_add(&st->errs, res->status ? "transport" : "connection", res->error);
    } else if (res->status < 200 || res->status >= 300) {
        r->tl->failed = true;
        snprintf(key, sizeof key, "%ld", res->status);
        err_add(&st->errs, key, res->error_body);
    } else if (r->stream_error) {
        r->tl->failed = true;
        err_add(&st->errs, "stream", r->err);
    } else if (r->tl->n_tokens == 0) {
        r->tl->failed = true;
        err_add(&st->errs, "empty", "a 2xx stream without any text");
    }
    r->tl->n_prompt = r->usage_prompt > 0 ? (int32_t)r->usage_prompt : r->n_prompt_sent;
}

/* --------------------------------------------------------------------------------------------- */
/* the run                                                                                       */
/* --------------------------------------------------------------------------------------------- */

typedef struct http_run_result {
    bench_summary summary;
    const char   *token_count_source; /* "usage", "chunks" or "mixed" */
    err_table     errs;
} http_run_result;

/* bench_summarize over the chunk timelines gives TTFT, ITL and E2E; output tokens (and with them
 * the throughputs, TPOT and goodput) are recomputed from the usage counts where the server sent
 * them. */
static void summarize(const hreq *reqs, bench_timeline *tl, int32_t n, double duration,
                      const bench_slo *slo, http_run_result *out) {
    bench_summarize(tl, n, duration, slo, &out->summary);
    bench_summary *s = &out->summary;
    double        *tpot = malloc(((size_t)n + 1) * sizeof(double));
    int64_t        n_tpot = 0, good = 0, total_out = 0;
    int32_t        with_usage = 0, without = 0;
    for (int32_t i = 0; i < n; i++) {
        const bench_timeline *r = &tl[i];
        if (r->failed || r->n_tokens == 0) continue;
        int64_t tokens = reqs[i].have_usage ? reqs[i].usage_completion : r->n_tokens;
        if (reqs[i].have_usage) with_usage++;
        else without++;
        total_out += tokens;
        double ft = (r->t_tokens[0] - r->t_submit) * 1e3;
        double e2 = (r->t_tokens[r->n_tokens - 1] - r->t_submit) * 1e3;
        double tp = 0;
        if (tokens > 1) tpot[n_tpot++] = tp = (e2 - ft) / (double)(tokens - 1);
        bool ok = true;
        if (slo->ttft_ms > 0 && ft > slo->ttft_ms) ok = false;
        if (slo->tpot_ms > 0 && tp > slo->tpot_ms) ok = false;
        if (slo->e2el_ms > 0 && e2 > slo->e2el_ms) ok = false;
        good += ok;
    }
    s->total_output_tokens = total_out;
    if (duration > 0) {
        s->output_throughput      = (double)total_out / duration;
        s->total_token_throughput = (double)(s->total_input_tokens + total_out) / duration;
        s->request_goodput        = (double)good / duration;
    }
    s->tpot_ms = bench_dist_of(tpot, n_tpot);
    free(tpot);
    out->token_count_source = with_usage && without ? "mixed" : without ? "chunks"
                              : with_usage                   ? "usage"
                                                             : "none";
}

static int run_http(const http_cfg *cfg, const char *url, const req_spec *specs, int32_t n,
                    const llmrt_model *model, http_run_result *res) {
    http_client *client = http_client_create(cfg->concurrency > 0 ? cfg->concurrency : n);
    if (!client) return -1;
    bench_timeline *tl      = calloc((size_t)n, sizeof *tl);
    double         *arrival = calloc((size_t)n, sizeof *arrival);
    char          **bodies  = calloc((size_t)n, sizeof *bodies);
    run_state       st      = {.reqs = calloc((size_t)n, sizeof(hreq))};
    bool            ok      = tl && arrival && bodies && st.reqs;
    for (int32_t i = 0; ok && i < n; i++)
        ok = (tl[i].t_tokens = bench_alloc_token_times(specs[i].max_tokens)) != NULL;
    if (!ok) {
        fprintf(stderr, "llmrt bench: out of memory for %d requests\n", n);
        for (int32_t i = 0; tl && i < n; i++) free(tl[i].t_tokens);
        free(tl);
        free(arrival);
        free(bodies);
        free(st.reqs);
        http_client_destroy(client);
        return -1;
    }
    bench_workload_arrivals(n, cfg->rate, cfg->seed, arrival);
    for (int32_t i = 0; i < n; i++) { /* bodies before the clock starts */
        hreq *r          = &st.reqs[i];
        r->tl            = &tl[i];
        r->cap           = specs[i].max_tokens + 1;
        r->chat          = cfg->chat;
        r->n_prompt_sent = specs[i].n_ids;
        bodies[i]        = request_body(cfg, &specs[i], model);
    }
    double  t0 = cli_now();
    int32_t next = 0, rc = 0;
    while (st.done < n) {
        double now = cli_now() - t0;
        while (next < n && arrival[next] <= now &&
               (cfg->concurrency == 0 || st.inflight < cfg->concurrency)) {
            tl[next].t_submit = cli_now();
            if (http_client_post_sse(client, url, cfg->api_key, bodies[next], cfg->connect_timeout_s,
                                     cfg->request_timeout_s, on_event, &st.reqs[next]) != 0) {
                tl[next].failed = true;
                err_add(&st.errs, "client", "the request could not be started");
                st.done++;
            } else {
                st.inflight++;
            }
            free(bodies[next]);
            bodies[next] = NULL;
            next++;
        }
        if (st.inflight == 0) {
            if (next < n) usleep(bench_wait_us(arrival[next] - now));
            continue;
        }
        int wait_ms = 100;
        if (next < n && (cfg->concurrency == 0 || st.inflight < cfg->concurrency)) {
            double until = (arrival[next] - (cli_now() - t0)) * 1e3;
            wait_ms      = until < 0 ? 0 : until < 100 ? (int)until + 1 : 100;
        }
        if (http_client_poll(client, wait_ms, on_done, &st) < 0) {
            rc = -1;
            break;
        }
    }
    double duration = cli_now() - t0;
    summarize(st.reqs, tl, n, duration, &cfg->slo, res);
    res->errs = st.errs;
    http_client_destroy(client);
    for (int32_t i = 0; i < n; i++) {
        free(tl[i].t_tokens);
        free(bodies[i]);
    }
    free(bodies);
    free(tl);
    free(arrival);
    free(st.reqs);
    return rc;
}

/* --------------------------------------------------------------------------------------------- */
/* output                                                                                        */
/* --------------------------------------------------------------------------------------------- */

static void json_string(FILE *f, const char *s) {
    if (!s) {
        fputs("null", f);
        return;
    }
    cJSON *j = cJSON_CreateString(s);
    char  *p = cJSON_PrintUnformatted(j);
    fputs(p, f);
    cJSON_free(p);
    cJSON_Delete(j);
}

static const char *prompt_format_name(const http_cfg *cfg) {
    return cfg->dataset ? "dataset-text" : cfg->chat || cfg->prompt == PROMPT_TEXT ? "text" : "ids";
}

static void context_json(FILE *f, int argc, char **argv, const http_cfg *cfg, const char *url,
                         const char *tokenizer) {
    char m[512];
    bench_machine_string(m, sizeof m);
    fprintf(f, "  \"command\": ");
    bench_command_print(f, argc, argv, true);
    fprintf(f, ",\n  \"machine\": ");
    json_string(f, m);
    fprintf(f, ", \"git_revision\": ");
    json_string(f, LLMRT_GIT_REV);
    fprintf(f, ",\n  \"backend\": \"openai-http\", \"base_url\": ");
    json_string(f, cfg->base_url);
    fprintf(f, ", \"endpoint\": ");
    json_string(f, cfg->endpoint);
    fprintf(f, ", \"url\": ");
    json_string(f, url);
    fprintf(f, ",\n  \"model_id\": ");
    json_string(f, cfg->model_name);
    fprintf(f, ", \"tokenizer\": ");
    json_string(f, tokenizer);
    fprintf(f, ", \"prompt_format\": \"%s\", \"libcurl\": ", prompt_format_name(cfg));
    json_string(f, http_client_version());
    fprintf(f, ",\n  \"num_prompts\": %d, \"request_rate\": %g, \"max_concurrency\": %d, "
               "\"ignore_eos\": %s, \"temperature\": %g",
            cfg->num_prompts, cfg->rate, cfg->concurrency, cfg->ignore_eos ? "true" : "false",
            (double)cfg->temperature);
}

static void errors_json(FILE *f, const err_table *t) {
    fprintf(f, "{");
    for (int i = 0; i < t->n; i++) fprintf(f, "%s\"%s\": %d", i ? ", " : "", t->key[i], t->count[i]);
    fprintf(f, "}");
}

static void print_errors(FILE *f, const err_table *t) {
    for (int i = 0; i < t->n; i++) {
        bool http = t->key[i][0] >= '0' && t->key[i][0] <= '9';
        fprintf(f, "llmrt bench: %d request(s) failed %s%s%s: %s\n", t->count[i],
                http ? "with HTTP " : "(", t->key[i], http ? "" : " error)",
                t->example[i][0] ? t->example[i] : "(no body)");
    }
}

/* --------------------------------------------------------------------------------------------- */
/* command line                                                                                  */
/* --------------------------------------------------------------------------------------------- */

static void usage(FILE *f) {
    fprintf(f,
            "usage: llmrt bench serve --base-url http://HOST:PORT [options]\n"
            "  An OpenAI-compatible server under the in-process mode's workload (same options and\n"
            "  seeds: same prompts), streaming requests over HTTP (libcurl).\n"
            "  --base-url URL           the server (http://HOST:PORT, with or without /v1)\n"
            "  --endpoint PATH          /v1/completions (default) or /v1/chat/completions\n"
            "  --model NAME             the model name sent (default: the first of GET /v1/models)\n"
            "  --api-key KEY            sent as \"Authorization: Bearer KEY\" (default: $OPENAI_API_KEY)\n"
            "  --prompt-format ids|text prompt as token ids (default, completions) or text (the\n"
            "                           random ids detokenized with -m MODEL, else words from a list)\n"
            "  -m MODEL                 local model: its vocabulary for the random ids, its tokenizer\n"
            "                           for text prompts (not loaded unless given)\n"
            "  --vocab-size N           random ids in [0, N) without -m (default 32000)\n"
            "  --num-prompts N          requests (default 32)\n"
            "  --input-len N|MIN:MAX    prompt tokens (random ids; default 128)\n"
            "  --output-len N|MIN:MAX   generated tokens (ignore_eos sent; default 64)\n"
            "  --dataset FILE.jsonl     prompts {\"prompt\": ..., \"output_len\": n} instead\n"
            "  --request-rate R         Poisson arrivals per second (default: all at once)\n"
            "  --max-concurrency C, --concurrency C   requests in flight at most (default: unlimited)\n"
            "  --goodput ttft:MS,tpot:MS,e2el:MS   SLOs for request_goodput\n"
            "  --workload-seed S        workload seed (default 0)\n"
            "  --temperature T          sent with every request (default 0)\n"
            "  --connect-timeout S      per connection (default 10)    --request-timeout S (default 600)\n"
            "  --format table|json|csv  (default table)    -o, --output FILE\n");
    if (!http_client_version()[0])
        fprintf(f, "(this llmrt was built without libcurl: --base-url needs libcurl)\n");
}

int bench_http_serve_main(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    const char *default_model = c.model_path;
    c.sampling.temperature    = 0;
    http_cfg cfg = {.endpoint = "/v1/completions", .num_prompts = 32, .in_min = 128, .in_max = 128,
                    .out_min = 64, .out_max = 64, .vocab = 0, .connect_timeout_s = 10,
                    .request_timeout_s = 600, .api_key = getenv("OPENAI_API_KEY")};
    out_format  fmt        = OUT_TABLE;
    int         fmt_index  = 0;
    const char *out_path   = NULL;
    int         prompt_opt = -1; /* not given */
    enum { O_NUM = 3000, O_IN, O_OUT, O_DATA, O_RATE, O_CONC, O_GOOD, O_WSEED, O_FMT, O_URL,
           O_EP, O_KEY, O_PF, O_VOCAB, O_CTO, O_RTO, O_NAME };
    /* --model: the served model's name here (getopt takes the first of duplicate names, so it
     * comes before the common options, where --model is the local model path like -m) */
    static const struct option own[] = {
        {"model", required_argument, 0, O_NAME},
        {"num-prompts", required_argument, 0, O_NUM},   {"input-len", required_argument, 0, O_IN},
        {"output-len", required_argument, 0, O_OUT},    {"dataset", required_argument, 0, O_DATA},
        {"request-rate", required_argument, 0, O_RATE}, {"max-concurrency", required_argument, 0, O_CONC},
        {"concurrency", required_argument, 0, O_CONC},  {"goodput", required_argument, 0, O_GOOD},
        {"workload-seed", required_argument, 0, O_WSEED}, {"format", required_argument, 0, O_FMT},
        {"output", required_argument, 0, 'o'},          {"base-url", required_argument, 0, O_URL},
        {"endpoint", required_argument, 0, O_EP},       {"api-key", required_argument, 0, O_KEY},
        {"prompt-format", required_argument, 0, O_PF},  {"vocab-size", required_argument, 0, O_VOCAB},
        {"connect-timeout", required_argument, 0, O_CTO}, {"request-timeout", required_argument, 0, O_RTO},
        {"help", no_argument, 0, 'h'},                  {0, 0, 0, 0},
    };
    /* own options first, then the common ones (for -m, -t, --temperature, ...) */
    int n_own = (int)(sizeof own / sizeof own[0]) - 1;
    struct option *opts = calloc((size_t)(n_own + cli_common_n_options + 1), sizeof *opts);
    memcpy(opts, own, (size_t)n_own * sizeof *opts);
    memcpy(opts + n_own, cli_common_options, (size_t)cli_common_n_options * sizeof *opts);
    int o, bad = 0;
    optind = 1;
    while (!bad && (o = getopt_long(argc, argv, "m:t:o:h", opts, NULL)) != -1) {
        int r = cli_common_parse(&c, o, optarg);
        if (r < 0) bad = 2;
        if (r != 0) continue;
        switch (o) {
        case O_NAME: cfg.model_name = optarg; break;
        case O_NUM:
            if (cli_arg_i32("--num-prompts", optarg, 1, BENCH_MAX_PROMPTS, &cfg.num_prompts)) bad = 2;
            break;
        case O_IN: if (bench_parse_range("--input-len", optarg, &cfg.in_min, &cfg.in_max)) bad = 2; break;
        case O_OUT: if (bench_parse_range("--output-len", optarg, &cfg.out_min, &cfg.out_max)) bad = 2; break;
        case O_DATA: cfg.dataset = optarg; break;
        case O_RATE:
            if (bench_parse_rate(optarg, &cfg.rate)) bad = 2;
            break;
        case O_CONC:
            if (cli_arg_i32("--max-concurrency", optarg, 0, 1 << 20, &cfg.concurrency)) bad = 2;
            break;
        case O_GOOD: if (bench_parse_slo(optarg, &cfg.slo)) bad = 2; break;
        case O_WSEED:
            if (cli_arg_u64("--workload-seed", optarg, UINT64_MAX, &cfg.seed)) bad = 2;
            break;
        case O_FMT:
            if (bench_parse_format(optarg, &fmt_index)) bad = 2;
            else fmt = (out_format)fmt_index;
            break;
        case 'o': out_path = optarg; break;
        case O_URL: cfg.base_url = optarg; break;
        case O_EP: cfg.endpoint = optarg; break;
        case O_KEY: cfg.api_key = optarg; break;
        case O_PF: {
            static const char *const names[] = {"ids", "text", NULL};
            int                      i;
            if (cli_arg_enum("--prompt-format", optarg, names, &i)) bad = 2;
            else prompt_opt = i == 0 ? PROMPT_IDS : PROMPT_TEXT;
            break;
        }
        case O_VOCAB:
            if (cli_arg_i32("--vocab-size", optarg, 1, 1 << 30, &cfg.vocab)) bad = 2;
            break;
        /* seconds, converted to milliseconds in a long by http_client.c: bounded first */
        case O_CTO:
            if (cli_arg_double("--connect-timeout", optarg, 0, BENCH_MAX_TIMEOUT_S,
                               &cfg.connect_timeout_s))
                bad = 2;
            break;
        case O_RTO:
            if (cli_arg_double("--request-timeout", optarg, 0, BENCH_MAX_TIMEOUT_S,
                               &cfg.request_timeout_s))
                bad = 2;
            break;
        case 'h': usage(stdout); free(opts); return 0;
        default: usage(stderr); bad = 2; break;
        }
    }
    free(opts);
    if (bad) return bad;
    if (!cfg.base_url || strncmp(cfg.base_url, "http", 4)) {
        fprintf(stderr, "llmrt bench: --base-url http://HOST:PORT\n");
        return 2;
    }
    cfg.chat = strstr(cfg.endpoint, "chat") != NULL;
    if (cfg.chat && prompt_opt == PROMPT_IDS) {
        fprintf(stderr, "llmrt bench: %s takes messages, not token ids: --prompt-format text\n",
                cfg.endpoint);
        return 2;
    }
    cfg.prompt      = prompt_opt == PROMPT_TEXT || cfg.chat ? PROMPT_TEXT : PROMPT_IDS;
    cfg.temperature = c.sampling.temperature;
    cfg.ignore_eos  = !cfg.dataset;

    /* the URL: base (trailing slashes and a trailing /v1 dropped) + endpoint */
    char base[1024];
    snprintf(base, sizeof base, "%s", cfg.base_url);
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/') base[--bl] = 0;
    if (bl >= 3 && !strcmp(base + bl - 3, "/v1") && !strncmp(cfg.endpoint, "/v1/", 4)) base[bl -= 3] = 0;
    char url[1200], models_url[1200];
    snprintf(url, sizeof url, "%s%s%s", base, cfg.endpoint[0] == '/' ? "" : "/", cfg.endpoint);
    snprintf(models_url, sizeof models_url, "%s/v1/models", base);

    /* a local model only when -m was given: its vocabulary and tokenizer */
    if (cfg.dataset && bench_workload_check_dataset(cfg.dataset) != 0) return 1;
    llmrt_model *model     = NULL;
    bool         model_arg = c.model_path != default_model && c.model_path && *c.model_path;
    if (model_arg) {
        model = cli_load_model(c.model_path, c.threads, c.load_format);
        if (!model) return 1;
    }
    if (cfg.vocab == 0) {
        cfg.vocab = 32000;
        if (model) {
            llmrt_model_info info = {.struct_size = sizeof info};
            llmrt_model_get_info(model, &info);
            cfg.vocab = info.vocab_size;
        }
    }

    /* the served model's name: asked when not given; this is also the reachability check */
    char *listing = NULL;
    if (!cfg.model_name) {
        long status = 0;
        char err[256];
        if (http_get(models_url, cfg.api_key, cfg.connect_timeout_s > 0 ? cfg.connect_timeout_s : 10,
                     &status, &listing, err, sizeof err) != 0) {
            fprintf(stderr, "llmrt bench: cannot reach %s: %s\n", models_url, err);
            if (model) llmrt_model_destroy(model);
            return 1;
        }
        cJSON       *j    = status == 200 ? cJSON_Parse(listing) : NULL;
        const cJSON *data = cJSON_GetObjectItem(j, "data");
        const cJSON *id   = cJSON_GetObjectItem(cJSON_GetArrayItem(data, 0), "id");
        if (cJSON_IsString(id)) {
            free(listing);
            listing = strdup(id->valuestring);
        } else {
            fprintf(stderr, "llmrt bench: GET %s gave HTTP %ld without a model id; sending "
                            "\"default\" (--model NAME to choose)\n", models_url, status);
            free(listing);
            listing = strdup("default");
        }
        cJSON_Delete(j);
        cfg.model_name = listing;
    }

    req_spec *specs = NULL;
    int32_t   n     = cfg.num_prompts;
    if (cfg.dataset) {
        if (bench_workload_dataset(cfg.dataset, cfg.num_prompts, cfg.out_max, &specs, &n) < 0) {
            if (model) llmrt_model_destroy(model);
            free(listing);
            return 1;
        }
    } else {
        specs = bench_workload_random(cfg.num_prompts, cfg.in_min, cfg.in_max, cfg.out_min,
                                      cfg.out_max, cfg.seed, cfg.vocab);
        if (!specs) {
            if (model) llmrt_model_destroy(model);
            free(listing);
            return 1;
        }
    }

    http_run_result res = {0};
    int             rc  = run_http(&cfg, url, specs, n, model, &res) < 0 ? 1 : 0;
    const bench_summary *s = &res.summary;
    if (res.errs.n) print_errors(stderr, &res.errs);
    if (rc == 0 && s->completed == 0) {
        fprintf(stderr, "llmrt bench: no request to %s completed\n", url);
        rc = 1;
    }
    FILE *f = out_path ? fopen(out_path, "w") : stdout;
    if (!f) {
        fprintf(stderr, "llmrt bench: cannot write %s\n", out_path);
        f  = NULL;
        rc = 1;
    }
    if (f && fmt == OUT_TABLE) {
        char m[512];
        bench_machine_string(m, sizeof m);
        fprintf(f, "# command: ");
        bench_command_print(f, argc, argv, false);
        fprintf(f, "\n# machine (client): %s\n# git revision: %s\n", m, LLMRT_GIT_REV);
        fprintf(f, "# backend: openai-http, %s, model \"%s\", prompts as %s, libcurl %s\n", url,
                cfg.model_name, prompt_format_name(&cfg), http_client_version());
        fprintf(f, "# output tokens counted from %s; ITL per streamed chunk\n",
                !strcmp(res.token_count_source, "usage") ? "the usage block" : res.token_count_source);
        fprintf(f, "%8s %6s %6s %9s %9s %10s %10s %10s %10s %10s %9s\n", "conc", "reqs", "failed",
                "out tok/s", "tot tok/s", "req/s", "TTFT p50", "TTFT p99", "TPOT p50", "ITL p99",
                "E2E p50");
        fprintf(f, "%8d %6d %6d %9.1f %9.1f %10.3f %8.1fms %8.1fms %8.1fms %8.1fms %7.0fms\n",
                cfg.concurrency, s->completed, s->failed, s->output_throughput,
                s->total_token_throughput, s->request_throughput, s->ttft_ms.median,
                s->ttft_ms.p99, s->tpot_ms.median, s->itl_ms.p99, s->e2el_ms.median);
    } else if (f && fmt == OUT_JSON) {
        fprintf(f, "{\n");
        context_json(f, argc, argv, &cfg, url, model ? c.model_path : NULL);
        fprintf(f, ",\n  \"results\": [\n  {\"max_concurrency\": %d,\n", cfg.concurrency);
        bench_summary_json(f, s);
        fprintf(f, ",\n  \"token_count_source\": \"%s\", \"itl_granularity\": \"chunk\", \"errors\": ",
                res.token_count_source);
        errors_json(f, &res.errs);
        fprintf(f, "}\n  ]\n}\n");
    } else if (f) {
        bench_summary_csv_header(f);
        fprintf(f, ",backend,base_url,token_count_source,errors\n");
        bench_summary_csv_row(f, s);
        fprintf(f, ",openai-http,%s,%s,", cfg.base_url, res.token_count_source);
        for (int i = 0; i < res.errs.n; i++)
            fprintf(f, "%s%s:%d", i ? ";" : "", res.errs.key[i], res.errs.count[i]);
        fprintf(f, "\n");
    }
    /* a results file on a full disk must not pass for a finished run */
    if (f && out_path && (ferror(f) | fclose(f)) != 0) {
        fprintf(stderr, "llmrt bench: writing %s failed\n", out_path);
        rc = 1;
    }
    bench_workload_free(specs, n);
    free(listing);
    if (model) llmrt_model_destroy(model);
    return rc;
}
