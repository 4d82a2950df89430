#!/usr/bin/env bash
# KV cache dtypes on the CPU (issues 20, 21): for --kv-cache-dtype auto (fp32 here), int8, fp8
# and bf16, the KV bytes per token and the decode speed of one sequence at long context (llmrt bench
# latency: a 16-token prompt after DEPTHS context tokens, 33 generated, decode tok/s over steps
# 2..33). ROUNDS rounds alternate the dtypes (the machine is shared: each round sees the same
# neighbours for every dtype); the table gives the median of the rounds' means. SmolLM2 by default.
# Then the attention kernel alone per dtype (build/tests/kv_attn_bench: one layer, 1 thread, the
# minimum over alternating repetitions) at each depth.
#
#   bench/kv_dtype_cpu.sh [BUILD_DIR] [MODEL] [ROUNDS] [THREADS] [DEPTHS]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/llmrt_server.sh # default_model
build=${1:-build}
model=${2:-$(default_model)}
rounds=${3:-3}
threads=${4:-2}
depths=${5:-"512 2048 4096"}
dtypes="auto int8 fp8 bf16"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "command: bench/kv_dtype_cpu.sh $build $model $rounds $threads \"$depths\""
echo "git: $(git rev-parse --short HEAD)"
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cpus visible, $threads threads)"
for r in $(seq 1 "$rounds"); do
    for d in $depths; do
        for k in $dtypes; do
            "$build/llmrt" bench latency -m "$model" -p 16 -n 33 -d "$d" -r 1 -t "$threads" \
                --kv-cache-dtype "$k" --format json >"$out/$k.$d.$r.json"
        done
    done
done
python3 - "$out" "$rounds" "$depths" "$dtypes" <<'PY'
import json, statistics, sys
out, rounds, depths, dtypes = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4].split()
first = json.load(open(f"{out}/auto.{depths[0]}.1.json"))
print("model:", first.get("model_id", "?"), "| weights", first.get("weight_format", "?"),
      "| weight bytes", first.get("weight_bytes", "?"))
print(f"{'kv dtype':9} {'depth':>6} {'KV B/token':>11} {'KV MB at depth':>15} "
      f"{'decode tok/s (median)':>22} {'vs auto':>8} {'rounds':>30}")
base = {}
for d in depths:
    for k in dtypes:
        runs = [json.load(open(f"{out}/{k}.{d}.{r}.json")) for r in range(1, rounds + 1)]
        tg = [x["results"][0]["gen_tps_mean"] for x in runs]
        kvb = runs[0]["kv_bytes_per_token"]
        med = statistics.median(tg)
        if k == "auto":
            base[d] = med
        print(f"{k:9} {d:>6} {kvb:>11.0f} {kvb * int(d) / 1e6:>15.1f} {med:>22.2f} "
              f"{med / base[d]:>7.2f}x {' '.join(f'{t:.2f}' for t in tg):>30}")
PY
for d in $depths; do
    echo "command: $build/tests/kv_attn_bench -n $d -r 60"
    "$build/tests/kv_attn_bench" -n "$d" -r 60
done
