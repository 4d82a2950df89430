"""`llmrt serve` end to end: a real server process on a free port, driven by the real `openai`
Python client (PyPI) and by raw HTTP (http.client) where the client cannot say what is checked.

Environment: LLMRT_BIN (the llmrt command), LLMRT_SERVER_MODEL (a model with a tokenizer and a chat
template; the tests' default SmolLM2 GGUF). Run by ctest (tests/CMakeLists.txt, label model)."""
import http.client
import json
import os
import re
import signal
import subprocess
import time

import openai
import pytest

BIN = os.environ.get("LLMRT_BIN", "build/llmrt")
MODEL = os.environ.get("LLMRT_SERVER_MODEL", "")
KEY = "sk-llmrt-test"
NAME = "smol"

if not MODEL or not os.path.exists(MODEL):
    pytest.skip("no model (LLMRT_SERVER_MODEL)", allow_module_level=True)


class Server:
    def __init__(self, *extra, env=None):
        self.proc = subprocess.Popen(
            [BIN, "serve", "-m", MODEL, "--port", "0", "-t", "2", "--api-key", KEY,
             "--served-model-name", NAME, "--max-body-bytes", "65536", *extra],
            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
        self.log = []
        deadline = time.time() + 60
        self.port = None
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.append(line)
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+) \(model (.*)\)", line)
            if m:
                self.port = int(m.group(1))
                assert m.group(2) == NAME
                break
        assert self.port, "server did not start:\n" + "".join(self.log)
        self.base = f"http://127.0.0.1:{self.port}"

    def client(self, key=KEY):
        return openai.OpenAI(base_url=self.base + "/v1", api_key=key, max_retries=0, timeout=60)

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def request(self, method, path, body=None, key=KEY, raw=None):
        c = self.conn()
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = "Bearer " + key
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        c.request(method, path, body=data, headers=headers)
        r = c.getresponse()
        text = r.read().decode()
        c.close()
        return r.status, text, r

    def metrics(self):
        _, text, _ = self.request("GET", "/metrics")
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture(scope="module")
def srv():
    s = Server()
    yield s
    assert s.stop() == 0


MSG = [{"role": "user", "content": "What is the capital of France?"}]


def test_chat(srv):
    r = srv.client().chat.completions.create(model=NAME, messages=MSG, max_tokens=16, temperature=0)
    assert r.object == "chat.completion" and r.model == NAME
    assert r.choices[0].index == 0 and r.choices[0].message.role == "assistant"
    assert "Paris" in r.choices[0].message.content
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 0 and 0 < r.usage.completion_tokens <= 16
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    # the same conversation again: its prompt comes from the prefix cache
    r2 = srv.client().chat.completions.create(model=NAME, messages=MSG, max_tokens=4, temperature=0)
    assert r2.usage.prompt_tokens_details.cached_tokens > 0


def test_chat_content_parts(srv):
    msgs = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "What is the capital of "},
                                         {"type": "text", "text": "France?"}]}]
    r = srv.client().chat.completions.create(model=NAME, messages=msgs, max_tokens=12, temperature=0)
    assert r.choices[0].message.content


def test_chat_stream(srv):
    chunks = list(srv.client().chat.completions.create(
        model=NAME, messages=MSG, max_tokens=16, temperature=0, stream=True,
        stream_options={"include_usage": True}))
    assert chunks[0].object == "chat.completion.chunk"
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals in (["stop"], ["length"])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    full = srv.client().chat.completions.create(model=NAME, messages=MSG, max_tokens=16, temperature=0)
    assert text == full.choices[0].message.content


def test_completions(srv):
    c = srv.client()
    r = c.completions.create(model=NAME, prompt="The capital of France is", max_tokens=8, temperature=0)
    assert r.object == "text_completion" and r.choices[0].text
    streamed = "".join(ch.choices[0].text for ch in c.completions.create(
        model=NAME, prompt="The capital of France is", max_tokens=8, temperature=0, stream=True)
        if ch.choices)
    assert streamed == r.choices[0].text
    # a list of prompts, and token ids
    r = c.completions.create(model=NAME, prompt=["Hello", "One, two,"], max_tokens=3, temperature=0)
    assert sorted(ch.index for ch in r.choices) == [0, 1]
    _, text, _ = srv.request("POST", "/tokenize", {"prompt": "The capital of France is",
                                                   "add_special_tokens": False})
    ids = json.loads(text)["tokens"]
    r2 = c.completions.create(model=NAME, prompt=ids, max_tokens=8, temperature=0)
    assert r2.choices[0].text == c.completions.create(
        model=NAME, prompt="The capital of France is", max_tokens=8, temperature=0).choices[0].text


