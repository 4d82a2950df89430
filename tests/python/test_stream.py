"""LLM.stream: deltas per step that add up to generate's result; early close aborts."""

import llmrt
from conftest import greedy


def test_stream_deltas_concatenate_to_generate(smollm2):
    prompt = "Write a haiku about the sea."
    params = greedy(20, ignore_eos=True)
    full = smollm2.generate(prompt, params)[0].outputs[0]
    deltas = list(smollm2.stream(prompt, params))
    assert deltas, "no output"
    assert all(not d.finished for d in deltas[:-1])
    last = deltas[-1]
    assert last.finished and last.finish_reason == "length" == full.finish_reason
    assert "".join(d.text for d in deltas) == full.text
    assert [t for d in deltas for t in d.token_ids] == full.token_ids
    assert last.n_generated == 20


def test_stream_result_and_accumulators(smollm2, smollm2_golden):
    g = smollm2_golden
    s = smollm2.stream(g["prompt_ids"], greedy(32))
    first = next(s)
    assert first.token_ids == g["generated_ids"][:1]
    res = s.result()
    assert s.finished and s.finish_reason == "stop"
    assert res.outputs[0].text == "The capital of France is Paris."
    assert s.token_ids == g["generated_ids"][:8]
    assert res.prompt_token_ids == g["prompt_ids"]


def test_close_aborts(smollm2):
    before = smollm2.metrics()["requests_aborted"]
    s = smollm2.stream("Count to one hundred:", greedy(200, ignore_eos=True))
    next(s)
    s.close()
    smollm2.generate("x", greedy(1))  # steps the engine: the abort is applied
    assert smollm2.metrics()["requests_aborted"] == before + 1
    assert list(s) == []


def test_abort_ends_with_abort_reason(smollm2):
    s = smollm2.stream("Count to one hundred:", greedy(200, ignore_eos=True))
    next(s)
    s.abort()
    rest = list(s)
    assert rest[-1].finished and rest[-1].finish_reason == "abort"


def test_interleaved_streams(smollm2):
    """Two streams consumed alternately: stepping for one also advances the other."""
    p = greedy(6, ignore_eos=True)
    a, b = smollm2.stream("Hello", p), smollm2.stream("The sky is", p)
    ta, tb = [], []
    for da, db in zip(a, b):
        ta += da.token_ids
        tb += db.token_ids
    ta += [t for d in a for t in d.token_ids]
    tb += [t for d in b for t in d.token_ids]
    assert ta == smollm2.generate("Hello", p)[0].outputs[0].token_ids
    assert tb == smollm2.generate("The sky is", p)[0].outputs[0].token_ids


def test_chat_stream(smollm2):
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    text = "".join(d.text for d in smollm2.chat_stream(msgs, greedy(16)))
    assert text == smollm2.chat(msgs, greedy(16))[0].outputs[0].text
    assert isinstance(smollm2.chat_stream(msgs, greedy(1)), llmrt.RequestStream)
