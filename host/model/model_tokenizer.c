/* The text side of a loaded model: its tokenizer (tokenizer.json + tokenizer_config.json of an
 * HF directory, or the GGUF metadata), the list of special tokens the chat-template tokenization
 * splits on, and the sampling defaults of generation_config.json. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/json_util.h"
#include "../tokenizer/tokenizer.h"
#include "model.h"
#include "../core/regular_file.h"

static const llmrt_tokenizer *sort_tk; /* qsort has no context argument; load is serialised */

static int longer_piece_first(const void *a, const void *b) {
    size_t la = strlen(llmrt_tokenizer_piece(sort_tk, *(const int32_t *)a));
    size_t lb = strlen(llmrt_tokenizer_piece(sort_tk, *(const int32_t *)b));
    return (la < lb) - (la > lb);
}

static pthread_mutex_t sort_lock = PTHREAD_MUTEX_INITIALIZER;

static llmrt_status collect_specials(struct llmrt_rank_model *m, llmrt_error *err) {
    int32_t V = llmrt_tokenizer_vocab_size(m->tokenizer), n = 0;
    for (int32_t i = 0; i < V; i++) n += llmrt_tokenizer_is_special(m->tokenizer, i);
    m->special_ids = malloc((size_t)(n ? n : 1) * sizeof *m->special_ids);
    if (!m->special_ids) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    for (int32_t i = 0; i < V; i++)
        if (llmrt_tokenizer_is_special(m->tokenizer, i)) m->special_ids[m->n_special++] = i;
    pthread_mutex_lock(&sort_lock);
    sort_tk = m->tokenizer;
    qsort(m->special_ids, (size_t)m->n_special, sizeof *m->special_ids, longer_piece_first);
    pthread_mutex_unlock(&sort_lock);
    return LLMRT_OK;
}

llmrt_status llmrt_model_load_tokenizer(struct llmrt_rank_model *m, const char *path, bool is_gguf,
                                        llmrt_error *err) {
    if (is_gguf) {
        if (!llmrt_gguf_find_kv(&m->gguf, "tokenizer.ggml.model")) return LLMRT_OK; /* none */
        LLMRT_TRY(llmrt_tokenizer_load_gguf(&m->gguf, &m->tokenizer, err));
    } else {
        char json[4096], cfg[4096];
        snprintf(json, sizeof json, "%s/tokenizer.json", path);
        snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", path);
        /* absent: no tokenizer; present but a FIFO, a directory, ...: an error naming it */
        int has_json = llmrt_probe_regular_file(json, err);
        int has_cfg  = has_json > 0 ? llmrt_probe_regular_file(cfg, err) : 0;
        if (has_json < 0 || has_cfg < 0) return LLMRT_ERR_IO;
        if (has_json == 0) return LLMRT_OK; /* none */
        LLMRT_TRY(llmrt_tokenizer_load_hf(json, has_cfg ? cfg : NULL, &m->tokenizer, err));
    }
    if (llmrt_tokenizer_vocab_size(m->tokenizer) > m->cfg.vocab_size)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH,
                         "%s: the tokenizer has %d tokens, the model's vocabulary %d", path,
                         llmrt_tokenizer_vocab_size(m->tokenizer), m->cfg.vocab_size);
    return collect_specials(m, err);
}

llmrt_status llmrt_model_load_generation_defaults(struct llmrt_rank_model *m, const char *dir,
                                                  llmrt_error *err) {
    m->gen_defaults = llmrt_sampling_default_params();
    if (!dir) return LLMRT_OK;
    char path[4096];
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    int present = llmrt_probe_regular_file(path, err);
    if (present < 0) return LLMRT_ERR_IO;
    if (present == 0) return LLMRT_OK; /* optional */
    cJSON *root;
    LLMRT_TRY(llmrt_json_parse_file(path, 1u << 20, &root, err));
    llmrt_sampling_params *d = &m->gen_defaults;
    double                 temperature = d->temperature, top_p = d->top_p;
    double                 rep = d->repetition_penalty;
    int64_t                top_k = 0;
    bool                   do_sample = true;
    llmrt_status           s = llmrt_json_get_double(root, "temperature", false, &temperature, path, err);
    if (s == LLMRT_OK) s = llmrt_json_get_double(root, "top_p", false, &top_p, path, err);
    if (s == LLMRT_OK) s = llmrt_json_get_double(root, "repetition_penalty", false, &rep, path, err);
    if (s == LLMRT_OK) s = llmrt_json_get_int(root, "top_k", false, 0, INT32_MAX, &top_k, path, err);
    if (s == LLMRT_OK) s = llmrt_json_get_bool(root, "do_sample", false, &do_sample, path, err);
    if (s == LLMRT_OK) {
        d->temperature        = (float)temperature;
        d->top_p              = (float)top_p;
        d->repetition_penalty = (float)rep;
        if (top_k > 0) d->top_k = (int32_t)top_k;
        /* transformers decodes greedily unless do_sample is true */
        if (cJSON_GetObjectItemCaseSensitive(root, "do_sample") && !do_sample) d->temperature = 0.0f;
    }
    cJSON_Delete(root);
    return s;
}
