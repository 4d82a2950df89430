/* Options shared by generate, chat and bench: model, engine and sampling flags (getopt_long). */
#ifndef LLMRT_CLI_OPTIONS_H
#define LLMRT_CLI_OPTIONS_H

#include <getopt.h>
#include <stdbool.h>

#include "llmrt.h"

#define CLI_MAX_STOPS 16

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

/* Concatenates `extra` after the common options into a NULL-terminated table (static storage). */
const struct option *cli_options_with(const struct option *extra, int n_extra);

#endif
