#!/usr/bin/env python3
"""MODELLED batch-1 decode roofline of Llama-2-7B on the CUDA backend for each GGUF block type.

Not a measurement. For the GGUF types the CUDA backend keeps packed (cuda/ggml_matmul.h: Q8_0,
Q5_0/Q5_1, Q2_K..Q6_K, stored on the device byte for byte as the file holds them; and the internal
Q8_Z block of 8-bit GPTQ checkpoints, 36 bytes per 32 weights), the time of one
decode step at batch 1 is modelled as decode_time_model.py does for fp16 and 4-bit:

    t_step = bytes_read / HBM bandwidth + launch overhead   (eager: every kernel and copy costs
    --launch-us; graphs: --graph-node-us per kernel + one graph launch and the copies)

Bytes read per step: every layer's 7 projections and the lm_head once, at the type's bytes per
weight (block bytes / block elements, scales included); the embedding row and RMSNorm weights;
the fp16 KV cache of --ctx tokens. Kernel launches are decode_time_model.py's: the block types
take its unfused 4-bit count (the fused decode ops decline block weights; one kernel per
projection: the GGUF GEMV, ggml_gemv_kernel, has no split-K either; the lm_head is one GGUF GEMV
launch too); the fp16 and GPTQ 4-bit rows its fused count for their format.

Files as llama.cpp's quantiser writes them (its llama_tensor_get_type): a "_M" mix stores
attn_v and ffn_down as Q6_K in the layers where use_more_bits(i, n) = i < n/8 or i >= 7n/8 or
(i - n/8) % 3 == 2 (12 of Llama-2-7B's 32), output.weight as Q6_K (Q8_0 files keep Q8_0), the
rest in the base type. Q3_K_M / Q2_K mixes use more rules and are left out; their pure types
are in the table.

GPTQ 8-bit (Q8_Z: fp16 d | u8 zero | pad | u8 q[32]) keeps the lm_head in fp16 as GPTQ exports
do; with act-order each projection also runs the column gather of x (cuda/gather_cols.h): one
more kernel per projection (7 per layer) and 2 x K x 2 activation bytes + 4 x K perm bytes each.

The GGUF GEMV reads its blocks with byte loads (22- to 210-byte blocks have no alignment to
exploit) and has not run on a GPU yet: the fraction of this bound it reaches is unknown.

Usage: python3 python/tools/ggml_decode_roofline.py [--ctx 512] [--launch-us 4.0]
       [--graph-node-us 1.0] > bench/results/ggml_decode_roofline_llama2_7b.md
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import decode_time_model as dtm  # noqa: E402  (Llama-2-7B shapes, GPUs, launch counts)

# block bytes / block elements (host/format/dtype.h, cuda/ggml_matmul.h)
BLOCK = {"Q8_0": (34, 32), "Q5_0": (22, 32), "Q5_1": (24, 32), "Q2_K": (84, 256),
         "Q3_K": (110, 256), "Q4_K": (144, 256), "Q5_K": (176, 256), "Q6_K": (210, 256),
         "Q8_Z": (36, 32)}


def bpw(t):
    b, e = BLOCK[t]
    return b / e


def use_more_bits(i, n):
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def weight_bytes(base, mix):
    """Bytes of the 7 projections of every layer and the lm_head; mix: llama.cpp's _M rule."""
    total = 0.0
    for i in range(dtm.LAYERS):
        for name, n, k in dtm.PROJ:
            t = "Q6_K" if mix and name in ("v", "down") and use_more_bits(i, dtm.LAYERS) else base
            total += n * k * bpw(t)
    out_t = "Q8_0" if base == "Q8_0" else "Q6_K"  # llama.cpp: output.weight Q6_K unless Q8_0
    total += dtm.VOCAB * dtm.D * bpw(out_t)
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ctx", type=int, default=512, help="context length (512)")
    ap.add_argument("--launch-us", type=dtm.positive, default=4.0, help="eager launch, us (assumed 4)")
    ap.add_argument("--graph-node-us", type=dtm.positive, default=1.0, help="graph node, us (assumed 1)")
    a = ap.parse_args()
    if a.ctx < 1:
        ap.error("--ctx must be >= 1")
    lin = sum(n * k for _, n, k in dtm.PROJ) * dtm.LAYERS
    params = lin + dtm.VOCAB * dtm.D  # projections + lm_head
    fp16_w, kv = dtm.bytes_per_step("fp16", 1, a.ctx)
    q4_w, _ = dtm.bytes_per_step("4-bit", 1, a.ctx)
    other = 4 * (dtm.D + (2 * dtm.LAYERS + 1) * dtm.D)  # the embedding row and norms, fp32
    # (label, bytes per weight of projections + lm_head, weight bytes per step, launch model:
    # decode_time_model's (format, unfused), extra kernels)
    blk = ("4-bit", True)
    rows = [("fp16 (reference)", 2.0, fp16_w, ("fp16", False), 0),
            ("GPTQ 4-bit g128 (q4 kernels; fp16 lm_head)", (q4_w - 2 * dtm.VOCAB * dtm.D) / lin, q4_w,
             ("4-bit", False), 0)]
    # GPTQ 8-bit as Q8_Z with the fp16 lm_head; act-order adds the gather of x per projection
    q8z_w = lin * bpw("Q8_Z") + 2 * dtm.VOCAB * dtm.D + other
    gather = dtm.LAYERS * sum(4 * k + 4 * k for _, _, k in dtm.PROJ)  # perm + x read/write
    rows.append(("GPTQ 8-bit (Q8_Z; fp16 lm_head)", bpw("Q8_Z"), q8z_w, blk, 0))
    rows.append(("GPTQ 8-bit act-order (Q8_Z + gather; fp16 lm_head)", bpw("Q8_Z"),
                 q8z_w + gather, blk, 7 * dtm.LAYERS))
    files = [("Q8_0 file", "Q8_0", False), ("Q6_K file", "Q6_K", False), ("Q5_K_M file", "Q5_K", True),
             ("Q4_K_M file", "Q4_K", True), ("Q5_1 file", "Q5_1", False), ("Q5_0 file", "Q5_0", False)]
    for label, base, mix in files:
        wb = weight_bytes(base, mix)
        rows.append((label, wb / params, wb + other, blk, 0))
    for t in BLOCK:
        rows.append((f"all {t} (pure type)", bpw(t), params * bpw(t) + other, blk, 0))

    args = " ".join(sys.argv[1:])
    print("# Llama-2-7B batch-1 decode roofline per GGUF block type on the CUDA backend — MODELLED")
    print()
    print(f"Generated by `python3 python/tools/ggml_decode_roofline.py{' ' + args if args else ''}`: "
          "t_step = bytes read / datasheet HBM bandwidth + launch overhead; nothing here ran on a "
          "GPU (see the script's docstring for what is counted and the llama.cpp mix rule).")
    print()
    print(f"- context {a.ctx}, fp16 KV cache ({kv / 1e9:.3f} GB per step); launch costs assumed: "
          f"{a.launch_us:g} us per eager launch or copy, {a.graph_node_us:g} us per graph node.")
    print("- bytes per weight: block bytes / elements (Q8_0 34/32, Q5_0 22/32, Q5_1 24/32, Q2_K "
          "84/256, Q3_K 110/256, Q4_K 144/256, Q5_K 176/256, Q6_K 210/256, Q8_Z 36/32 = 1.125); fp16 "
          "2; GPTQ g128 in the q4 layout 0.5 + 4/128 (fp16 scale + zero offset per group). The "
          "GPTQ 8-bit rows give the projections' bytes per weight (their lm_head is fp16).")
    print("- bound tok/s = 1 / (bytes / bandwidth): what a kernel streaming at full HBM bandwidth "
          "would reach without launch cost.")
    print()
    hdr = "| weights | bytes/weight (projections + lm_head; 4-bit: projections) | GB / step |"
    sep = "|---|---:|---:|"
    for gpu in dtm.GPUS:
        hdr += f" {gpu}: bound tok/s | eager tok/s | graphs tok/s |"
        sep += "---:|---:|---:|"
    print(hdr)
    print(sep)
    for label, per_w, wb, (fmt, unfused), extra in rows:
        total = wb + kv
        line = f"| {label} | {per_w:.4f} | {total / 1e9:.3f} |"
        for gpu, (bw, _) in dtm.GPUS.items():
            _, kernels, copies, _ = dtm.launches(fmt, 1, a.ctx, gpu, 1, unfused=unfused)
            kernels += extra
            t_mem = total / bw
            eager = t_mem + (kernels + copies) * a.launch_us * 1e-6
            graph = t_mem + (kernels * a.graph_node_us + (1 + copies) * a.launch_us) * 1e-6
            line += f" {1 / t_mem:.0f} | {1 / eager:.0f} | {1 / graph:.0f} |"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
