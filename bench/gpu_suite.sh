#!/usr/bin/env bash
# The GPU suite (issue 20): every GPU figure of the project in one run, sized for under 8 minutes
# on one H100 with no network (random weights: nothing is downloaded).
#
#   bench/gpu_suite.sh [--smoke] [--build-dir DIR] [OUTDIR]   default OUTDIR: bench/results/gpu_suite
#
#   --smoke          tiny shapes (a 2-layer random config): checks the script itself, e.g. on a
#                    cusim build (--build-dir build-sim) on a machine without a GPU
#   --build-dir DIR  use the binaries in DIR (default build-gpu, unpacked or built here)
#
# Steps, each under its own time limit, each writing OUTDIR/<step>.txt; a failing step is
# reported and the next one runs:
#   machine   nvidia-smi (GPU, driver, clocks), nvcc, CPU
#   build     the binaries: unpacked from .gpu/build.tar.xz when bench/gpu_pack.sh made one on
#             a machine without a GPU, else configured and built here with nvcc for this GPU
#   ceilings  measured HBM copy bandwidth and fp16 matmul rate (PyTorch, when installed): the
#             datasheet peaks of the reports, checked
#   ctest     ctest -L gpu -V: every CUDA test against its CPU/fp64 reference, plus the kernel
#             benchmarks (4-bit GEMV/GEMM vs cuBLAS fp16, attention decode/prefill, launch cost)
#   f16, q4   llmrt bench latency, Llama-2-7B shapes (bench/configs/, random weights), fp16 and
#             GPTQ 4-bit g128: batch 1/8/32/64 x prompt 512/2048: TTFT, TPOT, tok/s, % of the
#             HBM and tensor peaks
#   graphs    eager vs CUDA-graph decode (batch 1 and 32), when the build has --no-cuda-graphs
# The last lines printed are the summary (the tables of f16 and q4).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build-gpu smoke=0 given_build=0
while [ $# -gt 0 ]; do
    case $1 in
    --smoke) smoke=1; shift ;;
    --build-dir) build=$(cd "$2" && pwd) given_build=1; shift 2 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    -*) echo "gpu_suite.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
    esac
done
out=${1:-$root/bench/results/gpu_suite}
export root build
mkdir -p "$out"
t_start=$(date +%s)

say() { printf '%s\n' "$*" | tee -a "$out/suite.txt"; }
# step NAME LIMIT_S COMMAND...: runs COMMAND with its output in OUTDIR/NAME.txt
step() {
    local name=$1 limit=$2 t0 rc
    shift 2
    t0=$(date +%s)
    say "=== $name (limit ${limit} s): $*"
    if declare -F "$1" > /dev/null; then # a function of this script: in a child bash
        timeout --kill-after=10 "$limit" bash -c "$(declare -f "$1"); $*" > "$out/$name.txt" 2>&1
    else
        timeout --kill-after=10 "$limit" "$@" > "$out/$name.txt" 2>&1
    fi
    rc=$?
    say "=== $name: rc $rc in $(( $(date +%s) - t0 )) s$([ $rc = 124 ] && echo ' (TIMED OUT)')"
    return $rc
}

say "# bench/gpu_suite.sh, $(date -u +%FT%TZ), git $(git -C "$root" rev-parse --short HEAD 2>/dev/null || cat "$root/.gpu/GIT_REV" 2>/dev/null)"

# ---- machine
machine() {
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit \
        --format=csv
    nvidia-smi
    nvcc --version | tail -2
    lscpu | grep -E 'Model name|^CPU\(s\)'
}
step machine 30 machine
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
say "# GPU: ${gpu:-none found}"

# ---- libraries: CUDA's runtime, cuBLAS and NCCL (the toolkit's, or the pip wheels PyTorch
# brings: nvidia/*/lib, nvidia/cu13/lib) and the packed ones (.gpu/lib)
for d in "$root/.gpu/lib" $(find /usr/local /opt /usr/lib -xdev \( -name 'libcudart.so.1[0-9]' \
    -o -name 'libcublas.so.1[0-9]' -o -name 'libnccl.so.2' \) -printf '%h\n' 2>/dev/null | sort -u); do
    [ -d "$d" ] && LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$d
done
export LD_LIBRARY_PATH

