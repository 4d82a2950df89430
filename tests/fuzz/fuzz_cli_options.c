/* libFuzzer harness: the CLI option parsers (host/cli/cli_options.c cli_common_parse under
 * getopt_long, as generate/chat/batch/bench run it; cli_common.c's --tokens list and --lora;
 * bench's --input-len ranges and --goodput SLOs). The input after a selector byte is an argv
 * split at NUL bytes. Each argv is parsed the way a command does (its own options appended to
 * the common ones), and every argument is also handed to the single-value parsers. Checks,
 * besides ASan/UBSan and leaks: a parser that accepts leaves values in their documented ranges,
 * one that refuses leaves nothing allocated; all global state (getopt, cli_load, cli_device,
 * cli_tp) is reset between runs so that no run depends on an earlier one. Messages go to a
 * /dev/null stream swapped in for `stderr` (sanitizer reports are written to fd 2 directly).
 *
 * Input: byte 0 = selector (bit 0: the command takes --lora-module/--lora-name), the rest = argv
 * (NUL-separated, at most 64 arguments). */
#include <getopt.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_workload.h"
#include "cli/cli.h"
#include "cli/cli_args.h"
#include "cli/cli_options.h"
#include "cli/request_fields.h"

#define MAX_ARGS 64

static cli_load_opts load0;
static int           device0, tp0;
static FILE         *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    setenv("LLMRT_MODEL", "/fuzz/model.gguf", 1); /* cli_default_model: no python3 probe */
    load0   = cli_load;
    device0 = cli_device;
    tp0     = cli_tp;
    if (!(devnull = fopen("/dev/null", "w"))) abort();
    return 0;
}

static void reset_globals(void) {
    for (int32_t i = 0; i < cli_load.n_loras; i++) free((void *)cli_load.lora_paths[i]);
    cli_load   = load0;
    cli_device = device0;
    cli_tp     = tp0;
    optind     = 0; /* glibc: a full reset of getopt's internal state */
    opterr     = 1;
}

static void check_globals(void) {
    if (cli_load.n_loras < 0 || cli_load.n_loras > CLI_MAX_LORAS) __builtin_trap();
    for (int32_t i = 0; i < cli_load.n_loras; i++) {
        if (!cli_load.lora_paths[i] || !cli_load.lora_paths[i][0]) __builtin_trap();
        if (!isfinite(cli_load.lora_scales[i]) || fabsf(cli_load.lora_scales[i]) > 1e4f) __builtin_trap();
    }
    if (cli_tp < 1 || cli_tp > 256) __builtin_trap();
    if (cli_device != CLI_DEVICE_AUTO && cli_device != LLMRT_DEVICE_CPU && cli_device != LLMRT_DEVICE_CUDA)
        __builtin_trap();
}

static void check_common(const cli_common *c) {
    if (c->threads < 0 || c->threads > CLI_MAX_THREADS || c->n_stops < 0 || c->n_stops > CLI_MAX_STOPS) __builtin_trap();
    for (int32_t i = 0; i < c->n_stops; i++)
        if (!c->stops[i]) __builtin_trap();
    if (c->n_lora_modules < 0 || c->n_lora_modules > CLI_MAX_LORAS) __builtin_trap();
    if (c->n_lora_modules && !c->lora_modules_ok) __builtin_trap();
    for (int32_t i = 0; i < c->n_lora_modules; i++) {
        size_t len = strnlen(c->lora_modules[i].name, sizeof c->lora_modules[i].name);
        if (len == 0 || len >= sizeof c->lora_modules[i].name || !c->lora_modules[i].path) __builtin_trap();
        if (cli_lora_module_find(c, c->lora_modules[i].name) != i) __builtin_trap(); /* unique */
    }
    if (c->lora_scale != 0 && (!isfinite(c->lora_scale) || fabsf(c->lora_scale) > 1e4f)) __builtin_trap();
    if (c->sampling.top_k < -1 || c->sampling.max_tokens < 0 || c->sampling.min_tokens < 0) __builtin_trap();
    if (c->engine.block_size < 0 || c->engine.block_size > 4096 || c->engine.max_seqs < 0 ||
        c->engine.max_seqs > 65536 || c->engine.max_loras < 0 || c->engine.max_loras > 1024)
        __builtin_trap();
}

