"""llama-cpp-python's habits (llmrt/llama_style.py) and vLLM's use_tqdm, on SmolLM2."""

import pytest

import llmrt

MSG = [{"role": "user", "content": "What is the capital of France?"}]


def test_call_is_create_completion(smollm2):
    r = smollm2("The capital of France is", max_tokens=8, temperature=0)
    assert r["object"] == "text_completion" and r["id"].startswith("cmpl-")
    (c,) = r["choices"]
    assert c["index"] == 0 and c["finish_reason"] in ("stop", "length") and "Paris" in c["text"]
    u = r["usage"]
    assert u["completion_tokens"] <= 8 and u["prompt_tokens"] > 0
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    # the same as the vLLM-style call with the same sampling
    out = smollm2.generate(["The capital of France is"],
                           llmrt.SamplingParams(max_tokens=8, temperature=0))[0]
    assert c["text"] == out.outputs[0].text


def test_completion_echo_and_token_prompt(smollm2):
    r = smollm2.create_completion("Hello", max_tokens=2, temperature=0, echo=True)
    assert r["choices"][0]["text"].startswith("Hello")
    ids = smollm2.tokenizer.encode("Hello")
    r = smollm2.create_completion(ids, max_tokens=2, temperature=0)
    assert r["usage"]["prompt_tokens"] == len(ids)
    with pytest.raises(llmrt.InvalidArgument):
        smollm2.create_completion([], max_tokens=2)


def test_completion_stream_joins_to_the_whole(smollm2):
    whole = smollm2("Once upon a time", max_tokens=12, temperature=0)["choices"][0]
    chunks = list(smollm2("Once upon a time", max_tokens=12, temperature=0, stream=True))
    assert all(ch["object"] == "text_completion" for ch in chunks)
    assert "".join(ch["choices"][0]["text"] for ch in chunks) == whole["text"]
    assert [ch["choices"][0]["finish_reason"] for ch in chunks][-1] == whole["finish_reason"]
    assert all(ch["choices"][0]["finish_reason"] is None for ch in chunks[:-1])


def test_seed_repeats(smollm2):
    a = smollm2("Tell me a story", max_tokens=10, seed=7)["choices"][0]["text"]
    b = smollm2("Tell me a story", max_tokens=10, seed=7)["choices"][0]["text"]
    assert a == b


def test_chat_completion(smollm2):
    r = smollm2.create_chat_completion(messages=MSG, temperature=0, max_tokens=16)
    assert r["object"] == "chat.completion"
    m = r["choices"][0]["message"]
    assert m["role"] == "assistant" and "Paris" in m["content"]
    chunks = list(smollm2.create_chat_completion(messages=MSG, temperature=0, max_tokens=16,
                                                 stream=True))
    assert all(ch["object"] == "chat.completion.chunk" for ch in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    text = "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks)
    assert text == m["content"]
    assert chunks[-1]["choices"][0]["delta"] == {} and chunks[-1]["choices"][0]["finish_reason"]


def test_use_tqdm_callable(smollm2):
    seen = {}

    class Bar:
        def __init__(self, total, desc):
            seen.update(total=total, desc=desc, n=0, closed=False)

        def update(self, k):
            seen["n"] += k

        def close(self):
            seen["closed"] = True

    outs = smollm2.generate(["a", "b", "c"], llmrt.SamplingParams(max_tokens=3), use_tqdm=Bar)
    assert len(outs) == 3 and seen == {"total": 3, "desc": "Processed prompts", "n": 3,
                                       "closed": True}
    outs = smollm2.chat([MSG, MSG], llmrt.SamplingParams(max_tokens=2), use_tqdm=Bar)
    assert len(outs) == 2 and seen["n"] == 2
