#!/usr/bin/env python3
"""Per-kernel registers / spills / shared memory / theoretical occupancy from an nvcc build log.

Reads the ptxas `--resource-usage` lines of an nvcc build of the CUDA kernels (cuda/CMakeLists.txt
passes --resource-usage) and prints a markdown table (bench/results/cuda_kernel_resources.md): per
kernel instance (demangled, shortened) and architecture (sm_80, sm_90): registers per thread, spill
stores/loads (must be 0), stack frame, static shared memory (ptxas), dynamic shared memory of the
launch, the block size the launcher uses, and the theoretical occupancy (resident warps per SM)
with its limiting resource.

Block size and dynamic shared memory are not in the log: LAUNCHES below states them per kernel,
each read from the kernel's launch code or its traits struct, and names which. Every entry carries
snippets of the source it was read from; the script checks that each still occurs in cuda/ (whitespace
normalised) and fails otherwise, so a changed launch configuration cannot leave a stale table.

Occupancy (CUDA occupancy calculator rules, the largest shared-memory carveout):
  warps per block  = ceil(threads / 32)
  by registers     = floor(floor(65536 / (ceil(regs * 32 / 256) * 256)) / warps per block) blocks
  by shared memory = floor(smem per SM / (static + dynamic + 1 KB reserved per block)) blocks
  by warps/blocks  = min(floor(64 / warps per block), 32) blocks
  resident warps   = min(...) * warps per block   (of 64 per SM on sm_80 and sm_90)
Shared memory per SM: 164 KB on sm_80 (A100), 228 KB on sm_90 (H100). Where the dynamic shared
memory depends on the shape (q4_gemv), it is not counted and the row says so.

Usage:
  cmake -S . -B build-nvcc -DLLMRT_CUDA=nvcc -DCMAKE_CUDA_ARCHITECTURES="80;90"
  cmake --build build-nvcc -j2 --target llmrt_cuda --clean-first 2>&1 | tee build-nvcc/llmrt_cuda.log
  python3 python/tools/cuda_resource_table.py build-nvcc/llmrt_cuda.log \
      > bench/results/cuda_kernel_resources.md
Kernels without a LAUNCHES entry (the tests' own, in a full build's log) get registers and spills
only. Exit status 1 if a kernel spills or a LAUNCHES source snippet is gone.
"""
import argparse
import os
import re
import subprocess
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

ARCH = {  # registers per SM, max warps per SM, max blocks per SM, shared memory per SM (bytes)
    "sm_80": (65536, 64, 32, 164 * 1024),
    "sm_90": (65536, 64, 32, 228 * 1024),
}
REG_ALLOC_UNIT = 256  # registers are allocated per warp in units of 256
SMEM_RESERVED = 1024  # per block, by the CUDA runtime (CUDA 11+)

# Llama-2-7B sizes for the row kernels whose block size follows the row length
D_MODEL, HEADS, KV_HEADS, HEAD_DIM = 4096, 32, 32, 128


