#!/usr/bin/env python3
"""A tiny OpenAI-compatible server for the benchmark's HTTP client tests (standard library only).

    openai_stub_server.py --port-file FILE [--fail-every N] [--no-usage] [--delay-ms MS] [--crlf] [--split] [--record FILE]

Listens on 127.0.0.1 on a free port and writes the port to FILE. POST /v1/completions and
/v1/chat/completions stream (SSE) max_tokens tokens ("tok" each) in chunks of 1, 2, 1, 2, ...
tokens, DELAY ms apart, then a usage chunk (unless --no-usage, or the request did not ask for it
with stream_options.include_usage) and `data: [DONE]`. Chat streams start with a role-only delta
(no content), as OpenAI's do. --fail-every N: every Nth request (2nd, 4th, ... for N = 2) gets an
HTTP 500 with a JSON error body. GET /v1/models lists "stub-model". Non-streaming requests get a
400 (the benchmark always streams). --crlf ends lines with CRLF; --split sends every event in
two writes (the client's SSE parser must join lines across reads). --record FILE appends each
streamed request's prompt, max_tokens, ignore_eos and temperature to FILE (JSONL).
"""
import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
count = 0


def make_handler(args):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def send_json(self, code, obj):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/v1/models":
                self.send_json(200, {"object": "list", "data": [{"id": "stub-model", "object": "model"}]})
            else:
                self.send_json(404, {"error": {"message": "not found"}})

        def do_POST(self):
            global count
            n = int(self.headers.get("Content-Length", "0"))
            try:
                req = json.loads(self.rfile.read(n))
            except ValueError:
                self.send_json(400, {"error": {"message": "bad JSON"}})
                return
            chat = self.path == "/v1/chat/completions"
            if self.path not in ("/v1/completions", "/v1/chat/completions"):
                self.send_json(404, {"error": {"message": "not found"}})
                return
            with lock:
                count += 1
                k = count
            if args.fail_every and k % args.fail_every == 0:
                self.send_json(500, {"error": {"message": f"stub failure of request {k}"}})
                return
            if not req.get("stream"):
                self.send_json(400, {"error": {"message": "the stub only streams"}})
                return
            if req.get("model") != "stub-model":
                self.send_json(404, {"error": {"message": f"model {req.get('model')!r} not served"}})
                return
            prompt = req["messages"][-1]["content"] if chat else req.get("prompt")
            if args.record:
                with lock, open(args.record, "a") as f:
                    f.write(json.dumps({"prompt": prompt, "max_tokens": req.get("max_tokens"),
                                        "ignore_eos": req.get("ignore_eos"),
                                        "temperature": req.get("temperature")}) + "\n")
            n_prompt = len(prompt) if isinstance(prompt, list) else len(str(prompt).split())
            max_tokens = int(req.get("max_tokens", 16))
            usage = (req.get("stream_options") or {}).get("include_usage") and not args.no_usage
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            rid = f"cmpl-{k}"
            obj = "chat.completion.chunk" if chat else "text_completion"

            def send(payload):
                eol = b"\r\n" if args.crlf else b"\n"
                event = b"data: " + payload.encode() + eol + eol
                if args.split:  # the event in two writes, apart in time: the client must join them
                    half = len(event) // 2 + 1  # a CRLF split between its CR and LF at the end
                    for part in (event[:half], event[half:]):
                        self.wfile.write(part)
                        self.wfile.flush()
                        time.sleep(0.002)
                else:
                    self.wfile.write(event)
                    self.wfile.flush()

            def chunk(text, finish=None):
                if chat:
                    choice = {"index": 0, "delta": {"content": text} if text is not None else {"role": "assistant", "content": ""}, "finish_reason": finish}
                else:
                    choice = {"index": 0, "text": text, "finish_reason": finish}
                return json.dumps({"id": rid, "object": obj, "model": "stub-model", "choices": [choice]})

            if chat:
                send(chunk(None))
            sent, size = 0, 1
            while sent < max_tokens:
                time.sleep(args.delay_ms / 1000.0)
                take = min(size, max_tokens - sent)
                sent += take
                send(chunk(" tok" * take, "length" if sent == max_tokens else None))
                size = 3 - size  # 1, 2, 1, 2, ...
            if usage:
                send(json.dumps({"id": rid, "object": obj, "model": "stub-model", "choices": [],
                                 "usage": {"prompt_tokens": n_prompt, "completion_tokens": sent,
                                           "total_tokens": n_prompt + sent}}))
            send("[DONE]")
            self.close_connection = True

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--fail-every", type=int, default=0)
    ap.add_argument("--no-usage", action="store_true")
    ap.add_argument("--delay-ms", type=float, default=5.0)
    ap.add_argument("--record", help="append every streamed request's prompt (JSONL) to this file")
    ap.add_argument("--crlf", action="store_true", help="end SSE lines with CRLF")
    ap.add_argument("--split", action="store_true", help="send each event in two writes")
    args = ap.parse_args()
    ThreadingHTTPServer.request_queue_size = 256  # listen backlog: the default 5 drops SYNs at concurrency 64
    srv = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(args))
    srv.daemon_threads = True
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    import os
    os.replace(args.port_file + ".tmp", args.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
