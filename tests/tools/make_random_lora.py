#!/usr/bin/env python3
"""Writes a random PEFT LoRA adapter for a Llama-family base model, for tests.

    make_random_lora.py --base MODEL --out DIR [--r 16] [--alpha 32] [--targets q_proj,v_proj]
                        [--seed 0] [--dtype f16] [--b-std 0.03]

MODEL is an HF directory (its config.json is read) or a .gguf file (its llama.* metadata is
read), so the default SmolLM2 GGUF works. DIR gets what PEFT's save_pretrained writes:
adapter_config.json and adapter_model.safetensors, the latter written by hand (an 8-byte
little-endian header length, a JSON header with dtype / shape / data_offsets per tensor, then
the raw little-endian data) so only the standard library and numpy are needed.

Tensors: base_model.model.model.layers.L.{self_attn,mlp}.T.lora_A.weight [r, in] and
.lora_B.weight [out, r]. A is uniform in +-1/sqrt(in) (PEFT's Kaiming-style start); B is normal
with std --b-std instead of PEFT's zeros, so the adapter changes the model's output (a freshly
initialised PEFT adapter is a no-op). Same arguments, same bytes."""

import argparse
import json
import os
import struct
import sys

import numpy as np

TARGETS = {  # name -> (module path, (out, in) in terms of the config's sizes)
    "q_proj": "self_attn",
    "k_proj": "self_attn",
    "v_proj": "self_attn",
    "o_proj": "self_attn",
    "gate_proj": "mlp",
    "up_proj": "mlp",
    "down_proj": "mlp",
}


# ------------------------------------------------------------------------------------------------
# the base model's shape
# ------------------------------------------------------------------------------------------------

def _gguf_metadata(path):
    """The key/value metadata of a GGUF file (arrays skipped: None)."""
    scalar = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
              11: "<q", 12: "<d"}
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise SystemExit(f"{path}: not a GGUF file (bad magic)")
        version, = struct.unpack("<I", f.read(4))
        if version not in (2, 3):
            raise SystemExit(f"{path}: GGUF version {version} (2 or 3 expected)")
        _n_tensors, n_kv = struct.unpack("<QQ", f.read(16))

        def read_str():
            n, = struct.unpack("<Q", f.read(8))
            return f.read(n).decode("utf-8", "replace")

        def read_value(t):
            if t in scalar:
                fmt = scalar[t]
                return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]
            if t == 8:
                return read_str()
            if t == 9:
                et, n = struct.unpack("<IQ", f.read(12))
                if et in scalar:
                    f.seek(n * struct.calcsize(scalar[et]), os.SEEK_CUR)
                else:
                    for _ in range(n):
                        read_value(et)
                return None
            raise SystemExit(f"{path}: unknown GGUF value type {t}")

        meta = {}
        for _ in range(n_kv):
            key = read_str()
            t, = struct.unpack("<I", f.read(4))
            meta[key] = read_value(t)
    return meta


def model_shape(base):
    """dict(hidden, intermediate, layers, heads, kv_heads, head_dim, name) of an HF dir or GGUF."""
    if os.path.isdir(base):
        with open(os.path.join(base, "config.json")) as f:
            cfg = json.load(f)
        heads = cfg["num_attention_heads"]
        return dict(hidden=cfg["hidden_size"], intermediate=cfg["intermediate_size"],
                    layers=cfg["num_hidden_layers"], heads=heads,
                    kv_heads=cfg.get("num_key_value_heads", heads),
                    head_dim=cfg.get("head_dim") or cfg["hidden_size"] // heads,
                    name=os.path.abspath(base))
    meta = _gguf_metadata(base)
    arch = meta.get("general.architecture", "llama")
    heads = meta[f"{arch}.attention.head_count"]
    hidden = meta[f"{arch}.embedding_length"]
    return dict(hidden=hidden, intermediate=meta[f"{arch}.feed_forward_length"],
                layers=meta[f"{arch}.block_count"], heads=heads,
                kv_heads=meta.get(f"{arch}.attention.head_count_kv", heads),
                head_dim=meta.get(f"{arch}.attention.key_length") or hidden // heads,
                name=os.path.abspath(base))


