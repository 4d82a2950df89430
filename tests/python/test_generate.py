"""LLM.generate: greedy output equals the C golden; batches come back in input order."""

import pytest

import llmrt
from conftest import greedy


def test_greedy_matches_golden(smollm2, smollm2_golden):
    g = smollm2_golden
    out = smollm2.generate([g["prompt_ids"]], greedy(32, ignore_eos=True))
    assert len(out) == 1
    o = out[0]
    assert o.prompt is None
    assert o.prompt_token_ids == g["prompt_ids"]
    assert o.finished
    c = o.outputs[0]
    assert c.token_ids == g["generated_ids"]
    assert c.finish_reason == "length"
    assert c.text == g["text"] or c.text == smollm2.tokenizer.decode(g["generated_ids"])
    assert c.logprobs is None
    assert c.cumulative_logprob < 0
    assert o.metrics.n_prompt_tokens == len(g["prompt_ids"])
    assert o.metrics.n_generated == 32


def test_batch_returns_in_input_order(smollm2, smollm2_golden):
    """Several prompts of different lengths, submitted together: each result belongs to its own
    prompt and equals that prompt generated alone (batch invariance of greedy output)."""
    g = smollm2_golden
    prompts = [
        g["prompt_ids"],
        g["extra"]["prompt_ids"],
        "The capital of France is",
        "1, 2, 3, 4,",
    ]
    params = greedy(6, ignore_eos=True)
    batch = smollm2.generate(prompts, params)
    assert len(batch) == len(prompts)
    assert batch[0].outputs[0].token_ids == g["generated_ids"][:6]
    assert batch[1].outputs[0].token_ids == g["extra"]["generated_ids"][:6]
    assert batch[2].prompt == "The capital of France is"
    assert batch[3].prompt == "1, 2, 3, 4,"
    ids = [o.request_id for o in batch]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for p, o in zip(prompts[2:], batch[2:]):
        alone = smollm2.generate(p, params)[0]
        assert o.prompt_token_ids == alone.prompt_token_ids
        assert o.outputs[0].token_ids == alone.outputs[0].token_ids
        assert o.outputs[0].text == alone.outputs[0].text


def test_prompt_forms(smollm2):
    text = "The capital of France is"
    ids = smollm2.tokenizer.encode(text)
    params = greedy(3, ignore_eos=True)
    a = smollm2.generate(text, params)[0]
    b = smollm2.generate([ids], params)[0]
    c = smollm2.generate({"prompt_token_ids": ids}, params)[0]
    d = smollm2.generate([{"prompt": text}], params)[0]
    assert a.prompt_token_ids == ids
    for o in (b, c, d):
        assert o.outputs[0].token_ids == a.outputs[0].token_ids
    assert smollm2.generate([], params) == []


def test_per_prompt_sampling_params(smollm2):
    outs = smollm2.generate(["Hello", "Hello"], [greedy(2, ignore_eos=True),
                                                 greedy(5, ignore_eos=True)])
    assert [len(o.outputs[0].token_ids) for o in outs] == [2, 5]
    assert outs[1].outputs[0].token_ids[:2] == outs[0].outputs[0].token_ids
    with pytest.raises(llmrt.InvalidArgument, match="sampling_params"):
        smollm2.generate(["a", "b"], [greedy(2)])


def test_seeded_sampling_is_reproducible(smollm2):
    p = llmrt.SamplingParams(temperature=1.0, top_p=0.9, seed=1234, max_tokens=8, ignore_eos=True)
    a = smollm2.generate("Once upon a time", p)[0].outputs[0].token_ids
    b = smollm2.generate("Once upon a time", p)[0].outputs[0].token_ids
    assert a == b and len(a) == 8


