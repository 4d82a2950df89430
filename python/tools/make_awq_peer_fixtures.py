"""AWQ checkpoints written by AutoAWQ's own packing code, and their golden logits.

The weights are chosen here (tests/data/gptq/base, make_gptq_fixtures.py's tiny random Llama)
and quantised round-to-nearest per group with AutoAWQ's zero-point formula (its
pseudo_quantize_tensor: scale = (max - min) / 15, zero = clamp(-round(min / scale), 0, 15)), with
the scale rounded to fp16 first; AutoAWQ's WQLinear_GEMM.from_linear then computes and packs the
integers (its order_map interleave of qweight and qzeros, "GEMM" version). The reference is
AutoAWQ's own reading, awq.utils.packing_utils.dequantize_gemm, in float64 (the stored values are
exact: an fp16 scale times an integer in -15..15), run through make_gptq_fixtures.numpy_forward.
The script also checks that the unpacked integers are those it quantised (from_linear does not
clamp: an out-of-range value would corrupt its neighbours) and that the mapping onto llmrt's
internal 4-bit format (host/model/awq.h, rewritten here in numpy) reproduces dequantize_gemm
bit for bit.

Needs AutoAWQ (CI never runs this): AutoAWQ 0.2.7.post3's wheel (pure Python) was installed with
--no-deps into the GPTQModel venv described in make_gptq_peer_fixtures.py:

    PYTHONPATH=python /tmp/gptqmvenv/bin/python python/tools/make_awq_peer_fixtures.py

Writes tests/data/gptq/awq_<variant>/ (model.safetensors, config.json with transformers'
AwqConfig-style quantization_config) and tests/data/gptq/golden/awq_<variant>.{json,logits.f32}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
import make_gptq_fixtures as fx  # noqa: E402
from llmrt.quantize import checkpoint  # noqa: E402

SCRIPT = "python/tools/make_awq_peer_fixtures.py"
LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]  # awq.h's ORDER
VARIANTS = [("awq_g64", 64), ("awq_g128", 128)]


def rtn(w: np.ndarray, gs: int):
    """w [N, K] -> q int [N, K], scales fp16 [G, N], zeros int [G, N] (AutoAWQ's asym formula)."""
    n, k = w.shape
    g = k // gs
    blk = w.reshape(n, g, gs).astype(np.float32)
    mx, mn = blk.max(axis=2), blk.min(axis=2)
    s = ((mx - mn) / 15).astype(np.float32)
    s = np.maximum(s.astype(np.float16).astype(np.float32), np.float32(1e-5))
    z = np.clip(-np.round(mn / s), 0, 15)
    q = np.clip(np.round(blk / s[:, :, None]) + z[:, :, None], 0, 15)
    return q.reshape(n, k).astype(np.int64), s.T.astype(np.float16), z.T.astype(np.int64)


def llmrt_mapping(qweight, qzeros, scales, gs):
    """awq.h in numpy: rows of W with q, fp16 scale and zero per group -> float64 W^T [K, N]."""
    k, nc = qweight.shape
    n = nc * 8
    w32 = qweight.astype(np.int32).view(np.uint32)
    z32 = qzeros.astype(np.int32).view(np.uint32)
    q = np.zeros((k, n), dtype=np.int64)
    z = np.zeros((qzeros.shape[0], n), dtype=np.int64)
    for i in range(8):
        q[:, np.arange(nc) * 8 + AWQ_ORDER[i]] = (w32 >> (4 * i)) & 15
        z[:, np.arange(nc) * 8 + AWQ_ORDER[i]] = (z32 >> (4 * i)) & 15
    g = np.arange(k) // gs
    s = scales.astype(np.float32)
    return (s[g] * (q - z[g]).astype(np.float32)).astype(np.float64)  # fp32 as the kernels


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/data/gptq")
    a = ap.parse_args(argv)
    import awq
    import torch
    from awq.modules.linear.gemm import WQLinear_GEMM
    from awq.utils.packing_utils import dequantize_gemm
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    bdir = os.path.join(a.out, "base")
    base = checkpoint.load_tensors(bdir)
    with open(os.path.join(bdir, "config.json")) as fh:
        cfg = json.load(fh)
    seqs = fx.sequences()
    for name, gs in VARIANTS:
        vdir = os.path.join(a.out, name)
        if os.path.exists(vdir):
            shutil.rmtree(vdir)
        os.makedirs(vdir)
        tensors, deq, n_zero0 = {}, {}, 0
        for key, v in base.items():
            if not any(key.endswith(lin + ".weight") for lin in LINEARS):
                tensors[key] = torch.from_numpy(np.array(v))
                deq[key] = v.astype(np.float64)
        for layer in range(cfg["num_hidden_layers"]):
            for lin in LINEARS:
                p = f"model.layers.{layer}.{lin}"
                w = base[p + ".weight"].astype(np.float32)
                q, s, z = rtn(w, gs)
                n_zero0 += int((z == 0).sum())
                g = np.arange(w.shape[1]) // gs
                wq = (s.astype(np.float32).T[:, g] * (q - z.T[:, g]).astype(np.float32))
                lin_t = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
                with torch.no_grad():
                    lin_t.weight.copy_(torch.from_numpy(wq))
                m = WQLinear_GEMM.from_linear(lin_t, 4, gs, scales=torch.from_numpy(s),
                                              zeros=torch.from_numpy(z))
                qw, qz, sc = m.qweight.cpu(), m.qzeros.cpu(), m.scales.cpu()
                ref = dequantize_gemm(qw, qz, sc.double(), 4, gs).numpy()  # [K, N] float64
                mine = llmrt_mapping(qw.numpy(), qz.numpy(), sc.numpy(), gs)
                assert np.array_equal(ref, wq.T.astype(np.float64)), f"{p}: not the ints we chose"
                assert np.array_equal(mine, ref), f"{p}: the int4 mapping is not bit-exact"
                tensors.update({p + ".qweight": qw, p + ".qzeros": qz, p + ".scales": sc})
                deq[p + ".weight"] = ref.T.copy()
        save_file({k: v.contiguous() for k, v in tensors.items()},
                  os.path.join(vdir, "model.safetensors"), metadata={"format": "pt"})
        qc = {"quant_method": "awq", "bits": 4, "group_size": gs, "zero_point": True,
              "version": "gemm", "modules_to_not_convert": None}
        vcfg = dict(cfg, quantization_config=qc)
        with open(os.path.join(vdir, "config.json"), "w") as fh:
            json.dump(vcfg, fh, indent=2)
            fh.write("\n")
        logits = [fx.numpy_forward(deq, cfg, sq) for sq in seqs]
        j = fx.write_golden(os.path.join(a.out, "golden"), name, seqs, logits, {
            "model_dir": f"gptq/{name}", "base_model_dir": "gptq/base", "model_type": "llama",
            "quantization": qc, "expect_weight_format": "q4",
            "writer": f"autoawq {awq.__version__} WQLinear_GEMM.from_linear; scales/zeros: "
                      "round-to-nearest per group (" + SCRIPT + ")",
            "reference": "AutoAWQ's dequantize_gemm (float64) + make_gptq_fixtures."
                         "numpy_forward (float64)",
            "zero_points_of_0": n_zero0,
        })
        j_path = os.path.join(a.out, "golden", name + ".json")
        with open(j_path) as fh:
            jj = json.load(fh)
        jj["generator"]["script"] = SCRIPT
        jj["generator"]["autoawq"] = awq.__version__
        with open(j_path, "w") as fh:
            json.dump(jj, fh, indent=1)
            fh.write("\n")
        print(f"{name}: zeros of 0: {n_zero0}, min margin {j['min_top1_top2_margin']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
