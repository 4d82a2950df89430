"""`llmrt serve` with LoRA adapters (issue 15), as vLLM serves them: `--lora-module NAME=PATH`
makes NAME a served model, "model": NAME selects the adapter, /v1/models lists the base model and
each adapter (parent = the base model's id), an unknown model is a 404 naming it and listing what
is served, POST /v1/load_lora_adapter and /v1/unload_lora_adapter exist only with
--allow-lora-runtime-updates, and /metrics has per-adapter series.

The adapters are random PEFT adapters written by tests/tools/make_random_lora.py for the default
model (non-zero B, so the text changes). Environment as tests/server/test_server.py."""
import json
import os
import subprocess
import sys

import openai
import pytest

from test_server import BIN, KEY, MODEL, NAME, Server

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from make_random_lora import make_adapter  # noqa: E402

PROMPT = "Once upon a time"
GREEDY = dict(max_tokens=16, temperature=0, extra_body={"ignore_eos": True})


@pytest.fixture(scope="module")
def adapters(tmp_path_factory):
    d = tmp_path_factory.mktemp("lora")
    a, b = str(d / "a"), str(d / "b")
    make_adapter(MODEL, a, r=16, alpha=32, targets=["q_proj", "k_proj", "v_proj", "o_proj"],
                 seed=2, b_std=0.05)
    make_adapter(MODEL, b, r=8, alpha=16, targets=["q_proj", "v_proj", "o_proj"], seed=5,
                 b_std=0.05)
    return {"a": a, "b": b, "dir": str(d)}


@pytest.fixture(scope="module")
def srv(adapters):
    s = Server("--lora-module", f"a={adapters['a']}", "--allow-lora-runtime-updates")
    yield s
    assert s.stop() == 0


def complete(srv, model):
    return srv.client().completions.create(model=model, prompt=PROMPT, **GREEDY)


def test_models_lists_base_and_adapters(srv, adapters):
    status, text, _ = srv.request("GET", "/v1/models")
    assert status == 200
    data = json.loads(text)["data"]
    assert [m["id"] for m in data] == [NAME, "a"]
    assert data[0]["parent"] is None and data[0]["root"] == MODEL
    assert data[1]["parent"] == NAME and data[1]["root"] == adapters["a"]
    assert data[1]["object"] == "model" and data[1]["max_model_len"] == data[0]["max_model_len"]
    assert [m.id for m in srv.client().models.list().data] == [NAME, "a"]


