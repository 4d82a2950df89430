#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "cli_args.h"
#include "cli_options.h"
#include "request_fields.h"

enum {
    OPT_MODEL = 1000, OPT_LOAD_FORMAT, OPT_THREADS, OPT_KV_TOKENS, OPT_BLOCK_SIZE,
    OPT_MAX_BATCHED, OPT_MAX_SEQS, OPT_POLICY, OPT_NO_PREFIX, OPT_TEMP, OPT_TOP_K, OPT_TOP_P,
    OPT_MIN_P, OPT_REPEAT, OPT_PRESENCE, OPT_FREQUENCY, OPT_SEED, OPT_MAX_TOKENS, OPT_STOP,
    OPT_IGNORE_EOS, OPT_CHAT_TEMPLATE, OPT_MIN_TOKENS, OPT_DEVICE, OPT_TP, OPT_DEQUANTIZE,
    OPT_CUDA_DTYPE, OPT_CPU_ISA, OPT_NO_FALLBACK, OPT_VERBOSE, OPT_CPU_MATMUL, OPT_LORA,
    OPT_LORA_MODULE, OPT_MAX_LORAS, OPT_MAX_LORA_BYTES, OPT_LORA_NAME, OPT_LORA_SCALE,
    OPT_ENFORCE_EAGER,
    OPT_KV_CACHE_DTYPE, OPT_CPU_PIN,
};

static int lora_unsupported(const char *opt);
static int parse_lora_module(cli_common *c, const char *arg);

/* indexes into sampling_set */
enum { SET_TEMP, SET_TOP_K, SET_TOP_P, SET_MIN_P, SET_REPEAT, SET_PRESENCE, SET_FREQUENCY };

int cli_parse_cpu_matmul(const char *arg) { /* exact | int8 | bf16 | int8,bf16 */
    if (!strcmp(arg, "exact")) {
        cli_load.cpu_matmul = LLMRT_CPU_MATMUL_EXACT;
    } else if (!strcmp(arg, "int8") || !strcmp(arg, "bf16") || !strcmp(arg, "int8,bf16") ||
               !strcmp(arg, "bf16,int8")) {
        cli_load.cpu_matmul = strstr(arg, "int8") ? LLMRT_CPU_MATMUL_INT8 : LLMRT_CPU_MATMUL_EXACT;
        /* bf16 activations are the params' activation_dtype (also the CUDA one) */
        if (strstr(arg, "bf16")) cli_load.activation_dtype = LLMRT_ACTIVATION_BF16;
    } else {
        fprintf(stderr, "llmrt: --cpu-matmul must be exact, int8, bf16 or int8,bf16, got \"%s\"\n",
                arg);
        return -1;
    }
    return 0;
}

