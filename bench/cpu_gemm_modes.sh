#!/usr/bin/env bash
# The CPU matmul alone (tests/tools/cpu_gemm_bench), GFLOP/s of the exact fp32 path and of the
# bf16 matmul mode (--cpu-matmul bf16) for f32 and bf16 weights at SmolLM2-135M's shapes, against
# the core's measured peak (--peak), optionally next to another build (a before/after): the two
# builds alternate, ROUNDS rounds, and each figure is the median over the rounds of the best of
# REPS timed runs (the machine may be shared: the best of a round filters other jobs' bursts).
#
#   bench/cpu_gemm_modes.sh [NEW_BENCH] [BASE_BENCH]
#
# Environment: ROUNDS [3], REPS [20], THREADS [1 2], MS [1 16 64 512] (tokens per matmul).
set -u
cd "$(dirname "$0")/.."
NEW=${1:-./build/tests/cpu_gemm_bench}
BASE=${2:-}
ROUNDS=${ROUNDS:-3}
REPS=${REPS:-20}
THREADS=${THREADS:-1 2}
MS=${MS:-1 16 64 512}
SHAPES=("1536 576" "576 1536" "192 576")  # N K: gate/up, down, k/v projections

echo "# bench/cpu_gemm_modes.sh: $(date -u '+%Y-%m-%d %H:%M UTC'), rounds $ROUNDS, best of $REPS per round"
echo "# cpu: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p') (family $(lscpu | sed -n 's/^CPU family:[[:space:]]*//p'), model $(lscpu | sed -n 's/^Model:[[:space:]]*//p')), $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# new: $NEW${BASE:+; base: $BASE}"
"$NEW" --peak -M 1 -N 32 -K 32 -r 1 --formats f32 | head -1

# best GFLOP/s of one run: bench -M m -N n -K k -t t [--bf16] --formats f
best() { "$@" -r "$REPS" 2>/dev/null | awk '$2 == "best" {print $5}'; }
median() { python3 -c 'import statistics,sys; v=[float(x) for x in sys.argv[1:] if x]; print(f"{statistics.median(v):.1f}" if v else "n/a")' "$@"; }

printf '%-3s %-5s %-5s %-5s' thr M N K
cols=("new exact f32" "new bf16mm f32" "new bf16mm bf16")
[ -n "$BASE" ] && cols+=("base exact f32" "base bf16mm bf16")
for c in "${cols[@]}"; do printf ' %17s' "$c"; done
echo "   GFLOP/s"
for t in $THREADS; do
    for m in $MS; do
        for s in "${SHAPES[@]}"; do
            read -r n k <<<"$s"
            declare -A R=()
            for _ in $(seq "$ROUNDS"); do
                a=(-M "$m" -N "$n" -K "$k" -t "$t")
                R[0]+=" $(best "$NEW" "${a[@]}" --formats f32)"
                R[1]+=" $(best "$NEW" "${a[@]}" --bf16 --formats f32)"
                R[2]+=" $(best "$NEW" "${a[@]}" --bf16 --formats bf16)"
                if [ -n "$BASE" ]; then
                    R[3]+=" $(best "$BASE" "${a[@]}" --formats f32)"
                    R[4]+=" $(best "$BASE" "${a[@]}" --bf16 --formats bf16)"
                fi
            done
            printf '%-3s %-5s %-5s %-5s' "$t" "$m" "$n" "$k"
            for i in $(seq 0 $((${#cols[@]} - 1))); do
                # shellcheck disable=SC2086
                printf ' %17s' "$(median ${R[$i]})"
            done
            echo
            unset R
        done
    done
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
