#!/usr/bin/env bash
# The same serving workload against two OpenAI-compatible servers (e.g. `llmrt serve` and
# llama-cpp-python's or vLLM's), with `llmrt bench serve --base-url`, and the ratios of A to B.
#
#   bench/serve_vs_peer.sh URL_A URL_B [llmrt bench serve options...]
#
#   LLMRT=build/llmrt       the llmrt binary (default: build/llmrt)
#   MODEL_A=..., MODEL_B=...  the model name each server is asked for (default: each server's
#                           first of GET /v1/models)
#   ROUNDS=1                A and B alternate this many times; the medians are compared
#
# Example (the options after the URLs go to both runs, so both see the same prompts):
#   bench/serve_vs_peer.sh http://127.0.0.1:8000 http://127.0.0.1:8001 \
#       -m MODEL.gguf --num-prompts 32 --input-len 128 --output-len 64 --concurrency 4
# Prints one line per server (completed, failed, output tokens, output tok/s, requests/s, TTFT
# p50/p99, TPOT p50, ITL p50) and
# the ratios A/B of output tok/s (above 1: A is faster) and TTFT p50 (below 1: A answers sooner).
set -euo pipefail
if [ $# -lt 2 ]; then
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
url_a=$1 url_b=$2
shift 2
bin=${LLMRT:-build/llmrt}
rounds=${ROUNDS:-1}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

run() { # NAME URL MODEL ROUND
    local name=$1 url=$2 model=$3 round=$4
    local extra=()
    [ -n "$model" ] && extra=(--model "$model")
    "$bin" bench serve --base-url "$url" "${extra[@]}" --format json \
        -o "$dir/$name.$round.json" "${args[@]}"
}
args=("$@")
for r in $(seq "$rounds"); do
    run A "$url_a" "${MODEL_A:-}" "$r"
    run B "$url_b" "${MODEL_B:-}" "$r"
done

python3 - "$dir" "$rounds" "$url_a" "$url_b" <<'PY'
import json, statistics, sys
d, rounds, urls = sys.argv[1], int(sys.argv[2]), {"A": sys.argv[3], "B": sys.argv[4]}
keys = ["output_throughput", "median_ttft_ms", "p99_ttft_ms", "median_tpot_ms", "median_itl_ms",
        "request_throughput"]
med = {}
for name in "AB":
    rs = [json.load(open(f"{d}/{name}.{r}.json")) for r in range(1, rounds + 1)]
    res = [x["results"][0] for x in rs]
    med[name] = {k: statistics.median(r[k] for r in res) for k in keys}
    med[name]["completed"] = sum(r["completed"] for r in res)
    med[name]["failed"] = sum(r["failed"] for r in res)
    med[name]["out_tokens"] = sum(r["total_output_tokens"] for r in res)
    med[name]["model"] = rs[0]["model_id"]
    med[name]["source"] = res[0].get("token_count_source", "?")
print(f"{'':2} {'url':28} {'model':12} {'done':>5} {'fail':>5} {'out tok':>8} {'out tok/s':>10} "
      f"{'req/s':>7} {'TTFT p50':>10} {'TTFT p99':>10} {'TPOT p50':>10} {'ITL p50':>10}  tokens from")
for name in "AB":
    m = med[name]
    print(f"{name:2} {urls[name][:28]:28} {str(m['model'])[:12]:12} {m['completed']:5d} {m['failed']:5d} "
          f"{m['out_tokens']:8d} {m['output_throughput']:10.1f} {m['request_throughput']:7.2f} "
          f"{m['median_ttft_ms']:8.1f}ms {m['p99_ttft_ms']:8.1f}ms {m['median_tpot_ms']:8.1f}ms "
          f"{m['median_itl_ms']:8.1f}ms  {m['source']}")
a, b = med["A"], med["B"]
ratio = lambda x, y: x / y if y else float("nan")
print(f"A/B output tok/s: {ratio(a['output_throughput'], b['output_throughput']):.3f}x   "
      f"A/B TTFT p50: {ratio(a['median_ttft_ms'], b['median_ttft_ms']):.3f}x   "
      f"(medians of {rounds} round(s), A and B alternating)")
PY
