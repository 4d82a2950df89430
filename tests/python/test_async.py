"""AsyncLLM (llmrt/async_llm.py): concurrent async streams over one engine, each equal to the
synchronous result; an early exit aborts its request; HF tokenizer conveniences."""

import asyncio

import pytest

import llmrt

PROMPTS = ["The capital of France is", "Once upon a time", "1, 2, 3,", "def fib(n):",
           "The weather today", "My favourite colour is", "Water boils at", "Hello, my name is"]


@pytest.fixture(scope="module")
def async_llm(smollm2_file):
    a = llmrt.AsyncLLM(smollm2_file, kv_tokens=4096, threads=2)
    yield a
    a.close()


def test_concurrent_streams_equal_sync(async_llm):
    sp = llmrt.SamplingParams(max_tokens=12, temperature=0)
    want = [o.outputs[0].text for o in async_llm.llm.generate(PROMPTS, sp)]

    async def one(p):
        text, last = "", None
        async for d in async_llm.generate(p, sp):
            text += d.text
            last = d
        return text, last

    async def main():
        return await asyncio.gather(*(one(p) for p in PROMPTS))

    got = asyncio.run(main())
    assert [t for t, _ in got] == want
    assert all(last.finished and last.finish_reason in ("stop", "length") for _, last in got)


def test_chat_and_early_exit_aborts(async_llm):
    msg = [{"role": "user", "content": "What is the capital of France?"}]

    async def main():
        text = ""
        async for d in async_llm.chat(msg, llmrt.SamplingParams(max_tokens=16, temperature=0)):
            text += d.text
        n = 0
        async for _ in async_llm.generate("Tell me a long story",
                                          llmrt.SamplingParams(max_tokens=200, ignore_eos=True)):
            n += 1
            if n == 3:
                break  # the request is aborted: its blocks go back
        return text

    assert "Paris" in asyncio.run(main())
    # the abort takes effect at the driver's next step: the request leaves, its blocks return
    import time
    deadline = time.time() + 10
    while time.time() < deadline:
        m = async_llm.llm.metrics()
        if m["n_running"] == 0 and m["n_waiting"] == 0 and m["kv_blocks_used"] == 0:
            break
        time.sleep(0.05)
    assert m["n_running"] == 0 and m["n_waiting"] == 0 and m["kv_blocks_used"] == 0, m
    assert m["requests_aborted"] >= 1


def test_tokenizer_conveniences(smollm2):
    tk = smollm2.tokenizer
    enc = tk("Hello world")
    assert enc["input_ids"] == tk.encode("Hello world") and enc["attention_mask"] == [1] * len(enc["input_ids"])
    both = tk(["a b", "Hello world"])
    assert both["input_ids"][1] == enc["input_ids"] and len(both["attention_mask"]) == 2
    assert tk.batch_decode([enc["input_ids"], tk.encode("x")]) == ["Hello world", "x"]
    assert tk.eos_token_id in tk.eos_token_ids
