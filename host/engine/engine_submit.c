/* Turning a submitted prompt + sampling params into a request: tokenization (ids, raw text or
 * chat messages through the chat template), validation of every field against the model and
 * the KV pool, and the per-request sampler / detokenizer / stop-string state. Runs on the
 * submitting thread; touches no engine state but read-only configuration. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model/model.h"
#include "../tokenizer/chat_template.h"
#include "../tokenizer/tokenizer.h"
#include "engine_internal.h"

#define MAX_STOP_IDS 64

/* --------------------------------------------------------------------------------------------- */
/* chat prompts                                                                                  */
/* --------------------------------------------------------------------------------------------- */

static llmrt_status append_ids(int32_t **ids, int64_t *n, int64_t *cap, const int32_t *src,
                               int64_t n_src, llmrt_error *err) {
    if (*n + n_src > *cap) {
        int64_t c = *cap ? *cap : 64;
        while (c < *n + n_src) c *= 2;
        int32_t *p = realloc(*ids, (size_t)c * sizeof *p);
        if (!p) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory tokenizing");
        *ids = p;
        *cap = c;
    }
    memcpy(*ids + *n, src, (size_t)n_src * sizeof *src);
    *n += n_src;
    return LLMRT_OK;
}

/* Encodes text[0..len) with special tokens recognised only outside the message contents: the
 * rendered text is split at special-token strings found in template scaffolding (as HF splits
 * at added tokens), and every other piece, scaffolding and content alike, is encoded with
 * special-token parsing off. A user who writes "<|im_end|>" gets the literal text. */
llmrt_status engine_encode_chat(const struct llmrt_rank_model *m, const char *text, size_t len,
                                const llmrt_chat_span *spans, int32_t n_spans, int32_t **ids,
                                int64_t *n_ids, llmrt_error *err) {
    const llmrt_tokenizer *tk  = m->tokenizer;
    int64_t                cap = 0;
    *ids                       = NULL;
    *n_ids                     = 0;
    size_t  piece_start = 0, pos = 0;
    int32_t span        = 0;
    while (pos <= len) {
        while (span < n_spans && spans[span].end <= pos) span++;
        bool   in_content = span < n_spans && pos >= spans[span].begin;
        size_t room       = span < n_spans ? spans[span].begin - pos : len - pos; /* to content */
        int32_t special   = -1;
        size_t  special_len = 0;
        if (!in_content && pos < len) {
            for (int32_t i = 0; i < m->n_special; i++) { /* longest first */
                const char *piece = llmrt_tokenizer_piece(tk, m->special_ids[i]);
                size_t      plen  = strlen(piece);
                if (plen && plen <= room && memcmp(text + pos, piece, plen) == 0) {
                    special     = m->special_ids[i];
                    special_len = plen;
                    break;
                }
            }
        }
        if (special < 0 && pos < len) {
            pos++;
            continue;
        }
        if (pos > piece_start) {
            int32_t     *part   = NULL;
            int64_t      n_part = 0;
            llmrt_status s = llmrt_tokenizer_encode(tk, text + piece_start, pos - piece_start, false,
                                                    false, &part, &n_part, err);
            if (s == LLMRT_OK) s = append_ids(ids, n_ids, &cap, part, n_part, err);
            free(part);
            if (s != LLMRT_OK) return s;
        }
        if (special < 0) break; /* pos == len */
        LLMRT_TRY(append_ids(ids, n_ids, &cap, &special, 1, err));
        pos += special_len;
        piece_start = pos;
    }
    return LLMRT_OK;
}

static llmrt_status tokenize_messages(const struct llmrt_rank_model *m, const llmrt_prompt *p,
                                      int32_t **ids, int64_t *n_ids, llmrt_error *err) {
    llmrt_chat_rendered r = {0};
    if (p->messages_json)
        LLMRT_TRY(llmrt_chat_render_json(m->tokenizer, p->chat_template, p->messages_json,
                                         p->tools_json, true, &r, err));
    else
        LLMRT_TRY(llmrt_chat_render_model(m->tokenizer, p->chat_template, p->messages,
                                          p->n_messages, true, &r, err));
    llmrt_status s = engine_encode_chat(m, r.text, r.len, r.content_spans, r.n_spans, ids, n_ids, err);
    llmrt_chat_rendered_free(&r);
    return s;
}

