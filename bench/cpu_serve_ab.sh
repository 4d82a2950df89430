#!/usr/bin/env bash
# Offline throughput of llmrt variants side by side (issue 21): each variant is a binary and its
# extra flags; rounds alternate the variants (V1 V2 ... V1 V2 ...) so that the load of a shared
# machine hits all alike. Every run is `llmrt bench serve` with the 64-request workload of
# bench/cpu_vs_peers.sh (64 prompts of 128 random tokens, 64 output tokens, all in flight,
# 2 threads); prints each run's output tok/s, the medians and each median / the first's.
#
#   ROUNDS=3 MODEL=/tmp/smollm2_hf_bf16 bench/cpu_serve_ab.sh 'LABEL|BINARY|FLAGS' ...
#   e.g. bench/cpu_serve_ab.sh "main|/tmp/main_llmrt|--cpu-matmul bf16" \
#            "kvbf16|build/llmrt|--cpu-matmul bf16 --kv-cache-dtype bf16"
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
model=${MODEL:-/tmp/smollm2_hf_bf16}
[ $# -ge 1 ] || { echo "usage: cpu_serve_ab.sh 'LABEL|BINARY|FLAGS' ..." >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "# cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cpus; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# model: $model; $rounds alternating rounds; git $(git rev-parse --short HEAD)"
for r in $(seq 1 "$rounds"); do
    i=0
    for v in "$@"; do
        IFS='|' read -r label bin flags <<<"$v"
        # shellcheck disable=SC2086 # flags are words
        "$bin" bench serve -m "$model" -t 2 --num-prompts 64 --input-len 128 --output-len 64 \
            --max-concurrency 64 --no-prefix-cache --kv-tokens 16384 $flags --format json \
            2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["results"][0]["output_throughput"])' \
            >"$out/$i.$r"
        echo "round $r $label: $(cat "$out/$i.$r") output tok/s"
        i=$((i + 1))
    done
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
i=0
for v in "$@"; do
    IFS='|' read -r label bin flags <<<"$v"
    cat "$out/$i".* | sort -g | awk -v l="$label" -v b="$bin" -v f="$flags" '
        {x[NR] = $1} END {m = NR % 2 ? x[(NR + 1) / 2] : (x[NR / 2] + x[NR / 2 + 1]) / 2;
        printf "median %-10s %8.1f output tok/s  (%s %s)\n", l, m, b, f}' | tee -a "$out/medians"
    i=$((i + 1))
done
awk 'NR == 1 {base = $3} {printf "ratio %-10s %.3fx vs %s\n", $2, $3 / base, first} NR == 1 {first = $2}' \
    "$out/medians" | sed '1s/vs $/vs itself/'
