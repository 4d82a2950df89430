/* tokenizer.json parsing helpers and the pipeline-step parsers (normalizer, pre_tokenizer,
 * decoder, post_processor), shared by tokenizer_hf.c and tokenizer_hf_parts.c. Messages start
 * with the file name and name the construct at fault. */
#ifndef LLMRT_TOKENIZER_TOKENIZER_HF_PARTS_H
#define LLMRT_TOKENIZER_TOKENIZER_HF_PARTS_H

#include <cjson/cJSON.h>

#include "tok_internal.h"

typedef struct hf_ctx {
    llmrt_tokenizer *tk;
    const char      *what;        /* file name for messages */
    const char      *config_what; /* tokenizer_config.json name */
    llmrt_error     *err;
} hf_ctx;

llmrt_status hf_bad(hf_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
llmrt_status hf_unsupported(hf_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
llmrt_status hf_oom(hf_ctx *c);

/* Member `key` of obj, NULL if absent or JSON null. */
const cJSON *hf_get(const cJSON *obj, const char *key);
/* Typed members; `where` names the enclosing construct. Absent/null leaves *out untouched
 * (an error if `required`). */
llmrt_status hf_str(hf_ctx *c, const cJSON *obj, const char *key, bool required,
                    const char **out, size_t *len, const char *where);
llmrt_status hf_bool(hf_ctx *c, const cJSON *obj, const char *key, bool *out, const char *where);
llmrt_status hf_int(hf_ctx *c, const cJSON *obj, const char *key, bool required, int64_t min,
                    int64_t max, int64_t *out, const char *where);

llmrt_status hf_load_normalizer(hf_ctx *c, const cJSON *n);
llmrt_status hf_load_pre_tokenizer(hf_ctx *c, const cJSON *p);
llmrt_status hf_load_decoder(hf_ctx *c, const cJSON *d);
llmrt_status hf_load_post_processor(hf_ctx *c, const cJSON *p);

#endif