# ---- build
build_here() {
    if [ -f "$root/.gpu/build.tar.xz" ]; then
        # packed by bench/gpu_pack.sh elsewhere; its CTest files name that checkout's path
        local src
        src=$(cat "$root/.gpu/SOURCE_DIR")
        rm -rf "$build" && mkdir -p "$build" && tar -xJf "$root/.gpu/build.tar.xz" -C "$build" || return 1
        if [ "$src" != "$root" ] && [ ! -e "$src" ]; then
            mkdir -p "$(dirname "$src")" && ln -s "$root" "$src"
        fi
        echo "unpacked the build of git $(cat "$root/.gpu/GIT_REV") (made in $src)"
        return 0
    fi
    local cc
    cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DLLMRT_CUDA=nvcc \
        -DCMAKE_CUDA_ARCHITECTURES="${cc:-90}" && cmake --build "$build" -j "$(nproc)"
}
if [ $given_build = 0 ]; then
    step build 300 build_here || { say "build failed: see $out/build.txt"; exit 1; }
fi
llmrt=$build/llmrt
say "# LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
ldd "$llmrt" | grep -E 'not found|cudart|cublas|nccl|cjson|pcre2' | tee -a "$out/suite.txt"

# ---- measured ceilings (PyTorch, if present): the datasheet peaks the reports use, checked
ceilings() {
    python3 - <<'PY'
import torch
dev = torch.device("cuda")
print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__)
x = torch.empty(1 << 31, dtype=torch.uint8, device=dev); y = torch.empty_like(x)
e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
for _ in range(3): y.copy_(x)
e0.record()
for _ in range(20): y.copy_(x)
e1.record(); torch.cuda.synchronize()
t = e0.elapsed_time(e1) / 20 / 1e3
print(f"HBM copy: {2 * x.numel() / t / 1e9:.0f} GB/s (read + write bytes, 2 GiB buffers)")
del x, y
for n in (4096, 8192):
    a = torch.randn(n, n, dtype=torch.float16, device=dev); b = torch.randn(n, n, dtype=torch.float16, device=dev)
    for _ in range(3): a @ b
    e0.record()
    for _ in range(20): a @ b
    e1.record(); torch.cuda.synchronize()
    t = e0.elapsed_time(e1) / 20 / 1e3
    print(f"fp16 matmul {n}^3 (cuBLAS via torch): {2 * n ** 3 / t / 1e12:.0f} TFLOP/s")
PY
}
step ceilings 60 ceilings

# ---- ctest -L gpu (correctness + kernel benchmarks)
step ctest 240 ctest --test-dir "$build" -L gpu -V --timeout 120
grep -E '^[0-9]+/[0-9]+ Test|tests passed|tests failed|\*\*\*' "$out/ctest.txt" | tee -a "$out/suite.txt"

# ---- end-to-end latency, Llama-2-7B shapes
lat=(bench latency --load-format random --device cuda -p 512,2048 -b 1,8,32,64 -n 32 -r 2 -w 1 -t 8)
f16=$root/bench/configs/llama2-7b q4=$root/bench/configs/llama2-7b-gptq-4bit
if [ $smoke = 1 ]; then
    lat=(bench latency --load-format random --device cuda -p 16,40 -b 1,3 -n 3 -r 1 -w 1 -t 1)
    f16=$root/bench/configs/smoke q4=$root/bench/configs/smoke-gptq-4bit
fi
step f16 150 "$llmrt" "${lat[@]}" -m "$f16"
step q4 150 "$llmrt" "${lat[@]}" -m "$q4"

# ---- eager vs CUDA graphs (decode), when the build has graphs
if "$llmrt" bench latency --help 2>&1 | grep -q -- '--no-cuda-graphs'; then
    g=(bench latency --load-format random --device cuda -p 512 -b 1,32 -n 64 -r 3 -w 1 -t 8 -m "$f16")
    [ $smoke = 1 ] && g=(bench latency --load-format random --device cuda -p 16 -b 1,3 -n 4 -r 1 -w 1 -t 1 -m "$f16")
    step graphs_on 90 "$llmrt" "${g[@]}"
    step graphs_off 90 "$llmrt" "${g[@]}" --no-cuda-graphs
else
    say "# graphs: this build has no CUDA-graph decode (no --no-cuda-graphs flag): skipped"
fi

say "# total $(( $(date +%s) - t_start )) s"
# the summary: the figures of each step, last (a reply that keeps only the end still has them)
for f in ceilings f16 q4 graphs_on graphs_off; do
    [ -f "$out/$f.txt" ] || continue
    echo "--- $f"
    grep -vE '^# (command|machine|git|KV cache)|^llmrt: ' "$out/$f.txt"
done | tee -a "$out/suite.txt"