def row_threads(cols):
    """cuda/llmrt_dtype.cuh llmrt_row_threads: whole warps, 32 .. 256."""
    return max(32, min(256, (cols + 31) // 32 * 32))


def prefill_smem(hd):
    """PrefillTraits<HD>::kSmemBytes = 2 * kStages * kBlockN * kRowBytes."""
    stages = 3 if hd == 64 else 2
    return 2 * stages * 64 * hd * 2


def decode_smem(hd):
    """DecodeTraits<HD>::kSmemBytes = kQBytes + max(kRingBytes, kMergeBytes)."""
    stages = 3 if hd == 64 else 2
    q_bytes = 16 * hd * 2
    ring = 2 * stages * 64 * hd * 2
    merge = 4 * 16 * (hd + 2) * 4
    return q_bytes + max(ring, merge)


def q4_gemm_smem(mt):
    """GemmTraits<MT>::kSmemBytes = kStages * (kBM * kBK * 2 + kBBytes + kSZBytes)."""
    return 4 * (16 * mt * 64 * 2 + (64 // 16) * 4 * 32 * 16 + 2 * 2 * 4 * 8 * 16)


# kernel base name -> (threads(targs), dynamic smem(targs) or None (shape-dependent), where the
# figures come from, [(file, snippet that must occur in it)]). targs: the template arguments.
PF = "attention_prefill.cu"
DE = "attention_decode.cu"
LAUNCHES = {
    "attn_prefill_kernel": (
        lambda t: 128, lambda t: prefill_smem(int(t[1])),
        "traits PrefillTraits<HD>: kThreads = kBlockM/16*32, kSmemBytes = 2*kStages*kBlockN*HD*2",
        [(PF, "static constexpr int kBlockM = 64;"), (PF, "static constexpr int kBlockN = 64;"),
         (PF, "static constexpr int kWarps = kBlockM / 16;"),
         (PF, "static constexpr int kThreads = kWarps * 32;"),
         (PF, "static constexpr int kStages = HD == 64 ? 3 : 2;"),
         (PF, "static constexpr int kSmemBytes = 2 * kStages * kTileBytes;"),
         (PF, "LAUNCH((attn_prefill_kernel<T, HD, KV>), dim3((unsigned)tiles, (unsigned)a->n_heads),"),
         (PF, "Tr::kThreads, Tr::kSmemBytes, stream, static_cast<const T *>(a->q),")]),
    "attn_decode_kernel": (
        lambda t: 128, lambda t: decode_smem(int(t[1])),
        "traits DecodeTraits<HD>: kThreads = 4 warps, kSmemBytes = Q + max(K/V ring, merge)",
        [(DE, "static constexpr int kWarps = 4;"), (DE, "static constexpr int kThreads = kWarps * 32;"),
         (DE, "static constexpr int kStages = HD == 64 ? 3 : 2;"),
         (DE, "static constexpr int kMergeBytes = kWarps * kRows * (HD + 2) * 4;"),
         (DE, "kQBytes + (kRingBytes > kMergeBytes ? kRingBytes : kMergeBytes);"),
         (DE, "Tr::kThreads, Tr::kSmemBytes, stream,")]),
    "attn_decode_combine_kernel": (
        lambda t: int(t[1]), lambda t: 0, "launch code: HD threads, no dynamic smem",
        [(DE, "LAUNCH((attn_decode_combine_kernel<T, HD>), dim3(a->n_heads, a->n_seqs), HD, 0,")]),
    "attention_naive_kernel": (
        lambda t: 128, lambda t: 0, "launch code: 32 * ATTN_NAIVE_WARPS (4)",
        [("attention_naive.cu", "#define ATTN_NAIVE_WARPS 4"),
         ("attention_naive.cu", "(unsigned)blocks, 32 * ATTN_NAIVE_WARPS, 0,")]),
    "llmrt_fault_kernel": (
        lambda t: 1, lambda t: 0, "launch code: 1 thread (device.cu fault injection, tests only)",
        [("device.cu", "LAUNCH(llmrt_fault_kernel, 1, 1, 0,")]),
    "add_kernel": (lambda t: 256, lambda t: 0, "launch code: 256",
                   [("elementwise.cu", "llmrt_flat_blocks(n, 256), 256, 0, s, x,")]),
    "convert_kernel": (lambda t: 256, lambda t: 0, "launch code: 256",
                       [("elementwise.cu", "llmrt_flat_blocks(n, 256), 256, 0, s, (TO *)out,")]),
    "swiglu_kernel": (lambda t: 256, lambda t: 0, "launch code: 256",
                      [("swiglu.cu", "llmrt_flat_blocks(n, 256), 256, 0, s,")]),
    "gather_rows_kernel": (
        lambda t: row_threads(D_MODEL), lambda t: 0,
        f"launch code: llmrt_row_threads(D), D = {D_MODEL}",
        [("elementwise.cu", "n_rows, llmrt_row_threads(D), 0, s,")]),
    "add_bias_kernel": (
        lambda t: row_threads(D_MODEL), lambda t: 0,
        f"launch code: llmrt_row_threads(N), N = {D_MODEL}",
        [("elementwise.cu", "(unsigned)rows, llmrt_row_threads(N), 0, s,")]),
    "embed_kernel": (
        lambda t: row_threads(D_MODEL), lambda t: 0,
        f"launch code: llmrt_row_threads(D), D = {D_MODEL}",
        [("embed.cu", "const int threads = llmrt_row_threads(D);")]),
    "add_rmsnorm_kernel": (
        lambda t: row_threads(D_MODEL), lambda t: 0,
        f"launch code: llmrt_row_threads(D), D = {D_MODEL}",
        [("rmsnorm.cu", "const int threads = llmrt_row_threads(D);")]),
    "rope_kv_kernel": (
        lambda t: row_threads((HEADS + KV_HEADS) * HEAD_DIM // 2), lambda t: 0,
        f"launch code: llmrt_row_threads((Hq + Hkv) * hd/2), Hq = Hkv = {HEADS}, hd = {HEAD_DIM}",
        [("rope_kv.cu", "const int threads = llmrt_row_threads((int64_t)(Hq + Hkv) * (hd / 2));")]),
    "kv8_write_kernel": (
        lambda t: 128, lambda t: 0, "launch code: 32 * KV8_WARPS (4), no dynamic smem",
        [("rope_kv.cu", "#define KV8_WARPS 4"),
         ("rope_kv.cu", "(unsigned)blocks, 32 * KV8_WARPS, 0, s, (const T *)k,")]),
    "lora_shrink_kernel": (
        lambda t: 128, lambda t: 4 * int(t[1]) * 256,
        "launch code: kThreads = 128, shrink_smem<MR>() = 4 * MR * kChunkK (256)",
        [("lora.cu", "constexpr int kThreads = 128;"), ("lora.cu", "constexpr int kChunkK = 256;"),
         ("lora.cu", "return sizeof(float) * MR * kChunkK; }")]),
    "lora_expand_kernel": (
        lambda t: 128, lambda t: 4 * (128 * 33 + int(t[1]) * 32),
        "launch code: kThreads = 128, expand_smem<MR>() = 4 * (kCols * (kChunkR + 1) + MR * kChunkR)",
        [("lora.cu", "constexpr int kCols = kThreads;"), ("lora.cu", "constexpr int kChunkR = 32;"),
         ("lora.cu", "return sizeof(float) * (kCols * (kChunkR + 1) + MR * kChunkR);")]),
    "lora_shrink_mma_kernel": (
        lambda t: 128, lambda t: 4 * 4 * 16 * 16,
        "launch code: kThreads = 128, kMmaSmem = 4 * kWarps * 16 * kRanksPerBlock (16)",
        [("lora.cu", "constexpr size_t kMmaSmem = sizeof(float) * kWarps * kMmaRows * kRanksPerBlock;"),
         ("lora.cu", "constexpr int kRanksPerWarp = 4;"), ("lora.cu", "kThreads, kMmaSmem, s,")]),
    "q4_gemm_kernel": (
        lambda t: 128, lambda t: q4_gemm_smem(int(t[0])),
        "launch code: kThreads = 128, smem = GemmTraits<MT>::kSmemBytes (4 stages)",
        [("q4_gemm.cu", "constexpr int kWarps = 4;"), ("q4_gemm.cu", "constexpr int kStages = 4;"),
         ("q4_gemm.cu", "constexpr int kThreads = kWarps * 32;"),
         ("q4_gemm.cu", "static constexpr int kSmemBytes = kStages * kStageBytes;"),
         ("q4_gemm.cu", "grid, kThreads, smem, stream,")]),
    "q4_gemv_kernel": (
        lambda t: 128, lambda t: None,
        "launch code: kThreads = 128; dynamic smem from gemv_plan (shape-dependent, <= 48 KB)",
        [("q4_gemv.cu", "constexpr int kWarps = 4;"), ("q4_gemv.cu", "constexpr int kThreads = kWarps * 32;"),
         ("q4_gemv.cu", "ctas, kThreads, smem, stream, a);")]),
    "fused_gemv_kernel": (
        lambda t: 256, lambda t: int(t[1]) * 4096,
        "launch code: kThreads = 256; smem = MR * chunk_elems<T>() * sizeof(T) = MR * kChunkBytes / 8",
        [("fused_gemv.cu", "constexpr int kWarps = 8;"),
         ("fused_gemv.cu", "constexpr int kThreads = kWarps * 32;"),
         ("fused_gemv.cu", "constexpr int kChunkBytes = 32 * 1024;"),
         ("fused_gemv.cu", "const size_t smem = (size_t)MR * chunk_elems<T>() * sizeof(T);"),
         ("fused_gemv.cu", "grid, kThreads, smem, s, p);")]),
    "q4_gather_cols_kernel": (lambda t: 256, lambda t: 0, "launch code: kFinThreads = 256",
                              [("q4_matmul.cu", "q4::mm::kFinThreads, 0, st,")]),
    "gather_cols_kernel": (lambda t: 256, lambda t: 0, "launch code: kGatherThreads = 256, no dynamic smem",
                           [("gather_cols.cu", "constexpr int kGatherThreads = 256;"),
                            ("gather_cols.cu", "LAUNCH((gather_cols_kernel<uint16_t>), grid, kGatherThreads, 0, s,")]),
    "ggml_gemv_kernel": (
        lambda t: 128, lambda t: 0, "launch code: kThreads = 128, no dynamic smem",
        [("ggml_matmul.cu", "constexpr int kThreads = 128;"),
         ("ggml_matmul.cu", "LAUNCH((ggml_gemv_kernel<T, A>), (a.N + kWarps - 1) / kWarps, kThreads, 0,")]),
    "ggml_gemm_kernel": (
        lambda t: 128, lambda t: (16 * int(t[1]) + 64) * 40 * 2,
        "launch code: kThreads = 128, smem = GemmTraits<MT>::kSmemBytes = (16 MT + kBN) * kLd * 2",
        [("ggml_matmul.cu", "constexpr int kBN = 64, kBK = 32, kLd = kBK + 8;"),
         ("ggml_matmul.cu", "static constexpr int kSmemBytes = (kBM + kBN) * kLd * 2;"),
         ("ggml_matmul.cu", "LAUNCH((ggml_gemm_kernel<T, MT, A>), grid, kThreads, GemmTraits<MT>::kSmemBytes,")]),
    "ggml_embed_kernel": (
        lambda t: 128, lambda t: 0, "launch code: kThreads = 128, no dynamic smem",
        [("ggml_matmul.cu", "LAUNCH((ggml_embed_kernel<T>), n_tokens, kThreads, 0, s,")]),
}


def check_sources(cuda_dir):
    """The snippets each LAUNCHES entry was read from, missing from the source: [(kernel, file, snippet)]."""
    cache, missing = {}, []
    for kernel, (_, _, _, snippets) in LAUNCHES.items():
        for fname, snippet in snippets:
            if fname not in cache:
                with open(os.path.join(cuda_dir, fname), encoding="utf-8") as f:
                    cache[fname] = " ".join(f.read().split())
            if " ".join(snippet.split()) not in cache[fname]:
                missing.append((kernel, fname, snippet))
    return missing


def parse_log(lines):
    """{(mangled, arch): {regs, spill_st, spill_ld, stack, smem, barriers}} from ptxas -v output."""
    out, cur, props = {}, None, {}
    for line in lines:
        m = re.search(r"Compiling entry function '([^']+)' for '(sm_\d+a?)'", line)
        if m:
            cur, props = (m.group(1), m.group(2)), {}
            continue
        if cur is None:
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m and "stack" not in props:
            props.update(stack=int(m.group(1)), spill_st=int(m.group(2)), spill_ld=int(m.group(3)))
            continue
        m = re.search(r"Used (\d+) registers", line)
        if m:
            props["regs"] = int(m.group(1))
            s = re.search(r"(\d+) bytes smem", line)
            props["smem"] = int(s.group(1)) if s else 0
            b = re.search(r"used (\d+) barriers", line)
            props["barriers"] = int(b.group(1)) if b else 0
            props.setdefault("stack", 0)
            props.setdefault("spill_st", 0)
            props.setdefault("spill_ld", 0)
            prev = out.get(cur)
            if prev and prev != props:
                sys.exit(f"{cur[0]} ({cur[1]}) compiled twice with different resources: {prev} vs {props}")
            out[cur] = props
            cur = None
    return out


def demangle(names):
    res = subprocess.run(["c++filt"], input="\n".join(names), text=True, capture_output=True, check=True)
    return res.stdout.split("\n")[: len(names)]


def split_name(demangled):
    """'void (anonymous namespace)::dec::attn_decode_kernel<__half, 128>(...)' ->
    ('attn_decode_kernel', ['__half', '128'])."""
    s = re.sub(r"^void ", "", demangled)
    s = s.replace("(anonymous namespace)::", "")
    depth, cut = 0, len(s)  # drop the parameter list: the first '(' outside template brackets
    for i, c in enumerate(s):
        depth += c == "<"
        depth -= c == ">"
        if c == "(" and depth == 0:
            cut = i
            break
    s = s[:cut]
    base, targs = s, []
    if "<" in s:
        base, args = s.split("<", 1)
        targs = [a.strip() for a in args[:-1].split(",")]
    return base.split("::")[-1], targs


SHORT = {"__half": "f16", "__nv_bfloat16": "bf16", "float": "f32", "true": "1", "false": "0"}


def short_name(base, targs):
    return base + (f"<{', '.join(SHORT.get(a, a) for a in targs)}>" if targs else "")


def occupancy(arch, regs, threads, smem):
    """(resident warps per SM, what limits it); smem None: shared memory not counted."""
    reg_file, max_warps, max_blocks, smem_sm = ARCH[arch]
    wpb = -(-threads // 32)
    regs_per_warp = -(-regs * 32 // REG_ALLOC_UNIT) * REG_ALLOC_UNIT
    limits = {
        "warps/blocks": min(max_warps // wpb, max_blocks),
        "registers": (reg_file // regs_per_warp) // wpb if regs_per_warp else max_blocks,
    }
    if smem is not None:
        limits["smem"] = smem_sm // (smem + SMEM_RESERVED)
    blocks = min(limits.values())
    if blocks * wpb == max_warps:
        return blocks * wpb, "full"
    return blocks * wpb, " + ".join(k for k, v in limits.items() if v == blocks)


def kib(b):
    return "0" if b == 0 else f"{b / 1024:.1f} KB"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("log", help="nvcc build log with ptxas --resource-usage output")
    ap.add_argument("--cuda-dir", default=os.path.join(REPO, "cuda"), help="the kernels' sources")
    args = ap.parse_args()

    missing = check_sources(args.cuda_dir)
    for kernel, fname, snippet in missing:
        print(f"{kernel}: '{snippet}' no longer in cuda/{fname}: update LAUNCHES", file=sys.stderr)
    with open(args.log, errors="replace") as f:
        res = parse_log(f)
    if not res:
        sys.exit(f"{args.log}: no ptxas 'Compiling entry function' lines (build with --resource-usage, "
                 "from clean: --clean-first)")
    keys = sorted(res)
    names = demangle([k[0] for k in keys])
    archs = sorted({k[1] for k in keys})
    table, unknown, spills = {}, set(), []  # (base, targs) -> {arch: cell}
    for (mangled, arch), dem in zip(keys, names):
        base, targs = split_name(dem)
        r = res[(mangled, arch)]
        if r["spill_st"] or r["spill_ld"]:
            spills.append(f"{short_name(base, targs)} {arch}")
        if base not in LAUNCHES:  # e.g. the kernels of cuda/tests in a full build's log
            unknown.add(base)
            table.setdefault((base, tuple(targs)), {})[arch] = (r, "?", 0, None, None)
            continue
        threads_f, smem_f, _, _ = LAUNCHES[base]
        threads, dyn = threads_f(targs), smem_f(targs)
        warps, limit = occupancy(arch, r["regs"], threads, None if dyn is None else r["smem"] + dyn)
        table.setdefault((base, tuple(targs)), {})[arch] = (r, threads, dyn, warps, limit)
    for u in sorted(unknown):
        print(f"{u}: no LAUNCHES entry: registers and spills only (add one if it is a backend "
              "kernel)", file=sys.stderr)
    for sp in spills:
        print(f"{sp}: spills registers", file=sys.stderr)

    print("# CUDA kernels: registers, spills, shared memory, theoretical occupancy")
    print()
    print("Generated by `python3 python/tools/cuda_resource_table.py build-nvcc/llmrt_cuda.log` from "
          "the ptxas `--resource-usage` output of")
    print('`cmake -S . -B build-nvcc -DLLMRT_CUDA=nvcc -DCMAKE_CUDA_ARCHITECTURES="80;90" && '
          "cmake --build build-nvcc -j2 --target llmrt_cuda --clean-first 2>&1 | tee "
          f"build-nvcc/llmrt_cuda.log` (nvcc on PATH: {nvcc_version()}). Static figures: nothing "
          "here ran on a GPU.")
    print()
    print("- regs: registers per thread; spills: bytes of spill stores/loads (must be 0); stack: "
          "bytes of stack frame.")
    print("- smem: static (ptxas) + dynamic (the launch's) shared memory per block.")
    print("- warps/SM: theoretical resident warps of 64 per SM from registers (allocated per warp in "
          "units of 256), shared memory (largest carveout: 164 KB/SM on sm_80, 228 KB/SM on sm_90, "
          "1 KB reserved per block) and the 64-warp / 32-block limits; then what limits it "
          "(full = 64 warps).")
    print("- threads and dynamic smem are not in the log: they come from the launch code or traits "
          "named in the last column (Llama-2-7B sizes where they follow the row length); the script "
          "checks that the source it read them from is unchanged.")
    print("- template arguments: element types as f16/bf16/f32, head dim (attention), rows per "
          "instance MR / m16 tiles MT (q4_gemv / q4_gemm, LoRA), ZF: 1 = float offsets "
          "(w = s·q + m), 0 = integer zeros (w = s·(q - z)); KV (attention, kv8_write, last): the KV "
          "cache type, 0 = the activation type, 1 = int8, 2 = fp8 e4m3 (llmrt_cuda_kv_dtype); "
          "ggml_* (GGUF blocks, cuda/ggml_matmul.h): first the block type (llmrt_cuda_ggml_type: "
          "0 Q8_0, 1 Q5_0, 2 Q5_1, 3 Q2_K, 4 Q3_K, 5 Q4_K, 6 Q5_K, 7 Q6_K, 8 Q8_Z), then MT "
          "(ggml_gemm), then "
          "the activation type.")
    print()
    print(f"Kernel instances: {len(table)}, architectures: {', '.join(archs)}. Spilling: "
          f"{', '.join(spills) if spills else 'none (0 bytes spill stores and loads everywhere)'}.")
    print()
    head = "| kernel | threads | smem static + dynamic |"
    rule = "|---|---:|---:|"
    for a in archs:
        head += f" {a} regs | {a} spills | {a} stack | {a} warps/SM (limit) |"
        rule += "---:|---:|---:|---|"
    print(head + " threads / smem from |")
    print(rule + "---|")
    for (base, targs), cells in sorted(table.items()):
        any_cell = next(iter(cells.values()))
        _, threads, dyn, _, _ = any_cell
        statics = sorted({kib(c[0]["smem"]) for c in cells.values()})
        smem = "/".join(statics) + " + " + ("shape-dependent (not counted)" if dyn is None else kib(dyn))
        if threads == "?":
            smem = "/".join(statics) + " + ?"
        row = f"| `{short_name(base, list(targs))}` | {threads} | {smem} |"
        for a in archs:
            if a not in cells:
                row += " - | - | - | - |"
                continue
            r, _, _, warps, limit = cells[a]
            occ = "n/a" if warps is None else f"{warps} ({100 * warps // 64} %, {limit})"
            row += f" {r['regs']} | {r['spill_st']}/{r['spill_ld']} | {r['stack']} | {occ} |"
        src = LAUNCHES[base][2] if base in LAUNCHES else "not in LAUNCHES: launch configuration unknown"
        print(row + f" {src} |")
    bad = bool(missing or spills)
    if bad:
        print("FAILED: see the messages above", file=sys.stderr)
    return 1 if bad else 0


def nvcc_version():
    try:
        out = subprocess.run(["nvcc", "--version"], text=True, capture_output=True).stdout
        m = re.search(r"release ([\d.]+), V([\d.]+)", out)
        return f"CUDA {m.group(2)}" if m else "unknown"
    except OSError:
        return "unknown (nvcc not on PATH)"


if __name__ == "__main__":
    sys.exit(main())
