/* The serving workload (moved out of bench_serve.c unchanged, so that the in-process and the HTTP
 * modes of `llmrt bench serve` draw the same prompts and arrivals from the same seeds). */
#include "bench_workload.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "../host/cli/cli.h"
#include "../host/cli/cli_args.h"
#include "../host/cli/cli_json.h"
#include "../host/cli/request_fields.h"
#include "llmrt_experimental.h"

static uint64_t rng_next(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

static int32_t pick(uint64_t *s, int32_t lo, int32_t hi) {
    return lo + (hi > lo ? (int32_t)(rng_next(s) % (uint64_t)(hi - lo + 1)) : 0);
}

double *bench_alloc_token_times(int32_t max_tokens) {
    size_t n, bytes; /* (max_tokens + 1) * sizeof(double), overflow-checked */
    if (max_tokens < 0 || __builtin_add_overflow((size_t)max_tokens, 1, &n) ||
        __builtin_mul_overflow(n, sizeof(double), &bytes)) {
        fprintf(stderr, "llmrt bench: %d output tokens is out of range\n", max_tokens);
        return NULL;
    }
    double *t = malloc(bytes);
    if (!t) fprintf(stderr, "llmrt bench: out of memory for %d output tokens\n", max_tokens);
    return t;
}

/* One dataset line into *spec; -1 with a message naming path, line and field. */
static int dataset_line(const char *path, int32_t lineno, const char *line, size_t len,
                        int32_t default_out, req_spec *spec) {
    cJSON *root = NULL;
    char   msg[512];
    if (cli_json_parse(line, len, path, &root, msg, sizeof msg) != 0) {
        fprintf(stderr, "llmrt bench: %s line %d: %s\n", path, lineno, msg);
        return -1;
    }
    /* {"prompt", "output_len"}; the one unknown-field policy (host/cli/request_fields.h) */
    static const char *const fields[] = {"prompt", "output_len", NULL};
    const cJSON *p  = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    const cJSON *ol = cJSON_GetObjectItemCaseSensitive(root, "output_len");
    char         field[64];
    req_values   val = {0};
    int          rc  = 0;
    if (!cJSON_IsObject(root) ||
        req_check_fields(root, false, fields, field, sizeof field, msg, sizeof msg) < 0) {
        fprintf(stderr, "llmrt bench: %s line %d: %s\n", path, lineno,
                cJSON_IsObject(root) ? msg : "not a JSON object");
        rc = -1;
    } else if (!cJSON_IsString(p)) {
        fprintf(stderr, "llmrt bench: %s line %d: no \"prompt\" string\n", path, lineno);
        rc = -1;
    } else if (req_read_json(REQ_MAX_TOKENS, "output_len", ol, &val, msg, sizeof msg) < 0 ||
               (val.has[REQ_MAX_TOKENS] && val.i[REQ_MAX_TOKENS] > BENCH_MAX_LEN)) {
        if (val.has[REQ_MAX_TOKENS])
            snprintf(msg, sizeof msg, "\"output_len\" must be an integer in [1, %d]",
                     BENCH_MAX_LEN);
        fprintf(stderr, "llmrt bench: %s line %d: %s\n", path, lineno, msg);
        rc = -1;
    } else if (!(spec->text = strdup(p->valuestring))) {
        fprintf(stderr, "llmrt bench: %s line %d: out of memory\n", path, lineno);
        rc = -1;
    } else {
        /* in [1, BENCH_MAX_LEN]: checked */
        spec->max_tokens = val.has[REQ_MAX_TOKENS] ? (int32_t)val.i[REQ_MAX_TOKENS] : default_out;
    }
    cJSON_Delete(root);
    return rc;
}

int bench_workload_check_dataset(const char *path) {
    int present = 0;
    if (llmrt_file_probe_regular(path, &present) != LLMRT_OK)
        fprintf(stderr, "llmrt bench: --dataset %s\n", llmrt_last_error());
    else if (!present) fprintf(stderr, "llmrt bench: --dataset %s: no such file\n", path);
    return present ? 0 : -1;
}

int bench_workload_dataset(const char *path, int32_t n_max, int32_t default_out, req_spec **out,
                           int32_t *n) {
    *out = NULL;
    *n   = 0;
    FILE *f = cli_fopen_regular(path);
    if (!f) {
        fprintf(stderr, "llmrt bench: --dataset %s\n", llmrt_last_error());
        return -1;
    }
    req_spec *specs = n_max > 0 ? calloc((size_t)n_max, sizeof *specs) : NULL;
    if (!specs) {
        fprintf(stderr, "llmrt bench: cannot hold %d prompts\n", n_max);
        fclose(f);
        return -1;
    }
    char   *line = NULL;
    size_t  cap  = 0;
    ssize_t got;
    int32_t cnt = 0, lineno = 0, bad = 0;
    while (cnt < n_max && (got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (got <= 1) continue;
        if (dataset_line(path, lineno, line, (size_t)got, default_out, &specs[cnt]) == 0) cnt++;
        else bad++;
    }
    if (ferror(f)) fprintf(stderr, "llmrt bench: reading %s failed\n", path);
    if (bad) fprintf(stderr, "llmrt bench: %s: %d bad lines skipped\n", path, bad);
    free(line);
    fclose(f);
    *out = specs;
    *n   = cnt;
    return cnt > 0 ? 0 : -1;
}

req_spec *bench_workload_random(int32_t num_prompts, int32_t in_min, int32_t in_max,
                                int32_t out_min, int32_t out_max, uint64_t seed, int32_t vocab) {
    req_spec *specs = num_prompts > 0 ? calloc((size_t)num_prompts, sizeof *specs) : NULL;
    uint64_t  s     = seed * 2654435761u + 1;
    for (int32_t i = 0; specs && i < num_prompts; i++) {
        specs[i].n_ids      = pick(&s, in_min, in_max);
        specs[i].max_tokens = pick(&s, out_min, out_max);
        /* calloc checks n * size for overflow */
        specs[i].ids        = calloc(specs[i].n_ids > 0 ? (size_t)specs[i].n_ids : 1, sizeof(int32_t));
        if (!specs[i].ids) {
            bench_workload_free(specs, num_prompts);
            specs = NULL;
            break;
        }
        for (int32_t k = 0; k < specs[i].n_ids; k++) specs[i].ids[k] = (int32_t)(rng_next(&s) % (uint64_t)vocab);
    }
    if (!specs) fprintf(stderr, "llmrt bench: out of memory for %d random prompts\n", num_prompts);
    return specs;
}

void bench_workload_arrivals(int32_t n, double rate, uint64_t seed, double *arrival) {
    uint64_t s = seed + 7;
    double   t = 0;
    for (int32_t i = 0; i < n; i++) {
        if (rate > 0) { /* exponential inter-arrival times: a Poisson process */
            double u = ((double)rng_next(&s) + 0.5) / 2147483648.0;
            t += -log(u) / rate;
        }
        arrival[i] = t;
    }
}

void bench_workload_free(req_spec *specs, int32_t n) {
    if (!specs) return;
    for (int32_t i = 0; i < n; i++) {
        free(specs[i].ids);
        free(specs[i].text);
    }
    free(specs);
}

/* --------------------------------------------------------------------------------------------- */
/* options shared by both modes                                                                  */
/* --------------------------------------------------------------------------------------------- */

int bench_parse_range(const char *opt, const char *arg, int32_t *lo, int32_t *hi) {
    return cli_arg_range(opt, arg, 1, BENCH_MAX_LEN, lo, hi);
}

int bench_parse_slo(const char *arg, bench_slo *slo) {
    char *copy = strdup(arg), *save = NULL;
    int   rc   = copy && copy[0] ? 0 : -1;
    for (char *tok = copy ? strtok_r(copy, ",", &save) : NULL; tok && rc == 0;
         tok = strtok_r(NULL, ",", &save)) {
        char  *colon = strchr(tok, ':');
        double v;
        if (!colon) {
            rc = -1;
            break;
        }
        *colon = 0;
        char opt[48];
        snprintf(opt, sizeof opt, "--goodput %.20s", tok);
        if (cli_arg_double(opt, colon + 1, 1e-9, 1e12, &v) < 0) rc = -1;
        else if (!strcmp(tok, "ttft")) slo->ttft_ms = v;
        else if (!strcmp(tok, "tpot")) slo->tpot_ms = v;
        else if (!strcmp(tok, "e2el")) slo->e2el_ms = v;
        else rc = -1;
    }
    /* strtok_r skips empty items: ",," and a trailing comma are refused here */
    if (rc == 0 && (arg[0] == ',' || arg[strlen(arg) - 1] == ',' || strstr(arg, ",,"))) rc = -1;
    free(copy);
    if (rc) fprintf(stderr, "llmrt bench: --goodput takes ttft:MS,tpot:MS,e2el:MS (each > 0), got "
                            "\"%s\"\n", arg);
    return rc;
}

int bench_parse_format(const char *arg, int *fmt) {
    static const char *const names[] = {"table", "json", "csv", NULL};
    return cli_arg_enum("--format", arg, names, fmt);
}

unsigned bench_wait_us(double seconds) {
    if (!(seconds > 0)) return 1;
    if (seconds >= 0.1) return 100000;
    return (unsigned)(seconds * 1e6) + 1; /* < 100000: in range */
}

int bench_parse_rate(const char *arg, double *rate) {
    double r;
    if (cli_arg_double("--request-rate", arg, 0, BENCH_MAX_RATE, &r) < 0) return -1;
    if (r > 0 && r < 1e-3) {
        fprintf(stderr, "llmrt: --request-rate must be 0 (all at once) or at least 1e-3 "
                        "requests/s, got \"%s\"\n", arg);
        return -1;
    }
    *rate = r;
    return 0;
}
