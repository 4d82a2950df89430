/* Options shared by generate, chat and bench: model, engine and sampling flags (getopt_long). */
#ifndef LLMRT_CLI_OPTIONS_H
#define LLMRT_CLI_OPTIONS_H

#include <getopt.h>
#include <stdbool.h>

#include "cli.h"
#include "llmrt.h"

#define CLI_MAX_STOPS 16

/* --lora-module NAME=PATH: an adapter registered on the engine at start, chosen per request. */
typedef struct cli_lora_module {
    char        name[128]; /* printable ASCII, no spaces or quotes (checked at parse) */
    const char *path;      /* points into argv */
} cli_lora_module;

typedef struct cli_common {
    const char           *model_path;
    llmrt_load_format     load_format;
    int                   threads;
    llmrt_engine_params   engine;
    llmrt_sampling_params sampling;  /* applied over the model's generation_config defaults */
    bool                  sampling_set[16];
    const char           *stops[CLI_MAX_STOPS];
    int32_t               n_stops;
    const char           *chat_template;
    /* LoRA adapters served per request; only commands that register them on their engine
     * (cli_engine_create) set lora_modules_ok, so that another refuses the options instead of
     * ignoring them */
    bool                  lora_modules_ok;
    cli_lora_module       lora_modules[CLI_MAX_LORAS]; /* --lora-module NAME=PATH */
    int32_t               n_lora_modules;
    const char           *lora_name;  /* --lora-name: the adapter of the command's requests */
    float                 lora_scale; /* --lora-scale; 0 = not given (1.0) */
} cli_common;

/* Long options understood by cli_common_parse; append a command's own after them. Option values
 * >= 1000 are reserved for these. */
extern const struct option cli_common_options[];
extern const int           cli_common_n_options;

void cli_common_init(cli_common *c);
/* Handles one getopt result; returns 1 if consumed, 0 if not a common option, -1 on a bad value
 * (message printed). */
int cli_common_parse(cli_common *c, int opt, const char *arg);
/* The sampling params: the model's defaults with the flags given on the command line on top. */
llmrt_sampling_params cli_common_sampling(const cli_common *c, const llmrt_model *model);
void cli_common_usage(FILE *f);

/* The engine of a command: llmrt_engine_create with c->engine, then every --lora-module
 * registered (llmrt_engine_lora_load) and --lora-name checked against them. NULL with the
 * library's message on stderr, prefixed by `who` ("llmrt generate"). */
llmrt_engine *cli_engine_create(const cli_common *c, llmrt_model *model, const char *who);
/* The index of --lora-module `name`, or -1. */
int32_t cli_lora_module_find(const cli_common *c, const char *name);
/* --lora-name / --lora-scale into a prompt (nothing when --lora-name is not given). */
void cli_common_prompt_lora(const cli_common *c, llmrt_prompt *p);

/* Concatenates `extra` after the common options into a NULL-terminated table (static storage). */
const struct option *cli_options_with(const struct option *extra, int n_extra);

#endif
