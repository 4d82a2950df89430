"""Errors map to exception classes that carry the C library's message."""

import os

import pytest

import llmrt
from conftest import DATA, greedy


def test_missing_model_path(tmp_path):
    missing = tmp_path / "no_such_model.gguf"
    with pytest.raises(llmrt.LLMRTIOError) as ei:
        llmrt.LLM(missing)
    e = ei.value
    assert str(missing) in str(e) and str(missing) in e.message
    assert e.status == llmrt.Status.IO
    assert isinstance(e, llmrt.LLMRTError) and isinstance(e, OSError)


def test_missing_config_in_dir(tmp_path):
    with pytest.raises(llmrt.LLMRTIOError, match="config.json"):
        llmrt.LLM(tmp_path)


def test_bad_gguf_is_format_error(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"NOPE" + bytes(60))
    with pytest.raises(llmrt.FormatError) as ei:
        llmrt.LLM(bad)
    assert str(bad) in str(ei.value)


@pytest.mark.parametrize("kw,field", [
    (dict(temperature=-1.0), "temperature"),
    (dict(top_p=0.0), "top_p"),
    (dict(top_p=1.5), "top_p"),
    (dict(top_k=-7), "top_k"),
    (dict(min_p=2.0), "min_p"),
    (dict(repetition_penalty=0.0), "repetition_penalty"),
    (dict(presence_penalty=3.0), "presence_penalty"),
    (dict(frequency_penalty=-3.0), "frequency_penalty"),
    (dict(max_tokens=0), "max_tokens"),
    (dict(min_tokens=-1), "min_tokens"),
    (dict(max_tokens=2, min_tokens=5), "min_tokens"),
    (dict(logprobs=21), "logprobs"),
    (dict(stop_token_ids=[10**6]), "stop_token_ids"),
    (dict(logit_bias={320: 1.0}), "logit_bias"),
    (dict(logit_bias={5: 100.5}), "logit_bias"),
])
def test_bad_sampling_params_name_the_field(tiny, kw, field):
    with pytest.raises(llmrt.InvalidArgument, match=field) as ei:
        tiny.generate([[1, 2, 3]], llmrt.SamplingParams(**kw))
    assert ei.value.status == llmrt.Status.INVALID_ARG
    assert isinstance(ei.value, ValueError)
    assert tiny.metrics()["n_waiting"] == 0  # nothing left queued


@pytest.mark.parametrize("kw,field", [
    (dict(temperature="hot"), "temperature"),
    (dict(max_tokens=1.5), "max_tokens"),
    (dict(seed=-1), "seed"),
    (dict(stop=[1]), "stop"),
    (dict(stop_token_ids="abc"), "stop_token_ids"),
    (dict(ignore_eos="yes"), "ignore_eos"),
    (dict(logit_bias=[1, 2]), "logit_bias"),
    (dict(logit_bias={"x1": 1.0}), "logit_bias"),
    (dict(logit_bias={"9" * 5000: 1.0}), "logit_bias"),
    (dict(logit_bias={1.5: 1.0}), "logit_bias"),
    (dict(logit_bias={1: None}), "logit_bias"),
    (dict(logit_bias={1: "a"}), "logit_bias"),
])
def test_sampling_param_types(kw, field):
    with pytest.raises(llmrt.InvalidArgument, match=f"SamplingParams.{field}"):
        llmrt.SamplingParams(**kw)


def test_failed_batch_submits_nothing(tiny):
    # a value out of its range is refused before anything is submitted
    before = tiny.metrics()
    with pytest.raises(llmrt.InvalidArgument, match="top_p"):
        tiny.generate([[1, 2], [1, 3]], [greedy(4), llmrt.SamplingParams(top_p=0.0)])
    after = tiny.metrics()
    assert after["n_waiting"] == after["n_running"] == 0
    assert after["requests_finished"] == before["requests_finished"]
    # one the library refuses at submit (min_tokens > max_tokens): the first, submitted, aborted
    before = after
    with pytest.raises(llmrt.InvalidArgument, match="min_tokens"):
        tiny.generate([[1, 2], [1, 3]],
                      [greedy(4), llmrt.SamplingParams(max_tokens=2, min_tokens=5)])
    after = tiny.metrics()
    assert after["n_waiting"] == after["n_running"] == 0
    assert after["requests_finished"] == before["requests_finished"] + 1  # the first, aborted
    assert after["requests_aborted"] == before["requests_aborted"] + 1


def test_engine_args():
    path = DATA / "tiny" / "llama_f32"
    with pytest.raises(TypeError, match="bogus"):
        llmrt.LLM(path, bogus=1)
    with pytest.raises(llmrt.InvalidArgument, match="kv_policy"):
        llmrt.LLM(path, kv_policy="sometimes")
    with pytest.raises(llmrt.InvalidArgument, match="max_seqs"):
        llmrt.LLM(path, max_seqs=0)
    with pytest.raises(llmrt.InvalidArgument, match="load_format"):
        llmrt.LLM(path, load_format="onnx")
    with pytest.raises(llmrt.InvalidArgument, match="threads"):
        llmrt.LLM(path, threads="many")
    with pytest.raises(llmrt.InvalidArgument, match="kv_cache_dtype"):
        llmrt.LLM(path, kv_cache_dtype="fp4")


