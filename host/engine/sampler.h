/* Per-request token sampling with vLLM SamplingParams semantics.
 *
 * Parameters (vLLM names and ranges; anything else is rejected by llmrt_sampling_validate with a
 * message naming the field; NaN and infinities are rejected everywhere):
 *  - temperature >= 0. Below 1e-5 (vLLM's _SAMPLING_EPS) sampling is greedy: argmax of the
 *    penalised logits, ties to the lowest token id, no random draw; top_k/top_p/min_p cannot
 *    change an argmax, so they are ignored then. Otherwise logits are divided by temperature.
 *  - top_k: -1 or 0 = disabled, >= 1 keeps the k highest logits (exactly k: on a tie at the k-th
 *    value the lower ids win, so top_k = 1 is greedy; vLLM keeps every tied token). k >= vocab is
 *    the same as disabled.
 *  - top_p in (0, 1], 1 = disabled: after top-k, keeps the smallest prefix of tokens sorted by
 *    probability (descending, ties by id) whose mass reaches top_p, i.e. a token is kept iff the
 *    mass strictly before it is < top_p (vLLM: cumsum of ascending probs <= 1 - top_p is masked).
 *  - min_p in [0, 1], 0 = disabled: after top-p, drops tokens with p < min_p * p_max. The
 *    condition is a ratio, so it does not depend on renormalisation by the earlier filters.
 *  - repetition_penalty > 0, 1 = disabled (HF/vLLM): for every token seen in the prompt OR the
 *    output, logit > 0 becomes logit / r, otherwise logit * r.
 *  - frequency_penalty, presence_penalty in [-2, 2], 0 = disabled (OpenAI/vLLM), over OUTPUT
 *    tokens only: logit -= frequency * count(token); logit -= presence * (count(token) > 0).
 *    Applied after the repetition penalty, frequency before presence, as vLLM does.
 *  - logit bias (OpenAI's logit_bias): bias[i] in [-100, 100] is added to the logit of token
 *    bias_ids[i] (ids in [0, vocab), repeated ids add up) before everything below, as vLLM's
 *    logit-bias processor runs before its penalties; it applies to greedy decoding too, so -100
 *    bans a token in practice and +100 forces it. At most LLMRT_SAMPLER_MAX_LOGIT_BIAS entries;
 *    the sampler keeps its own copy.
 *  - Order (vLLM v0 sampler): logit bias -> penalties -> temperature -> top-k -> top-p -> min-p -> draw from
 *    the softmax of what is left. (vLLM v1 applies min-p before top-k/top-p; the results differ
 *    only when top_p < 1 and min_p > 0 are combined.)
 *  - seed: with has_seed, the request's RNG (xoshiro256** seeded through splitmix64) starts from
 *    it, so the same seed and the same logits give the same tokens whatever else runs; without
 *    it, the seed comes from a process-wide counter mixed with the clock at sampler creation.
 *    Each non-greedy step draws exactly one uniform double.
 *  - logprobs / n_logprobs in [0, LLMRT_SAMPLER_MAX_LOGPROBS]: log_softmax of the RAW model
 *    logits (before penalties and temperature: what the model says; vLLM v1's default
 *    "raw_logprobs" mode). The chosen token's logprob is computed when logprobs is set or
 *    n_logprobs > 0; n_logprobs > 0 also returns that many top tokens, sorted descending
 *    (ties by id).
 *
 * Logits: NaN is treated as -inf. If any logit is +inf, the first such token is chosen; if all
 * are -inf (or NaN), token 0.
 * Not thread-safe per sampler; distinct samplers are independent. */
#ifndef LLMRT_ENGINE_SAMPLER_H
#define LLMRT_ENGINE_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/error.h"

#define LLMRT_SAMPLER_MAX_LOGPROBS 20   /* vLLM's default max_logprobs; OpenAI's top_logprobs cap */
#define LLMRT_SAMPLER_GREEDY_EPS   1e-5f
#define LLMRT_SAMPLER_MAX_LOGIT_BIAS LLMRT_MAX_LOGIT_BIAS /* llmrt.h: 65536, 512 KiB copied */