def test_n3(srv):
    r = srv.client().chat.completions.create(model=NAME, messages=MSG, max_tokens=6, n=3,
                                             temperature=1, seed=7)
    assert sorted(c.index for c in r.choices) == [0, 1, 2]
    chunks = list(srv.client().completions.create(model=NAME, prompt="Once upon a time", n=3,
                                                   max_tokens=4, seed=3, stream=True))
    assert {c.choices[0].index for c in chunks if c.choices} == {0, 1, 2}
    # n = 3 is one engine request: the prompt is prefilled once, not three times
    before = srv.metrics()["llmrt_prompt_tokens_total"]
    r = srv.client().completions.create(model=NAME, prompt="Zebras in Oslo count %d stars" % time.time_ns(),
                                        n=3, max_tokens=5, temperature=1, seed=11)
    computed = srv.metrics()["llmrt_prompt_tokens_total"] - before
    assert sorted(c.index for c in r.choices) == [0, 1, 2]
    assert computed == r.usage.prompt_tokens - r.usage.prompt_tokens_details.cached_tokens
    assert computed < 2 * r.usage.prompt_tokens
    assert r.usage.completion_tokens == r.usage.total_tokens - r.usage.prompt_tokens >= 3


def test_logprobs(srv):
    r = srv.client().chat.completions.create(model=NAME, messages=MSG, max_tokens=6, temperature=0,
                                             logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    for t in content:
        assert t.logprob <= 0 and len(t.top_logprobs) == 3
        assert t.top_logprobs[0].logprob >= t.top_logprobs[-1].logprob
    # greedy: the chosen token is the most likely one
    assert content[0].token == content[0].top_logprobs[0].token
    r = srv.client().completions.create(model=NAME, prompt="The capital of France is",
                                        max_tokens=4, temperature=0, logprobs=2)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 4
    assert "".join(lp.tokens) == r.choices[0].text


def test_logit_bias(srv):
    """OpenAI's logit_bias through the openai client: banning the greedy first token gives the
    token ranked second by the raw top_logprobs; +100 forces a token at every step (both
    endpoints); bad keys, values and ids are 400s naming the field."""
    c = srv.client()
    plain = c.chat.completions.create(model=NAME, messages=MSG, max_tokens=3, temperature=0,
                                      logprobs=True, top_logprobs=2)
    first = plain.choices[0].logprobs.content[0]
    tok = lambda s: srv.request("POST", "/tokenize", {"prompt": s, "add_special_tokens": False})
    status, text, _ = tok(first.token)
    ids = json.loads(text)["tokens"]
    assert status == 200 and len(ids) == 1
    banned = c.chat.completions.create(model=NAME, messages=MSG, max_tokens=3, temperature=0,
                                       logprobs=True, logit_bias={str(ids[0]): -100})
    assert banned.choices[0].logprobs.content[0].token == first.top_logprobs[1].token
    status, text, _ = tok(" Paris")
    paris = json.loads(text)["tokens"]
    assert len(paris) == 1
    r = c.completions.create(model=NAME, prompt="1, 2, 3,", max_tokens=3, temperature=0,
                             logit_bias={str(paris[0]): 100})
    assert r.choices[0].text == " Paris" * 3
    for bias, needle in [({"abc": 1}, "keys"), ({"5": 101}, "[-100, 100]"), ([1], "object"),
                         ({"99999999": 1}, "out of range")]:
        status, text, _ = srv.request("POST", "/v1/chat/completions",
                                      {"model": NAME, "messages": MSG, "logit_bias": bias})
        err = json.loads(text)["error"]
        assert status == 400 and err["param"] == "logit_bias" and needle in err["message"], text


def test_stop_strings(srv):
    c = srv.client()
    full = c.completions.create(model=NAME, prompt="1, 2, 3, 4,", max_tokens=16, temperature=0)
    text = full.choices[0].text
    assert len(text) > 4
    stop = text[3:5]
    r = c.completions.create(model=NAME, prompt="1, 2, 3, 4,", max_tokens=16, temperature=0,
                             stop=[stop, "never-there"])
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].text == text[:text.index(stop)]


