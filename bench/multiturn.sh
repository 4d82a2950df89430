#!/usr/bin/env bash
# Multi-turn chat with and without the prefix cache: starts `llmrt serve --port 0` twice (engine
# defaults, prefix cache on; then --no-prefix-cache), runs bench/multiturn.py against each (K
# conversations x 5 turns, each turn resends the history plus ~N new words, streamed, greedy,
# max_tokens 32) and prints TTFT p50 of turn 1 vs turn 5 for both.
#
# usage: bench/multiturn.sh [LLMRT] [multiturn.py args...]
#   default: ./build/llmrt --conversations 8 --turns 5 --words 40 --max-tokens 32; server -t 2
set -euo pipefail
bin=${1:-./build/llmrt}
shift $(( $# < 1 ? $# : 1 ))
here=$(cd "$(dirname "$0")" && pwd)
args=("$@")
threads=(-t 2)
dir=$(mktemp -d)
source "$here/llmrt_server.sh"
trap 'stop_server; rm -rf "$dir"' EXIT

echo "# cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores; server ${threads[*]}, engine defaults"
for mode in on off; do
    if [ "$mode" = on ]; then start_server; else start_server --no-prefix-cache; fi
    python3 "$here/multiturn.py" --base-url "$url" --label "prefix cache $mode" \
        --json "$dir/$mode.json" "${args[@]}"
    stop_server
    echo
done
python3 - "$dir/on.json" "$dir/off.json" <<'PY'
import json, sys
on, off = (json.load(open(p)) for p in sys.argv[1:3])
last = on["per_turn"][-1]["turn"]
print(f"# TTFT p50, turn 1 vs turn {last} ({on['conversations']} conversations)")
print(f"{'prefix cache':>12} {'turn 1 ms':>10} {'turn %d ms' % last:>10} {'ratio':>6} {'cached tok turn %d' % last:>18}")
for name, d in (("on", on), ("off", off)):
    a, b = d["per_turn"][0], d["per_turn"][-1]
    print(f"{name:>12} {a['ttft_p50_s']*1e3:>10.1f} {b['ttft_p50_s']*1e3:>10.1f} "
          f"{b['ttft_p50_s']/a['ttft_p50_s']:>6.2f} {b['cached_tokens_mean']:>18.1f}")
t5_on, t5_off = on["per_turn"][-1]["ttft_p50_s"], off["per_turn"][-1]["ttft_p50_s"]
print(f"turn {last} TTFT p50, cache off / on: {t5_off / t5_on:.2f}x")
PY
