#!/usr/bin/env bash
# Multi-LoRA on the CPU (issue 15): one batch of B requests (default 16) over 0, 1, 4 and 16
# distinct random adapters (r 16, alpha 32, all seven projections), SmolLM2 by default:
# prefill and decode tok/s, the decode time relative to no adapter (target: 16 distinct
# adapters <= 1.3x), and each adapter's load time and bytes. Medians of alternating rounds.
#
#   bench/lora_cpu.sh [BUILD_DIR] [MODEL] [ROUNDS] [THREADS]
# The adapters are written once into $LORA_DIR (default /tmp/llmrt-lora-bench) by
# tests/tools/make_random_lora.py (numpy); results print to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/llmrt_server.sh # default_model
build=${1:-build}
model=${2:-$(default_model)}
rounds=${3:-3}
threads=${4:-2}
dir=${LORA_DIR:-/tmp/llmrt-lora-bench}
mkdir -p "$dir"
list=""
for i in $(seq 0 15); do
    out="$dir/r16_all_$i"
    [ -f "$out/adapter_model.safetensors" ] ||
        python3 tests/tools/make_random_lora.py --base "$model" --out "$out" --r 16 --alpha 32 \
            --targets q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj --seed "$i" \
            --dtype f16 >/dev/null
    list="$list${list:+,}$out"
done
echo "command: bench/lora_cpu.sh $build $model $rounds $threads"
echo "git: $(git rev-parse --short HEAD)"
"$build/tests/lora_bench" -m "$model" -a "$list" -b 16 -p 128 -n 64 -t "$threads" -r "$rounds"