const struct option cli_common_options[] = {
    {"model", required_argument, 0, OPT_MODEL},
    {"load-format", required_argument, 0, OPT_LOAD_FORMAT},
    {"threads", required_argument, 0, OPT_THREADS},
    {"device", required_argument, 0, OPT_DEVICE},
    {"tp", required_argument, 0, OPT_TP},
    {"dequantize", no_argument, 0, OPT_DEQUANTIZE},
    {"cuda-dtype", required_argument, 0, OPT_CUDA_DTYPE},
    {"cpu-isa", required_argument, 0, OPT_CPU_ISA},
    {"cpu-matmul", required_argument, 0, OPT_CPU_MATMUL},
    {"kv-cache-dtype", required_argument, 0, OPT_KV_CACHE_DTYPE},
    {"cpu-pin", no_argument, 0, OPT_CPU_PIN},
    {"no-fallback", no_argument, 0, OPT_NO_FALLBACK},
    {"enforce-eager", no_argument, 0, OPT_ENFORCE_EAGER},
    {"no-cuda-graphs", no_argument, 0, OPT_ENFORCE_EAGER},
    {"verbose", no_argument, 0, OPT_VERBOSE},
    {"kv-tokens", required_argument, 0, OPT_KV_TOKENS},
    {"block-size", required_argument, 0, OPT_BLOCK_SIZE},
    {"max-batched-tokens", required_argument, 0, OPT_MAX_BATCHED},
    {"max-seqs", required_argument, 0, OPT_MAX_SEQS},
    {"kv-policy", required_argument, 0, OPT_POLICY},
    {"no-prefix-cache", no_argument, 0, OPT_NO_PREFIX},
    {"temperature", required_argument, 0, OPT_TEMP},
    {"top-k", required_argument, 0, OPT_TOP_K},
    {"top-p", required_argument, 0, OPT_TOP_P},
    {"min-p", required_argument, 0, OPT_MIN_P},
    {"repeat-penalty", required_argument, 0, OPT_REPEAT},
    {"presence-penalty", required_argument, 0, OPT_PRESENCE},
    {"frequency-penalty", required_argument, 0, OPT_FREQUENCY},
    {"seed", required_argument, 0, OPT_SEED},
    {"max-tokens", required_argument, 0, OPT_MAX_TOKENS},
    {"min-tokens", required_argument, 0, OPT_MIN_TOKENS},
    {"stop", required_argument, 0, OPT_STOP},
    {"ignore-eos", no_argument, 0, OPT_IGNORE_EOS},
    {"chat-template", required_argument, 0, OPT_CHAT_TEMPLATE},
    {"lora", required_argument, 0, OPT_LORA},
    {"lora-module", required_argument, 0, OPT_LORA_MODULE},
    {"max-loras", required_argument, 0, OPT_MAX_LORAS},
    {"max-lora-bytes", required_argument, 0, OPT_MAX_LORA_BYTES},
    {"lora-name", required_argument, 0, OPT_LORA_NAME},
    {"lora-scale", required_argument, 0, OPT_LORA_SCALE},
};
const int cli_common_n_options = sizeof cli_common_options / sizeof cli_common_options[0];

int cli_device = CLI_DEVICE_AUTO;

int cli_parse_device(const char *arg) {
    static const char *const names[]   = {"cuda", "cpu", "auto", NULL};
    static const int         devices[] = {LLMRT_DEVICE_CUDA, LLMRT_DEVICE_CPU, CLI_DEVICE_AUTO};
    int                      i;
    if (cli_arg_enum("--device", arg, names, &i) < 0) return -1;
    cli_device = devices[i];
    return 0;
}

int  cli_tp               = 1;
bool cli_follower_barrier = false;

int cli_parse_tp(const char *arg) { return cli_arg_int("--tp", arg, 1, 256, &cli_tp); }

void cli_common_init(cli_common *c) {
    memset(c, 0, sizeof *c);
    c->model_path  = cli_default_model();
    c->load_format = LLMRT_LOAD_AUTO;
    c->engine      = llmrt_engine_default_params();
    c->sampling    = llmrt_sampling_default_params();
}

