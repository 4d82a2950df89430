/* The tensor-parallel shard plan (host/model/shard_plan.c): for real and tiny head layouts and
 * every tp they allow, the ranks' query heads tile [0, Hq) exactly once in rank order, each
 * rank's query heads map uniformly onto its KV heads (the attention kernels' assumption) and
 * onto the right global KV head, KV heads are split (tp <= Hkv) or replicated one per rank
 * (tp > Hkv) in balanced contiguous ranges, and the FFN slices tile [0, F) in units of
 * gcd(F, 128) (halved while fewer than tp), balanced within one unit. tp 1 is the whole model. Then the errors, each
 * naming the tensor and the tp. */
#include <stdlib.h>

#include "model/shard_plan.h"
#include "test_util.h"

static llmrt_model_config config(int32_t heads, int32_t kv, int32_t ffn) {
    llmrt_model_config c = {0};
    c.n_heads            = heads;
    c.n_kv_heads         = kv;
    c.intermediate_size  = ffn;
    c.hidden_size        = 64;
    c.head_dim           = 16;
    c.vocab_size         = 32001; /* odd: a unit of 1 row, uneven slices */
    return c;
}

static int64_t gcd(int64_t a, int64_t b) {
    return b ? gcd(b, a % b) : a;
}

/* gcd(F, 128), halved while it gives fewer units than ranks */
static int64_t ffn_unit(int64_t F, int32_t tp) {
    int64_t u = gcd(F, 128);
    while (u > 1 && F / u < tp) u /= 2;
    return u;
}

static void check_plan(int32_t heads, int32_t kv, int32_t F, int32_t tp) {
    llmrt_model_config c   = config(heads, kv, F);
    int32_t            grp = heads / kv;
    int64_t            unit = ffn_unit(F, tp);
    int32_t next_q = 0, min_q = heads, max_q = 0;
    int64_t next_f = 0, min_f = F, max_f = 0, next_v = 0;
    int32_t *ranks_of_kv = calloc((size_t)kv, sizeof *ranks_of_kv);
    for (int32_t r = 0; r < tp; r++) {
        llmrt_tp_shard s;
        llmrt_error    err = {0};
        llmrt_status   st  = llmrt_shard_plan(&c, tp, r, &s, &err);
        CHECK_MSG(st == LLMRT_OK, "(%d, %d, %d) tp %d rank %d: %s", heads, kv, F, tp, r, err.msg);
        if (st != LLMRT_OK) break;
        CHECK(s.size == tp && s.rank == r);
        /* query heads: contiguous, in rank order, at least one each */
        CHECK_MSG(s.q_head0 == next_q && s.n_heads >= 1,
                  "(%d, %d) tp %d rank %d: q heads [%d, +%d), expected start %d", heads, kv, tp, r,
                  s.q_head0, s.n_heads, next_q);
        next_q = s.q_head0 + s.n_heads;
        min_q  = s.n_heads < min_q ? s.n_heads : min_q;
        max_q  = s.n_heads > max_q ? s.n_heads : max_q;
        /* KV heads: local q head i reads local KV head i / (Hq_local / Hkv_local), which must be
         * the global KV head of global q head q_head0 + i */
        CHECK(s.n_kv_heads >= 1 && s.n_heads % s.n_kv_heads == 0);
        if (s.n_kv_heads < 1 || s.n_heads % s.n_kv_heads != 0) continue;
        int32_t lgrp = s.n_heads / s.n_kv_heads;
        for (int32_t i = 0; i < s.n_heads; i++)
            CHECK_MSG(s.kv_head0 + i / lgrp == (s.q_head0 + i) / grp,
                      "(%d, %d) tp %d rank %d: q head %d reads KV head %d, expected %d", heads, kv,
                      tp, r, s.q_head0 + i, s.kv_head0 + i / lgrp, (s.q_head0 + i) / grp);
        if (tp <= kv) {
            CHECK(s.n_kv_heads * grp == s.n_heads); /* whole KV heads with all their q heads */
            CHECK(s.n_kv_heads == kv / tp || s.n_kv_heads == kv / tp + 1);
            CHECK((s.n_kv_heads == kv / tp + 1) == (r < kv % tp)); /* first ranks get the extra */
        } else {
            CHECK(s.n_kv_heads == 1);
        }
        for (int32_t h = s.kv_head0; h < s.kv_head0 + s.n_kv_heads && h < kv; h++)
            ranks_of_kv[h]++;
        /* FFN */
        CHECK_MSG(s.ffn0 == next_f && s.ffn >= unit && s.ffn % unit == 0 && s.ffn0 % unit == 0,
                  "(%d, %d, %d) tp %d rank %d: ffn [%lld, +%lld)", heads, kv, F, tp, r,
                  (long long)s.ffn0, (long long)s.ffn);
        next_f = s.ffn0 + s.ffn;
        /* vocabulary rows of the vocab-parallel lm_head: contiguous, in rank order */
        CHECK_MSG(s.vocab0 == next_v && s.vocab >= 1, "tp %d rank %d: vocab [%lld, +%lld)", tp, r,
                  (long long)s.vocab0, (long long)s.vocab);
        next_v = s.vocab0 + s.vocab;
        min_f  = s.ffn < min_f ? s.ffn : min_f;
        max_f  = s.ffn > max_f ? s.ffn : max_f;
    }
    CHECK_MSG(next_q == heads, "(%d, %d) tp %d: q heads end at %d", heads, kv, tp, next_q);
    CHECK(next_v == c.vocab_size);
    CHECK_MSG(next_f == F, "(%d, %d, %d) tp %d: ffn ends at %lld", heads, kv, F, tp,
              (long long)next_f);
    CHECK_MSG(max_f - min_f <= unit, "(%d, %d, %d) tp %d: ffn slices %lld..%lld", heads, kv, F, tp,
              (long long)min_f, (long long)max_f);
    if (tp <= kv) {
        CHECK(max_q - min_q <= grp); /* balanced within one KV head */
        for (int32_t h = 0; h < kv; h++) CHECK(ranks_of_kv[h] == 1);
    } else {
        /* every KV head replicated on tp / Hkv ranks, the first tp % Hkv heads on one more */
        for (int32_t h = 0; h < kv; h++)
            CHECK_MSG(ranks_of_kv[h] == tp / kv + (h < tp % kv),
                      "(%d, %d) tp %d: KV head %d held by %d ranks", heads, kv, tp, h,
                      ranks_of_kv[h]);
    }
    free(ranks_of_kv);
}

