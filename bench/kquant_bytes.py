#!/usr/bin/env python3
"""Bytes a decode step of llmrt's CPU backend reads from a GGUF file's weights, per
`--cpu-matmul` mode, next to the file's own bytes; and, given the side-by-side table of
python/tools/bench_llamacpp.py and the read bandwidth of `llmrt bench membw`, the bandwidth each
decode figure achieves (tok/s x bytes/token) as a share of that bandwidth. Part of
bench/kquant_vs_llamacpp.sh; it tells a kernel-bound decode from a byte-bound one.

    kquant_bytes.py FILE.gguf                          the bytes table
    kquant_bytes.py FILE.gguf --table T --membw M      ... plus the achieved-bandwidth table
      T: bench_llamacpp.py's output; M: `llmrt bench membw`'s output (its "read" column)

What a decode step (one token) reads, as the backend stores each weight (backend/cpu/):
  - every matmul weight once: blk.*.attn_{q,k,v,output}, ffn_{gate,up,down} and the lm_head
    (output.weight, else the tied token_embd.weight);
      exact: F32/F16/BF16, Q8_0, Q5_0/Q5_1 and the K-quants are read in place: the file's bytes;
      int8:  Q8_0 through the int8 panels of i8_gemm.h: ceil(N/16) panels of K/32 blocks of
             512 weight bytes + 32 scale bytes, rounded up to 64 bytes (before commit f582587:
             512 + 128, 1.25 bytes per weight, the "int8 (old)" column);
             Q5_0/Q5_1/Q4_K/Q5_K/Q6_K read in place (kq_q8_kernels.h); the rest as in exact;
  - one row of token_embd.weight (the embedding lookup) and every 1-D norm weight.
Q4_0/Q4_1 (repacked into the 4-bit layout of q4_kernels.h) are not modelled: such files are
refused. The KV cache a step reads (context x layers x 2 x kv width x 4 bytes) is left out: at
the bench's depth (under 200 tokens) it is under 1 % of these bytes.
llama.cpp's bytes are taken as the file's (it reads these types in place or repacks them
losslessly into interleaved blocks of the same size).
"""
import argparse
import math
import re
import sys

import gguf

MATMUL = re.compile(r"^blk\.\d+\.(attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down)\.weight$")
IN_PLACE = {"F32", "F16", "BF16", "Q8_0", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"}


def i8_q8_0_bytes(n, k, scale_bytes):
    panel = (k // 32 * (512 + scale_bytes) + 63) // 64 * 64
    return math.ceil(n / 16) * panel


def step_bytes(path):
    """{mode: bytes per decode step}, file bytes, per-type breakdown {type: (n, file bytes)}"""
    r = gguf.GGUFReader(path)
    tensors = {t.name: t for t in r.tensors}
    mats = [t for t in r.tensors if MATMUL.match(t.name)]
    lm = tensors.get("output.weight") or tensors["token_embd.weight"]
    mats.append(lm)
    modes = {"exact": 0, "int8": 0, "int8 (old)": 0}
    by_type = {}
    for t in mats:
        ty = t.tensor_type.name
        if ty not in IN_PLACE:
            sys.exit(f"kquant_bytes.py: {t.name}: type {ty} not modelled")
        k, n = int(t.shape[0]), int(t.shape[1])
        nb = int(t.n_bytes)
        modes["exact"] += nb
        modes["int8"] += i8_q8_0_bytes(n, k, 32) if ty == "Q8_0" else nb
        modes["int8 (old)"] += i8_q8_0_bytes(n, k, 128) if ty == "Q8_0" else nb
        c, b = by_type.get(ty, (0, 0))
        by_type[ty] = (c + n * k, b + nb)
    emb = tensors["token_embd.weight"]
    other = int(emb.n_bytes) // int(emb.shape[1])
    other += sum(int(t.n_bytes) for t in r.tensors if len(t.shape) == 1)
    for m in modes:
        modes[m] += other
    file_bytes = sum(int(t.n_bytes) for t in r.tensors)
    return modes, file_bytes, by_type


def membw_read(text):
    """{threads: read GB/s} from `llmrt bench membw`'s table"""
    out = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 2 and f[0].isdigit():
            out[int(f[0])] = float(f[1])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gguf")
    ap.add_argument("--table", help="bench_llamacpp.py output")
    ap.add_argument("--membw", help="`llmrt bench membw` output")
    a = ap.parse_args()
    modes, file_bytes, by_type = step_bytes(a.gguf)
    mix = ", ".join(f"{ty} {w / 1e6:.1f}M w {b / 1e6:.1f} MB" for ty, (w, b) in
                    sorted(by_type.items(), key=lambda x: -x[1][1]))
    print(f"# bytes/token: file {file_bytes / 1e6:.1f} MB; matmul weights: {mix}")
    print("# decode step reads " + ", ".join(f"{m} {v / 1e6:.1f} MB ({v / file_bytes:.3f} x file)"
                                             for m, v in modes.items()))
    if not (a.table and a.membw):
        return
    bw = membw_read(open(a.membw).read())
    # "llmrt int8/bf16": matmul mode int8 with a bf16 KV cache (the weights' bytes are the mode's)
    row = re.compile(r"^\s*(llama\.cpp|llmrt(?: ([\w/]+))?) threads (\d+): .*gen tok/s .*\(med\s+([\d.]+),")
    for line in open(a.table):
        m = row.match(line)
        if not m:
            continue
        who, mode, th, tps = m.group(1), m.group(2) or "exact", int(m.group(3)), float(m.group(4))
        b = file_bytes if who == "llama.cpp" else modes[mode.split("/")[0]]
        gbs = tps * b / 1e9
        ref = bw.get(th)
        share = f"{100 * gbs / ref:3.0f} % of membw read {ref:5.2f} GB/s" if ref else "no membw figure"
        print(f"#   {who:>10} threads {th}: {tps:6.1f} tok/s x {b / 1e6:6.1f} MB = {gbs:5.2f} GB/s, {share}")


if __name__ == "__main__":
    main()