void cli_common_usage(FILE *f) {
    fprintf(f,
            "model and engine:\n"
            "  -m, --model PATH            HF directory or .gguf (default: %s)\n"
            "      --load-format F         auto | hf | gguf | random\n"
            "  -t, --threads N             CPU threads (default: all cores)\n"
            "      --device D              cuda | cpu (default: cuda when a device is present)\n"
            "      --tp N                  tensor-parallel ranks (default 1; under mpirun -np N:\n"
            "                              processes, else threads / the first N GPUs)\n"
            "      --cuda-dtype T          CUDA activations: f16 (default) | bf16 | f32\n"
            "                              (default: $LLMRT_CUDA_DTYPE)\n"
            "      --cpu-isa I             CPU kernels: avx512 | avx2 | generic (default: the\n"
            "                              best the CPU has, or $LLMRT_CPU_ISA)\n"
            "      --cpu-matmul M          CPU matmuls: exact (fp32, batch invariant; default) |\n"
            "                              int8 (int8 activations x 4-bit/Q8_0/Q8_Z/Q5/K-quant\n"
            "                              weights, VNNI) |\n"
            "                              bf16 (bf16 x f32/f16/bf16 weights, AVX512-BF16) | int8,bf16\n"
            "      --kv-cache-dtype T      KV cache storage: auto (default: the activation type;\n"
            "                              CPU: fp32 with exact matmuls, else bf16) |\n"
            "                              int8 | fp8 (= fp8_e4m3), a scale per token and head |\n"
            "                              bf16 (CPU; CUDA with bf16 activations) |\n"
            "                              fp32 (CPU; CUDA with f32 activations)\n"
            "      --cpu-pin               bind the CPU threads one per CPU of the process's\n"
            "                              affinity mask (taskset -c 0-7 llmrt ... --cpu-pin)\n"
            "      --dequantize            dequantize 4-bit/8-bit weights at load ($LLMRT_NO_Q4=1)\n"
            "      --no-fallback           fail when the backend cannot run a weight as stored\n"
            "                              (default: dequantize it at load, with a warning)\n"
            "      --enforce-eager         CUDA: decode without CUDA graphs (alias\n"
            "                              --no-cuda-graphs; default: one graph per batch bucket)\n"
            "      --verbose               the library's info and debug messages on stderr\n"
            "      --kv-tokens N           KV cache budget in tokens (default 8192)\n"
            "      --block-size N          tokens per KV block (default 16)\n"
            "      --max-batched-tokens N  tokens per engine step (default 512)\n"
            "      --max-seqs N            concurrent requests (default 64)\n"
            "      --kv-policy P           preempt (default) | reserve\n"
            "      --no-prefix-cache       disable prefix caching\n"
            "LoRA adapters (PEFT directories or GGUF adapters):\n"
            "      --lora PATH[:SCALE]     merge an adapter into the weights at load (repeatable,\n"
            "                              up to %d; a quantised base keeps one unmerged and\n"
            "                              applies it to requests that name no adapter)\n"
            "      --lora-module NAME=PATH register an adapter on the engine, chosen per request\n"
            "                              (repeatable; generate, chat, batch, serve)\n"
            "      --lora-name NAME        run the prompts with --lora-module NAME\n"
            "      --lora-scale X          multiply its delta by X (default 1)\n"
            "      --max-loras N           adapters resident at once (default 8)\n"
            "      --max-lora-bytes N      bytes of resident adapters (fp32; 0 = no limit)\n"
            "sampling (defaults: the model's generation_config.json, else vLLM's):\n"
            "      --temperature T         0 = greedy\n"
            "      --top-k K  --top-p P  --min-p P\n"
            "      --repeat-penalty R  --presence-penalty P  --frequency-penalty F\n"
            "      --seed S                same seed, same tokens\n"
            "  -n, --max-tokens N          tokens to generate at most (default 256)\n"
            "      --min-tokens N          ignore stop tokens before N tokens\n"
            "      --stop STR              stop string (repeatable), not printed\n"
            "      --ignore-eos            keep going past end-of-sequence tokens\n"
            "      --chat-template NAME    chatml | llama2 | llama3 | mistral instead of the model's own template\n",
            cli_default_model()[0] ? cli_default_model() : "none installed", CLI_MAX_LORAS);
}

static int parse_long(const char *arg, const char *name, long long lo, long long hi, long long *out) {
    char    opt[64];
    int64_t v;
    snprintf(opt, sizeof opt, "--%s", name);
    if (cli_arg_i64(opt, arg, lo, hi, &v) < 0) return -1;
    *out = v;
    return 1;
}

/* A sampling option: request_fields.c's type and range for it (the same as a batch line's or a
 * request body's field). */
static int parse_sampling(cli_common *c, req_id id, int set_index, const char *arg) {
    req_values v = {0};
    if (req_read_option(id, arg, &v) < 0) return -1;
    llmrt_sampling_params one = c->sampling;
    req_apply(&v, &one);
    c->sampling = one;
    if (set_index >= 0) c->sampling_set[set_index] = true;
    return 1;
}