static void test_plans(void) {
    struct {
        int32_t heads, kv, F;
        int32_t tps[6];
    } cases[] = {
        {9, 3, 1536, {1, 2, 3, 4, 9}},       /* SmolLM2-135M */
        {32, 32, 11008, {1, 2, 3, 4, 8}},    /* Llama-2-7B; tp 3: 11/11/10 heads */
        {32, 8, 14336, {2, 4, 8, 16}},       /* Llama-3-8B, tp 16 replicates KV heads */
        {4, 2, 64, {1, 2, 4}},               /* tiny test models */
        {4, 2, 160, {1, 2, 3, 4}},           /* tests/data/tiny */
        {4, 1, 160, {1, 2, 4}},              /* tests/data/tiny/mistral_f32 */
        {9, 3, 1536, {5, 6, 7, 8}},          /* uneven replication */
        {4, 2, 384, {1, 2, 3, 4}},           /* tests/data/gptq; tp 4: units of 64 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int j = 0; j < 6 && cases[i].tps[j]; j++)
            check_plan(cases[i].heads, cases[i].kv, cases[i].F, cases[i].tps[j]);
}

static void test_whole_model(void) {
    llmrt_model_config c = config(9, 3, 1536);
    llmrt_tp_shard     s;
    llmrt_error        err = {0};
    CHECK(llmrt_shard_plan(&c, 1, 0, &s, &err) == LLMRT_OK);
    CHECK(s.size == 1 && s.rank == 0 && s.n_heads == 9 && s.n_kv_heads == 3 && s.q_head0 == 0 &&
          s.kv_head0 == 0 && s.ffn0 == 0 && s.ffn == 1536);
}

/* a few exact plans */
static void test_examples(void) {
    llmrt_model_config c = config(9, 3, 1536);
    llmrt_tp_shard     s;
    llmrt_error        err = {0};
    /* tp 4 over 3 KV heads: KV head 0 on ranks 0-1 (q heads 0-1, 2), 1 on rank 2, 2 on rank 3 */
    int32_t want[4][4] = {{0, 2, 0, 1}, {2, 1, 0, 1}, {3, 3, 1, 1}, {6, 3, 2, 1}};
    for (int32_t r = 0; r < 4; r++) {
        CHECK(llmrt_shard_plan(&c, 4, r, &s, &err) == LLMRT_OK);
        CHECK_MSG(s.q_head0 == want[r][0] && s.n_heads == want[r][1] && s.kv_head0 == want[r][2] &&
                      s.n_kv_heads == want[r][3],
                  "rank %d: q [%d, +%d) kv [%d, +%d)", r, s.q_head0, s.n_heads, s.kv_head0,
                  s.n_kv_heads);
        CHECK(s.ffn == 384 && s.ffn0 == 384 * r);
    }
    /* tp 3 over 32 heads: 11/11/10; F = 11008 = 86 units of 128: 29/29/28 */
    c = config(32, 32, 11008);
    int32_t heads[3] = {11, 11, 10};
    int64_t ffn[3]   = {29 * 128, 29 * 128, 28 * 128};
    for (int32_t r = 0; r < 3; r++) {
        CHECK(llmrt_shard_plan(&c, 3, r, &s, &err) == LLMRT_OK);
        CHECK(s.n_heads == heads[r] && s.n_kv_heads == heads[r] && s.ffn == ffn[r]);
    }
    /* F = 160: units of gcd(160, 128) = 32 */
    c = config(4, 2, 160);
    CHECK(llmrt_shard_plan(&c, 2, 1, &s, &err) == LLMRT_OK);
    CHECK(s.ffn0 == 96 && s.ffn == 64);
    /* F = 384 = 3 units of 128 at tp 4: units of 64, 2/2/1/1 */
    c = config(4, 2, 384);
    CHECK(llmrt_shard_plan(&c, 4, 2, &s, &err) == LLMRT_OK);
    CHECK(s.ffn0 == 256 && s.ffn == 64);
}

static void test_errors(void) {
    llmrt_tp_shard     s;
    llmrt_error        err = {0};
    llmrt_model_config c   = config(9, 3, 1536);
    CHECK_ERROR(llmrt_shard_plan(&c, 16, 0, &s, &err), err, LLMRT_ERR_INVALID_ARG,
                "tp 16 exceeds the 9 attention heads of model.layers.*.self_attn.q_proj");
    CHECK_ERROR(llmrt_shard_plan(&c, 0, 0, &s, &err), err, LLMRT_ERR_INVALID_ARG, "tp 0");
    CHECK_ERROR(llmrt_shard_plan(&c, -2, 0, &s, &err), err, LLMRT_ERR_INVALID_ARG, "tp -2");
    CHECK_ERROR(llmrt_shard_plan(&c, 2, 2, &s, &err), err, LLMRT_ERR_INVALID_ARG,
                "tp 2: rank 2 is outside [0, 2)");
    CHECK_ERROR(llmrt_shard_plan(&c, 2, -1, &s, &err), err, LLMRT_ERR_INVALID_ARG, "rank -1");
    c = config(4, 2, 3);
    CHECK_ERROR(llmrt_shard_plan(&c, 4, 0, &s, &err), err, LLMRT_ERR_INVALID_ARG,
                "tp 4: intermediate_size 3 of model.layers.*.mlp.gate_proj has fewer columns "
                "than ranks");
    c = config(6, 4, 1536);
    CHECK_ERROR(llmrt_shard_plan(&c, 2, 0, &s, &err), err, LLMRT_ERR_INVALID_ARG,
                "not a multiple of its 4 KV heads");
    c = config(8, 0, 1536);
    CHECK_ERROR(llmrt_shard_plan(&c, 2, 0, &s, &err), err, LLMRT_ERR_INVALID_ARG, "0 KV heads");
}

int main(void) {
    test_plans();
    test_whole_model();
    test_examples();
    test_errors();
    return test_summary("test_shard_plan");
}
