#!/usr/bin/env python3
"""MODELLED decode step time of Llama-2-7B on the CUDA backend: bytes moved + launches x launch cost.

Not a measurement. For fp16 and GPTQ 4-bit (g128) weights, batch 1 and 32, at a stated context, on
an A100-80GB SXM and an H100 SXM, the time of one decode step (one new token per sequence) is
modelled as

    t_step = bytes_read / (HBM bandwidth * bw_fraction) + launch_overhead
    before (eager, today):   launch_overhead = (kernels + copies) * launch_us
    after  (CUDA graphs):    launch_overhead = kernels * graph_node_us + (1 graph launch + copies) * launch_us

The sum is deliberately simple (the issue's model): launch cost does not overlap with the kernels'
memory traffic, which is pessimistic where the host runs ahead of the GPU.

Bytes read per step (compulsory DRAM traffic; activations, a few MB, are left out):
  - weights: every layer's 7 projections and the lm_head once per step, plus the T embedding
    rows and the RMSNorm weights. fp16: 2 bytes per parameter. 4-bit: the device format the
    loader repacks to (cuda/q4_matmul.h): N*K/2 packed weights + fp16 scale and zero-offset per
    group of 128 (4*N*K/128 bytes); embeddings, norms and lm_head stay fp16 (GPTQ lm_head: false).
  - KV cache: fp16 K and V of every context token, every layer, every sequence:
    2 * n_layers * n_kv_heads * head_dim * 2 bytes per token, times ctx times batch.

Kernel launches per step, counted from the CUDA backend's decode forward (host/exec/forward.c
run_layers + host/backend/cuda/cuda_backend.c; the splits from the launchers' own heuristics):
  per layer: add_rmsnorm (or rmsnorm at layer 0); q, k, v projections; rope_kv (RoPE + paged KV
  write); attention (split-KV decode kernel, + combine kernel when it picks > 1 split); o
  projection; add_rmsnorm; gate, up projections; swiglu; down projection.
  Fused (the default; the backend op matmul_fused at batch <= 8): fp16 (cuda/fused_gemv.cu)
  rmsnorm + q/k/v in one launch; rope_kv; attention (+ combine); o + residual add; rmsnorm +
  gate/up in one launch; swiglu + down + residual add; and no final add after the layers. 4-bit
  (the q4 GEMV with the same prologue / epilogue, cuda/q4_gemv.cu): the same, q, k, v and gate,
  up grouped as well (one launch each group, since git 28aaaa3; --q4-ungrouped counts the launch
  per weight before it). --unfused counts the sequence before the fused ops (batches > 8 always
  run it).
  A projection is one cuBLAS call for fp16 (taken as --cublas-kernels launches, default 1) and for
  4-bit the GEMV (M <= 8) or GEMM kernel alone: split-K partials are summed by the last CTA of each
  tile (cuda/q4_common.cuh arrive_last). --q4-finalize counts the separate q4_finalize_kernel the
  launcher ran after every split-K call before that change (git dc34ebc and earlier). No act-order
  gather: desc_act false. Per step: embed; the final add, rmsnorm, gather_outputs and lm_head
  (cuBLAS, fp16 in both formats); and 2 copies: the batch plan upload and the logits download.

Launch costs: --launch-us (eager launch, and each copy or graph launch) and --graph-node-us (one
kernel node of a replayed graph) are assumptions with stated defaults until measured; --probe-json
takes both from the JSON lines of cuda/tests/test_attention_speed.cu's launch probe
(gpu_test_attention_speed --json PATH: {"probe": "launch", "mode": "eager"|"graph", ...}).

Usage: python3 python/tools/decode_time_model.py [--ctx 512] [--probe-json PATH]
       [--launch-us 4.0] [--graph-node-us 1.0] [--bw-fraction 1.0] > bench/results/decode_time_model.md
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from q4_roofline import gemm_plan, gemv_plan  # noqa: E402  (the 4-bit launchers' split heuristics)

GPUS = {  # name: (HBM bytes/s from the datasheet, SMs)
    "A100-80GB SXM": (2039e9, 108),
    "H100 SXM": (3350e9, 132),
}
# Llama-2-7B
LAYERS, D, F, VOCAB, HEADS, KV_HEADS, HEAD_DIM = 32, 4096, 11008, 32000, 32, 32, 128
PROJ = [("q", D, D), ("k", D, D), ("v", D, D), ("o", D, D), ("gate", F, D), ("up", F, D), ("down", D, F)]
GROUP = 128
GEMV_MAX_M = 8  # cuda/q4_matmul.h LLMRT_CUDA_Q4_GEMV_MAX_M
# attention decode heuristic (cuda/attention_decode.cu choose_splits)
TILE_TOKENS, MIN_TILES_PER_SPLIT, MAX_SPLITS = 64, 4, 32
# resident attn_decode_kernel<f16, 128> CTAs per SM (bench/results/cuda_kernel_resources.md:
# 8 warps/SM on sm_80, 12 on sm_90, 4 warps per CTA); choose_splits caps it at 2 anyway
DECODE_CTAS_PER_SM = {"A100-80GB SXM": 2, "H100 SXM": 3}


def attn_splits(units, ctx, sms, ctas_per_sm):
    """choose_splits(units = n_seqs * n_kv_heads, max_ctx, n_sm, ctas_per_sm, ws_cap = inf)."""
    slots = sms * (2 if ctas_per_sm >= 2 else 1)
    if units >= int(0.8 * slots):
        return 1
    cap = min(-(-ctx // TILE_TOKENS) // MIN_TILES_PER_SPLIT, MAX_SPLITS)
    if cap <= 1:
        return 1

    def eff(s):
        ctas = units * s
        return ctas / (slots * -(-ctas // slots))

    best = max(eff(s) for s in range(1, cap + 1))
    return next(s for s in range(1, cap + 1) if eff(s) >= 0.95 * best)


def q4_launches(M, N, K, sms, finalize=False):
    """Kernels of one llmrt_cuda_q4_matmul call: the GEMV or GEMM (+ the former finalize kernel
    when split and `finalize`)."""
    if M <= GEMV_MAX_M:
        _, splits = gemv_plan(M, N, K, GROUP, sms)
    else:
        _, splits = gemm_plan(M, N, K, sms)
    return 1 + (finalize and splits > 1)


FUSED_MAX_M = 8  # cuda/fused_gemv.h LLMRT_CUDA_FUSED_MAX_M


def fused_decode(fmt, batch, unfused):
    """Whether the backend's matmul_fused takes this step's projections (batch <= 8)."""
    return not unfused and batch <= FUSED_MAX_M


def launches(fmt, batch, ctx, gpu, cublas_kernels, q4_finalize=False, unfused=False,
             q4_ungrouped=False):
    """(kernels per layer, kernels per step, copies per step, attention splits)."""
    sms = GPUS[gpu][1]
    splits = attn_splits(batch * KV_HEADS, ctx, sms, DECODE_CTAS_PER_SM[gpu])
    attention = 1 + (splits > 1)
    if fused_decode(fmt, batch, unfused):
        # norm+qkv, rope_kv, attention, o+add, norm+gate/up, swiglu+down+add; after the layers:
        # embed; rmsnorm, gather_outputs, lm_head (no final add: down's epilogue did it)
        grouped = fmt == "fp16" or not q4_ungrouped  # q4_ungrouped: the 4-bit GEMV per weight
        per_layer = (1 if grouped else 3) + 1 + attention + 1 + (1 if grouped else 2) + 1
        return per_layer, LAYERS * per_layer + 1 + 2 + cublas_kernels, 2, splits
    proj = sum(cublas_kernels if fmt == "fp16" else q4_launches(batch, n, k, sms, q4_finalize)
               for _, n, k in PROJ)
    per_layer = 1 + 1 + attention + 1 + 1 + proj  # norm, rope_kv, attention, norm, swiglu
    # embed; after the layers: add, rmsnorm, gather_outputs, lm_head (fp16 cuBLAS)
    per_step = LAYERS * per_layer + 1 + 3 + cublas_kernels
    return per_layer, per_step, 2, splits


def bytes_per_step(fmt, batch, ctx):
    """(weight bytes, KV bytes) read by one decode step."""
    lin = sum(n * k for _, n, k in PROJ) * LAYERS
    lin_bytes = 2 * lin if fmt == "fp16" else lin // 2 + 4 * lin // GROUP
    other = 2 * (VOCAB * D + batch * D + (2 * LAYERS + 1) * D)  # lm_head, embedding rows, norms
    kv = 2 * LAYERS * KV_HEADS * HEAD_DIM * 2 * ctx * batch
    return lin_bytes + other, kv


def read_probe(path):
    """(eager us per launch, graph us per node, device) from test_attention_speed --json lines."""
    eager = graph = None
    device = "?"
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{n}: not JSON: {e}")
            if rec.get("probe") != "launch":
                continue
            if rec.get("mode") == "eager":
                eager, device = float(rec["us_per_launch"]), rec.get("device", "?")
            elif rec.get("mode") == "graph":
                graph = float(rec["us_per_launch"])
    if eager is None:
        sys.exit(f"{path}: no {{\"probe\": \"launch\", \"mode\": \"eager\"}} line")
    if "(cusim)" in device:
        sys.exit(f"{path}: measured under cusim ({device}): the simulator's times are not a GPU's")
    return eager, graph, device


def positive(text):
    v = float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ctx", type=int, default=512, help="context length of every sequence (512)")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 32], help="batch sizes (1 32)")
    ap.add_argument("--launch-us", type=positive, default=4.0,
                    help="eager cost of one kernel launch or copy, us (assumed 4.0)")
    ap.add_argument("--graph-node-us", type=positive, default=1.0,
                    help="cost of one kernel node of a replayed CUDA graph, us (assumed 1.0)")
    ap.add_argument("--probe-json", help="take --launch-us and --graph-node-us from "
                    "gpu_test_attention_speed --json output (measured)")
    ap.add_argument("--bw-fraction", type=positive, default=1.0,
                    help="fraction of the datasheet HBM bandwidth the kernels reach (1.0)")
    ap.add_argument("--cublas-kernels", type=int, default=1,
                    help="kernels one fp16 cuBLAS projection launches (assumed 1)")
    ap.add_argument("--q4-finalize", action="store_true",
                    help="count the split-K finalize kernel the 4-bit launcher ran before "
                         "the last-CTA reduction (git dc34ebc and earlier)")
    ap.add_argument("--q4-ungrouped", action="store_true",
                    help="fused 4-bit decode with one launch per weight (q, k, v; gate, up), as "
                         "before the grouped q4 GEMV (git 28aaaa3)")
    ap.add_argument("--unfused", action="store_true",
                    help="count the decode sequence before the fused decode ops (matmul_fused)")
    a = ap.parse_args()
    if a.ctx < 1 or any(b < 1 for b in a.batch) or a.cublas_kernels < 1 or a.bw_fraction > 1:
        ap.error("--ctx, --batch and --cublas-kernels must be >= 1, --bw-fraction <= 1")

    launch_us, node_us = a.launch_us, a.graph_node_us
    src = (f"assumed (not measured): {launch_us:g} us per eager launch, {node_us:g} us per graph "
           "node; replace with `--probe-json` once the GPU suite has run")
    if a.probe_json:
        launch_us, probe_node, device = read_probe(a.probe_json)
        if probe_node is not None:
            node_us = probe_node
        src = (f"measured by gpu_test_attention_speed on {device} ({a.probe_json}): {launch_us:.2f} us "
               f"per eager launch, {node_us:.2f} us per graph node"
               + ("" if probe_node is not None else " (graph: assumed, the probe had no graph line)"))

    args = " ".join(sys.argv[1:])
    print("# Llama-2-7B decode step time on the CUDA backend — MODELLED, not measured")
    print()
    print(f"Generated by `python3 python/tools/decode_time_model.py{' ' + args if args else ''}`. "
          "Model: t_step = bytes read / (datasheet HBM bandwidth x "
          f"{a.bw_fraction:g}) + launch overhead; before = eager launches (today's backend), after = "
          "the same kernels replayed from a CUDA graph (launch cost per graph node). See the "
          "script's docstring for what is counted.")
    print()
    print(f"- launch costs: {src}.")
    stored = 2 * (sum(n * k for _, n, k in PROJ) * LAYERS + 2 * VOCAB * D + (2 * LAYERS + 1) * D)
    print(f"- context {a.ctx} tokens per sequence, fp16 KV cache; weights fp16 ({stored / 1e9:.2f} GB "
          "stored, the embedding table read only at the batch's rows) or "
          "GPTQ 4-bit g128 in the backend's repacked format (fp16 scale + zero offset per group; "
          "embeddings and lm_head fp16).")
    print("- launches counted from host/exec/forward.c + host/backend/cuda/cuda_backend.c "
          f"(fp16 projection = {a.cublas_kernels} cuBLAS kernel(s); 4-bit = GEMV/GEMM"
          + (" + split-K finalize" if a.q4_finalize else ", split-K summed in-kernel") + "; attention = split-KV decode + combine when split) + 2 copies per step (plan "
          "upload, logits download); after: + 1 graph launch.")
    print("- tok/s = batch / t_step; % of bound = (bytes / bandwidth) / t_step.")
    if not a.unfused:
        print("- the fused fp16 decode kernel (cuda/fused_gemv.cu) is assumed to stream its weights "
              "at the same bandwidth as cuBLAS does, and the fused q4 GEMV as fast as the plain one "
              "(no GPU has timed either); only the launch count changes.")
    print()
    if not a.unfused:
        print("Fused decode (batch <= 8, `matmul_fused`): an fp16 layer (cuda/fused_gemv.cu) "
              "launches rmsnorm+q/k/v; rope_kv; attn_decode (+ attn_decode_combine when split); "
              "o+residual add; rmsnorm+gate/up; swiglu+down+residual add; a 4-bit layer (q4_gemv "
              "with the same prologue / epilogue) the same"
              + (" but one launch per weight: rmsnorm+q, rmsnorm+k, rmsnorm+v; rope_kv; attention; "
                 "o+add; rmsnorm+gate, rmsnorm+up; swiglu+down+add" if a.q4_ungrouped else
                 " (q, k, v and gate, up each one grouped launch)")
              + ". Per step besides the "
              "layers: embed, rmsnorm, gather_outputs, lm_head (cuBLAS). Batches > 8 run the "
              "unfused sequence:")
        print()
    print("Kernels one decode layer launches " + ("unfused " if not a.unfused else "")
          + "(in order): (add_)rmsnorm; q, k, v projections; "
          "rope_kv; attn_decode (+ attn_decode_combine when split); o projection; add_rmsnorm; gate, "
          "up projections; swiglu; down projection. A projection: fp16 = cuBLAS; 4-bit = q4_gemv "
          "(batch <= 8) or q4_gemm" + (", + q4_finalize when split-K (always, at these shapes)"
                                       if a.q4_finalize else "") + ". Per step "
          "besides the layers: embed, add, rmsnorm, gather_outputs, lm_head (cuBLAS).")
    print()
    print("| GPU | weights | batch | GB read / step (weights + KV) | HBM time ms | kernels / layer "
          "(attn splits) | kernels / step | before: ms / step | tok/s | % of bound | after: ms / step "
          "| tok/s | % of bound |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for gpu, (bw, _) in GPUS.items():
        for fmt in ("fp16", "4-bit"):
            for b in a.batch:
                wb, kv = bytes_per_step(fmt, b, a.ctx)
                t_mem = (wb + kv) / (bw * a.bw_fraction) * 1e3  # ms
                per_layer, kernels, copies, splits = launches(fmt, b, a.ctx, gpu, a.cublas_kernels,
                                                              a.q4_finalize, a.unfused,
                                                              a.q4_ungrouped)
                before = t_mem + (kernels + copies) * launch_us * 1e-3
                after = t_mem + (kernels * node_us + (1 + copies) * launch_us) * 1e-3
                t_bound = (wb + kv) / bw * 1e3
                print(f"| {gpu} | {fmt} | {b} | {(wb + kv) / 1e9:.2f} ({wb / 1e9:.2f} + {kv / 1e9:.2f}) | "
                      f"{t_mem:.2f} | {per_layer} ({splits}) | {kernels} | {before:.2f} | "
                      f"{b / before * 1e3:.0f} | {100 * t_bound / before:.0f} % | {after:.2f} | "
                      f"{b / after * 1e3:.0f} | {100 * t_bound / after:.0f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