def test_seed(srv):
    c = srv.client()
    kw = dict(model=NAME, messages=MSG, max_tokens=12, temperature=1.0, seed=1234)
    a = c.chat.completions.create(**kw).choices[0].message.content
    b = c.chat.completions.create(**kw).choices[0].message.content
    assert a == b


def test_errors(srv):
    c = srv.client()
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model=NAME, messages=MSG, response_format={"type": "json_object"})
    assert "response_format" in str(e.value) and e.value.body["param"] == "response_format"
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model=NAME, messages=MSG, temperature=5)
    assert e.value.body["param"] == "temperature"
    with pytest.raises(openai.NotFoundError) as e:
        c.chat.completions.create(model="gpt-4o", messages=MSG)
    assert e.value.code == "model_not_found"
    with pytest.raises(openai.AuthenticationError):
        srv.client(key="sk-wrong").chat.completions.create(model=NAME, messages=MSG)
    status, _, _ = srv.request("POST", "/v1/completions", {"prompt": "x"}, key=None)
    assert status == 401
    status, text, _ = srv.request("POST", "/v1/completions", raw="{\"prompt\": ")
    assert status == 400 and json.loads(text)["error"]["message"]


def test_body_too_large(srv):
    status, text, _ = srv.request("POST", "/v1/completions", raw="x" * 200000)
    assert status == 413 and "error" in json.loads(text)


def test_endpoints(srv):
    status, text, _ = srv.request("GET", "/health", key=None)
    assert status == 200
    assert [m.id for m in srv.client().models.list()] == [NAME]
    m = srv.metrics()
    assert "llmrt_requests_running" in m and "llmrt_kv_blocks_used" in m
    assert any(k.startswith('llmrt_http_requests_total{code="200"}') for k in m)
    status, text, _ = srv.request("GET", "/openapi.json", key=None)
    doc = json.loads(text)
    assert doc["openapi"].startswith("3.") and "/v1/chat/completions" in doc["paths"]


def test_tokenize_round_trip(srv):
    text = "Hello, world! Ünïcödé ✓"
    status, body, _ = srv.request("POST", "/tokenize", {"model": NAME, "prompt": text,
                                                        "add_special_tokens": False,
                                                        "return_token_strs": True})
    assert status == 200
    tok = json.loads(body)
    assert tok["count"] == len(tok["tokens"]) == len(tok["token_strs"]) and tok["max_model_len"] > 0
    status, body, _ = srv.request("POST", "/detokenize", {"tokens": tok["tokens"]})
    assert status == 200 and json.loads(body)["prompt"] == text
    status, body, _ = srv.request("POST", "/tokenize", {"messages": MSG})
    assert status == 200 and json.loads(body)["count"] > 5


def wait_idle(srv, kv_idle, seconds=5.0):
    deadline = time.time() + seconds
    while time.time() < deadline:
        m = srv.metrics()
        if m["llmrt_requests_running"] == 0 and m["llmrt_requests_waiting"] == 0 and \
                m["llmrt_kv_blocks_used"] == kv_idle:
            return m
        time.sleep(0.1)
    pytest.fail(f"the request was not freed: {m}")


def test_disconnect_aborts(srv):
    kv_idle = srv.metrics()["llmrt_kv_blocks_used"]
    aborted = srv.metrics()["llmrt_requests_aborted_total"]
    c = srv.conn()
    c.request("POST", "/v1/chat/completions",
              body=json.dumps({"messages": MSG, "max_tokens": 3000, "ignore_eos": True,
                               "stream": True}),
              headers={"Authorization": "Bearer " + KEY, "Content-Type": "application/json"})
    r = c.getresponse()
    assert r.status == 200
    got = b""
    while got.count(b"data: ") < 4:
        got += r.read1(4096)
    c.sock.shutdown(2)
    c.close()
    m = wait_idle(srv, kv_idle)
    assert m["llmrt_requests_aborted_total"] == aborted + 1


