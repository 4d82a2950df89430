#!/usr/bin/env bash
# llmrt bench serve --base-url against a stub OpenAI-compatible server (tests/cli/openai_stub_server.py,
# Python standard library): a clean run (counts, token totals from the usage block, TTFT/ITL), a
# run where every second request gets HTTP 500 (failures counted by status, no crash), a stream
# without usage blocks (tokens counted by chunks), CRLF line ends with events split across reads,
# the chat endpoint, and an unreachable port
# (a clear error, non-zero exit, no hang). usage: test_bench_http.sh LLMRT_BINARY
# Exit 77 (skipped) when the binary was built without libcurl.
set -euo pipefail
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d)
stub_pid=""
stop_stub() {
    if [ -n "$stub_pid" ]; then
        kill "$stub_pid" 2>/dev/null || true
        wait "$stub_pid" 2>/dev/null || true
        stub_pid=""
    fi
}
trap 'stop_stub; rm -rf "$dir"' EXIT

# starts the stub with the given options; sets $port
start_stub() {
    stop_stub
    rm -f "$dir/port"
    python3 "$here/openai_stub_server.py" --port-file "$dir/port" "$@" &
    stub_pid=$!
    for _ in $(seq 100); do
        [ -s "$dir/port" ] && break
        sleep 0.1
    done
    port=$(cat "$dir/port")
}

if "$bin" bench serve --base-url http://127.0.0.1:1 --help | grep -q "needs libcurl"; then
    echo "skipped: built without libcurl"; exit 77
fi
if ! "$bin" bench serve --base-url http://127.0.0.1:1 --help | grep -q -- "--prompt-format"; then
    echo "llmrt bench serve --base-url --help lacks the HTTP options" >&2; exit 1
fi

run=(bench serve --num-prompts 8 --concurrency 4 --input-len 8 --output-len 4 --format json)

# 1. a clean run
start_stub
timeout 120 "$bin" "${run[@]}" --base-url "http://127.0.0.1:$port" -o "$dir/ok.json"
# 2. every second request: HTTP 500 (exit 0: some completed)
start_stub --fail-every 2
timeout 120 "$bin" "${run[@]}" --base-url "http://127.0.0.1:$port" -o "$dir/half.json" 2> "$dir/half.err"
grep -q "failed with HTTP 500" "$dir/half.err"
# 3. no usage blocks: tokens counted by chunks (4 tokens stream as chunks of 1, 2, 1)
start_stub --no-usage
timeout 120 "$bin" "${run[@]}" --base-url "http://127.0.0.1:$port/v1/" -o "$dir/chunks.json"
# 3b. CRLF line ends, every event split across two writes
start_stub --crlf --split
timeout 120 "$bin" "${run[@]}" --base-url "http://127.0.0.1:$port" -o "$dir/crlf.json"
# 4. the chat endpoint (text prompts from the word list), table output
start_stub
timeout 120 "$bin" bench serve --num-prompts 4 --concurrency 2 --input-len 6 --output-len 3 \
    --base-url "http://127.0.0.1:$port" --endpoint /v1/chat/completions --model stub-model \
    > "$dir/chat.txt"
grep -q "TTFT p50" "$dir/chat.txt"
# 4b. the workload: with -m, random ids from the model's vocabulary, the lengths asked for, and
# the same prompts for the same --workload-seed (another seed: others); text prompts detokenized
model=$here/../data/tiny/llama_f32
start_stub --record "$dir/rec1.jsonl"
wl=(bench serve --num-prompts 6 --concurrency 3 --input-len 5:9 --output-len 2:4 -m "$model" -t 1)
timeout 120 "$bin" "${wl[@]}" --base-url "http://127.0.0.1:$port" > /dev/null 2>&1
start_stub --record "$dir/rec2.jsonl"
timeout 120 "$bin" "${wl[@]}" --base-url "http://127.0.0.1:$port" > /dev/null 2>&1
start_stub --record "$dir/rec3.jsonl"
timeout 120 "$bin" "${wl[@]}" --workload-seed 5 --base-url "http://127.0.0.1:$port" > /dev/null 2>&1
start_stub --record "$dir/rec4.jsonl"
timeout 120 "$bin" "${wl[@]}" --prompt-format text --base-url "http://127.0.0.1:$port" > /dev/null 2>&1
vocab=$("$bin" info -m "$model" 2>/dev/null | sed -n 's/^vocab:[[:space:]]*\([0-9]*\).*/\1/p' | head -1)
# 5. an unreachable port: the stub's, after it is gone
stop_stub
set +e
timeout 60 "$bin" "${run[@]}" --base-url "http://127.0.0.1:$port" -o "$dir/down.json" 2> "$dir/down.err"
rc=$?
timeout 60 "$bin" "${run[@]}" --base-url "http://127.0.0.1:$port" --model stub-model \
    -o "$dir/down2.json" 2> "$dir/down2.err"