int cli_common_parse(cli_common *c, int opt, const char *arg) {
    long long v;
    switch (opt) {
    case 'm':
    case OPT_MODEL: c->model_path = arg; return 1;
    case OPT_LOAD_FORMAT: {
        static const char *const names[] = {"auto", "hf", "gguf", "random", NULL};
        static const llmrt_load_format formats[] = {LLMRT_LOAD_AUTO, LLMRT_LOAD_HF, LLMRT_LOAD_GGUF,
                                                    LLMRT_LOAD_RANDOM};
        int i;
        if (cli_arg_enum("--load-format", arg, names, &i) < 0) return -1;
        c->load_format = formats[i];
        return 1;
    }
    case 't':
    case OPT_THREADS:
        if (parse_long(arg, "threads", 0, CLI_MAX_THREADS, &v) < 0) return -1;
        c->threads = (int)v;
        return 1;
    case OPT_DEVICE: return cli_parse_device(arg) < 0 ? -1 : 1;
    case OPT_TP: return cli_parse_tp(arg) < 0 ? -1 : 1;
    case OPT_DEQUANTIZE: cli_load.dequantize = 1; return 1;
    case OPT_NO_FALLBACK: cli_load.no_fallback = true; return 1;
    case OPT_ENFORCE_EAGER: cli_load.enforce_eager = true; return 1;
    case OPT_CPU_PIN: cli_load.cpu_pin_threads = true; return 1;
    case OPT_VERBOSE: cli_load.log_level = LLMRT_LOG_DEBUG; return 1;
    case OPT_CUDA_DTYPE:
        if ((cli_load.activation_dtype = cli_activation_dtype_of(arg)) < 0) {
            fprintf(stderr, "llmrt: --cuda-dtype must be f16, bf16 or f32, got \"%s\"\n", arg);
            return -1;
        }
        return 1;
    case OPT_CPU_ISA:
        if ((cli_load.cpu_isa = cli_cpu_isa_of(arg)) < 0) {
            fprintf(stderr, "llmrt: --cpu-isa must be avx512, avx2 or generic, got \"%s\"\n", arg);
            return -1;
        }
        return 1;
    case OPT_CPU_MATMUL: return cli_parse_cpu_matmul(arg) < 0 ? -1 : 1;
    case OPT_KV_CACHE_DTYPE:
        if ((cli_load.kv_cache_dtype = cli_kv_cache_dtype_of(arg)) < 0) {
            fprintf(stderr, "llmrt: --kv-cache-dtype must be auto, int8, fp8, fp8_e4m3, bf16 or fp32, "
                            "got \"%s\"\n", arg);
            return -1;
        }
        return 1;
    case OPT_KV_TOKENS:
        if (parse_long(arg, "kv-tokens", 1, (long long)1 << 40, &v) < 0) return -1;
        c->engine.kv_tokens = v;
        return 1;
    case OPT_BLOCK_SIZE:
        if (parse_long(arg, "block-size", 1, 4096, &v) < 0) return -1;
        c->engine.block_size = (int32_t)v;
        return 1;
    case OPT_MAX_BATCHED:
        if (parse_long(arg, "max-batched-tokens", 1, 1 << 20, &v) < 0) return -1;
        c->engine.max_batched_tokens = (int32_t)v;
        return 1;
    case OPT_MAX_SEQS:
        if (parse_long(arg, "max-seqs", 1, 65536, &v) < 0) return -1;
        c->engine.max_seqs = (int32_t)v;
        return 1;
    case OPT_POLICY: {
        static const char *const names[] = {"preempt", "reserve", NULL};
        int i;
        if (cli_arg_enum("--kv-policy", arg, names, &i) < 0) return -1;
        c->engine.policy = i == 0 ? LLMRT_KV_PREEMPT : LLMRT_KV_RESERVE;
        return 1;
    }
    case OPT_NO_PREFIX: c->engine.prefix_caching = false; return 1;
    case OPT_TEMP: return parse_sampling(c, REQ_TEMPERATURE, SET_TEMP, arg);
    case OPT_TOP_P: return parse_sampling(c, REQ_TOP_P, SET_TOP_P, arg);
    case OPT_MIN_P: return parse_sampling(c, REQ_MIN_P, SET_MIN_P, arg);
    case OPT_REPEAT: return parse_sampling(c, REQ_REPETITION_PENALTY, SET_REPEAT, arg);
    case OPT_PRESENCE: return parse_sampling(c, REQ_PRESENCE_PENALTY, SET_PRESENCE, arg);
    case OPT_FREQUENCY: return parse_sampling(c, REQ_FREQUENCY_PENALTY, SET_FREQUENCY, arg);
    case OPT_TOP_K: return parse_sampling(c, REQ_TOP_K, SET_TOP_K, arg);
    case OPT_SEED: {
        /* the command line takes any 64-bit seed; a sign is refused (strtoull turned "-1" into
         * 2^64 - 1) */
        uint64_t s;
        if (cli_arg_u64("--seed", arg, UINT64_MAX, &s) < 0) return -1;
        c->sampling.seed     = s;
        c->sampling.has_seed = true;
        return 1;
    }
    case 'n':
    case OPT_MAX_TOKENS: return parse_sampling(c, REQ_MAX_TOKENS, -1, arg);
    case OPT_MIN_TOKENS: return parse_sampling(c, REQ_MIN_TOKENS, -1, arg);
    case OPT_STOP:
        if (c->n_stops == CLI_MAX_STOPS) {
            fprintf(stderr, "llmrt: at most %d --stop strings\n", CLI_MAX_STOPS);
            return -1;
        }
        c->stops[c->n_stops++] = arg;
        return 1;
    case OPT_IGNORE_EOS: c->sampling.ignore_eos = true; return 1;
    case OPT_CHAT_TEMPLATE: c->chat_template = arg; return 1;
    case OPT_LORA: return cli_parse_lora(arg) < 0 ? -1 : 1;
    case OPT_LORA_MODULE: return parse_lora_module(c, arg);
    case OPT_MAX_LORAS:
        if (parse_long(arg, "max-loras", 1, 1024, &v) < 0) return -1;
        c->engine.max_loras = (int32_t)v;
        return 1;
    case OPT_MAX_LORA_BYTES:
        if (parse_long(arg, "max-lora-bytes", 0, (long long)1 << 50, &v) < 0) return -1;
        c->engine.max_lora_bytes = v;
        return 1;
    case OPT_LORA_NAME:
        if (!c->lora_modules_ok) return lora_unsupported("--lora-name");
        c->lora_name = arg;
        return 1;
    case OPT_LORA_SCALE: {
        double x;
        if (cli_arg_double("--lora-scale", arg, -1e4, 1e4, &x) < 0) return -1;
        if (x == 0) {
            fprintf(stderr, "llmrt: --lora-scale must be non-zero\n");
            return -1;
        }
        c->lora_scale = (float)x;
        return 1;
    }
    }
    return 0;
}

