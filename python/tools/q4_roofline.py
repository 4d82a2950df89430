#!/usr/bin/env python3
"""Roofline of the CUDA 4-bit matmul (cuda/q4_matmul.h) vs an fp16 GEMM, for Llama-2-7B shapes.

Prints a markdown table (bench/results/q4_cuda_kernels.md): per (N x K, M) the kernel the launcher
picks and its split count (the same heuristics as cuda/q4_gemv.cu / q4_gemm.cu), bytes moved,
FLOPs, and the roofline time max(bytes / bandwidth, flops / peak) on an A100-80GB SXM
(2.0 TB/s, 312 TFLOP/s fp16 dense) and an H100 SXM (3.35 TB/s, 989 TFLOP/s), for the 4-bit
kernel and for cuBLAS on fp16 weights.

Bytes, 4-bit: the packed weights N*K/2, the fp16 scales and zeros 2 * 2 * N * K/gs, x M*K*2 and
out M*N*2 (compulsory DRAM traffic). The split-K partials are listed apart: the GEMV's
2 * splits * M * N * 4 (written, then read by the last CTA of each tile), the GEMM's
2 * (splits - 1) * M * N * 4 (its in-place serial reduction: split s > 0 reads the one fp32
accumulator, split s < splits - 1 writes it; plan and traffic as python/tools/q4_splitk_traffic.py);
they are L2-resident at these sizes (<= a few MB against 40-50 MB of L2), so they cost L2, not
DRAM, bandwidth. Bytes, fp16: N*K*2 + x + out.

Usage: python3 python/tools/q4_roofline.py [--group-size 128]
"""
import argparse

import q4_splitk_traffic  # the GEMM's split plan (this directory)

GPUS = {  # name: (bytes/s, fp16 dense flop/s, SMs)
    "A100-80GB": (2.0e12, 312e12, 108),
    "H100-SXM": (3.35e12, 989e12, 132),
}
SHAPES = [(4096, 4096), (11008, 4096), (4096, 11008)]  # (N, K): qkvo-size, gate/up, down
MS = [1, 8, 64, 512]


def gemv_plan(M, N, K, gs, sms):
    """cuda/q4_gemv.cu gemv_plan: (rows per instance, splits)."""
    mr = 1 if M <= 1 else 2 if M <= 2 else 4 if M <= 4 else 8
    NB, T = N // 64, K // 16
    splits = (4 * sms + NB - 1) // NB
    splits = max(1, min(splits, max(1, T // 16)))
    while True:
        tpc = (T + splits - 1) // splits
        x_floats = max(mr * tpc * 16, 4 * mr * 64)
        groups = (tpc * 16 + gs - 1) // gs + 1
        if x_floats * 4 + groups * 256 <= 48 * 1024 or splits >= T:
            break
        splits += 1
    return mr, (T + tpc - 1) // tpc


def gemm_plan(M, N, K, sms):
    """cuda/q4_gemm.cu gemm_plan: (m16 tiles per CTA, splits)."""
    mt = 1 if M <= 16 else 2 if M <= 32 else 4
    return mt, q4_splitk_traffic.plan_after(M, N, K, sms)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--group-size", type=int, default=128)
    gs = ap.parse_args().group_size
    print(f"group size {gs}; times in microseconds; 'q4' = the 4-bit kernel, 'f16' = cuBLAS on fp16 weights")
    print()
    hdr = "| N x K | M | kernel (A100 / H100 splits) | q4 MB | split partials MB (L2) | f16 MB | GFLOP |"
    for g in GPUS:
        hdr += f" {g} q4 us | {g} f16 us | bound |"
    print(hdr)
    print("|" + "---|" * (hdr.count("|") - 1))
    for N, K in SHAPES:
        for M in MS:
            xo = M * K * 2 + M * N * 2
            q4_bytes = N * K / 2 + 2 * 2 * N * (K // gs) + xo
            f16_bytes = N * K * 2 + xo
            flops = 2.0 * M * N * K
            kern, parts = [], []
            for name, (bw, peak, sms) in GPUS.items():
                if M <= 8:
                    mr, s = gemv_plan(M, N, K, gs, sms)
                    kern.append(f"gemv<{mr}> s{s}")
                else:
                    mt, s = gemm_plan(M, N, K, sms)
                    kern.append(f"gemm<{mt}> s{s}")
                if M <= 8:
                    parts.append(2 * s * M * N * 4 if s > 1 else 0)
                else:
                    parts.append(2 * (s - 1) * M * N * 4)
            kname = kern[0].split(" ")[0] + " " + "/".join(k.split(" ")[1] for k in kern)
            row = (f"| {N} x {K} | {M} | {kname} | {q4_bytes / 1e6:.2f} | "
                   f"{'/'.join(f'{p / 1e6:.2f}' for p in parts)} | {f16_bytes / 1e6:.2f} | {flops / 1e9:.2f} |")
            for name, (bw, peak, sms) in GPUS.items():
                t_q4 = max(q4_bytes / bw, flops / peak)
                t_f16 = max(f16_bytes / bw, flops / peak)
                bound = "mem" if q4_bytes / bw >= flops / peak else "compute"
                row += f" {t_q4 * 1e6:.1f} | {t_f16 * 1e6:.1f} | {bound} |"
            print(row)


if __name__ == "__main__":
    main()
