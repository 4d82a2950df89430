#!/usr/bin/env bash
# End to end through the command line on SmolLM2 (the default model):
#  1. greedy chat answer to the golden prompt starts with HF transformers' greedy text;
#  2. a seeded sampled generation (temperature 0.7, top-p 0.9, seed 42) reproduces the committed
#     expected output byte for byte (written by this same command; the seed makes it exact);
#  3. llmrt tokenize ids of the formatted golden prompt equal the HF tokenizer's ids.
# usage: test_generate_e2e.sh LLMRT_BINARY DATA_DIR
set -euo pipefail
bin=$1 data=$2
out=$("$bin" generate -p "What is the capital of France?" --chat --temperature 0 -n 8 -t 2 2>/dev/null)
echo "greedy: $out"
[ "$out" = "The capital of France is Paris." ] || { echo "FAIL: greedy answer"; exit 1; }

"$bin" generate -p "Tell me a fun fact about octopuses." --chat --temperature 0.7 --top-p 0.9 \
    --seed 42 -n 32 -t 2 2>/dev/null > /tmp/llmrt_e2e_$$.txt
if ! diff -u "$data/expected/generate_smollm2_seed42.txt" /tmp/llmrt_e2e_$$.txt; then
    rm -f /tmp/llmrt_e2e_$$.txt
    echo "FAIL: seeded generation differs from the committed output"
    exit 1
fi
rm -f /tmp/llmrt_e2e_$$.txt

# the trailing "x" keeps the prompt's final newline through $(...)
formatted=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['prompt_formatted'] + 'x', end='')" "$data/golden/smollm2_q4_1.json")
formatted=${formatted%x}
ids=$("$bin" tokenize --no-add-special --parse-special --ids "$formatted" 2>/dev/null)
want=$(python3 -c "import json,sys; print(','.join(map(str, json.load(open(sys.argv[1]))['prompt_ids'])))" "$data/golden/smollm2_q4_1.json")
[ "$ids" = "$want" ] || { echo "FAIL: tokenize: $ids != $want"; exit 1; }
echo "3 passed, 0 failed"
