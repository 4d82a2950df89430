"""SamplingParams(n=...): n sequences per prompt in RequestOutput.outputs (vLLM's shape)."""

import pytest

import llmrt
from conftest import greedy

PROMPT = [1, 17, 5, 7, 9, 11, 13, 15, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 3]


def test_n2_greedy_equals_n1(tiny):
    ref = tiny.generate([PROMPT], greedy(10, ignore_eos=True))[0].outputs[0]
    out = tiny.generate([PROMPT, PROMPT[:5]], greedy(10, ignore_eos=True, n=2))
    assert len(out) == 2
    o = out[0]
    assert o.finished
    assert [c.index for c in o.outputs] == [0, 1]
    for c in o.outputs:
        assert c.token_ids == ref.token_ids
        assert c.finish_reason == "length"
    assert o.metrics.n_prompt_tokens == len(PROMPT)
    assert [c.index for c in out[1].outputs] == [0, 1]


def test_n2_seeded(tiny):
    sp = llmrt.SamplingParams(temperature=1.0, max_tokens=12, ignore_eos=True, seed=42, n=2)
    a = tiny.generate([PROMPT], sp)[0]
    b = tiny.generate([PROMPT], sp)[0]
    assert [c.token_ids for c in a.outputs] == [c.token_ids for c in b.outputs]
    for i in range(2):
        one = tiny.generate([PROMPT], sp.clone(n=1, seed=42 + i))[0].outputs[0]
        assert a.outputs[i].token_ids == one.token_ids
    assert tiny.metrics()["kv_blocks_used"] == 0


def test_n_errors(tiny):
    for bad in (0, 65):
        with pytest.raises(llmrt.InvalidArgument, match="n "):
            tiny.generate([PROMPT], greedy(4, n=bad))
    with pytest.raises(llmrt.InvalidArgument):
        llmrt.SamplingParams(n=1.5)
    with pytest.raises(llmrt.InvalidArgument, match="stream"):
        tiny.stream(PROMPT, greedy(4, n=2))
