"""SamplingParams(prompt_logprobs=k) -> RequestOutput.prompt_logprobs, against HF transformers.

Golden: tests/data/golden/prompt_logprobs_llama_f32.json (python/tools/make_prompt_logprobs_golden.py,
float64 transformers on tiny/llama_f32). The engine here runs 24-token steps, so the 40- and
100-token prompts are computed in chunks, and a second pass submits every prompt again after it
is in the prefix cache: the prompt logprobs must not change (the request recomputes the prompt
rather than take cached KV without logits)."""

import json
import math

import pytest

import llmrt
from conftest import DATA, GOLDEN, greedy

TOL = 2e-4  # |ours - HF fp64| per logprob (fp32 forward; logits O(1..10))


@pytest.fixture(scope="module")
def golden():
    with open(GOLDEN / "prompt_logprobs_llama_f32.json") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def chunked():
    llm = llmrt.LLM(DATA / "tiny" / "llama_f32", kv_tokens=1024, threads=2, block_size=16,
                    max_batched_tokens=24)
    yield llm
    llm.close()


def check_against_golden(got, want, k):
    assert len(got) == len(want)
    assert got[0] is None and want[0] is None
    for i in range(1, len(want)):
        w, d = want[i], got[i]
        assert w["token"] in d, i
        assert abs(d[w["token"]].logprob - w["logprob"]) <= TOL, (i, d[w["token"]], w)
        ranked = {tid: lp for tid, lp in d.items() if lp.rank is not None}
        assert len(ranked) == k
        assert len(d) == k + (w["token"] not in w["top_ids"][:k])
        for j in range(k):
            tid, lp = w["top_ids"][j], w["top_logprobs"][j]
            # a near tie with the next token may order them either way in fp32
            near_tie = any(abs(lp - w["top_logprobs"][m]) <= TOL
                           for m in range(len(w["top_ids"])) if m != j)
            if not near_tie:
                assert tid in ranked and ranked[tid].rank == j + 1, (i, j, tid, ranked)
            if tid in ranked:
                assert abs(ranked[tid].logprob - lp) <= TOL, (i, j)


@pytest.mark.parametrize("k", [0, 1, 5])
def test_prompt_logprobs_match_transformers(chunked, golden, k):
    prompts = [p["token_ids"] for p in golden["prompts"]]
    for attempt in ("cold", "prefix-cached"):
        outs = chunked.generate(prompts, greedy(2, prompt_logprobs=k))
        for out, p in zip(outs, golden["prompts"]):
            assert out.prompt_logprobs is not None, attempt
            check_against_golden(out.prompt_logprobs, p["prompt_logprobs"], k)
            # the prompt was computed in full, not taken from the prefix cache
            assert out.metrics.n_cached_tokens == 0, attempt
    # without prompt_logprobs the same prompts do hit the cache (the test above means something)
    again = chunked.generate([prompts[-1]], greedy(2))[0]
    assert again.prompt_logprobs is None and again.metrics.n_cached_tokens >= 16


def test_prompt_logprobs_do_not_change_generation(chunked, golden):
    prompt = golden["prompts"][-1]["token_ids"]
    plain = chunked.generate([prompt], greedy(6, ignore_eos=True))[0]
    with_lp = chunked.generate([prompt], greedy(6, ignore_eos=True, prompt_logprobs=2))[0]
    assert with_lp.outputs[0].token_ids == plain.outputs[0].token_ids
    assert plain.prompt_logprobs is None


def test_prompt_logprobs_decoded_and_in_stream(chunked, golden):
    p = golden["prompts"][2]
    deltas = list(chunked.stream(p["token_ids"], greedy(3, prompt_logprobs=1)))
    carried = [d.prompt_logprobs for d in deltas if d.prompt_logprobs is not None]
    assert len(carried) == 1  # once, with the first token
    check_against_golden(carried[0], p["prompt_logprobs"], 1)


def test_prompt_logprobs_with_n(chunked, golden):
    p = golden["prompts"][3]
    out = chunked.generate([p["token_ids"]], greedy(3, prompt_logprobs=3, n=3,
                                                    ignore_eos=True))[0]
    assert len(out.outputs) == 3
    check_against_golden(out.prompt_logprobs, p["prompt_logprobs"], 3)


def test_prompt_logprobs_smollm2_chat_has_token_ids(smollm2):
    """A chat prompt is tokenized by the engine: the dict keys are its own token ids."""
    out = smollm2.chat([{"role": "user", "content": "Hi"}],
                       llmrt.SamplingParams(max_tokens=1, prompt_logprobs=0))[0]
    plp = out.prompt_logprobs
    assert plp[0] is None and len(plp) == out.metrics.n_prompt_tokens
    for d in plp[1:]:
        (tid, lp), = d.items()
        assert 0 <= tid < smollm2.model_info.vocab_size
        assert lp.logprob <= 0.0 and math.isfinite(lp.logprob)
        assert lp.decoded_token is not None


def test_prompt_logprobs_errors(chunked):
    with pytest.raises(llmrt.InvalidArgument, match="n_prompt_logprobs 21"):
        chunked.generate([[1, 2, 3]], greedy(1, prompt_logprobs=21))
    with pytest.raises(llmrt.InvalidArgument, match="prompt_logprobs"):
        llmrt.SamplingParams(prompt_logprobs=-1)
    with pytest.raises(llmrt.InvalidArgument, match="prompt_logprobs"):
        llmrt.SamplingParams(prompt_logprobs=1.5)
    assert chunked.metrics()["kv_blocks_used"] == 0