/* --------------------------------------------------------------------------------------------- */
/* LoRA adapters served per request                                                              */
/* --------------------------------------------------------------------------------------------- */

static int lora_unsupported(const char *opt) {
    fprintf(stderr, "llmrt: %s is not supported by this command (generate, chat, batch and serve "
                    "take it)\n", opt);
    return -1;
}

/* What llmrt_engine_lora_load accepts as a name: printable ASCII, no spaces or quotes, < 128
 * bytes (checked here too, so that the message names the option). */
static bool lora_name_ok(const char *name, size_t len) {
    if (len == 0 || len >= 128) return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch <= ' ' || ch >= 0x7f || ch == '"' || ch == '\'' || ch == '\\') return false;
    }
    return true;
}

int32_t cli_lora_module_find(const cli_common *c, const char *name) {
    for (int32_t i = 0; i < c->n_lora_modules; i++)
        if (!strcmp(c->lora_modules[i].name, name)) return i;
    return -1;
}

static int parse_lora_module(cli_common *c, const char *arg) { /* NAME=PATH */
    if (!c->lora_modules_ok) return lora_unsupported("--lora-module");
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || !eq[1]) {
        fprintf(stderr, "llmrt: --lora-module must be NAME=PATH, got \"%s\"\n", arg);
        return -1;
    }
    if (!lora_name_ok(arg, (size_t)(eq - arg))) {
        fprintf(stderr, "llmrt: --lora-module %s: NAME must be 1 to 127 printable characters "
                        "without spaces or quotes\n", arg);
        return -1;
    }
    if (c->n_lora_modules == CLI_MAX_LORAS) {
        fprintf(stderr, "llmrt: at most %d --lora-module adapters\n", CLI_MAX_LORAS);
        return -1;
    }
    cli_lora_module *m = &c->lora_modules[c->n_lora_modules];
    memcpy(m->name, arg, (size_t)(eq - arg)); /* < 128 bytes: checked above */
    m->name[eq - arg] = 0;
    m->path           = eq + 1;
    if (cli_lora_module_find(c, m->name) >= 0) {
        fprintf(stderr, "llmrt: --lora-module %s: the name \"%s\" is given twice\n", arg, m->name);
        return -1;
    }
    struct stat st;
    if (stat(m->path, &st) != 0) {
        fprintf(stderr, "llmrt: --lora-module %s: %s: %s\n", arg, m->path, strerror(errno));
        return -1;
    }
    c->n_lora_modules++;
    return 1;
}