def test_kv_cache_dtype():
    """An 8-bit or bf16 KV cache: the same engine API; greedy tokens close to the default cache's
    (the tiny model's logits move by a few % of their range: test_kv_dtype_smollm2.c), and not
    identical logits (the 8-bit / bf16 path ran)."""
    path = DATA / "tiny" / "llama_f32"
    prompt = {"prompt_token_ids": [1, 17, 42, 99, 5, 230, 64, 11]}
    sp = llmrt.SamplingParams(temperature=0, max_tokens=8, ignore_eos=True, logprobs=1)
    with llmrt.LLM(path, threads=1) as ref_llm:
        ref = ref_llm.generate([prompt], sp)[0].outputs[0]
    for kv in ("int8", "fp8", "fp8_e4m3", "bf16"):
        with llmrt.LLM(path, threads=1, kv_cache_dtype=kv) as llm:
            out = llm.generate([prompt], sp)[0].outputs[0]
        assert len(out.token_ids) == 8
        assert out.token_ids[0] == ref.token_ids[0], kv
        first_ref = ref.logprobs[0][ref.token_ids[0]].logprob
        first = out.logprobs[0][out.token_ids[0]].logprob
        assert first != first_ref and abs(first - first_ref) < 0.5, (kv, first, first_ref)
    # "fp32" is the exact-mode default's cache: the same logprobs to the bit
    with llmrt.LLM(path, threads=1, kv_cache_dtype="fp32") as llm:
        out = llm.generate([prompt], sp)[0].outputs[0]
    assert out.token_ids == ref.token_ids
    assert [lp[t].logprob for lp, t in zip(out.logprobs, out.token_ids)] == \
        [lp[t].logprob for lp, t in zip(ref.logprobs, ref.token_ids)]


def test_prompt_errors(tiny):
    with pytest.raises(llmrt.InvalidArgument, match="outside the vocabulary"):
        tiny.generate([[1, 400]], greedy(1))
    with pytest.raises(llmrt.InvalidArgument, match="context"):
        tiny.generate([[1] * 256], greedy(1))
    with pytest.raises(llmrt.InvalidArgument, match="empty"):
        tiny.stream([], greedy(1))


def test_prompt_too_big_for_kv_pool():
    with llmrt.LLM(DATA / "tiny" / "llama_f32", kv_tokens=16, threads=1) as llm:
        with pytest.raises(llmrt.NoKVSpace, match="KV"):
            llm.generate([[1] * 20], greedy(1))
    with llmrt.LLM(DATA / "tiny" / "llama_f32", kv_tokens=32, kv_policy="reserve") as llm:
        with pytest.raises(llmrt.NoKVSpace, match="reserve"):
            llm.generate([[1] * 20], greedy(20))
        assert len(llm.generate([[1] * 20], greedy(12))[0].outputs[0].token_ids) <= 12


def test_closed_llm():
    llm = llmrt.LLM(DATA / "tiny" / "llama_f32", kv_tokens=64, threads=1)
    llm.close()
    llm.close()  # idempotent
    with pytest.raises(llmrt.LLMRTError, match="closed"):
        llm.generate([[1, 2]], greedy(1))
    with pytest.raises(llmrt.LLMRTError, match="closed"):
        llm.logits([1, 2])


def test_error_classes():
    assert issubclass(llmrt.OutOfMemory, MemoryError)
    assert issubclass(llmrt.NotFound, LookupError)
    for cls in (llmrt.InvalidArgument, llmrt.LLMRTIOError, llmrt.FormatError, llmrt.Unsupported,
                llmrt.OutOfMemory, llmrt.ModelMismatch, llmrt.NoKVSpace, llmrt.BackendError,
                llmrt.EngineDead, llmrt.Aborted, llmrt.InternalError, llmrt.BufferTooSmall,
                llmrt.NotFound):
        assert issubclass(cls, llmrt.LLMRTError)
        e = cls("msg")
        assert e.status == cls.status and "msg" in str(e)


def test_cpu_pin_threads():
    """cpu_pin_threads binds the CPU threads one per allowed CPU (the stepping thread included:
    its mask is restored afterwards so that later tests keep every CPU); more threads than CPUs
    and a non-bool value are refused by name."""
    path = DATA / "tiny" / "llama_f32"
    allowed = os.sched_getaffinity(0)
    try:
        with llmrt.LLM(path, threads=1, cpu_pin_threads=True) as llm:
            out = llm.generate([[1, 2, 3]], llmrt.SamplingParams(temperature=0, max_tokens=2))
            assert len(out[0].outputs[0].token_ids) == 2
            assert os.sched_getaffinity(0) == {min(allowed)}  # thread 0 -> the first CPU
    finally:
        os.sched_setaffinity(0, allowed)
    with pytest.raises(llmrt.InvalidArgument, match="cpu_pin_threads"):
        llmrt.LLM(path, threads=len(allowed) + 1, cpu_pin_threads=True)
    with pytest.raises(llmrt.InvalidArgument, match="cpu_pin_threads"):
        llmrt.LLM(path, threads=1, cpu_pin_threads="yes")