def test_stop_string_and_stop_token(smollm2, smollm2_golden):
    g = smollm2_golden  # greedy: "The capital of France is Paris.<|im_end|>..."
    out = smollm2.generate([g["prompt_ids"]], greedy(32, stop=[" Paris"]))[0].outputs[0]
    assert out.text == "The capital of France is"
    assert out.finish_reason == "stop"
    out = smollm2.generate([g["prompt_ids"]], greedy(32, stop_token_ids=[4649]))[0].outputs[0]
    assert out.token_ids == g["generated_ids"][:4]  # ... "France" (4649) included
    assert out.finish_reason == "stop"
    # without ignore_eos the model's <|im_end|> (2) ends the reply
    out = smollm2.generate([g["prompt_ids"]], greedy(32))[0].outputs[0]
    assert out.token_ids == g["generated_ids"][:8]
    assert out.text == "The capital of France is Paris."


def test_logprobs(smollm2, smollm2_golden):
    g = smollm2_golden
    out = smollm2.generate([g["prompt_ids"]], greedy(4, ignore_eos=True, logprobs=3))[0].outputs[0]
    assert len(out.logprobs) == 4
    total = 0.0
    for tok, lp in zip(out.token_ids, out.logprobs):
        assert tok in lp and lp[tok].rank == 1  # greedy: the sampled token is the top one
        assert len(lp) == 3
        ranks = sorted(v.rank for v in lp.values())
        assert ranks == [1, 2, 3]
        assert all(v.logprob <= 0 for v in lp.values())
        total += lp[tok].logprob
    assert out.cumulative_logprob == pytest.approx(total, rel=1e-5)
    assert out.logprobs[0][out.token_ids[0]].decoded_token == "The"
    only = smollm2.generate([g["prompt_ids"]], greedy(2, logprobs=0))[0].outputs[0]
    assert [list(d) for d in only.logprobs] == [[t] for t in only.token_ids]


def test_tiny_model_token_prompts(tiny):
    out = tiny.generate([[1, 5, 6], [1, 7]], greedy(5, ignore_eos=True))
    assert [len(o.outputs[0].token_ids) for o in out] == [5, 5]
    assert out[0].outputs[0].text == ""  # no tokenizer: ids only
    assert out[0].prompt_token_ids == [1, 5, 6]


def test_threads_share_one_llm(smollm2):
    """generate() from several threads at once: each gets its own results."""
    import threading

    prompts = ["Hello", "The sky is", "1, 2, 3,"]
    params = greedy(4, ignore_eos=True)
    want = [o.outputs[0].token_ids for o in smollm2.generate(prompts, params)]
    got = [None] * len(prompts)
    errors = []

    def work(i):
        try:
            got[i] = smollm2.generate(prompts[i], params)[0].outputs[0].token_ids
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and got == want


def test_numpy_prompt_and_defaults(tiny):
    import numpy as np

    a = tiny.generate(np.array([1, 5, 6], dtype=np.int64), greedy(3, ignore_eos=True))[0]
    assert a.prompt_token_ids == [1, 5, 6]
    d = tiny.get_default_sampling_params()
    assert isinstance(d, llmrt.SamplingParams) and d.max_tokens >= 1


def test_tensor_parallel_matches_tp1(smollm2, smollm2_file, smollm2_golden):
    """tensor_parallel_size=2 (two in-process ranks, SmolLM2's 9 heads split 6/3): the same greedy
    tokens as one rank."""
    g = smollm2_golden
    llm = llmrt.LLM(smollm2_file, kv_tokens=1024, threads=1, tensor_parallel_size=2)
    try:
        assert llm.model_info.n_heads == 9
        got = llm.generate([g["prompt_ids"]], greedy(12, ignore_eos=True))[0].outputs[0].token_ids
    finally:
        llm.close()
    assert got == g["generated_ids"][:12]


def test_tensor_parallel_shape_error(smollm2_file):
    with pytest.raises(llmrt.InvalidArgument, match="attention heads"):
        llmrt.LLM(smollm2_file, kv_tokens=1024, tensor_parallel_size=16)