def test_disconnect_non_streaming_aborts(srv):
    kv_idle = srv.metrics()["llmrt_kv_blocks_used"]
    aborted = srv.metrics()["llmrt_requests_aborted_total"]
    c = srv.conn()
    c.request("POST", "/v1/completions",
              body=json.dumps({"prompt": "Once upon a time", "max_tokens": 3000,
                               "ignore_eos": True}),
              headers={"Authorization": "Bearer " + KEY, "Content-Type": "application/json"})
    deadline = time.time() + 10
    while srv.metrics()["llmrt_requests_running"] == 0 and time.time() < deadline:
        time.sleep(0.05)
    c.sock.shutdown(2)
    c.close()
    m = wait_idle(srv, kv_idle)
    assert m["llmrt_requests_aborted_total"] == aborted + 1


def test_limits_and_sigterm_drain():
    # --drain-timeout: slow (sanitizer) builds must not hit it
    s = Server("--drain-timeout", "300", "--max-concurrency", "1")
    try:
        c = s.conn()
        c.request("POST", "/v1/completions",
                  body=json.dumps({"prompt": "Once upon a time", "max_tokens": 48,
                                   "ignore_eos": True, "stream": True}),
                  headers={"Authorization": "Bearer " + KEY, "Content-Type": "application/json"})
        r = c.getresponse()
        got = r.read1(4096)
        # one request in flight at most: the next one is told to come back
        status, text, resp = s.request("POST", "/v1/completions", {"prompt": "x", "max_tokens": 2})
        assert status == 429 and resp.getheader("Retry-After") and json.loads(text)["error"]
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        status, _, resp = s.request("POST", "/v1/completions", {"prompt": "x", "max_tokens": 2})
        assert status == 503
        while True:
            more = r.read1(4096)
            if not more:
                break
            got += more
        events = [e for e in got.decode().split("\n\n") if e]
        assert events[-1] == "data: [DONE]"
        last = json.loads(events[-2][len("data: "):])
        assert last["choices"][0]["finish_reason"] == "length"
        assert s.proc.wait(30) == 0
    finally:
        s.stop()


LOG_FIELDS = {"id", "time", "endpoint", "model", "status", "prompt_tokens", "completion_tokens",
              "cached_tokens", "ttft_ms", "e2e_ms", "finish_reasons", "client"}
PII = "mail me at jane.doe@example.com or +44 20 7946 0958, id 123-45-6789"


def read_log(path):
    with open(path) as f:
        return [json.loads(line) for line in f.read().splitlines()]


def test_request_log(tmp_path):
    path = tmp_path / "requests.jsonl"
    s = Server("--log-requests", str(path))
    try:
        r = s.client().chat.completions.create(model=NAME, messages=[{"role": "user", "content": PII}],
                                               max_tokens=4, temperature=0)
        s.client().completions.create(model=NAME, prompt="Hello", max_tokens=3, n=2, temperature=0)
        assert s.request("POST", "/v1/completions", raw="{not json")[0] == 400
        s.metrics()  # monitoring endpoints are not logged
    finally:
        assert s.stop() == 0
    lines = read_log(path)
    assert len(lines) == 3, lines
    for line in lines:
        assert set(line) == LOG_FIELDS, line  # no text without --log-text
        assert line["model"] == NAME and line["client"].startswith("127.0.0.1:")
    chat, comp, bad = lines
    assert chat["id"] == r.id and chat["endpoint"] == "/v1/chat/completions"
    assert chat["status"] == 200 and chat["prompt_tokens"] == r.usage.prompt_tokens
    assert chat["completion_tokens"] == r.usage.completion_tokens
    assert chat["finish_reasons"] == [r.choices[0].finish_reason]
    assert 0 < chat["ttft_ms"] <= chat["e2e_ms"]
    assert comp["endpoint"] == "/v1/completions" and len(comp["finish_reasons"]) == 2
    assert bad["status"] == 400 and bad["completion_tokens"] == 0 and bad["ttft_ms"] is None
    assert "jane" not in path.read_text()


