#!/usr/bin/env bash
# CPU tensor parallel side by side in one run: SmolLM2 (or MODEL) decode and prefill at tp 1
# (1 and 2 threads) against tp 2 as 2 MPI processes of 1 thread each and as 2 in-process ranks
# of 1 thread each, interleaved over ROUNDS so machine noise hits every variant alike.
# usage: bench/tp_cpu.sh [LLMRT_BINARY] [MODEL] [ROUNDS]
set -euo pipefail
bin=${1:-./build/llmrt} model=${2:-} rounds=${3:-3}
margs=(); [ -n "$model" ] && margs=(-m "$model")
common=(bench latency "${margs[@]}" --device cpu -p 64 -n 64 -r 2 --format csv)
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
run() { # label, command...: prints "label prompt_tps gen_tps" from the csv row
    local label=$1; shift
    "$@" 2>/dev/null | awk -F, -v l="$label" 'NR == 2 { printf "%s %s %s\n", l, $6, $8 }'
}
echo "# $(date -u +%FT%TZ) $(uname -n) $(nproc) cores: $bin ${common[*]}"
for r in $(seq 1 "$rounds"); do
    run "tp1-t1" "$bin" "${common[@]}" -t 1
    run "tp1-t2" "$bin" "${common[@]}" -t 2
    run "tp2-mpi-t1" mpirun --oversubscribe --allow-run-as-root -np 2 "$bin" "${common[@]}" -t 1 --tp 2
    run "tp2-threads-t1" "$bin" "${common[@]}" -t 1 --tp 2
done | awk '{ p[$1] += $2; g[$1] += $3; n[$1]++; order[$1] = NR }
     END { printf "%-16s %12s %12s %10s\n", "variant", "prompt tok/s", "decode tok/s", "decode/tp1-t1";
           base = g["tp1-t1"] / n["tp1-t1"];
           split("tp1-t1 tp1-t2 tp2-mpi-t1 tp2-threads-t1", v, " ");
           for (i = 1; i <= 4; i++) { k = v[i]; if (!n[k]) continue;
               printf "%-16s %12.1f %12.1f %10.2f\n", k, p[k] / n[k], g[k] / n[k], g[k] / n[k] / base } }'