typedef struct llmrt_sampling_config {
    float    temperature;        /* default 1                                        */
    float    top_p;              /* default 1                                        */
    float    min_p;              /* default 0                                        */
    float    repetition_penalty; /* default 1                                        */
    float    presence_penalty;   /* default 0                                        */
    float    frequency_penalty;  /* default 0                                        */
    int32_t  top_k;              /* default -1 (disabled); 0 also disables           */
    uint64_t seed;               /* used when has_seed                               */
    bool     has_seed;
    bool     logprobs;           /* compute the chosen token's logprob                */
    int32_t  n_logprobs;         /* top tokens with logprobs to return (implies logprobs) */
    const int32_t *bias_ids;     /* logit bias: token ids [n_bias], NULL when n_bias is 0     */
    const float   *bias;         /* the values added to their logits [n_bias]                 */
    int32_t        n_bias;
} llmrt_sampling_config;

/* Defaults: plain sampling at temperature 1, no filters, no penalties, no logprobs, no seed. */
llmrt_sampling_config llmrt_sampling_default_config(void);

/* LLMRT_ERR_INVALID_ARG with a message naming the field when a value is out of range. */
llmrt_status llmrt_sampling_validate(const llmrt_sampling_config *c, llmrt_error *err);

typedef struct llmrt_sample_result {
    int32_t token;
    float   logprob;                                /* raw logprob of token (if requested)  */
    int32_t n_top;                                  /* = n_logprobs                         */
    int32_t top_ids[LLMRT_SAMPLER_MAX_LOGPROBS];    /* descending by logprob, ties by id    */
    float   top_logprobs[LLMRT_SAMPLER_MAX_LOGPROBS];
} llmrt_sample_result;

/* Per request: the RNG, the config and (only when a penalty is active) a compact map of the
 * tokens seen in the prompt and their output counts. */
typedef struct llmrt_sampler llmrt_sampler;

/* Validates `c`, checks prompt and logit-bias ids against `vocab`, records the prompt for the
 * repetition penalty, copies the logit bias (c's arrays may be freed afterwards). */
llmrt_status llmrt_sampler_create(const llmrt_sampling_config *c, int32_t vocab,
                                  const int32_t *prompt, int64_t n_prompt, llmrt_sampler **out,
                                  llmrt_error *err);
void         llmrt_sampler_destroy(llmrt_sampler *s);

/* The seed actually used (the given one, or the derived one when none was given): log it to
 * reproduce an unseeded run. */
uint64_t llmrt_sampler_seed(const llmrt_sampler *s);

/* Samples one token from logits[vocab] and records it as generated. The array is modified
 * while sampling (penalties are applied in place) and restored before returning. Fails only
 * on allocation failure, before consuming randomness. */
llmrt_status llmrt_sampler_sample(llmrt_sampler *s, float *logits, llmrt_sample_result *res,
                                  llmrt_error *err);

/* For tests and benchmarks: false makes the vocabulary-wide passes run the baseline 4-lane
 * code, true (the default) lets them use AVX2 where the CPU has it; same results either way.
 * Returns whether AVX2 is now used. Not thread-safe: call before sampling starts. */
bool llmrt_sampler_use_avx2(bool on);

/* The raw logprob of `token` under logits[vocab] (log_softmax, as the sampler reports a sampled
 * token's) and the n_top (clamped to LLMRT_SAMPLER_MAX_LOGPROBS) most likely tokens, descending,
 * ties by id: prompt logprobs. logits is only read. */
void llmrt_logprobs_of(const float *logits, int32_t vocab, int32_t token, int32_t n_top,
                       float *logprob, int32_t *top_ids, float *top_logprobs);

/* Records an externally chosen token as generated (forced tokens, replay after recompute),
 * without drawing randomness. */
llmrt_status llmrt_sampler_accept(llmrt_sampler *s, int32_t token, llmrt_error *err);

#endif