static llmrt_status tokenize_prompt(const struct llmrt_rank_model *m, const llmrt_prompt *p,
                                    int32_t **ids, int64_t *n_ids, llmrt_error *err) {
    int kinds = (p->tokens != NULL || p->n_tokens > 0) + (p->text != NULL) +
                (p->messages != NULL || p->n_messages > 0) + (p->messages_json != NULL);
    if (kinds != 1)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "llmrt_engine_submit: the prompt needs exactly one of tokens, text, "
                         "messages or messages_json");
    if (p->tools_json && !p->messages_json)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "llmrt_engine_submit: prompt.tools_json needs prompt.messages_json");
    if (p->tokens || p->n_tokens > 0) {
        if (!p->tokens || p->n_tokens < 1)
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                             "llmrt_engine_submit: prompt.tokens needs n_tokens >= 1");
        for (int32_t i = 0; i < p->n_tokens; i++)
            if (p->tokens[i] < 0 || p->tokens[i] >= m->cfg.vocab_size)
                return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                                 "llmrt_engine_submit: prompt.tokens[%d] = %d is outside the "
                                 "vocabulary [0, %d)", i, p->tokens[i], m->cfg.vocab_size);
        *ids = malloc((size_t)p->n_tokens * sizeof **ids);
        if (!*ids) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
        memcpy(*ids, p->tokens, (size_t)p->n_tokens * sizeof **ids);
        *n_ids = p->n_tokens;
        return LLMRT_OK;
    }
    if (!m->tokenizer)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "llmrt_engine_submit: the model has no tokenizer; submit token ids");
    if (p->text) return llmrt_tokenizer_encode(m->tokenizer, p->text, p->text_len, true, false, ids,
                                               n_ids, err);
    if (!p->messages_json && (!p->messages || p->n_messages < 1))
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "llmrt_engine_submit: prompt.messages needs n_messages >= 1");
    return tokenize_messages(m, p, ids, n_ids, err);
}

/* --------------------------------------------------------------------------------------------- */
/* sampling params                                                                               */
/* --------------------------------------------------------------------------------------------- */

static llmrt_status read_sampling(const llmrt_sampling_params *in, llmrt_sampling_params *out,
                                  llmrt_error *err) {
    *out = llmrt_sampling_default_params();
    if (!in) return LLMRT_OK;
    if (in->struct_size < sizeof(uint32_t) || in->struct_size > sizeof *out)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "llmrt_engine_submit: params->struct_size %u is invalid", in->struct_size);
    memcpy(out, in, in->struct_size);
    return LLMRT_OK;
}

