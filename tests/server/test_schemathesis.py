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

Environment: LLMRT_BIN, LLMRT_SERVER_MODEL (as tests/server/test_server.py)."""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BIN = os.environ.get("LLMRT_BIN", "build/llmrt")
MODEL = os.environ.get("LLMRT_SERVER_MODEL", "")
KEY = "sk-llmrt-schemathesis"
CHECKS_OFF = "positive_data_acceptance"


def main():
    st = shutil.which("schemathesis") or shutil.which("st")
    if not MODEL or not os.path.exists(MODEL):
        print("SKIP: no model (LLMRT_SERVER_MODEL)")
        return 77
    if not st:
        print("schemathesis is not installed (pip install schemathesis; .ci/setup does)")
        return 1
    srv = subprocess.Popen([BIN, "serve", "-m", MODEL, "--port", "0", "-t", "2", "--api-key", KEY,
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
