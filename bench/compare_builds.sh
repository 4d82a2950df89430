#!/usr/bin/env bash
# Prompt and decode tok/s of two llmrt binaries side by side (a build before and after a change),
# interleaved round by round on the same machine (A B A B ...) so that drifting load hits both
# alike; prints each round, the medians and the B/A ratios. Every round is one
# `llmrt bench latency` per binary with the same arguments.
#
# usage: bench/compare_builds.sh BIN_A BIN_B [ROUNDS] [bench latency args...]
#   default args: -p 128 -n 64 -r 3 -t 1,2 (the README's CPU figures)
set -euo pipefail
a=${1:?usage: compare_builds.sh BIN_A BIN_B [ROUNDS] [args...]}
b=${2:?usage: compare_builds.sh BIN_A BIN_B [ROUNDS] [args...]}
rounds=${3:-5}
shift $(( $# < 3 ? $# : 3 ))
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(-p 128 -n 64 -r 3 -t 1,2)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "# cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
echo "# A: $a"
echo "# B: $b"
echo "# args: ${args[*]}; $rounds interleaved rounds"
for r in $(seq 1 "$rounds"); do
    for which in A B; do
        bin=$a
        [ $which = B ] && bin=$b
        "$bin" bench latency "${args[@]}" 2>/dev/null |
            awk -v w=$which -v r="$r" '/^ +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ /{print w, r, $1, $6, $9}' \
            >>"$out/rows"
    done
done
# rows: which round threads prompt_tok/s gen_tok/s
python3 - "$out/rows" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
data = {}
for w, r, t, p, g in rows:
    data.setdefault((w, int(t)), []).append((float(p), float(g)))
print(f"{'threads':>7} {'A prompt':>10} {'B prompt':>10} {'B/A':>6}   {'A decode':>9} {'B decode':>9} {'B/A':>6}")
for t in sorted({k[1] for k in data}):
    A, B = data.get(("A", t), []), data.get(("B", t), [])
    if not A or not B:
        continue
    ap, bp = statistics.median(x[0] for x in A), statistics.median(x[0] for x in B)
    ag, bg = statistics.median(x[1] for x in A), statistics.median(x[1] for x in B)
    print(f"{t:>7} {ap:>10.1f} {bp:>10.1f} {bp/ap:>6.3f}   {ag:>9.1f} {bg:>9.1f} {bg/ag:>6.3f}")
print("(medians over rounds of each binary's mean over its repetitions)")
PY