def target_shape(shape, t):
    """(out, in) of projection t."""
    d, ff = shape["hidden"], shape["intermediate"]
    q, kv = shape["heads"] * shape["head_dim"], shape["kv_heads"] * shape["head_dim"]
    return {"q_proj": (q, d), "k_proj": (kv, d), "v_proj": (kv, d), "o_proj": (d, q),
            "gate_proj": (ff, d), "up_proj": (ff, d), "down_proj": (d, ff)}[t]


# ------------------------------------------------------------------------------------------------
# safetensors, by hand
# ------------------------------------------------------------------------------------------------

def _encode(a, dtype):
    a = np.ascontiguousarray(a, dtype=np.float32)
    if dtype == "f32":
        return "F32", a.astype("<f4").tobytes()
    if dtype == "f16":
        return "F16", a.astype("<f2").tobytes()
    # bf16: round to nearest even on the upper 16 bits of the fp32 pattern
    u = a.view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return "BF16", u.astype("<u2").tobytes()


def write_safetensors(path, tensors, dtype):
    """tensors: list of (name, fp32 numpy array), written in that order."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, a in tensors:
        st_dtype, raw = _encode(a, dtype)
        header[name] = {"dtype": st_dtype, "shape": list(a.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned, as the reference writer does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


# ------------------------------------------------------------------------------------------------

def make_adapter(base, out, r=16, alpha=32, targets=("q_proj", "v_proj"), seed=0, dtype="f16",
                 b_std=0.03):
    """Writes the adapter to directory `out`; returns the number of tensors written."""
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise SystemExit(f"--targets: unknown module(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(TARGETS)}")
    if r < 1:
        raise SystemExit("--r must be >= 1")
    shape = model_shape(base)
    rng = np.random.default_rng(seed)
    tensors = []
    for layer in range(shape["layers"]):
        for t in targets:
            n_out, n_in = target_shape(shape, t)
            prefix = f"base_model.model.model.layers.{layer}.{TARGETS[t]}.{t}"
            bound = 1.0 / np.sqrt(n_in)
            a = rng.uniform(-bound, bound, size=(r, n_in)).astype(np.float32)
            b = rng.normal(0.0, b_std, size=(n_out, r)).astype(np.float32)
            tensors.append((prefix + ".lora_A.weight", a))
            tensors.append((prefix + ".lora_B.weight", b))
    os.makedirs(out, exist_ok=True)
    config = {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": shape["name"],
        "r": r, "lora_alpha": alpha, "lora_dropout": 0.0, "target_modules": list(targets),
        "bias": "none", "fan_in_fan_out": False, "use_rslora": False, "use_dora": False,
        "modules_to_save": None, "layers_to_transform": None, "rank_pattern": {},
        "alpha_pattern": {}, "inference_mode": True,
    }
    with open(os.path.join(out, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2)
    write_safetensors(os.path.join(out, "adapter_model.safetensors"), tensors, dtype)
    return len(tensors)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="HF model directory or .gguf file")
    ap.add_argument("--out", required=True, help="adapter directory to write")
    ap.add_argument("--r", type=int, default=16)
    ap.add_argument("--alpha", type=float, default=32)
    ap.add_argument("--targets", default="q_proj,v_proj")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=("f32", "f16", "bf16"), default="f16")
    ap.add_argument("--b-std", type=float, default=0.03, help="std of lora_B (default 0.03)")
    a = ap.parse_args(argv)
    alpha = int(a.alpha) if float(a.alpha).is_integer() else a.alpha
    n = make_adapter(a.base, a.out, a.r, alpha, [t for t in a.targets.split(",") if t], a.seed,
                     a.dtype, a.b_std)
    print(f"{a.out}: {n} tensors (r {a.r}, alpha {alpha}, {a.targets}, {a.dtype})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
