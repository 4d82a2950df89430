/* The request fields of one `llmrt batch` input line (host/cli/cmd_batch.c): a line's JSON into a
 * job_line (prompt, messages or token ids; sampling fields; stop strings and ids; LoRA adapter),
 * every field type- and range-checked. Its own file so that tests/fuzz/fuzz_batch_request.c can
 * link it. */
#ifndef LLMRT_CLI_BATCH_REQUEST_H
#define LLMRT_CLI_BATCH_REQUEST_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "cli_options.h"
#include "llmrt.h"

#define MAX_STOPS 16

typedef struct job_line {
    char                 *custom_id;
    int64_t               line_no;
    int64_t               seq; /* place among the records of this run, for --ordered */
    cJSON                *root;
    llmrt_prompt          prompt;
    llmrt_chat_message   *msgs;
    int32_t              *ids;
    llmrt_sampling_params sp;
    const char           *stops[MAX_STOPS];
    int32_t              *stop_ids;
    int32_t              *bias_ids; /* logit_bias: token ids and values, owned */
    float                *bias;
    /* output: one choice per sequence (llmrt_output.index) */
    struct batch_choice {
        char               *text;
        size_t              len, cap;
        int32_t             n_gen;
        llmrt_finish_reason finish;
        char               *error; /* the first error's message */
    } *ch;
    int32_t               n_ch, n_done;
    int32_t               n_prompt;
} job_line;

/* What selects a line's adapter: the --lora-module names and the base model's names. */
typedef struct batch_models {
    const cli_common *c;
    char              base_name[256]; /* the -m path's last component, as `llmrt serve` names it */
} batch_models;

/* The base model's names from c (c must outlive bm). */
void batch_models_init(batch_models *bm, const cli_common *c);
/* Reads the request fields of j->root into j (j otherwise zeroed); returns NULL and fills msg
 * for a bad line. */
const char *batch_parse_job(job_line *j, const llmrt_sampling_params *defaults,
                            const batch_models *bm, char *msg, size_t msg_size);
/* Frees j and everything it holds (root, custom_id, arrays, choices). */
void batch_job_free(job_line *j);

#endif
