"""GPTQ checkpoints written by GPTQModel's own packing code, and their golden logits.

The weights are chosen here (tests/data/gptq/base, the tiny random Llama of
make_gptq_fixtures.py, whose all-positive rows give asym zero points of 0); the scales and zero
points are round-to-nearest per group; everything from there on is GPTQModel's: its TorchLinear
``pack`` computes and packs the integers, ``convert_gptq_v2_to_v1_format_module`` turns the
zeros into v1 (``checkpoint_format "gptq"``: the int32 words minus 0x11111111, or 0x01010101 at
8 bits, so a zero of 0 borrows from the field above), and ``QuantizeConfig.to_dict()`` writes
the quantization config. The reference is GPTQModel's own reading: the module's qzeros converted
back by ``convert_gptq_v1_to_v2_format_module`` and dequantised by its ``dequantize_weight``
with the scales widened to float64 first (GPTQModel's fp16 arithmetic would round the products;
the stored values are exact), then make_gptq_fixtures.numpy_forward (float64).

Needs GPTQModel (CI never runs this; the C test reads the committed outputs). It ran with
gptqmodel 7.7.0 in a venv layered on /tmp/peftvenv (torch 2.15 CPU):

    python -m venv /tmp/gptqmvenv  # + a .pth pointing at /tmp/peftvenv's site-packages
    /tmp/gptqmvenv/bin/pip install -U setuptools wheel
    BUILD_CUDA_EXT=0 /tmp/gptqmvenv/bin/pip install --no-build-isolation gptqmodel==7.7.0
    PYTHONPATH=python /tmp/gptqmvenv/bin/python python/tools/make_gptq_peer_fixtures.py

Writes tests/data/gptq/peer_<variant>/ (model safetensors, config.json, quantize_config.json)
and tests/data/gptq/golden/peer_<variant>.{json,logits.f32}. Variants (VARIANTS below): 4-bit v1
asym with zero points of 0 (the word borrow), one of them as an older AutoGPTQ export (weights
in gptq_model-4bit-32g.safetensors named by quantize_config.json's model_file_base_name, no
quantization_config in config.json); 8-bit sym (group 32 / 128 / -1, v1 and v2: exactly Q8_0),
8-bit asym v1 with zero points of 0, 8-bit act-order sym v1 and asym v2 (kept packed as Q8_Z,
model/gptq8.h); short last groups (group 256 over K = 128 and 384: 4-bit asym v1, 8-bit asym
v2, 8-bit act-order sym v1); and a 4-bit model
with GPTQModel "dynamic" overrides (DYNAMIC: an 8-bit group-32 lm_head, 8-bit layer-0 MLP, an
unquantized layer-1 down_proj, a 4-bit group-32 layer-0 down_proj whose rule comes before the
layer-0 MLP one, group-32 q/k projections). The JSON files keep GPTQModel's key order (the first
matching dynamic rule decides).
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
from llmrt.quantize import checkpoint, packing  # noqa: E402

SCRIPT = "python/tools/make_gptq_peer_fixtures.py"
SEED_PERM = 31337
LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")

# name, bits, group size, act-order, sym, format, how llmrt must load it, AutoGPTQ-style file name
VARIANTS = [
    ("peer_b4_g32_asym_v1", 4, 32, False, False, "gptq", "q4", None),
    ("peer_b4_g128_act_asym_v1", 4, 128, True, False, "gptq", "q4", "gptq_model-4bit-128g"),
    ("peer_b8_g32_sym_v1", 8, 32, False, True, "gptq", "q8_0", None),
    ("peer_b8_g128_sym_v2", 8, 128, False, True, "gptq_v2", "q8_0", None),
    ("peer_b8_gm1_sym_v1", 8, -1, False, True, "gptq", "q8_0", None),
    ("peer_b8_g32_asym_v1", 8, 32, False, False, "gptq", "q8_z", None),
    ("peer_b8_g64_act_sym_v1", 8, 64, True, True, "gptq", "q8_z", None),
    ("peer_b8_g128_act_asym_v2", 8, 128, True, False, "gptq_v2", "q8_z", None),
    # short last groups (in_features not a multiple of the group size, which GPTQModel's
    # TorchLinear accepts: ceil(K / gs) groups, g_idx = k // gs): K = 128 is one short group of
    # 128, down_proj's K = 384 groups of 256 + 128
    ("peer_b4_g256_asym_v1_short", 4, 256, False, False, "gptq", "q4", None),
    ("peer_b8_g256_asym_v2_short", 8, 256, False, False, "gptq_v2", "q8_z", None),
    ("peer_b8_g256_act_sym_v1_short", 8, 256, True, True, "gptq", "q8_z", None),
]

# GPTQModel "dynamic" per-module overrides on a 4-bit base (first matching rule wins, "-:" =
# left unquantized; lm_head quantized): resolved per module by GPTQModel's own dynamic_get.
DYNAMIC_NAME = "peer_b4_g128_asym_v1_dynamic"
DYNAMIC = {
    "+:lm_head": {"bits": 8, "group_size": 32, "sym": True},
    r"-:model\.layers\.1\.mlp\.down_proj": {},
    r"model\.layers\.0\.mlp\.down_proj": {"group_size": 32},  # first match wins over the next
    r"+:.*\.0\.mlp\..*": {"bits": 8, "group_size": 64, "sym": True},
    r"+:model\.layers\.\d+\.self_attn\.[qk]_proj": {"group_size": 32},
}


def rtn_params(w: np.ndarray, gidx: np.ndarray, groups: int, bits: int, sym: bool):
    """Round-to-nearest scale and zero per (row, group) of w [N, K]: scales fp16 [N, G],
    zeros int [N, G] (GPTQ's Quantizer.find_params with the minimum/maximum clamped to 0)."""
    maxq = (1 << bits) - 1
    n = w.shape[0]
    scales = np.zeros((n, groups), dtype=np.float32)
    zeros = np.zeros((n, groups), dtype=np.int64)
    for g in range(groups):
        blk = w[:, gidx == g].astype(np.float32)
        xmin = np.minimum(blk.min(axis=1), 0)
        xmax = np.maximum(blk.max(axis=1), 0)
        if sym:
            xmax = np.maximum(-xmin, xmax)
            xmin = np.where(xmin < 0, -xmax, xmin)
        s = (xmax - xmin) / maxq
        s = np.maximum(s.astype(np.float16).astype(np.float32), np.float32(2.0 ** -14))
        scales[:, g] = s
        zeros[:, g] = (maxq + 1) // 2 if sym else np.clip(np.round(-xmin / s), 0, maxq)
    return scales, zeros


def quantize_linear(name, w, bits, gs, act, sym, fmt, rng):
    """GPTQModel's TorchLinear packing of w [N, K]; returns (tensors to save, dequantised [N, K])."""
    import torch
    from gptqmodel.nn_modules.qlinear.torch import TorchLinear
    from gptqmodel.quantization import QuantizeConfig
    from gptqmodel.utils.model import (convert_gptq_v1_to_v2_format_module,
                                       convert_gptq_v2_to_v1_format_module)

    n, k = w.shape
    g_size = k if gs == -1 else gs
    groups = -(-k // g_size)  # a short last group when g_size does not divide k
    if act:  # GPTQ desc_act: columns visited in a permuted order, groups are runs of that order
        perm = rng.permutation(k)
        gidx = np.empty(k, dtype=np.int64)
        gidx[perm] = np.arange(k) // g_size
    else:
        gidx = np.arange(k) // g_size
    scales, zeros = rtn_params(w, gidx, groups, bits, sym)
    lin = torch.nn.Linear(k, n, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(w.astype(np.float32)))
    mod = TorchLinear(bits=bits, group_size=gs, sym=sym, desc_act=act, in_features=k,
                      out_features=n, bias=False, pack_dtype=torch.int32)
    mod.pack(lin, torch.from_numpy(scales).to(torch.float16), torch.from_numpy(zeros),
             torch.from_numpy(gidx.astype(np.int32)))
    qcfg = QuantizeConfig(bits=bits, group_size=gs, desc_act=act, sym=sym)
    if fmt == "gptq":
        convert_gptq_v2_to_v1_format_module(mod, qcfg)
    out = {name + ".qweight": mod.qweight.clone(), name + ".qzeros": mod.qzeros.clone(),
           name + ".scales": mod.scales.clone(), name + ".g_idx": mod.g_idx.to(torch.int32)}
    # GPTQModel's reading: v1 -> v2, then dequantize_weight with exact (float64) scales
    if fmt == "gptq":
        convert_gptq_v1_to_v2_format_module(mod, bits=bits, pack_dtype=torch.int32)
    mod.scales = mod.scales.to(torch.float64)
    mod.post_init() if hasattr(mod, "post_init") else None
    deq = mod.dequantize_weight().to(torch.float64).numpy().T.copy()  # [N, K]
    return out, deq, int((zeros == 0).sum())


def make_qconfig(bits, gs, act, sym, fmt, dynamic=None):
    from gptqmodel.quantization import FORMAT, QuantizeConfig
    return QuantizeConfig(bits=bits, group_size=gs, desc_act=act, sym=sym,
                          format=FORMAT.GPTQ if fmt == "gptq" else FORMAT.GPTQ_V2,
                          dynamic=dynamic, lm_head=dynamic is not None)


def quant_config(bits, gs, act, sym, fmt, dynamic=None) -> dict:
    d = make_qconfig(bits, gs, act, sym, fmt, dynamic).to_dict()
    d.setdefault("meta", {}).pop("offload_to_disk_path", None)  # a temporary directory
    return d


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/data/gptq")
    a = ap.parse_args(argv)
    import gptqmodel
    import torch
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    bdir = os.path.join(a.out, "base")
    base = checkpoint.load_tensors(bdir)
    with open(os.path.join(bdir, "config.json")) as fh:
        cfg = json.load(fh)
    seqs = fx.sequences()
    todo = [v + (None,) for v in VARIANTS]
    todo.append((DYNAMIC_NAME, 4, 128, False, False, "gptq", ["q4", "q8_0", "f16"], None,
                 DYNAMIC))
    for name, bits, gs, act, sym, fmt, expect, base_name, dynamic in todo:
        rng = np.random.RandomState(SEED_PERM)
        vdir = os.path.join(a.out, name)
        if os.path.exists(vdir):
            shutil.rmtree(vdir)
        os.makedirs(vdir)
        qcfg = make_qconfig(bits, gs, act, sym, fmt, dynamic)
        modules = [f"model.layers.{i}.{lin}" for i in range(cfg["num_hidden_layers"])
                   for lin in LINEARS] + (["lm_head"] if dynamic else [])
        tensors, deq, n_zero0 = {}, {}, 0
        quantized = {}
        for p in modules:  # GPTQModel's resolution of the dynamic rules
            if qcfg.dynamic_get(p) is False:
                continue
            quantized[p] = (qcfg.dynamic_get(p, "bits", bits), qcfg.dynamic_get(p, "group_size", gs),
                            qcfg.dynamic_get(p, "desc_act", act), qcfg.dynamic_get(p, "sym", sym))
        for key, v in base.items():
            if key.removesuffix(".weight") not in quantized:
                tensors[key] = torch.from_numpy(np.ascontiguousarray(v))
                deq[key] = v.astype(np.float64)
        for p, (mb, mg, ma, ms) in quantized.items():
            t, d, z0 = quantize_linear(p, base[p + ".weight"].astype(np.float32), mb, mg, ma, ms,
                                       fmt, rng)
            tensors.update(t)
            deq[p + ".weight"] = d
            n_zero0 += z0
            if mb == 4:  # llmrt.quantize's reader (word-wise v1) agrees with GPTQModel's
                mine = packing.dequantize(*(t[p + s].numpy() for s in (
                    ".qweight", ".qzeros", ".scales", ".g_idx")), fmt)
                assert np.array_equal(mine, d), f"{name} {p}: packing.dequantize differs"
        if not sym and fmt == "gptq" and not dynamic:
            assert n_zero0 > 0, f"{name}: no zero point of 0 to borrow"
        qc = quant_config(bits, gs, act, sym, fmt, dynamic)
        vcfg = dict(cfg)
        if base_name:  # an older AutoGPTQ export: quantize_config.json only, named weights
            qc["model_file_base_name"] = base_name
            fname = base_name + ".safetensors"
        else:
            vcfg["quantization_config"] = qc
            fname = "model.safetensors"
        save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(vdir, fname),
                  metadata={"format": "pt"})
        with open(os.path.join(vdir, "config.json"), "w") as fh:
            json.dump(vcfg, fh, indent=2)  # GPTQModel's key order: dynamic rules are ordered
            fh.write("\n")
        with open(os.path.join(vdir, "quantize_config.json"), "w") as fh:
            json.dump(qc, fh, indent=2)
            fh.write("\n")
        logits = [fx.numpy_forward(deq, cfg, s) for s in seqs]
        j = fx.write_golden(os.path.join(a.out, "golden"), name, seqs, logits, {
            "model_dir": f"gptq/{name}", "base_model_dir": "gptq/base", "model_type": "llama",
            "quantization": {k: qc[k] for k in ("bits", "group_size", "desc_act", "sym",
                                                "checkpoint_format")},
            "expect_weight_format": expect,
            "dynamic_resolved": {p: dict(zip(("bits", "group_size", "desc_act", "sym"), v))
                                 for p, v in quantized.items()} if dynamic else None,
            "writer": f"gptqmodel {gptqmodel.__version__} TorchLinear.pack + "
                      "convert_gptq_v2_to_v1_format_module (v1); scales/zeros: round-to-nearest "
                      "per group (" + SCRIPT + ")",
            "reference": "GPTQModel's reading (convert_gptq_v1_to_v2_format_module, "
                         "dequantize_weight with float64 scales) + make_gptq_fixtures."
                         "numpy_forward (float64)",
            "zero_points_of_0": n_zero0,
        })
        j_path = os.path.join(a.out, "golden", name + ".json")
        with open(j_path) as fh:
            jj = json.load(fh)
        jj["generator"]["script"] = SCRIPT
        jj["generator"]["gptqmodel"] = gptqmodel.__version__
        with open(j_path, "w") as fh:
            json.dump(jj, fh, indent=1)
            fh.write("\n")
        print(f"{name}: zeros of 0: {n_zero0}, min margin {j['min_top1_top2_margin']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