rc2=$?
set -e
[ $rc -ne 0 ] && [ $rc -ne 124 ] || { echo "unreachable: exit $rc (want non-zero, no timeout)" >&2; exit 1; }
[ $rc2 -ne 0 ] && [ $rc2 -ne 124 ] || { echo "unreachable (--model): exit $rc2" >&2; exit 1; }
grep -q "cannot reach http://127.0.0.1:$port" "$dir/down.err" || { cat "$dir/down.err" >&2; exit 1; }
grep -q "connection error" "$dir/down2.err" || { cat "$dir/down2.err" >&2; exit 1; }

python3 - "$dir" "$port" "${vocab:-0}" <<'PY'
import json, sys
d, port, vocab = sys.argv[1], sys.argv[2], int(sys.argv[3])
rec = [sorted(json.dumps(json.loads(l)) for l in open(f"{d}/rec{i}.jsonl")) for i in (1, 2, 3, 4)]
assert vocab > 0, "llmrt info printed no vocab size"
assert len(rec[0]) == 6 and rec[0] == rec[1], "the same seed must send the same requests"
assert rec[0] != rec[2], "another seed must send other prompts"
for l in rec[0]:
    r = json.loads(l)
    assert 5 <= len(r["prompt"]) <= 9 and all(isinstance(i, int) and i >= 0 for i in r["prompt"]), r
    assert max(r["prompt"]) < vocab, (vocab, r)
    assert 2 <= r["max_tokens"] <= 4 and r["ignore_eos"] is True and r["temperature"] == 0, r
assert all(isinstance(json.loads(l)["prompt"], str) for l in rec[3])
assert sorted(json.loads(l)["max_tokens"] for l in rec[3]) == sorted(json.loads(l)["max_tokens"] for l in rec[0])
fields = ["duration", "completed", "failed", "total_input_tokens", "total_output_tokens",
          "request_throughput", "request_goodput", "output_throughput", "total_token_throughput"]
for m in ["ttft", "tpot", "itl", "e2el"]:
    fields += [f"{s}_{m}_ms" for s in ["mean", "median", "std", "p90", "p99"]]

ok = json.load(open(f"{d}/ok.json"))
for k in ["command", "machine", "git_revision", "model_id", "backend", "base_url", "results"]:
    assert k in ok, f"json lacks {k}"
assert ok["backend"] == "openai-http", ok["backend"]
assert ok["base_url"].startswith("http://127.0.0.1:"), ok["base_url"]
assert ok["model_id"] == "stub-model" and ok["prompt_format"] == "ids"
(r,) = ok["results"]
for k in fields:
    assert k in r, f"result lacks {k}"
assert r["completed"] == 8 and r["failed"] == 0, r
assert r["total_output_tokens"] == 32, r["total_output_tokens"]
assert r["total_input_tokens"] == 64, r["total_input_tokens"]  # the stub's usage.prompt_tokens
assert r["token_count_source"] == "usage" and r["errors"] == {}
for k in ["mean_ttft_ms", "median_ttft_ms", "p99_ttft_ms", "mean_itl_ms", "median_itl_ms",
          "p99_itl_ms", "mean_tpot_ms", "mean_e2el_ms", "output_throughput"]:
    assert r[k] > 0, (k, r[k])
assert r["mean_e2el_ms"] >= r["mean_ttft_ms"]

half = json.load(open(f"{d}/half.json"))["results"][0]
assert half["completed"] == 4 and half["failed"] == 4, half
assert half["errors"] == {"500": 4}, half["errors"]
assert half["total_output_tokens"] == 16

ch = json.load(open(f"{d}/chunks.json"))["results"][0]
assert ch["completed"] == 8 and ch["token_count_source"] == "chunks", ch
assert ch["total_output_tokens"] == 24, ch["total_output_tokens"]  # 3 chunks a request

cr = json.load(open(f"{d}/crlf.json"))["results"][0]
assert cr["completed"] == 8 and cr["total_output_tokens"] == 32 and cr["token_count_source"] == "usage", cr

down = json.load(open(f"{d}/down2.json"))["results"][0]
assert down["completed"] == 0 and down["failed"] == 8 and down["errors"] == {"connection": 8}, down
print("bench serve --base-url: outputs valid")
PY
echo "1 passed, 0 failed"
