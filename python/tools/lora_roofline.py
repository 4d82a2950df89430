#!/usr/bin/env python3
"""Modelled cost of multi-LoRA decode for Llama-2-7B shapes (issue 15): bytes and FLOPs per
decode step of a batch of B tokens spread over D distinct adapters (rank r on all seven
projections, A and B stored in fp16 on the GPU), against the fp16 base model's step, and the
roofline time max(bytes / bandwidth, flops / peak) on an A100-80GB SXM (2.0 TB/s, 312 TFLOP/s)
and an H100 SXM (3.35 TB/s, 989 TFLOP/s).

Per layer and projection (N outputs, K inputs): an adapter holds r*K (A) + N*r (B) values; a
step reads each distinct adapter's A and B once (the Punica shape: rows of one adapter share its
tiles), does 2*r*(K+N) FLOPs per token, and writes / reads the shrink scratch B*r*4 bytes twice
(L2-resident, not counted). The base step reads every weight once (2 bytes each) and does
2*N*K FLOPs per token. KV reads are left out (the same with or without adapters).

Usage: python3 python/tools/lora_roofline.py [--rank 16] [--batch 16]
"""
import argparse

GPUS = {"A100-80GB": (2.0e12, 312e12), "H100-SXM": (3.35e12, 989e12)}
D, F, L = 4096, 11008, 32  # Llama-2-7B hidden, FFN, layers (MHA: k/v as wide as q)
PROJ = [(D, D)] * 4 + [(F, D), (F, D), (D, F)]  # (N, K): q k v o, gate up, down


def step_cost(batch, distinct, rank):
    base_bytes = sum(n * k for n, k in PROJ) * L * 2
    base_flops = sum(2 * n * k for n, k in PROJ) * L * batch
    ad_bytes = sum(rank * (n + k) for n, k in PROJ) * L * 2 * distinct
    ad_flops = sum(2 * rank * (n + k) for n, k in PROJ) * L * batch if distinct else 0
    return base_bytes, base_flops, ad_bytes, ad_flops


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--batch", type=int, default=16)
    a = ap.parse_args()
    print(f"Llama-2-7B fp16, decode step of {a.batch} tokens, LoRA rank {a.rank} on all seven "
          "projections, adapters fp16\n")
    print("| distinct adapters | adapter MB read | adapter GFLOP | " +
          " | ".join(f"{g} step ms (x base)" for g in GPUS) + " |")
    print("|---|---|---|" + "---|" * len(GPUS))
    for distinct in sorted({0, 1, 4, min(16, a.batch), min(a.batch, 64)}):
        bb, bf, ab, af = step_cost(a.batch, distinct, a.rank)
        cells = []
        for bw, peak in GPUS.values():
            base = max(bb / bw, bf / peak)
            t = max((bb + ab) / bw, (bf + af) / peak)
            cells.append(f"{t * 1e3:.2f} ({t / base:.3f}x)")
        print(f"| {distinct} | {ab / 1e6:.1f} | {af / 1e9:.2f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
