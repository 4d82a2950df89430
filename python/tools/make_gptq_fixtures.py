"""Generate llmrt's GPTQ test fixtures: a tiny random Llama, 24 GPTQ checkpoints of it made by
llmrt's own quantizer (python/llmrt/quantize), and golden logits from an independent numpy
float64 forward.

Run from the repository root (needs torch, transformers, numpy; CI never runs it, the C and
Python tests read the committed outputs):

    PYTHONPATH=python python3 python/tools/make_gptq_fixtures.py [--out tests/data/gptq]

Deterministic: fixed seeds, one torch thread, eager attention.

Produces, under tests/data/gptq/:

base/                     LlamaForCausalLM, vocab 320, hidden 128, intermediate 384, 2 layers,
                          4 heads, 2 kv heads, head_dim 32, rope_theta 10000, rms_norm_eps 1e-5,
                          untied lm_head, fp16 weights (model.safetensors + config.json). Weights
                          as tests/data/tiny: linears N(0, 0.3²), embeddings N(0, 1), norms
                          1 + 0.1·N(0, 1); plus three all-positive rows (|N(0, 0.3²)| + 0.1:
                          layers.0.mlp.gate_proj rows 13 and 63, layers.1.mlp.down_proj row 70) so
                          that asym quantisation meets zero points of 0 (see below).
g{32,128,m1}_{act,noact}_{sym,asym}_{v1,v2}/
                          base quantised by GPTQ (llmrt.quantize, damp 0.01, block 128, true
                          sequential, calibration: 32 random token sequences of 64 tokens, seed
                          SEED_CALIB, bos first). group size 32 / 128 / -1 ("m1"), desc_act off/on,
                          sym/asym, checkpoint_format "gptq" (v1) / "gptq_v2". Files:
                          model.safetensors, config.json (with "quantization_config"),
                          quantize_config.json. lm_head, embeddings and norms fp16.
q8_g32_noact_sym_v1/, q8_g64_act_asym_v1/
                          base quantised to 8 bits by the same quantizer (--bits 8), v1.
golden/<name>.json        {"model_dir": "gptq/<name>", "vocab_size": 320, "sequences",
                           "logits_file", "reference", "argmax", "top1_top2_margin", ...}
golden/<name>.logits.f32  little-endian float32 rows, one per position (sequence 0 positions
                          0..n-1, then sequence 1, ...), as tests/data/golden. Sequences of
                          lengths 1, 9, 30 (bos 1 first). Also golden/base.* for the base model.

Reference for the goldens: each checkpoint is dequantised by the formula of kernels.md §3
(w[k][n] = scales[g_idx[k]][n] · (q[k][n] − z[g_idx[k]][n]), z = stored; for v1 the nibble of the
qzeros word plus 0x11111111, GPTQModel's reading; llmrt.quantize.packing.dequantize) and run
through ``numpy_forward`` below, a Llama forward in float64 written independently of llmrt and
checked here against HF transformers (float64) on the base model.

Zero points of 0 in v1 asym checkpoints: llmrt.quantize writes v1 as GPTQModel does (the packed
zero words minus 0x11111111), so a zero of 0 is nibble 0xF borrowing from the nibble above; the
word-wise add reads it back exactly. Each golden JSON lists them in "v1_zero_borrows"
([module, group, column]).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from llmrt.quantize import checkpoint, packing  # noqa: E402

# torch/transformers are imported inside the functions that need them, so that the tests can
# import numpy_forward / variants from this file with numpy alone.

SCRIPT = "python/tools/make_gptq_fixtures.py"
VOCAB = 320
BOS, EOS = 1, 2
SEQ_LENS = [1, 9, 30]
SEQ_SEED = 20240805
SEED_MODEL = 4242
SEED_CALIB = 777
NSAMPLES, SEQLEN = 32, 64
POSITIVE_ROWS = {"model.layers.0.mlp.gate_proj.weight": [13, 63],
                 "model.layers.1.mlp.down_proj.weight": [70]}

CONFIG = dict(vocab_size=VOCAB, hidden_size=128, intermediate_size=384, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, head_dim=32, rms_norm_eps=1e-5,
              rope_theta=10000.0, max_position_embeddings=256, bos_token_id=BOS,
              eos_token_id=EOS, hidden_act="silu", tie_word_embeddings=False)

GROUPS = {"g32": 32, "g128": 128, "gm1": -1}
# name, group size, act-order, sym, format, how llmrt loads it
VARIANTS_8BIT = [("q8_g32_noact_sym_v1", 32, False, True, "gptq", "q8_0"),
                 ("q8_g64_act_asym_v1", 64, True, False, "gptq", "q8_z")]


def variants():
    for gname, gs in GROUPS.items():
        for act in (False, True):
            for sym in (True, False):
                for fmt in ("gptq", "gptq_v2"):
                    name = "%s_%s_%s_%s" % (gname, "act" if act else "noact",
                                            "sym" if sym else "asym",
                                            "v1" if fmt == "gptq" else "v2")
                    yield name, gs, act, sym, fmt


def versions() -> dict:
    import torch
    import transformers
    return {"script": SCRIPT, "torch": torch.__version__, "transformers": transformers.__version__,
            "numpy": np.__version__}


def sequences() -> list[list[int]]:
    rng = np.random.RandomState(SEQ_SEED)
    return [[BOS] + rng.randint(0, VOCAB, size=n - 1).tolist() for n in SEQ_LENS]


# ----------------------------------------------------------------------------- base model

def init_weights(model, seed: int) -> None:
    """As python/tools/make_tiny_models.py, plus the all-positive rows of POSITIVE_ROWS."""
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if "norm" in name:
                v = 1.0 + 0.1 * torch.randn(p.shape, generator=g)
            elif "embed_tokens" in name:
                v = torch.randn(p.shape, generator=g)
            else:
                v = 0.3 * torch.randn(p.shape, generator=g)
            for r in POSITIVE_ROWS.get(name, []):
                v[r] = v[r].abs() + 0.1
            p.copy_(v)


def write_config_v4(path: str) -> None:
    """config.json as the HF hub has it for Llama (transformers-4 style: rope_theta,
    "rope_scaling": null, torch_dtype), like tests/data/tiny/llama_f32."""
    with open(path) as f:
        cfg = json.load(f)
    cfg.pop("dtype", None)
    cfg.pop("torch_dtype", None)
    rp = dict(cfg.pop("rope_parameters", {}) or {})
    cfg["rope_theta"] = rp.pop("rope_theta", CONFIG["rope_theta"])
    cfg["rope_scaling"] = rp if rp.get("rope_type", "default") != "default" else None
    cfg["torch_dtype"] = "float16"
    cfg["architectures"] = ["LlamaForCausalLM"]
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


def make_base(out: str) -> str:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(**CONFIG)
    cfg._attn_implementation = "eager"
    torch.manual_seed(SEED_MODEL)
    model = LlamaForCausalLM(cfg)
    init_weights(model, SEED_MODEL)
    model = model.to(torch.float16)
    bdir = os.path.join(out, "base")
    if os.path.exists(bdir):
        shutil.rmtree(bdir)
    model.save_pretrained(bdir, safe_serialization=True)
    for fn in os.listdir(bdir):
        if fn not in ("config.json", "model.safetensors"):
            os.remove(os.path.join(bdir, fn))
        else:
            os.chmod(os.path.join(bdir, fn), 0o644)
    write_config_v4(os.path.join(bdir, "config.json"))
    return bdir


# ----------------------------------------------------------------------------- numpy reference

def numpy_forward(sd: dict[str, np.ndarray], cfg: dict, ids: list[int]) -> np.ndarray:
    """Llama forward in float64: logits [T, vocab] for every position of ``ids``.

    sd: HF state-dict names -> arrays (nn.Linear weights [out, in]). RMSNorm x·w/sqrt(mean(x²)+eps),
    RoPE with HF's rotate_half pairing (i, i + d/2), inv_freq = theta^(−2i/d), GQA, causal softmax
    attention scaled by 1/sqrt(head_dim), SwiGLU MLP down(silu(gate x) · up x)."""
    f = {k: np.asarray(v, dtype=np.float64) for k, v in sd.items()}
    H = cfg["num_attention_heads"]
    KV = cfg["num_key_value_heads"]
    D = cfg.get("head_dim") or cfg["hidden_size"] // H
    eps = cfg["rms_norm_eps"]
    theta = cfg.get("rope_theta") or (cfg.get("rope_parameters") or {}).get("rope_theta", 10000.0)
    T = len(ids)

    def rms(x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w

    inv = 1.0 / theta ** (np.arange(0, D, 2, dtype=np.float64) / D)
    ang = np.arange(T, dtype=np.float64)[:, None] * inv[None, :]
    c, sn = np.cos(ang), np.sin(ang)
    cos = np.concatenate([c, c], axis=-1)[:, None, :]  # [T, 1, D]
    sin = np.concatenate([sn, sn], axis=-1)[:, None, :]

    def rope(x):  # [T, h, D]
        x1, x2 = x[..., :D // 2], x[..., D // 2:]
        return x * cos + np.concatenate([-x2, x1], axis=-1) * sin

    h = f["model.embed_tokens.weight"][np.asarray(ids)]
    mask = np.triu(np.full((T, T), -np.inf), k=1)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        x = rms(h, f[p + "input_layernorm.weight"])
        q = (x @ f[p + "self_attn.q_proj.weight"].T).reshape(T, H, D)
        k = (x @ f[p + "self_attn.k_proj.weight"].T).reshape(T, KV, D)
        v = (x @ f[p + "self_attn.v_proj.weight"].T).reshape(T, KV, D)
        q, k = rope(q), rope(k)
        att = np.empty((T, H, D))
        for hh in range(H):
            kh = hh // (H // KV)
            s = q[:, hh, :] @ k[:, kh, :].T / np.sqrt(D) + mask
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            s /= s.sum(axis=-1, keepdims=True)
            att[:, hh, :] = s @ v[:, kh, :]
        h = h + att.reshape(T, H * D) @ f[p + "self_attn.o_proj.weight"].T
        x = rms(h, f[p + "post_attention_layernorm.weight"])
        g = x @ f[p + "mlp.gate_proj.weight"].T
        u = x @ f[p + "mlp.up_proj.weight"].T
        h = h + (g / (1.0 + np.exp(-g)) * u) @ f[p + "mlp.down_proj.weight"].T
    x = rms(h, f["model.norm.weight"])
    return x @ f["lm_head.weight"].T


class _HFFloat64:
    """Context manager: HF Llama in true float64. transformers computes RMSNorm in float32, RoPE
    tables in float32 and the eager softmax in float32 whatever the model dtype; these patches
    keep the input dtype so the float64 model is float64 throughout (only for this check)."""

    def __enter__(self):
        import torch
        from transformers.models.llama import modeling_llama as ml
        self.ml = ml
        self.saved = (ml.LlamaRMSNorm.forward, ml.LlamaRotaryEmbedding.forward)

        def rms_forward(self_, x):
            var = x.pow(2).mean(-1, keepdim=True)
            return self_.weight * (x * torch.rsqrt(var + self_.variance_epsilon))

        def rope_forward(self_, x, position_ids):
            cfg = self_.config
            base = cfg.rope_parameters["rope_theta"]
            dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
            inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
            freqs = position_ids[..., None].to(torch.float64) * inv
            emb = torch.cat((freqs, freqs), dim=-1)
            return emb.cos().to(x.dtype), emb.sin().to(x.dtype)

        ml.LlamaRMSNorm.forward = rms_forward
        ml.LlamaRotaryEmbedding.forward = rope_forward
        return self

    def __exit__(self, *exc):
        self.ml.LlamaRMSNorm.forward, self.ml.LlamaRotaryEmbedding.forward = self.saved
        return False


def check_numpy_vs_hf(bdir: str, seqs) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    from llmrt.quantize.model import load_float_model
    sd = checkpoint.load_tensors(bdir)
    with open(os.path.join(bdir, "config.json")) as fh:
        cfg = json.load(fh)
    m64 = AutoModelForCausalLM.from_pretrained(bdir, dtype=torch.float64,
                                               attn_implementation="sdpa").eval()
    m32 = load_float_model(bdir)
    d64 = d32 = 0.0
    with torch.no_grad():
        for s in seqs:
            ref = numpy_forward(sd, cfg, s)
            ids = torch.tensor([s])
            with _HFFloat64():
                l64 = m64(input_ids=ids, use_cache=False).logits[0].numpy()
            l32 = m32(input_ids=ids, use_cache=False).logits[0].double().numpy()
            d64 = max(d64, float(np.abs(ref - l64).max()))
            d32 = max(d32, float(np.abs(ref - l32).max()))
    lmax = float(max(np.abs(numpy_forward(sd, cfg, s)).max() for s in seqs))
    print(f"numpy float64 forward vs HF float64 (sdpa; norms/RoPE kept float64): max |diff| = "
          f"{d64:.3g}; vs HF float32 eager: {d32:.3g}; max |logit| {lmax:.3g}")
    assert d64 < 1e-5, d64
    return {"max_abs_diff_vs_hf_float64": d64, "max_abs_diff_vs_hf_float32_eager": d32,
            "max_abs_logit": lmax,
            "hf_float64": "AutoModelForCausalLM dtype=float64, sdpa attention, LlamaRMSNorm and "
                          "LlamaRotaryEmbedding patched to stay in float64"}


def write_golden(gdir: str, name: str, seqs, logits, extra: dict) -> dict:
    os.makedirs(gdir, exist_ok=True)
    lf = f"{name}.logits.f32"
    np.concatenate(logits, axis=0).astype("<f4").tofile(os.path.join(gdir, lf))
    margins = []
    for lg in logits:
        top2 = np.sort(lg, axis=1)[:, -2:]
        margins.append([round(float(m), 6) for m in top2[:, 1] - top2[:, 0]])
    j = dict(extra)
    j.update({
        "vocab_size": int(logits[0].shape[1]),
        "sequences": seqs,
        "logits_file": lf,
        "logits_layout": "little-endian float32, rows = sequence 0 positions 0..n-1, then "
                         "sequence 1, ...; each row vocab_size floats",
        "argmax": [lg.argmax(axis=1).tolist() for lg in logits],
        "top1_top2_margin": margins,
        "min_top1_top2_margin": min(min(m) for m in margins),
        "generator": versions(),
    })
    with open(os.path.join(gdir, f"{name}.json"), "w") as fh:
        json.dump(j, fh, indent=1)
        fh.write("\n")
    return j


REFERENCE = ("numpy float64 Llama forward (make_gptq_fixtures.numpy_forward, checked against HF "
             "transformers float64 on gptq/base) over the checkpoint dequantised by kernels.md §3: "
             "w[k][n] = scales[g_idx[k]][n] * (q[k][n] - z[g_idx[k]][n]), z = the nibble of "
             "qzeros word + 0x11111111 (mod 2^32) for checkpoint_format gptq (v1, GPTQModel's "
             "reading: a zero of 0 borrowed from the next nibble), stored nibble for gptq_v2; "
             "fp16 embeddings/norms/lm_head upcast; whole sequence, logits at every position")


# ----------------------------------------------------------------------------- checks

def check_variant(vdir: str, name: str, gs: int, act: bool, sym: bool, fmt: str, results,
                  base: dict) -> dict:
    t = checkpoint.load_tensors(vdir)
    info = {"v1_zero_borrows": [], "zero_points_of_0": 0, "g_idx_monotonic": {},
            "rel_weight_error": {}}
    for mod, r in sorted(results.items()):
        gi = t[mod + ".g_idx"]
        K = gi.shape[0]
        mono = bool(np.all(np.diff(gi.astype(np.int64)) >= 0))
        info["g_idx_monotonic"][mod] = mono
        if act and gs != -1 and K > gs:
            assert not mono, f"{name} {mod}: act-order g_idx is monotonic"
            counts = np.bincount(gi, minlength=K // gs)
            assert np.all(counts == gs), counts
        if not act:
            assert np.array_equal(gi, packing.default_g_idx(K, gs))
        zeros = r.zeros.numpy()
        stored = packing.unpack_qzeros_raw(t[mod + ".qzeros"])
        if sym:
            assert np.all(zeros == 8)
            assert np.all(stored == (7 if fmt == "gptq" else 8))
        else:
            assert np.any(zeros != 8)
        nz0 = int(np.sum(zeros == 0))
        info["zero_points_of_0"] += nz0
        w = checkpoint.dequantize_layer(t, mod, fmt)
        Q = r.Q.double().numpy()
        if fmt == "gptq" and nz0:
            # a zero of 0 is stored as nibble 0xF and borrows from the next nibble up
            hit = zeros == 0
            for g, n in zip(*np.nonzero(hit)):
                info["v1_zero_borrows"].append([mod, int(g), int(n)])
            assert np.all(stored[hit] == 15)
        assert np.array_equal(w, Q), f"{name} {mod}: stored != quantizer output"
        W0 = base[mod + ".weight"].astype(np.float64)
        info["rel_weight_error"][mod] = float(np.linalg.norm(Q - W0) / np.linalg.norm(W0))
    if act and gs != -1:
        assert not all(info["g_idx_monotonic"].values()), name
    return info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/data/gptq")
    ap.add_argument("--only", default=None, help="comma-separated variant names (debugging)")
    a = ap.parse_args(argv)

    import torch

    from llmrt.quantize.calib import random_samples
    from llmrt.quantize.model import QuantizeOptions, quantize_dir

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    t0 = time.time()
    os.makedirs(a.out, exist_ok=True)
    gdir = os.path.join(a.out, "golden")
    seqs = sequences()

    bdir = make_base(a.out)
    check = check_numpy_vs_hf(bdir, seqs)
    with open(os.path.join(bdir, "config.json")) as fh:
        cfg = json.load(fh)
    base_sd = checkpoint.load_tensors(bdir)
    write_golden(gdir, "base", seqs, [numpy_forward(base_sd, cfg, s) for s in seqs],
                 {"model_dir": "gptq/base", "model_type": "llama", "weights_dtype": "float16",
                  "reference": REFERENCE.split(" over ")[0] + " on the fp16 weights upcast",
                  "numpy_vs_hf": check})

    samples = random_samples(VOCAB, NSAMPLES, SEQLEN, SEED_CALIB, bos=BOS)
    only = set(a.only.split(",")) if a.only else None
    summary = {}
    for name, gs, act, sym, fmt in variants():
        if only and name not in only:
            continue
        t1 = time.time()
        vdir = os.path.join(a.out, name)
        if os.path.exists(vdir):
            shutil.rmtree(vdir)
        opts = QuantizeOptions(group_size=gs, desc_act=act, sym=sym, checkpoint_format=fmt,
                               method="gptq", damp_percent=0.01, log=False)
        results = quantize_dir(bdir, vdir, samples, opts)
        for fn in os.listdir(vdir):
            if fn not in ("model.safetensors", "config.json", "quantize_config.json"):
                os.remove(os.path.join(vdir, fn))
        info = check_variant(vdir, name, gs, act, sym, fmt, results, base_sd)
        vcfg = json.load(open(os.path.join(vdir, "config.json")))
        deq = checkpoint.dequantize_checkpoint(vdir)
        logits = [numpy_forward(deq, vcfg, s) for s in seqs]
        qc = vcfg["quantization_config"]
        write_golden(gdir, name, seqs, logits, {
            "model_dir": f"gptq/{name}", "base_model_dir": "gptq/base", "model_type": "llama",
            "quantization": {k: qc[k] for k in ("bits", "group_size", "desc_act", "sym",
                                                "checkpoint_format", "damp_percent",
                                                "static_groups")},
            "calibration": f"{NSAMPLES} random token sequences of {SEQLEN} (seed {SEED_CALIB}, "
                           f"bos first)",
            "reference": REFERENCE,
            "zero_points_of_0": info["zero_points_of_0"],
            "v1_zero_borrows": info["v1_zero_borrows"],
            "rel_weight_error": info["rel_weight_error"],
        })
        summary[name] = info
        worst = max(info["rel_weight_error"].values())
        print(f"{name}: {time.time() - t1:.1f} s, zeros of 0: {info['zero_points_of_0']}, "
              f"v1 borrows: {len(info['v1_zero_borrows'])}, max rel weight err {worst:.3f}")

    # 8-bit (--bits 8): sym natural order (llmrt loads it as Q8_0) and asym act-order v1 with
    # zero points of 0 (dequantised at load under allow_fallback)
    for name, gs, act, sym, fmt, expect in VARIANTS_8BIT:
        if only and name not in only:
            continue
        vdir = os.path.join(a.out, name)
        if os.path.exists(vdir):
            shutil.rmtree(vdir)
        opts = QuantizeOptions(bits=8, group_size=gs, desc_act=act, sym=sym,
                               checkpoint_format=fmt, method="gptq", damp_percent=0.01, log=False)
        results = quantize_dir(bdir, vdir, samples, opts)
        for fn in os.listdir(vdir):
            if fn not in ("model.safetensors", "config.json", "quantize_config.json"):
                os.remove(os.path.join(vdir, fn))
        t = checkpoint.load_tensors(vdir)
        n_zero0 = 0
        for mod, r in results.items():  # the stored tensors read back to the quantizer's output
            w = checkpoint.dequantize_layer(t, mod, fmt, bits=8)
            assert np.array_equal(w, r.Q.double().numpy()), f"{name} {mod}"
            n_zero0 += int((r.zeros == 0).sum())
        assert sym or n_zero0 > 0, f"{name}: no zero point of 0"
        vcfg = json.load(open(os.path.join(vdir, "config.json")))
        deq = checkpoint.dequantize_checkpoint(vdir)
        qc = vcfg["quantization_config"]
        write_golden(gdir, name, seqs, [numpy_forward(deq, vcfg, s) for s in seqs], {
            "model_dir": f"gptq/{name}", "base_model_dir": "gptq/base", "model_type": "llama",
            "quantization": {k: qc[k] for k in ("bits", "group_size", "desc_act", "sym",
                                                "checkpoint_format")},
            "expect_weight_format": expect,
            "reference": REFERENCE.replace("0x11111111", "0x01010101 (8 bits)"),
            "zero_points_of_0": n_zero0,
        })
        print(f"{name}: zeros of 0: {n_zero0}")

    if not only:
        v1_asym = [n for n in summary if n.endswith("_asym_v1")]
        assert any(summary[n]["v1_zero_borrows"] for n in v1_asym), "no v1 zero-0 case"
    total = 0
    for root, _, files in os.walk(a.out):
        total += sum(os.path.getsize(os.path.join(root, fn)) for fn in files)
    print(f"done in {time.time() - t0:.1f} s; {a.out}: {total / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