static llmrt_status setup_stops(const struct llmrt_rank_model *m, request *r,
                                const llmrt_sampling_params *sp, llmrt_error *err) {
    if (sp->n_stop_token_ids < 0 || sp->n_stop_token_ids > MAX_STOP_IDS ||
        (sp->n_stop_token_ids > 0 && !sp->stop_token_ids))
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "llmrt_engine_submit: n_stop_token_ids must be in [0, %d] with "
                         "stop_token_ids set", MAX_STOP_IDS);
    r->stop_ids = malloc((size_t)(MAX_STOP_IDS + LLMRT_MAX_EOS_IDS + 2) * sizeof *r->stop_ids);
    if (!r->stop_ids) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    if (!sp->ignore_eos) {
        for (int32_t i = 0; i < m->cfg.n_eos; i++) r->stop_ids[r->n_stop_ids++] = m->cfg.eos_token_ids[i];
        if (m->tokenizer) { /* the tokenizer's EOS / end-of-turn ids stop too */
            int32_t extra[2] = {llmrt_tokenizer_eos(m->tokenizer), llmrt_tokenizer_eot(m->tokenizer)};
            for (int k = 0; k < 2; k++) {
                bool have = extra[k] < 0;
                for (int32_t i = 0; i < r->n_stop_ids && !have; i++) have = r->stop_ids[i] == extra[k];
                if (!have) r->stop_ids[r->n_stop_ids++] = extra[k];
            }
        }
    }
    for (int32_t i = 0; i < sp->n_stop_token_ids; i++) {
        if (sp->stop_token_ids[i] < 0 || sp->stop_token_ids[i] >= m->cfg.vocab_size)
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                             "llmrt_engine_submit: stop_token_ids[%d] = %d is outside the vocabulary",
                             i, sp->stop_token_ids[i]);
        r->stop_ids[r->n_stop_ids++] = sp->stop_token_ids[i];
    }
    if (sp->n_stop < 0 || (sp->n_stop > 0 && !sp->stop))
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "llmrt_engine_submit: n_stop must be >= 0 with stop set");
    if (sp->n_stop > 0) {
        if (!m->tokenizer)
            return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                             "llmrt_engine_submit: stop strings need a tokenizer");
        LLMRT_TRY(llmrt_stop_matcher_create(sp->stop, sp->n_stop, &r->stop, err));
    }
    return LLMRT_OK;
}

/* --------------------------------------------------------------------------------------------- */
/* the request                                                                                   */
/* --------------------------------------------------------------------------------------------- */

static llmrt_status make_one(llmrt_engine *e, const llmrt_prompt *prompt,
                             const llmrt_sampling_params *params, request **out,
                             llmrt_error *err);
static llmrt_status setup_prompt_logprobs(request *r, const llmrt_sampling_params *sp,
                                          llmrt_error *err);

#define MAX_N 64

llmrt_status engine_make_request(llmrt_engine *e, const llmrt_prompt *prompt,
                                 const llmrt_sampling_params *params, request **out,
                                 llmrt_error *err) {
    *out = NULL;
    llmrt_sampling_params sp;
    LLMRT_TRY(read_sampling(params, &sp, err));
    if (sp.n < 1 || sp.n > MAX_N)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "llmrt_engine_submit: n %d must be in [1, %d]", sp.n, MAX_N);
    /* sequence 0 prefills the prompt; 1..n-1 wait in its fork list (request.h) */
    request     *r = NULL;
    llmrt_status s = make_one(e, prompt, &sp, &r, err);
    if (s != LLMRT_OK) return s;
    if (sp.n > 1) {
        r->fork = calloc((size_t)sp.n - 1, sizeof *r->fork);
        if (!r->fork) s = llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
        int64_t bs = e->params.block_size, seq_blocks = (r->max_total + bs - 1) / bs;
        if (s == LLMRT_OK && e->params.policy == LLMRT_KV_RESERVE &&
            seq_blocks * sp.n > e->kv_blocks)
            s = llmrt_err(err, LLMRT_ERR_NO_KV_SPACE,
                          "llmrt_engine_submit: n = %d sequences need %lld KV blocks (prompt + "
                          "max_tokens each, reserve policy), the pool holds %d; raise the KV "
                          "budget", sp.n, (long long)(seq_blocks * sp.n), e->kv_blocks);
        for (int32_t i = 1; i < sp.n && s == LLMRT_OK; i++) {
            llmrt_sampling_params ci = sp;
            ci.n                     = 1;
            ci.seed                  = sp.seed + (uint64_t)i;
            request *c               = NULL;
            s = make_one(e, prompt, &ci, &c, err);
            if (s != LLMRT_OK) break;
            c->index              = i;
            c->t_submit           = r->t_submit;
            r->fork[r->n_fork++]  = c;
        }
    }
    if (s == LLMRT_OK && sp.prompt_logprobs) s = setup_prompt_logprobs(r, &sp, err);
    if (s != LLMRT_OK) {
        request_free(r);
        return s;
    }
    *out = r;
    return LLMRT_OK;
}