/* the single-value parsers on one argument */
static void single(const char *arg) {
    int32_t *ids = NULL;
    int32_t  n   = cli_parse_int_list(arg, "--tokens", &ids);
    if (n < -1 || n == 0 || (n < 0 && ids) || (n > 0 && !ids)) __builtin_trap();
    for (int32_t i = 0; i < n; i++)
        if (ids[i] < 1 || ids[i] > CLI_MAX_THREADS) __builtin_trap();
    free(ids);
    /* the checked single values (host/cli/cli_args.c): a refusal leaves the output alone */
    int64_t i64 = -7;
    if (cli_arg_i64("--x", arg, -5, 5, &i64) == 0 ? (i64 < -5 || i64 > 5) : i64 != -7)
        __builtin_trap();
    uint64_t u64 = 7;
    if (cli_arg_u64("--x", arg, 1000, &u64) == 0 ? u64 > 1000 : u64 != 7) __builtin_trap();
    double d = -7;
    if (cli_arg_double("--x", arg, -1, 1, &d) == 0 ? !(d >= -1 && d <= 1) : d != -7)
        __builtin_trap();
    static const char *const names[] = {"table", "json", "csv", NULL};
    int                      e       = -7;
    if (cli_arg_enum("--x", arg, names, &e) == 0 ? (e < 0 || e > 2) : e != -7) __builtin_trap();
    /* one table parameter per argument, picked by its length: all of them on every argument
     * spent the run formatting refusals (below 500 execs/s) */
    {
        int        id = (int)(strlen(arg) % REQ_N_FIELDS);
        req_values v;
        memset(&v, 0, sizeof v);
        if (req_read_option((req_id)id, arg, &v) == 0 && req_fields[id].kind != REQ_BOOL) {
            double x = req_fields[id].kind == REQ_INTEGER ? (double)v.i[id] : v.num[id];
            if (!v.has[id] || !(x >= req_fields[id].lo && x <= req_fields[id].hi))
                __builtin_trap();
        }
    }
    int32_t lo = -7, hi = -7;
    if (bench_parse_range("--input-len", arg, &lo, &hi) == 0) {
        if (lo < 1 || hi < lo || hi > BENCH_MAX_LEN) __builtin_trap();
    } else if (lo != -7 || hi != -7) {
        __builtin_trap(); /* a refused range leaves the outputs alone */
    }
    bench_slo slo;
    memset(&slo, 0, sizeof slo);
    if (bench_parse_slo(arg, &slo) == 0) {
        const double v[] = {slo.ttft_ms, slo.tpot_ms, slo.e2el_ms};
        for (int k = 0; k < 3; k++)
            if (v[k] != 0 && !(isfinite(v[k]) && v[k] > 0)) __builtin_trap();
    }
    (void)cli_parse_cpu_matmul(arg);
    (void)cli_parse_device(arg);
    (void)cli_parse_tp(arg);
    check_globals();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0 || size > 4096) return 0;
    char *buf = malloc(size); /* argv strings: data[1..] with a NUL at the end */
    if (!buf) return 0;
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = 0;
    char *argv[MAX_ARGS + 2];
    int   argc = 0;
    argv[argc++] = "llmrt-fuzz";
    for (char *p = buf; argc <= MAX_ARGS && p < buf + size;) {
        argv[argc++] = p;
        p += strlen(p) + 1;
    }
    argv[argc] = NULL;

    FILE *err = stderr;
    stderr    = devnull;
    reset_globals();
    static const struct option extra[] = {
        {"tokens", required_argument, 0, 'p'}, {"prompt", required_argument, 0, 'P'},
        {"input-len", required_argument, 0, 'I'}, {"goodput", required_argument, 0, 'G'},
    };
    const struct option *opts = cli_options_with(extra, (int)(sizeof extra / sizeof extra[0]));
    cli_common c;
    cli_common_init(&c);
    c.lora_modules_ok = data[0] & 1;
    int opt, bad = 0;
    while ((opt = getopt_long(argc, argv, "m:t:n:hp:", opts, NULL)) != -1) {
        int r = cli_common_parse(&c, opt, optarg);
        if (r < 0) {
            bad = 1;
            break;
        }
        if (r == 0 && (opt == 'p' || opt == 'I' || opt == 'G')) single(optarg);
        if (optind < 0 || optind > argc) __builtin_trap();
    }
    (void)bad;
    check_common(&c);
    check_globals();
    for (int i = 1; i < argc; i++) single(argv[i]);
    reset_globals();
    stderr = err;
    free(buf);
    return 0;
}
