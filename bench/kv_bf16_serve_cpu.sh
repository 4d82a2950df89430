#!/usr/bin/env bash
# A bf16 KV cache in the 64-request offline run of bf16 mode (issue 21): llmrt bench serve on the
# bf16 checkpoint with --cpu-matmul bf16, with and without --kv-cache-dtype bf16, alternating the
# two in each of ROUNDS rounds (the machine is shared: each round sees the same neighbours for
# both); prints every run's output tok/s, the medians, their ratio, and the load average before
# each round.
#
#   bench/kv_bf16_serve_cpu.sh [BUILD_DIR] [MODEL_DIR] [ROUNDS] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
model=${2:-/tmp/smollm2_hf_bf16}
rounds=${3:-3}
threads=${4:-2}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
common=(-m "$model" -t "$threads" --num-prompts 64 --input-len 128 --output-len 64
        --max-concurrency 64 --no-prefix-cache --kv-tokens 16384 --cpu-matmul bf16 --format json)
echo "command: $build/llmrt bench serve ${common[*]} [--kv-cache-dtype bf16]"
echo "git: $(git rev-parse --short HEAD)"
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cpus visible, $threads threads)"
for r in $(seq 1 "$rounds"); do
    echo "round $r: $(uptime | sed 's/.*load/load/')"
    "$build/llmrt" bench serve "${common[@]}" >"$out/auto.$r.json"
    "$build/llmrt" bench serve "${common[@]}" --kv-cache-dtype bf16 >"$out/bf16.$r.json"
done
echo "end: $(uptime | sed 's/.*load/load/')"
python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
med = {}
for k in ("auto", "bf16"):
    tps = [json.load(open(f"{out}/{k}.{r}.json"))["results"][0]["output_throughput"]
           for r in range(1, rounds + 1)]
    med[k] = statistics.median(tps)
    print(f"kv {k:5} output tok/s: runs {' '.join(f'{t:.1f}' for t in tps)}  median {med[k]:.1f}")
print(f"bf16 KV / fp32 KV (medians): {med['bf16'] / med['auto']:.2f}x")
PY
