#!/usr/bin/env bash
# Decode and prompt tok/s of 8-bit GPTQ models on the CPU (model/gptq8.h): an asym model kept
# packed as Q8_Z, the same model dequantised to fp32 at load (--dequantize: what 8-bit asym /
# act-order files ran as before Q8_Z), a sym model kept as Q8_0, and optionally an act-order
# asym one (Q8_Z with x gathered per matmul); exact and int8 matmul modes, 1 and 2 threads.
# The configurations alternate, ROUNDS rounds of `llmrt bench latency -r REPS`; each figure is
# the median over the rounds of the round's mean (the machine may be shared).
#
#   bench/gptq8_cpu.sh LLMRT ASYM_DIR SYM_DIR [ACT_DIR]
#
# The models: python -m llmrt.quantize --model <SmolLM2 HF dir> --bits 8 --group-size 128
# --asym|--sym --format gptq_v2 --method rtn (act-order: --asym --desc-act --method gptq).
# Environment: ROUNDS [3], REPS [3], PROMPT [16], GEN [64], THREADS [1,2].
set -u
LLMRT=${1:?llmrt binary}
ASYM=${2:?asym model}
SYM=${3:?sym model}
ACT=${4:-}
ROUNDS=${ROUNDS:-3}
REPS=${REPS:-3}
PROMPT=${PROMPT:-16}
GEN=${GEN:-64}
THREADS=${THREADS:-1,2}
echo "# bench/gptq8_cpu.sh: $(date -u '+%Y-%m-%d %H:%M UTC'), rounds $ROUNDS x $REPS reps, prompt $PROMPT, gen $GEN"
echo "# cpu: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p') (family $(lscpu | sed -n 's/^CPU family:[[:space:]]*//p'), model $(lscpu | sed -n 's/^Model:[[:space:]]*//p')), $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
CONFIGS=("q8_z|$ASYM|LLMRT_NO_Q4=0" "f32 (dequantised)|$ASYM|LLMRT_NO_Q4=1" "q8_0 (sym)|$SYM|LLMRT_NO_Q4=0")
[ -n "$ACT" ] && CONFIGS+=("q8_z act-order|$ACT|LLMRT_NO_Q4=0")
OUT=$(mktemp -d)
for r in $(seq "$ROUNDS"); do
    for i in "${!CONFIGS[@]}"; do
        IFS='|' read -r name dir env_ <<<"${CONFIGS[$i]}"
        for mode in exact int8; do
            # the CLI's dequantize_weights ($LLMRT_NO_Q4, llmrt --dequantize)
            env "$env_" "$LLMRT" bench latency -m "$dir" -p "$PROMPT" -n "$GEN" -r "$REPS" \
                -t "$THREADS" --cpu-matmul "$mode" --format json 2>/dev/null >"$OUT/$i.$mode.$r.json"
        done
    done
done
python3 - "$OUT" "$ROUNDS" "${CONFIGS[@]}" <<'PY'
import json, statistics, sys
out, rounds, configs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
print(f"{'model':<18} {'format':<12} {'mode':<6} {'thr':>3} {'gen tok/s':>10} {'prompt tok/s':>13} {'weight MB':>10}")
for i, c in enumerate(configs):
    name = c.split("|")[0]
    for mode in ("exact", "int8"):
        runs = [json.load(open(f"{out}/{i}.{mode}.{r}.json")) for r in range(1, rounds + 1)]
        for k, res in enumerate(runs[0]["results"]):
            g = statistics.median(run["results"][k]["gen_tps_mean"] for run in runs)
            p = statistics.median(run["results"][k]["prompt_tps_mean"] for run in runs)
            print(f"{name:<18} {runs[0]['weight_format']:<12} {mode:<6} {res['threads']:>3} "
                  f"{g:>10.1f} {p:>13.1f} {runs[0]['weight_bytes'] / 1e6:>10.1f}")
PY
rm -rf "$OUT"
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
