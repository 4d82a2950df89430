"""LoRA adapters from Python (issue 15): llmrt.lora.LoRARequest as vLLM's, LLM(enable_lora=True),
lora_request= in generate / chat / stream and AsyncLLM. The adapter is a random PEFT adapter for
the default model written by tests/tools/make_random_lora.py (non-zero B: the text changes)."""

import asyncio
import os
import shutil
import subprocess
import sys

import pytest

import llmrt
from llmrt.lora import LoRARequest
from conftest import REPO, greedy

sys.path.insert(0, str(REPO / "tests" / "tools"))
from make_random_lora import make_adapter  # noqa: E402

PROMPT = "Once upon a time"


@pytest.fixture(scope="module")
def adapters(smollm2_file, tmp_path_factory):
    d = tmp_path_factory.mktemp("lora")
    make_adapter(str(smollm2_file), str(d / "a"), r=16, alpha=32,
                 targets=["q_proj", "k_proj", "v_proj", "o_proj"], seed=2, b_std=0.05)
    make_adapter(str(smollm2_file), str(d / "b"), r=8, alpha=16,
                 targets=["q_proj", "v_proj", "o_proj"], seed=5, b_std=0.05)
    return d


@pytest.fixture(scope="module")
def llm(smollm2_file):
    m = llmrt.LLM(smollm2_file, enable_lora=True, max_loras=2, kv_tokens=4096, threads=2)
    yield m
    m.close()


def _llmrt_command():
    """The `llmrt` command of this build: $LLMRT_BIN, build/llmrt, or the wheel's."""
    for cand in (os.environ.get("LLMRT_BIN"), str(REPO / "build" / "llmrt"),
                 shutil.which("llmrt", path=os.path.dirname(sys.executable))):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


def test_import_paths():
    from llmrt.lora.request import LoRARequest as R
    assert R is LoRARequest is llmrt.LoRARequest
    r = LoRARequest("x", 3, "/some/dir")
    assert (r.lora_name, r.lora_int_id, r.lora_path, r.adapter_id) == ("x", 3, "/some/dir", 3)
    assert r == LoRARequest("x", 4, "/else") and hash(r) == hash(LoRARequest("x", 4, "/else"))


def test_bad_requests_are_refused_up_front():
    with pytest.raises(llmrt.InvalidArgument, match="lora_int_id"):
        LoRARequest("x", 0, "/d")
    with pytest.raises(llmrt.InvalidArgument, match="lora_name"):
        LoRARequest("has space", 1, "/d")
    with pytest.raises(llmrt.InvalidArgument, match="lora_path"):
        LoRARequest("x", 1, "")
    with pytest.raises(llmrt.InvalidArgument, match="lora_scale"):
        LoRARequest("x", 1, "/d", lora_scale=float("nan"))