/* The prompt logprobs' buffers of sequence 0 (request.h), position 0 and absent top entries
 * preset to NaN / -1. */
static llmrt_status setup_prompt_logprobs(request *r, const llmrt_sampling_params *sp,
                                          llmrt_error *err) {
    if (sp->n_prompt_logprobs < 0 || sp->n_prompt_logprobs > LLMRT_SAMPLER_MAX_LOGPROBS)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "llmrt_engine_submit: n_prompt_logprobs %d must be in [0, %d]",
                         sp->n_prompt_logprobs, LLMRT_SAMPLER_MAX_LOGPROBS);
    int64_t n = r->n_prompt, k = sp->n_prompt_logprobs, nk = n * k;
    r->n_prompt_top   = (int32_t)k;
    r->prompt_lp      = malloc((size_t)n * sizeof *r->prompt_lp);
    r->prompt_top_ids = malloc((size_t)(nk > 0 ? nk : 1) * sizeof *r->prompt_top_ids);
    r->prompt_top_lp  = malloc((size_t)(nk > 0 ? nk : 1) * sizeof *r->prompt_top_lp);
    if (!r->prompt_lp || !r->prompt_top_ids || !r->prompt_top_lp)
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY,
                         "llmrt_engine_submit: out of memory for prompt logprobs");
    for (int64_t i = 0; i < n; i++) r->prompt_lp[i] = NAN;
    for (int64_t i = 0; i < nk; i++) {
        r->prompt_top_ids[i] = -1;
        r->prompt_top_lp[i]  = NAN;
    }
    return LLMRT_OK;
}

/* The prompt's LoRA adapter (a reference) and scale; its KV lives in a namespace of its own, so
 * the prefix cache never shares blocks between adapters or scales. */
static llmrt_status setup_adapter(llmrt_engine *e, request *r, const llmrt_prompt *p,
                                  llmrt_error *err) {
    if (!p->lora_adapter && !e->default_adapter) return LLMRT_OK;
    float scale = p->lora_scale == 0.0f ? 1.0f : p->lora_scale;
    if (!p->lora_adapter) scale = e->default_scale;
    if (!isfinite(scale) || fabsf(scale) > 1e4f)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "llmrt_engine_submit: lora_scale %g must be finite and in [-1e4, 1e4]",
                         (double)p->lora_scale);
    if (p->lora_adapter) LLMRT_TRY(lora_registry_acquire(&e->lora, p->lora_adapter, &r->adapter, err));
    else r->adapter = lora_adapter_retain(e->default_adapter);
    r->lora_scale = scale;
    uint32_t bits;
    memcpy(&bits, &scale, sizeof bits);
    r->blocks.ns = ((uint64_t)r->adapter->uid << 32) | bits; /* nonzero: uid >= 1 */
    return LLMRT_OK;
}