llmrt_engine *cli_engine_create(const cli_common *c, llmrt_model *model, const char *who) {
    if (c->lora_name && cli_lora_module_find(c, c->lora_name) < 0) {
        fprintf(stderr, "%s: --lora-name %s: no --lora-module of that name\n", who, c->lora_name);
        return NULL;
    }
    if (c->lora_scale != 0 && !c->lora_name) {
        fprintf(stderr, "%s: --lora-scale needs --lora-name\n", who);
        return NULL;
    }
    llmrt_engine *engine = NULL;
    if (llmrt_engine_create(model, &c->engine, &engine) != LLMRT_OK) {
        fprintf(stderr, "%s: %s\n", who, llmrt_last_error());
        return NULL;
    }
    for (int32_t i = 0; i < c->n_lora_modules; i++) {
        const cli_lora_module *m = &c->lora_modules[i];
        llmrt_status           s = llmrt_engine_lora_load(engine, m->name, m->path);
        if (s != LLMRT_OK) {
            fprintf(stderr, "%s: --lora-module %s=%s: %s: %s\n", who, m->name, m->path,
                    llmrt_status_str(s), llmrt_last_error());
            llmrt_engine_destroy(engine);
            return NULL;
        }
    }
    return engine;
}

void cli_common_prompt_lora(const cli_common *c, llmrt_prompt *p) {
    if (!c->lora_name) return;
    p->lora_adapter = c->lora_name;
    p->lora_scale   = c->lora_scale;
}

llmrt_sampling_params cli_common_sampling(const cli_common *c, const llmrt_model *model) {
    llmrt_sampling_params p = llmrt_model_sampling_defaults(model);
    const llmrt_sampling_params *f = &c->sampling;
    if (c->sampling_set[SET_TEMP]) p.temperature = f->temperature;
    if (c->sampling_set[SET_TOP_K]) p.top_k = f->top_k;
    if (c->sampling_set[SET_TOP_P]) p.top_p = f->top_p;
    if (c->sampling_set[SET_MIN_P]) p.min_p = f->min_p;
    if (c->sampling_set[SET_REPEAT]) p.repetition_penalty = f->repetition_penalty;
    if (c->sampling_set[SET_PRESENCE]) p.presence_penalty = f->presence_penalty;
    if (c->sampling_set[SET_FREQUENCY]) p.frequency_penalty = f->frequency_penalty;
    p.seed         = f->seed;
    p.has_seed     = f->has_seed;
    p.max_tokens   = f->max_tokens;
    p.min_tokens   = f->min_tokens;
    p.ignore_eos   = f->ignore_eos;
    p.stop         = c->n_stops ? c->stops : NULL;
    p.n_stop       = c->n_stops;
    return p;
}

const struct option *cli_options_with(const struct option *extra, int n_extra) {
    static struct option table[64];
    int                  n = 0;
    for (int i = 0; i < cli_common_n_options && n < 62; i++) table[n++] = cli_common_options[i];
    for (int i = 0; i < n_extra && n < 63; i++) table[n++] = extra[i];
    memset(&table[n], 0, sizeof table[n]);
    return table;
}
