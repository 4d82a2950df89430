#!/usr/bin/env bash
# HTTP overhead of `llmrt serve`: the same workload (random prompts, fixed seed) through the
# in-process engine (`llmrt bench serve`) and over HTTP against `llmrt serve` on this machine
# (`llmrt bench serve --base-url`), at each concurrency; prints output tok/s of both and the
# ratio. The server and the in-process run use the same threads and engine options. Each
# concurrency level gets a fresh server: its prefix cache would otherwise hold the previous
# level's prompts (the same --workload-seed gives the same prompts) and skip their prefill.
#
# usage: bench/http_overhead.sh [LLMRT] [CONCURRENCIES] [extra workload args...]
#   default: ./build/llmrt 1,16,64 --num-prompts 64 --input-len 64 --output-len 32 -t 2
#   ROUNDS=N: N rounds per level (order alternating: in-process first, then HTTP first), medians
#   compared -- a 2-core machine's run-to-run swing (+-10%) is larger than the overhead itself
set -euo pipefail
bin=${1:-./build/llmrt}
concs=${2:-1,16,64}
shift $(( $# < 2 ? $# : 2 ))
work=("$@")
[ ${#work[@]} -gt 0 ] || work=(--num-prompts 64 --input-len 64 --output-len 32)
threads=(-t 2)
dir=$(mktemp -d)
source "$(cd "$(dirname "$0")" && pwd)/llmrt_server.sh"
cleanup() { stop_server; [ -n "${KEEP_DIR:-}" ] && cp "$dir"/*.json "$KEEP_DIR"/ 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

echo "# cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
echo "# workload: ${work[*]}; server and in-process: ${threads[*]}, engine defaults; a fresh server per round; medians of ${ROUNDS:-1} round(s)"
printf "%11s %18s %14s %7s\n" concurrency "in-process tok/s" "HTTP tok/s" ratio
IFS=, read -ra cs <<<"$concs"
tok_s() { python3 -c "import json,sys; d = json.load(open(sys.argv[1])); print((d['results'][0] if 'results' in d else d)['output_throughput'])" "$1"; }
rounds=${ROUNDS:-1}
med() { python3 -c "import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }
for c in "${cs[@]}"; do
    ins=() https=()
    for r in $(seq "$rounds"); do
        start_server # fresh each round: an empty prefix cache, as the in-process run has
        run_in() { "$bin" bench serve "${work[@]}" "${threads[@]}" --max-concurrency "$c" \
                       --format json -o "$dir/in.json" >/dev/null 2>&1; }
        run_http() { "$bin" bench serve --base-url "$url" "${work[@]}" --max-concurrency "$c" \
                         --format json -o "$dir/http.json" >/dev/null 2>&1; }
        if [ $((r % 2)) -eq 1 ]; then run_in; run_http; else run_http; run_in; fi
        ins+=("$(tok_s "$dir/in.json")")
        https+=("$(tok_s "$dir/http.json")")
    done
    a=$(med "${ins[@]}")
    b=$(med "${https[@]}")
    python3 -c "import sys; a,b=float(sys.argv[2]),float(sys.argv[3]); print(f'{int(sys.argv[1]):>11} {a:>18.1f} {b:>14.1f} {b/a:>7.3f}')" "$c" "$a" "$b"
done
