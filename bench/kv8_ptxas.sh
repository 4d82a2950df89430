#!/usr/bin/env bash
# ptxas figures of the kernels that read or write the KV cache (issue 20: int8 / fp8 KV), for
# sm_80 and sm_90: registers, spills and shared memory per instance (KV template argument:
# 0 = the activation dtype, 1 = int8, 2 = fp8 e4m3). Compiles the four files alone with the
# flags of the nvcc build (cuda/CMakeLists.txt: -std=c++17 -O3 --resource-usage).
#
#   bench/kv8_ptxas.sh [NVCC]     (prints a table; exits 1 if any instance spills)
set -euo pipefail
cd "$(dirname "$0")/../cuda"
nvcc=${1:-nvcc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "command: bench/kv8_ptxas.sh $nvcc"
echo "nvcc: $("$nvcc" --version | tail -1)"
echo "git: $(git rev-parse --short HEAD)"
for f in rope_kv attention_naive attention_prefill attention_decode; do
    "$nvcc" -std=c++17 -O3 -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
        --resource-usage -I. -c "$f.cu" -o "$tmp/$f.o" >"$tmp/$f.log" 2>&1
    cat "$tmp/$f.log" >>"$tmp/all.log"
done
python3 - "$tmp/all.log" <<'PY'
import re, subprocess, sys
rows, arch, fn, spills = [], None, None, 0
for line in open(sys.argv[1]):
    m = re.search(r"Compiling entry function '(\S+)' for '(sm_\d+)'", line)
    if m:
        fn, arch = m.group(1), m.group(2)
        continue
    m = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", line)
    if m and fn:
        st, ld = int(m.group(1)), int(m.group(2))
        continue
    m = re.search(r"Used (\d+) registers.*?(?:(\d+) bytes smem)?", line)
    if m and fn:
        name = subprocess.run(["c++filt", fn], capture_output=True, text=True).stdout.strip()
        name = re.sub(r"\(anonymous namespace\)::", "", name).split("(")[0]
        rows.append((name, arch, int(m.group(1)), st, ld))
        spills += st + ld
        fn = None
w = max(len(r[0]) for r in rows)
print(f"{'kernel':{w}} {'arch':6} {'regs':>5} {'spill st':>9} {'spill ld':>9}")
for r in sorted(rows):
    print(f"{r[0]:{w}} {r[1]:6} {r[2]:>5} {r[3]:>9} {r[4]:>9}")
print(f"instances: {len(rows)}, total spill bytes: {spills}")
sys.exit(1 if spills else 0)
PY
