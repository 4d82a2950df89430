"""`llmrt serve` against its own GET /openapi.json, driven by schemathesis (PyPI): requests
generated from the document, valid and invalid, for a bounded number of cases per operation.

Checked: no 5xx and no crash (the server still answers and exits 0 on SIGTERM), every response's
status, content type, headers and body conform to the document, schema-violating requests are
rejected, authentication is enforced, undeclared methods get 405 with Allow. Not checked:
"schema-valid request accepted" (positive_data_acceptance), because some rules span fields and a
JSON schema cannot say them (min_tokens <= max_tokens, a prompt that fits the context), and
response times (a 2-core CI machine).

The server runs with a small KV pool (--kv-tokens 256) so that a generated max_tokens of 10^9
with n = 16 still ends in seconds. The seed is fixed so a failure reproduces; LLMRT_ST_SEED and
LLMRT_ST_EXAMPLES override it for a longer local hunt.

The model is the tiny llama_f32 checkpoint widened to the Llama 3 vocabulary, with that
tokenizer and its chat template (tests/chat_tool_model.py): what is checked is the HTTP surface,
which does not depend on the weights, and SmolLM2 spent ~260 of the test's CPU seconds (of ~280,
2 cores) generating text. LLMRT_ST_MODEL names another model directory for a local run.

Environment: LLMRT_BIN (the llmrt command), LLMRT_ST_MODEL (optional)."""
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BIN = os.environ.get("LLMRT_BIN", "build/llmrt")
TESTS = pathlib.Path(__file__).resolve().parents[1]
KEY = "sk-llmrt-schemathesis"
CHECKS_OFF = "positive_data_acceptance"


def tiny_model(scratch):
    """the widened tiny checkpoint in scratch, with the Llama 3 tokenizer's own chat template"""
    sys.path.insert(0, str(TESTS))
    from chat_tool_model import make_model, widen_checkpoint
    weights = pathlib.Path(scratch) / "model.safetensors"
    widen_checkpoint(weights)
    config = TESTS / "data" / "tokenizers" / "llama3" / "tokenizer_config.json"
    template = json.loads(config.read_text())["chat_template"]
    return str(make_model(pathlib.Path(scratch) / "model", weights, template))


def main():
    st = shutil.which("schemathesis") or shutil.which("st")
    if not st:
        print("schemathesis is not installed (pip install schemathesis; .ci/setup does)")
        return 1
    with tempfile.TemporaryDirectory() as scratch:
        return run(st, os.environ.get("LLMRT_ST_MODEL") or tiny_model(scratch))


def run(st, model):
    srv = subprocess.Popen([BIN, "serve", "-m", model, "--port", "0", "-t", "2", "--api-key", KEY,
                            "--kv-tokens", "256", "--max-body-bytes", "65536",
                            # the LoRA load/unload routes too (generated paths name no adapter)
                            "--allow-lora-runtime-updates"],
                           stderr=subprocess.PIPE, text=True)
    port, deadline = None, time.time() + 60
    while time.time() < deadline and port is None:
        line = srv.stderr.readline()
        if not line:
            break
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        port = int(m.group(1)) if m else None
    if port is None:
        srv.kill()
        print("the server did not start")
        return 1
    base = f"http://127.0.0.1:{port}"
    cmd = [st, "run", base + "/openapi.json", "-H", f"Authorization: Bearer {KEY}",
           "--checks", "all", "--exclude-checks", CHECKS_OFF,
           "--max-examples", os.environ.get("LLMRT_ST_EXAMPLES", "25"),
           "--seed", os.environ.get("LLMRT_ST_SEED", "20261206"),
           "--request-timeout", "120", "--max-response-time", "600", "--no-color"]
    print(" ".join(cmd), flush=True)
    # in a scratch directory: schemathesis leaves a .schemathesis/ cache where it runs
    with tempfile.TemporaryDirectory() as scratch:
        rc = subprocess.call(cmd, env={**os.environ, "SCHEMATHESIS_HOOKS": ""}, cwd=scratch)
    alive = srv.poll() is None
    srv.send_signal(signal.SIGTERM)
    try:
        code = srv.wait(60)
    except subprocess.TimeoutExpired:
        srv.kill()
        code = "hung on SIGTERM"
    err = srv.stderr.read()
    print(f"schemathesis exit {rc}; server alive after the run: {alive}; server exit {code}")
    if rc != 0 or not alive or code != 0:
        print(err[-4000:])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