def test_request_log_text_redacted(tmp_path):
    path = tmp_path / "requests.jsonl"
    s = Server("--log-requests", str(path), "--log-text", "--log-redact")
    try:
        s.client().chat.completions.create(model=NAME, messages=[{"role": "user", "content": PII}],
                                           max_tokens=4, temperature=0)
        s.client().completions.create(model=NAME, prompt="Write to jane.doe@example.com", max_tokens=3,
                                      temperature=0)
        # an assistant's tool call and the tool's result: logged, and redacted too
        status, text, _ = s.request("POST", "/v1/chat/completions", {
            "model": NAME, "max_tokens": 2, "temperature": 0, "messages": [
                {"role": "user", "content": "Mail Jane"},
                {"role": "assistant", "content": "ok", "tool_calls": [{
                    "id": "call_1", "type": "function", "function": {
                        "name": "send_mail", "arguments": json.dumps(
                            {"to": "jane.doe@example.com", "phone": "+44 20 7946 0958"})}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sent, id 123-45-6789"}]})
        assert status == 200, text
    finally:
        assert s.stop() == 0
    raw = path.read_text()
    for original in ("jane.doe", "example.com", "7946", "0958", "123-45-6789"):
        assert original not in raw
    chat, comp, tool_chat = read_log(path)
    call = tool_chat["messages"][1]["tool_calls"][0]
    assert call["id"] == "call_1" and call["function"]["name"] == "send_mail"
    assert call["function"]["arguments"] == {"to": "[EMAIL]", "phone": "[PHONE]"}
    assert tool_chat["messages"][2] == {"role": "tool", "content": "sent, id [ID]",
                                        "tool_call_id": "call_1"}
    assert chat["messages"] == [{"role": "user",
                                 "content": "mail me at [EMAIL] or [PHONE], id [ID]"}]
    assert len(chat["completions"]) == 1 and isinstance(chat["completions"][0], str)
    assert comp["prompt"] == ["Write to [EMAIL]"]
    # --log-text alone keeps the text as it was
    path2 = tmp_path / "plain.jsonl"
    s = Server("--log-requests", str(path2), "--log-text")
    try:
        s.client().completions.create(model=NAME, prompt=PII, max_tokens=2, temperature=0)
    finally:
        assert s.stop() == 0
    assert read_log(path2)[0]["prompt"] == [PII]


def test_idle_connections(srv):
    # 1,000 connections open and silent: a request still gets its answer at once
    import resource
    import socket
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    def rss_kib():
        with open(f"/proc/{srv.proc.pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))

    socks = []
    before = rss_kib()
    try:
        for _ in range(1000):
            socks.append(socket.create_connection(("127.0.0.1", srv.port), timeout=10))
        t = time.time()
        r = srv.client().chat.completions.create(model=NAME, messages=MSG, max_tokens=4, temperature=0)
        assert r.choices[0].message.content and time.time() - t < 10
        # a thread each, on small stacks: far below 1 MiB per idle connection
        assert rss_kib() - before < 1000 * 256, (before, rss_kib())
        # and every one of them is still served: a request on the last one opened
        last = socks[-1]
        last.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert last.recv(64).startswith(b"HTTP/1.1 200")
    finally:
        for s in socks:
            s.close()


def trickle_until_cut(port, opening, pieces, meanwhile=None, limit_s=10):
    """Sends `opening`, then one piece of `pieces` (an iterable of bytes) per second-ish: the
    seconds until the server closed the connection, or None when it never did within limit_s.
    `meanwhile()` runs once, after the first piece (the server must still answer others)."""
    import socket
    slow = socket.create_connection(("127.0.0.1", port), timeout=1)
    t0 = time.time()
    try:
        slow.sendall(opening)
        for i, piece in enumerate(pieces):
            try:
                slow.send(piece)
                if slow.recv(64) == b"":
                    return time.time() - t0
            except socket.timeout:
                pass
            except OSError:
                return time.time() - t0
            if i == 0 and meanwhile:
                meanwhile()
            if time.time() - t0 > limit_s:
                return None
        return None
    finally:
        slow.close()


def test_slowloris_cut_by_timeout():
    import itertools
    s = Server("--timeout", "2")
    try:
        def others_served():
            r = s.client().completions.create(model=NAME, prompt="Hi", max_tokens=2)
            assert r.choices[0].text is not None
        # headers that never end, one byte a second
        head = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"X-Slow: " + b"a" * 100)
        closed = trickle_until_cut(s.port, b"", (bytes([b]) for b in head), others_served)
        assert closed is not None and closed < 6, closed
        assert s.request("GET", "/health")[0] == 200
        # complete headers, then a body that trickles in
        opening = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Authorization: Bearer " + KEY.encode() + b"\r\nContent-Length: 200\r\n\r\n")
        closed = trickle_until_cut(s.port, opening, itertools.repeat(b" ", 200))
        assert closed is not None and closed < 6, closed
        assert s.request("GET", "/health")[0] == 200
    finally:
        assert s.stop() == 0


def test_engine_dead():
    # A tensor-parallel rank fails for good (the test build's LLMRT_TP_FAULT: rank 1 errors in its
    # 4th forward, a sticky fault): the stream in flight ends with an error event, /health turns
    # 503, new requests get a 503 naming the cause, /metrics says llmrt_engine_healthy 0, and
    # SIGTERM still ends the process cleanly.
    s = Server("--tp", "2", "--device", "cpu", env={"LLMRT_TP_FAULT": "1:4:error"})
    try:
        assert s.request("GET", "/health")[0] == 200
        assert s.metrics()["llmrt_engine_healthy"] == 1
        stream = s.client().completions.create(model=NAME, prompt="Once upon a time",
                                               max_tokens=32, stream=True,
                                               extra_body={"ignore_eos": True})
        text, failed = "", None
        try:
            for chunk in stream:
                text += chunk.choices[0].text if chunk.choices else ""
        except openai.APIError as e:  # the client raises on an SSE "error" event
            failed = str(e)
        assert failed and "injected fault" in failed, (text, failed)
        assert s.request("GET", "/health")[0] == 503
        assert s.metrics()["llmrt_engine_healthy"] == 0
        for path, body in (("/v1/completions", {"prompt": "x", "max_tokens": 2}),
                           ("/v1/chat/completions", {"messages": MSG, "max_tokens": 2}),
                           ("/v1/completions", {"prompt": "x", "max_tokens": 2, "stream": True})):
            status, text, _ = s.request("POST", path, body)
            err = json.loads(text)["error"]
            assert status == 503 and "dead" in err["message"] and err["type"] == "server_error"
        # what needs no engine still works
        assert s.request("POST", "/tokenize", {"prompt": "hi"})[0] == 200
    finally:
        assert s.stop() == 0


def test_bad_body_and_content_type(srv):
    for raw in ("{not json", "[1, 2]", "", "\xff\xfe"):
        status, text, _ = srv.request("POST", "/v1/chat/completions", raw=raw.encode("latin-1"))
        err = json.loads(text)["error"]
        assert status == 400 and err["message"] and err["type"] == "invalid_request_error", raw
    c = srv.conn()
    c.request("POST", "/v1/chat/completions", body=json.dumps({"messages": MSG}),
              headers={"Authorization": "Bearer " + KEY, "Content-Type": "text/plain"})
    r = c.getresponse()
    err = json.loads(r.read())["error"]
    assert r.status == 400 and "Content-Type" in err["message"] and err["type"] == "invalid_request_error"
    c.close()
    # parameters after the media type are fine
    c = srv.conn()
    c.request("POST", "/v1/completions", body=json.dumps({"prompt": "x", "max_tokens": 1}),
              headers={"Authorization": "Bearer " + KEY,
                       "Content-Type": "application/json; charset=utf-8"})
    assert c.getresponse().status == 200
    c.close()


def test_request_log_write_failure():
    # every write fails (ENOSPC): said once on stderr, the server keeps answering
    s = Server("--log-requests", "/dev/full")
    try:
        for _ in range(3):
            r = s.client().completions.create(model=NAME, prompt="Hi", max_tokens=2)
            assert r.choices
    finally:
        assert s.stop() == 0
    err = s.proc.stderr.read()
    assert err.count("--log-requests: write failed") == 1, err


def test_stream_queued_longer_than_timeout():
    # --timeout is for idle clients, not for requests waiting their turn: with one sequence at a
    # time, a stream queued behind another for longer than --timeout still gets all its events
    # (the server sends SSE ": keep-alive" comments meanwhile, which clients ignore)
    import threading
    s = Server("--timeout", "2", "--max-seqs", "1")
    try:
        first = threading.Thread(target=lambda: s.client().completions.create(
            model=NAME, prompt="Once upon a time", max_tokens=500, extra_body={"ignore_eos": True}))
        first.start()
        time.sleep(0.5)
        t0, text, finish = time.time(), "", None
        for chunk in s.client().completions.create(model=NAME, prompt="Hi", max_tokens=4,
                                                   stream=True, temperature=0):
            text += chunk.choices[0].text
            finish = chunk.choices[0].finish_reason or finish
        first.join()
        # it did wait past --timeout (else the test proves nothing), and it is all there
        assert time.time() - t0 > 2.5 and finish == "length" and text, (time.time() - t0, text)
    finally:
        assert s.stop() == 0
