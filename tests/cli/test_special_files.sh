#!/usr/bin/env bash
# Special files where a regular file is expected (issue 18, class 5): a FIFO as the model, as
# config.json / generation_config.json / model.safetensors / tokenizer.json inside an HF
# directory, as batch --input and as a bench --dataset; a directory as batch --input; the batch
# input as its own output (same path, another path, a hard link). Each must fail at once with a
# message naming the path. `timeout 10` turns a regression (a blocked open or read) into a
# failure instead of a hang (the time taken is printed; most of it is process start-up).
# usage: test_special_files.sh LLMRT_BINARY HF_MODEL_DIR GGUF_MODEL
set -euo pipefail
bin=$1 hf=$2 gguf=$3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
passed=0
# expect_refusal NAME NEEDLE CMD...: CMD exits non-zero, neither by the timeout nor by a signal,
# and its stderr contains NEEDLE
expect_refusal() {
    local name=$1 needle=$2
    shift 2
    local t0 rc=0 took
    t0=$(date +%s%N)
    timeout 10 "$@" > "$dir/stdout" 2> "$dir/stderr" || rc=$?
    took=$((($(date +%s%N) - t0) / 1000000))
    if [ $rc -eq 0 ] || [ $rc -eq 124 ] || [ $rc -ge 128 ]; then
        echo "FAIL: $name: exit $rc (0 = accepted, 124 = hung, >= 128 = crashed)"
        cat "$dir/stderr"
        exit 1
    fi
    if ! grep -qF -- "$needle" "$dir/stderr"; then
        echo "FAIL: $name: the message does not name $needle:"
        cat "$dir/stderr"
        exit 1
    fi
    echo "ok: $name (exit $rc, ${took} ms): $(grep -F -- "$needle" "$dir/stderr" | head -1)"
    passed=$((passed + 1))
}
gen=("$bin" generate --tokens 1,2,3 -n 2 -t 1 -m)

mkfifo "$dir/model.gguf"
expect_refusal "FIFO as the model" "$dir/model.gguf" "${gen[@]}" "$dir/model.gguf"

# an HF directory with one member replaced by a FIFO
for member in config.json generation_config.json model.safetensors tokenizer.json; do
    rm -rf "$dir/hf"
    mkdir "$dir/hf"
    for f in "$hf"/*; do ln -s "$(cd "$(dirname "$f")" && pwd)/$(basename "$f")" "$dir/hf/"; done
    rm -f "$dir/hf/$member"
    mkfifo "$dir/hf/$member"
    expect_refusal "FIFO as $member" "$dir/hf/$member" "${gen[@]}" "$dir/hf"
done
rm -rf "$dir/hf"
mkdir "$dir/hf"
for f in "$hf"/*; do ln -s "$(cd "$(dirname "$f")" && pwd)/$(basename "$f")" "$dir/hf/"; done
mkdir "$dir/hf/tokenizer.json"
expect_refusal "a directory as tokenizer.json" "$dir/hf/tokenizer.json" "${gen[@]}" "$dir/hf"

echo '{"custom_id": "a", "prompt_token_ids": [1, 2], "max_tokens": 2}' > "$dir/in.jsonl"
batch=("$bin" batch -m "$hf" --quiet -t 1)
mkfifo "$dir/in.fifo"
expect_refusal "FIFO as batch --input" "$dir/in.fifo" "${batch[@]}" --input "$dir/in.fifo" --output "$dir/o1"
mkdir "$dir/in.dir"
expect_refusal "directory as batch --input" "$dir/in.dir" "${batch[@]}" --input "$dir/in.dir" --output "$dir/o2"
expect_refusal "batch input = output" "same file" "${batch[@]}" --input "$dir/in.jsonl" --output "$dir/in.jsonl"
mkdir "$dir/sub"
expect_refusal "batch input = output by another path" "same file" \
    "${batch[@]}" --input "$dir/in.jsonl" --output "$dir/sub/../in.jsonl"
ln "$dir/in.jsonl" "$dir/hardlink.jsonl"
expect_refusal "batch input = output by a hard link" "same file" \
    "${batch[@]}" --input "$dir/in.jsonl" --output "$dir/hardlink.jsonl"
[ "$(cat "$dir/in.jsonl")" = '{"custom_id": "a", "prompt_token_ids": [1, 2], "max_tokens": 2}' ] ||
    { echo "FAIL: the input was modified"; exit 1; }
mkfifo "$dir/out.fifo"
expect_refusal "FIFO as batch --output" "$dir/out.fifo" "${batch[@]}" --input "$dir/in.jsonl" --output "$dir/out.fifo"
expect_refusal "FIFO as bench --dataset" "$dir/in.fifo" \
    "$bin" bench serve -m "$gguf" --dataset "$dir/in.fifo" --num-prompts 2 -t 1
echo "$passed passed, 0 failed"
