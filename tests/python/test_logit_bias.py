"""SamplingParams(logit_bias=...) on the tiny llama_f32 checkpoint (vocab 320), greedy: a ban
(-100) on the unbiased first token gives the token ranked second by the raw logprobs; a +100
bias forces a token at every step while its reported logprob stays the raw one; str keys are
taken as vLLM takes them; requests without a bias are unchanged beside biased ones."""

import llmrt
from conftest import greedy

PROMPT = [[1, 17, 42, 99, 5]]


def first(out):
    return out[0].outputs[0]


def test_ban_gives_the_second_ranked_token(tiny):
    plain = first(tiny.generate(PROMPT, greedy(4, logprobs=2)))
    t0 = plain.token_ids[0]
    ranked = sorted(plain.logprobs[0].items(), key=lambda kv: kv[1].logprob, reverse=True)
    assert ranked[0][0] == t0
    second = ranked[1][0]
    banned = first(tiny.generate(PROMPT, greedy(4, logit_bias={t0: -100.0})))
    assert banned.token_ids[0] == second
    assert t0 not in banned.token_ids


def test_forced_token_keeps_raw_logprobs(tiny):
    plain = first(tiny.generate(PROMPT, greedy(1, logprobs=5)))
    lows = sorted(plain.logprobs[0].items(), key=lambda kv: kv[1].logprob)
    forced_id = lows[0][0]  # the least likely of the top 5: not the greedy choice
    assert forced_id != plain.token_ids[0]
    out = first(tiny.generate(PROMPT, greedy(6, logprobs=0, logit_bias={str(forced_id): 100})))
    assert out.token_ids == [forced_id] * 6
    lp = out.logprobs[0][forced_id].logprob
    assert abs(lp - lows[0][1].logprob) < 1e-4  # the raw logprob, not ~0 after the bias


def test_biased_and_plain_requests_side_by_side(tiny):
    plain = first(tiny.generate(PROMPT, greedy(8))).token_ids
    outs = tiny.generate(PROMPT * 3, [greedy(8), greedy(8, logit_bias={7: 100}), greedy(8)])
    assert outs[0].outputs[0].token_ids == plain
    assert outs[1].outputs[0].token_ids == [7] * 8
    assert outs[2].outputs[0].token_ids == plain