def test_model_name_selects_the_adapter(srv, adapters):
    base = complete(srv, NAME)
    lora = complete(srv, "a")
    assert base.model == NAME and lora.model == "a"
    assert base.choices[0].text and lora.choices[0].text
    assert base.choices[0].text != lora.choices[0].text
    # omitting "model" (raw HTTP) is the base model too
    status, text, _ = srv.request("POST", "/v1/completions",
                                  {"prompt": PROMPT, "max_tokens": 16, "temperature": 0,
                                   "ignore_eos": True})
    assert status == 200 and json.loads(text)["choices"][0]["text"] == base.choices[0].text
    # the same text as the command line's --lora-module a=DIR --lora-name a
    cli = subprocess.run([BIN, "generate", "-m", MODEL, "-p", PROMPT, "--temperature", "0",
                          "-n", "16", "--ignore-eos", "-t", "2", "--lora-module",
                          f"a={adapters['a']}", "--lora-name", "a"],
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.rstrip("\n") == lora.choices[0].text


def test_chat_and_stream_with_the_adapter(srv):
    msgs = [{"role": "user", "content": "Tell me a story."}]
    c = srv.client()
    r = c.chat.completions.create(model="a", messages=msgs, max_tokens=12, temperature=0)
    assert r.model == "a" and r.choices[0].message.content
    chunks = list(c.chat.completions.create(model="a", messages=msgs, max_tokens=12,
                                            temperature=0, stream=True))
    assert all(ch.model == "a" for ch in chunks)
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == \
        r.choices[0].message.content
    base = c.chat.completions.create(model=NAME, messages=msgs, max_tokens=12, temperature=0)
    assert base.choices[0].message.content != r.choices[0].message.content


def test_unknown_model_is_404_listing_the_served_ones(srv):
    with pytest.raises(openai.NotFoundError) as e:
        srv.client().completions.create(model="no-such-adapter", prompt="Hi", max_tokens=2)
    err = e.value.body
    assert err["code"] == "model_not_found" and err["param"] == "model"
    assert "no-such-adapter" in err["message"]
    assert f"`{NAME}`" in err["message"] and "`a`" in err["message"]
    status, _, _ = srv.request("POST", "/tokenize", {"model": "a", "prompt": "Hi"})
    assert status == 200


def test_runtime_load_and_unload(srv, adapters):
    load = lambda body: srv.request("POST", "/v1/load_lora_adapter", body)
    unload = lambda body: srv.request("POST", "/v1/unload_lora_adapter", body)
    status, text, r = load({"lora_name": "b", "lora_path": adapters["b"]})
    assert status == 200 and "Success" in text and "'b'" in text
    assert r.getheader("Content-Type").startswith("text/plain")
    assert [m.id for m in srv.client().models.list().data] == [NAME, "a", "b"]
    b = complete(srv, "b")
    assert b.model == "b" and b.choices[0].text != complete(srv, "a").choices[0].text
    # loaded twice, the base model's name, a path that is no adapter, a bad name, an extra field
    status, text, _ = load({"lora_name": "b", "lora_path": adapters["b"]})
    assert status == 400 and "already been loaded" in text
    status, text, _ = load({"lora_name": NAME, "lora_path": adapters["b"]})
    assert status == 400 and json.loads(text)["error"]["param"] == "lora_name"
    missing = os.path.join(adapters["dir"], "missing")
    status, text, _ = load({"lora_name": "c", "lora_path": missing})
    assert status == 400 and missing in json.loads(text)["error"]["message"]
    status, text, _ = load({"lora_name": "has space", "lora_path": adapters["b"]})
    assert status == 400 and json.loads(text)["error"]["param"] == "lora_name"
    status, text, _ = load({"lora_name": "d", "lora_path": adapters["b"], "x": 1})
    assert status == 400 and json.loads(text)["error"]["param"] == "x"
    # unloaded: no longer served
    status, text, _ = unload({"lora_name": "b"})
    assert status == 200 and "removed" in text
    assert [m.id for m in srv.client().models.list().data] == [NAME, "a"]
    with pytest.raises(openai.NotFoundError):
        complete(srv, "b")
    status, text, _ = unload({"lora_name": "b"})
    assert status == 404 and "'b'" in json.loads(text)["error"]["message"]
    # authentication applies to these routes as to every /v1 one
    status, _, _ = srv.request("POST", "/v1/load_lora_adapter",
                               {"lora_name": "e", "lora_path": adapters["b"]}, key="wrong")
    assert status == 401
    status, _, r = srv.request("GET", "/v1/load_lora_adapter")
    assert status == 405 and r.getheader("Allow") == "POST"


def test_metrics_per_adapter(srv):
    complete(srv, "a")
    m = srv.metrics()
    assert m['llmrt_lora_requests_total{adapter="a"}'] >= 1
    assert m['llmrt_lora_loads_total{adapter="a"}'] >= 1
    assert m['llmrt_lora_resident{adapter="a"}'] in (0, 1)
    assert m['llmrt_lora_bytes{adapter="a"}'] > 0
    _, text, _ = srv.request("GET", "/metrics")
    assert "# TYPE llmrt_lora_requests_total counter" in text
    assert "# TYPE llmrt_lora_resident gauge" in text
    assert m['llmrt_lora_generated_tokens_total{adapter="a"}'] >= 16


def test_runtime_updates_need_the_flag(adapters):
    s = Server("--lora-module", f"a={adapters['a']}")
    try:
        for path, body in (("/v1/load_lora_adapter", {"lora_name": "b",
                                                       "lora_path": adapters["b"]}),
                           ("/v1/unload_lora_adapter", {"lora_name": "a"})):
            status, text, _ = s.request("POST", path, body)
            assert status == 404 and "--allow-lora-runtime-updates" in text
        # the adapter of --lora-module is still served
        assert [m.id for m in s.client().models.list().data] == [NAME, "a"]
        status, _, _ = s.request("GET", "/metrics")
        assert status == 200
    finally:
        assert s.stop() == 0


def test_bad_lora_module_fails_at_start(adapters, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    a = adapters["a"]
    for args, word in ((["--lora-module", f"x={empty}"], str(empty)),
                       (["--lora-module", f"{NAME}={a}"], "--lora-module"),
                       (["--lora-module", f"a={a}", "--lora-name", "a"], "--lora-name")):
        p = subprocess.run([BIN, "serve", "-m", MODEL, "--port", "0", "-t", "2",
                            "--served-model-name", NAME, *args],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode != 0 and word in p.stderr, (args, p.stderr)