def test_generate_with_an_adapter_differs_and_matches_the_cli(llm, adapters):
    lr = LoRARequest("a", 1, str(adapters / "a"))
    sp = greedy(16, ignore_eos=True)
    base = llm.generate(PROMPT, sp)[0].outputs[0]
    lora = llm.generate(PROMPT, sp, lora_request=lr)[0].outputs[0]
    assert base.token_ids != lora.token_ids and base.text != lora.text
    # one per prompt: None is the base model; the adapter is loaded once and reused
    mixed = llm.generate([PROMPT, PROMPT], sp, lora_request=[None, lr])
    assert mixed[0].outputs[0].token_ids == base.token_ids
    assert mixed[1].outputs[0].token_ids == lora.token_ids
    info = {i["name"]: i for i in llm.list_loras()}
    assert info["a"]["path"] == str(adapters / "a") and info["a"]["n_requests"] >= 2
    assert info["a"]["max_rank"] == 16
    # the command line's unmerged path gives the same text
    cmd = _llmrt_command()
    if cmd is None:
        pytest.skip("no llmrt command to compare with")
    p = subprocess.run([cmd, "generate", "-m", llm._model.path, "-p", PROMPT, "--temperature",
                        "0", "-n", "16", "--ignore-eos", "-t", "2", "--lora-module",
                        f"a={adapters / 'a'}", "--lora-name", "a"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.rstrip("\n") == lora.text


def test_chat_and_stream_with_an_adapter(llm, adapters):
    lr = LoRARequest("a", 1, str(adapters / "a"))
    msgs = [{"role": "user", "content": "Tell me a story."}]
    sp = greedy(12)
    base = llm.chat(msgs, sp)[0].outputs[0].text
    lora = llm.chat(msgs, sp, lora_request=lr)[0].outputs[0].text
    assert lora and lora != base
    assert "".join(o.text for o in llm.chat_stream(msgs, sp, lora_request=lr)) == lora
    assert "".join(o.text for o in llm.stream(PROMPT, sp, lora_request=lr)) == \
        llm.generate(PROMPT, sp, lora_request=lr)[0].outputs[0].text


def test_second_adapter_scale_and_remove(llm, adapters):
    # the greedy text of a weaker adapter may match the base model's: compare log-probabilities
    sp = greedy(12, ignore_eos=True, logprobs=0)
    base = llm.generate(PROMPT, sp)
    a = llm.generate(PROMPT, sp, lora_request=LoRARequest("a", 1, str(adapters / "a")))
    b = llm.generate(PROMPT, sp, lora_request=LoRARequest("b", 2, str(adapters / "b")))
    half = llm.generate(PROMPT, sp, lora_request=LoRARequest("a", 1, str(adapters / "a"),
                                                             lora_scale=0.5))
    lps = [r[0].outputs[0].cumulative_logprob for r in (base, a, b, half)]
    assert len(set(lps)) == 4, lps
    # the same name from another path is refused rather than silently reusing the first
    with pytest.raises(llmrt.InvalidArgument, match="already loaded"):
        llm.generate(PROMPT, sp, lora_request=LoRARequest("b", 2, str(adapters / "a")))
    assert llm.remove_lora("b") is True and llm.remove_lora("b") is False
    assert "b" not in {i["name"] for i in llm.list_loras()}
    again = llm.generate(PROMPT, sp, lora_request=LoRARequest("b", 2, str(adapters / "b")))
    assert again[0].outputs[0].token_ids == b[0].outputs[0].token_ids


def test_bad_path_raises_naming_it(llm, tmp_path):
    missing = tmp_path / "no-such-adapter"
    with pytest.raises(llmrt.LLMRTError) as e:
        llm.generate(PROMPT, greedy(2), lora_request=LoRARequest("m", 9, str(missing)))
    assert str(missing) in str(e.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(llmrt.LLMRTError) as e:
        llm.generate(PROMPT, greedy(2), lora_request=LoRARequest("e", 10, str(empty)))
    assert str(empty) in str(e.value)
    assert {"m", "e"}.isdisjoint(i["name"] for i in llm.list_loras())
    # the LLM still serves
    assert llm.generate(PROMPT, greedy(2))[0].outputs[0].token_ids


def test_lora_needs_enable_lora(smollm2_file, adapters):
    with llmrt.LLM(smollm2_file, kv_tokens=1024, threads=2) as plain:
        with pytest.raises(llmrt.InvalidArgument, match="enable_lora"):
            plain.generate(PROMPT, greedy(2), lora_request=LoRARequest("a", 1, str(adapters / "a")))
        assert plain.generate(PROMPT, greedy(2))[0].outputs[0].token_ids
    with pytest.raises(llmrt.InvalidArgument, match="max_loras"):
        llmrt.LLM(smollm2_file, enable_lora=True, max_loras=0)
    with pytest.raises(llmrt.InvalidArgument, match="rank"):
        with llmrt.LLM(smollm2_file, enable_lora=True, max_lora_rank=8, kv_tokens=1024,
                       threads=2) as small:
            small.generate(PROMPT, greedy(2), lora_request=LoRARequest("a", 1, str(adapters / "a")))


def test_async_with_an_adapter(smollm2_file, adapters, llm):
    lr = LoRARequest("a", 1, str(adapters / "a"))
    want = llm.generate(PROMPT, greedy(8, ignore_eos=True), lora_request=lr)[0].outputs[0].text

    async def run(a):
        return "".join([o.text async for o in a.generate(PROMPT, greedy(8, ignore_eos=True),
                                                         lora_request=lr)])

    with llmrt.AsyncLLM(smollm2_file, enable_lora=True, kv_tokens=1024, threads=2) as a:
        assert asyncio.run(run(a)) == want
