#!/usr/bin/env python3
"""Modelled cost of tensor parallel decode for Llama-2-7B: the all-reduces of one decode step
(2 per layer, after o_proj and down_proj: the Megatron split of engine/forward.c) against the
time each rank spends reading its shard of the weights.

All-reduce time is alpha + bytes_on_the_wire / link bandwidth with a ring (each rank sends and
receives 2 (N - 1) / N of the message). alpha is the small-message latency of one NCCL
all-reduce call as published (the message of a decode step is B * 4096 * 2 bytes: 8 KB at
batch 1, 256 KB at batch 32):
  H100 SXM (NVLink 4): NCCL ~ 9-10 us for 512 B - 32 KB at TP 2/4/8, vLLM's custom all-reduce
      about the same, TRT-LLM one-shot 3.7-5.9 us (sgl-project/sglang#2904); 6 us at 2 GPUs with
      NVLS + CUDA graphs (NVIDIA/nccl#1259).
  A100 SXM (NVLink 3): ~ 12-14 us at small sizes (sgl-project/sglang#2688).
Link bandwidth (per direction, per GPU): NVLink 3 300 GB/s, NVLink 4 450 GB/s; we assume ~70%
of it as achieved bus bandwidth. HBM: A100-80GB 2.0 TB/s, H100 SXM 3.35 TB/s; we assume 85%
of it is reached by a weight-streaming GEMV.

usage: python3 python/tools/tp_allreduce_model.py
"""

LAYERS, HIDDEN, PARAMS = 32, 4096, 6.74e9  # Llama-2-7B
MACHINES = {
    # name: (alpha_us, link GB/s per direction, HBM TB/s)
    "A100-SXM4-80GB": (13.0, 300.0, 2.0),
    "H100-SXM5-80GB": (9.5, 450.0, 3.35),
}
LINK_EFF, HBM_EFF = 0.7, 0.85
WEIGHTS = {"fp16": 2.0, "gptq-4bit": 0.5 + 2.5 / 128}  # bytes per weight (4-bit: + scales/zeros of g128)


def all_reduce_us(nbytes: float, ranks: int, alpha_us: float, link_gbs: float) -> float:
    wire = 2.0 * (ranks - 1) / ranks * nbytes
    return alpha_us + wire / (link_gbs * LINK_EFF * 1e3)  # GB/s -> bytes/us


def main() -> None:
    calls = 2 * LAYERS
    print("# Llama-2-7B tensor-parallel decode step: all-reduce cost vs per-rank weight read")
    print(f"# {calls} all-reduces per step (2 per layer); message = batch x {HIDDEN} x 2 bytes (fp16)")
    print(f"# model: alpha + 2(N-1)/N * bytes / ({LINK_EFF:.0%} of NVLink); weights read at "
          f"{HBM_EFF:.0%} of HBM bandwidth")
    hdr = (f"{'GPU':16s} {'tp':>3s} {'batch':>5s} {'msg KB':>7s} {'AR bytes/rank/step':>19s} "
           f"{'AR us/step':>10s} {'fp16 read us':>12s} {'4-bit read us':>13s} "
           f"{'AR/fp16':>8s} {'AR/4-bit':>8s}")
    print(hdr)
    for gpu, (alpha, link, hbm) in MACHINES.items():
        for tp in (2, 4, 8):
            for batch in (1, 32):
                msg = batch * HIDDEN * 2.0
                per_rank_wire = 2.0 * (tp - 1) / tp * msg * calls
                ar = calls * all_reduce_us(msg, tp, alpha, link)
                reads = {k: PARAMS * b / tp / (hbm * HBM_EFF * 1e6) for k, b in WEIGHTS.items()}
                print(f"{gpu:16s} {tp:3d} {batch:5d} {msg / 1e3:7.1f} {per_rank_wire / 1e6:16.2f} MB "
                      f"{ar:10.0f} {reads['fp16']:12.0f} {reads['gptq-4bit']:13.0f} "
                      f"{ar / reads['fp16']:8.2f} {ar / reads['gptq-4bit']:8.2f}")
    print("# AR/read > ~0.3: the collectives eat a large share of the step; below ~0.1 they hide.")
    print("# Latency (alpha x 64 calls) dominates at batch 1: a one-shot IPC all-reduce (3-5 us) or")
    print("# fusing the two all-reduces of a layer would be the next lever, not bandwidth.")


if __name__ == "__main__":
    main()
