"""Read and write GPTQ checkpoint directories with numpy only (no torch, no safetensors package).

- ``read_safetensors`` / ``write_safetensors``: the safetensors container (8-byte little-endian
  header length, JSON header, raw little-endian data), enough for F16/BF16/F32/F64/I8..I64/U8.
  BF16 is returned as float32 (numpy has no bfloat16).
- ``load_tensors(dir)``: every tensor of a checkpoint directory (single file or sharded index).
- ``gptq_config(dir)``: the quantization config, from ``config.json["quantization_config"]``
  first, else ``quantize_config.json`` (kernels.md §3 loader rule).
- ``dequantize_checkpoint(dir)``: a plain state dict (HF names, float arrays, ``P.weight`` [N, K]
  for every quantised Linear ``P``) by the reference formula of ``packing.dequantize``.
"""

from __future__ import annotations

import json
import os
import struct

import numpy as np

from . import packing

_DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U8": np.dtype("u1"), "U16": np.dtype("<u2"), "U32": np.dtype("<u4"), "U64": np.dtype("<u8"),
    "BOOL": np.dtype("?"),
}
_NAMES = {v: k for k, v in _DTYPES.items()}


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = data[base + a:base + b]
        shape = tuple(info["shape"])
        if info["dtype"] == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32).reshape(shape)
        else:
            arr = np.frombuffer(raw, dtype=_DTYPES[info["dtype"]]).reshape(shape)
        out[name] = arr
    return out


def write_safetensors(path: str, tensors: dict[str, np.ndarray],
                      metadata: dict[str, str] | None = None) -> None:
    """Deterministic writer: tensors in sorted name order, header padded with spaces to 8 bytes
    (as the safetensors package does)."""
    header: dict = {}
    if metadata is not None:
        header["__metadata__"] = dict(metadata)
    blobs = []
    off = 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        dt = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
        a = a.astype(dt, copy=False)
        key = np.dtype(dt.str if dt.kind != "b" else "?")
        if key not in _NAMES:
            raise ValueError(f"unsupported dtype {a.dtype} for {name}")
        raw = a.tobytes()
        header[name] = {"dtype": _NAMES[key], "shape": list(a.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load_tensors(model_dir: str) -> dict[str, np.ndarray]:
    idx = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = sorted(fn for fn in os.listdir(model_dir) if fn.endswith(".safetensors"))
    if not files:
        raise FileNotFoundError(f"no .safetensors file in {model_dir}")
    out: dict[str, np.ndarray] = {}
    for fn in files:
        out.update(read_safetensors(os.path.join(model_dir, fn)))
    return out


def gptq_config(model_dir: str) -> dict:
    cfg_path = os.path.join(model_dir, "config.json")
    if os.path.exists(cfg_path):
        with open(cfg_path) as f:
            qc = json.load(f).get("quantization_config")
        if qc:
            return qc
    qpath = os.path.join(model_dir, "quantize_config.json")
    if os.path.exists(qpath):
        with open(qpath) as f:
            return json.load(f)
    raise FileNotFoundError(f"{model_dir}: no quantization_config in config.json and no "
                            "quantize_config.json")


def checkpoint_format(qc: dict) -> str:
    fmt = qc.get("checkpoint_format", "gptq")
    if fmt not in packing.FORMATS:
        raise ValueError(f"unsupported checkpoint_format {fmt!r}")
    return fmt


def quantized_prefixes(tensors: dict[str, np.ndarray]) -> list[str]:
    return sorted(k[:-len(".qweight")] for k in tensors if k.endswith(".qweight"))


def dequantize_layer(tensors: dict[str, np.ndarray], prefix: str, fmt: str,
                     dtype=np.float64, group_size: int | None = None,
                     bits: int = 4) -> np.ndarray:
    return packing.dequantize(tensors[prefix + ".qweight"], tensors[prefix + ".qzeros"],
                              tensors[prefix + ".scales"], tensors.get(prefix + ".g_idx"), fmt,
                              dtype=dtype, group_size=group_size, bits=bits)


def dequantize_checkpoint(model_dir: str, dtype=np.float64) -> dict[str, np.ndarray]:
    """State dict with every quantised Linear replaced by its dequantised ``.weight`` [N, K]."""
    qc = gptq_config(model_dir)
    fmt = checkpoint_format(qc)
    bits = qc.get("bits", 4)
    if bits not in (4, 8):
        raise ValueError(f"only 4- and 8-bit GPTQ are supported, got bits={bits}")
    t = load_tensors(model_dir)
    out: dict[str, np.ndarray] = {}
    pref = quantized_prefixes(t)
    skip = set()
    for p in pref:
        out[p + ".weight"] = dequantize_layer(t, p, fmt, dtype, qc.get("group_size"), bits)
        skip.update(p + s for s in (".qweight", ".qzeros", ".scales", ".g_idx"))
    for k, v in t.items():
        if k not in skip:
            out[k] = v.astype(dtype) if v.dtype.kind == "f" else v
    return out