static llmrt_status make_one(llmrt_engine *e, const llmrt_prompt *prompt,
                             const llmrt_sampling_params *params, request **out,
                             llmrt_error *err) {
    *out                          = NULL;
    const struct llmrt_rank_model *m   = e->model;
    llmrt_sampling_params     sp = *params;
    if (prompt->struct_size < sizeof(uint32_t) || prompt->struct_size > sizeof(llmrt_prompt))
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "llmrt_engine_submit: prompt->struct_size %u is invalid (set it to "
                         "sizeof(llmrt_prompt))", prompt->struct_size);
    llmrt_prompt p = {0};
    memcpy(&p, prompt, prompt->struct_size);
    if (sp.max_tokens < 1)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "llmrt_engine_submit: max_tokens %d must be >= 1", sp.max_tokens);
    if (sp.min_tokens < 0 || sp.min_tokens > sp.max_tokens)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "llmrt_engine_submit: min_tokens %d must be in [0, max_tokens]",
                         sp.min_tokens);
    request *r = calloc(1, sizeof *r);
    if (!r) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    r->priority  = p.priority;
    r->user_data = p.user_data;
    r->t_submit  = engine_now();
    r->sampling  = (llmrt_sampling_config){
         .temperature        = sp.temperature,
         .top_p              = sp.top_p,
         .min_p              = sp.min_p,
         .repetition_penalty = sp.repetition_penalty,
         .presence_penalty   = sp.presence_penalty,
         .frequency_penalty  = sp.frequency_penalty,
         .top_k              = sp.top_k == 0 ? -1 : sp.top_k, /* 0 and -1 mean off; < -1 is rejected */
         .seed               = sp.seed,
         .has_seed           = sp.has_seed,
         .logprobs           = true,
         .n_logprobs         = sp.n_logprobs,
         .bias_ids           = sp.logit_bias_ids,
         .bias               = sp.logit_bias,
         .n_bias             = sp.n_logit_bias,
    };
    r->max_tokens = sp.max_tokens;
    r->min_tokens = sp.min_tokens;
    r->lora_scale = 1.0f;

    llmrt_status s = llmrt_sampling_validate(&r->sampling, err);
    if (s == LLMRT_OK) s = setup_adapter(e, r, &p, err);
    if (s == LLMRT_OK) s = setup_stops(m, r, &sp, err);
    int32_t *ids   = NULL;
    int64_t  n_ids = 0;
    if (s == LLMRT_OK) s = tokenize_prompt(m, &p, &ids, &n_ids, err);
    if (s == LLMRT_OK && n_ids < 1)
        s = llmrt_err(err, LLMRT_ERR_INVALID_ARG, "llmrt_engine_submit: the prompt is empty");
    int64_t ctx = m->cfg.max_context, pool = (int64_t)e->kv_blocks * e->params.block_size;
    if (s == LLMRT_OK && n_ids >= ctx)
        s = llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                      "llmrt_engine_submit: the prompt has %lld tokens; the context holds %lld "
                      "(prompt + at least one new token)", (long long)n_ids, (long long)ctx);
    r->max_total = n_ids + sp.max_tokens < ctx ? n_ids + sp.max_tokens : ctx;
    int64_t must_fit = e->params.policy == LLMRT_KV_RESERVE ? r->max_total : n_ids + 1;
    if (s == LLMRT_OK && must_fit > pool)
        s = llmrt_err(err, LLMRT_ERR_NO_KV_SPACE,
                      "llmrt_engine_submit: the request needs %lld KV slots (%s), the pool holds "
                      "%lld; raise the KV budget", (long long)must_fit,
                      e->params.policy == LLMRT_KV_RESERVE ? "prompt + max_tokens, reserve policy"
                                                           : "prompt + 1",
                      (long long)pool);
    if (s == LLMRT_OK) {
        r->tokens     = ids;
        r->n_tokens   = r->cap_tokens = n_ids;
        r->n_prompt   = n_ids;
        ids           = NULL;
        s = llmrt_sampler_create(&r->sampling, m->cfg.vocab_size, r->tokens, r->n_tokens,
                                 &r->sampler, err);
    }
    /* the sampler holds its own copy: nothing may read the caller's arrays after submit */
    r->sampling.bias_ids = NULL, r->sampling.bias = NULL, r->sampling.n_bias = 0;
    if (s == LLMRT_OK && m->tokenizer)
        s = llmrt_detokenizer_create(m->tokenizer, sp.skip_special_tokens, &r->detok, err);
    free(ids);
    if (s != LLMRT_OK) {
        request_free(r);
        return s;
    }
    *out = r;
    return LLMRT_OK;
}

llmrt_sampling_params llmrt_sampling_default_params(void) {
    return (llmrt_sampling_params){
        .struct_size         = sizeof(llmrt_sampling_params),
        .temperature         = 1.0f,
        .top_p               = 1.0f,
        .top_k               = -1,
        .min_p               = 0.0f,
        .repetition_penalty  = 1.0f,
        .max_tokens          = 256,
        .skip_special_tokens = true,
        .n                   = 1,
    };
}
