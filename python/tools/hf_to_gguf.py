"""Minimal HF-Llama -> GGUF converter for llmrt's test fixtures.

Writes a GGUF file for the llama architecture from an HF checkpoint directory
(config.json + *.safetensors, single or sharded), following the conventions of
llama.cpp's ``convert_hf_to_gguf.py`` (LlamaModel):

* metadata keys ``general.*`` and ``llama.*`` (context_length, embedding_length,
  block_count, feed_forward_length, attention.head_count(_kv),
  attention.layer_norm_rms_epsilon, attention.key_length/value_length,
  rope.dimension_count, rope.freq_base, vocab_size, rope.scaling.* for linear
  scaling), ``general.file_type`` and ``general.quantization_version``;
* tensor names token_embd / blk.N.{attn_norm,attn_q,attn_k,attn_v,attn_output,
  ffn_norm,ffn_gate,ffn_up,ffn_down} / output_norm / output;
* the Q and K weight rows permuted for interleaved (GPT-J style) RoPE exactly as
  LlamaModel.permute does: reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2),
  with n_head = num_attention_heads for Q and num_key_value_heads for K.

Weight types: "f32" (everything F32), "f16", "q8_0", "q4_0", "q4_1" (2-D weight
matrices, token_embd and output included, in that type; 1-D norms stay F32).
Quantisation uses ``gguf.quants.quantize`` (the gguf package's port of ggml's
reference row quantisers).

Only the small subset needed for llmrt fixtures is supported (no tokenizer
conversion beyond optional bos/eos ids, no MoE); llama3 rope scaling is written as
llama.cpp does, a rope_freqs.weight tensor.

Used by make_tiny_models.py; can also be run directly:

    python3 python/tools/hf_to_gguf.py HF_DIR OUT.gguf --type q4_0
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

import gguf
from gguf import GGMLQuantizationType, LlamaFileType

TYPES = {
    # name: (tensor type for 2-D weights, general.file_type)
    "f32": (GGMLQuantizationType.F32, LlamaFileType.ALL_F32),
    "f16": (GGMLQuantizationType.F16, LlamaFileType.MOSTLY_F16),
    "q8_0": (GGMLQuantizationType.Q8_0, LlamaFileType.MOSTLY_Q8_0),
    "q4_0": (GGMLQuantizationType.Q4_0, LlamaFileType.MOSTLY_Q4_0),
    "q4_1": (GGMLQuantizationType.Q4_1, LlamaFileType.MOSTLY_Q4_1),
}


def permute(w: np.ndarray, n_head: int, n_head_kv: int | None) -> np.ndarray:
    """llama.cpp convert_hf_to_gguf.py LlamaModel.permute (HF rows -> GGUF rows)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2)
            .reshape(w.shape))


def unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of permute() for a tensor with n_head heads (GGUF rows -> HF rows)."""
    return (w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:])
            .swapaxes(1, 2)
            .reshape(w.shape))


def load_hf_state_dict(hf_dir: str) -> dict[str, np.ndarray]:
    """All tensors of an HF checkpoint directory as float32 numpy arrays."""
    from safetensors import safe_open

    index = os.path.join(hf_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    out: dict[str, np.ndarray] = {}
    for fn in files:
        # framework "pt" so that bf16 is readable; converted to f32 exactly
        with safe_open(os.path.join(hf_dir, fn), framework="pt") as f:
            for k in f.keys():
                out[k] = f.get_tensor(k).float().numpy()
    return out


def hf_to_gguf_tensors(cfg: dict, sd: dict[str, np.ndarray],
                       arch: str = "llama") -> list[tuple[str, np.ndarray]]:
    """Map HF Llama tensor names to GGUF names (in llama.cpp's order). The llama architecture
    permutes the rows of Q and K, weights and biases (LlamaModel.modify_tensors:
    q_proj.weight/q_proj.bias, k_proj.weight/k_proj.bias); qwen2 (Qwen2Model, NEOX RoPE in
    llama.cpp) keeps HF's order. Biases (.bias) follow their weight, under the same GGUF name
    with the .bias suffix."""
    n_head = cfg["num_attention_heads"]
    n_kv = cfg.get("num_key_value_heads", n_head)
    perm = arch == "llama"
    pq = (lambda w: permute(w, n_head, n_head)) if perm else (lambda w: w)
    pk = (lambda w: permute(w, n_head, n_kv)) if perm else (lambda w: w)
    out = [("token_embd.weight", sd["model.embed_tokens.weight"])]
    lin = [("self_attn.q_proj", "attn_q", pq), ("self_attn.k_proj", "attn_k", pk),
           ("self_attn.v_proj", "attn_v", None), ("self_attn.o_proj", "attn_output", None),
           ("mlp.gate_proj", "ffn_gate", None), ("mlp.up_proj", "ffn_up", None),
           ("mlp.down_proj", "ffn_down", None)]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        b = f"blk.{i}."
        out.append((b + "attn_norm.weight", sd[p + "input_layernorm.weight"]))
        for hf, gg, fn in lin:
            if hf == "mlp.gate_proj":
                out.append((b + "ffn_norm.weight", sd[p + "post_attention_layernorm.weight"]))
            for suffix in ("weight", "bias"):
                key = p + hf + "." + suffix
                if key in sd:
                    out.append((b + gg + "." + suffix, fn(sd[key]) if fn else sd[key]))
    out.append(("output_norm.weight", sd["model.norm.weight"]))
    if "lm_head.weight" in sd and not cfg.get("tie_word_embeddings", False):
        out.append(("output.weight", sd["lm_head.weight"]))
    return out


def _rope_params(cfg: dict) -> tuple[float, dict | None]:
    rp = cfg.get("rope_parameters")
    if rp:
        theta = rp.get("rope_theta", cfg.get("rope_theta", 10000.0))
        scaling = rp if rp.get("rope_type", "default") != "default" else None
    else:
        theta = cfg.get("rope_theta", 10000.0)
        scaling = cfg.get("rope_scaling")
    return float(theta), scaling


def llama3_rope_freqs(theta: float, head_dim: int, scaling: dict) -> np.ndarray:
    """llama.cpp convert_hf_to_gguf.py LlamaModel.generate_extra_tensors: the llama3 scaling
    as per-pair divisors of the angle (tensor rope_freqs.weight, F32 [head_dim / 2])."""
    import math
    freqs = 1.0 / (np.float32(theta) ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim))
    factor = scaling.get("factor", 8.0)
    low, high = scaling.get("low_freq_factor", 1.0), scaling.get("high_freq_factor", 4.0)
    old_ctx = scaling.get("original_max_position_embeddings", 8192)
    low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            out.append(1)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def convert(hf_dir: str, out_path: str, wtype: str, name: str | None = None,
            arch: str = "llama") -> None:
    """arch "llama" (Llama, Mistral; a sliding_window smaller than the context is written as
    llama.attention.sliding_window) or "qwen2" (keys qwen2.*, no Q/K permutation)."""
    with open(os.path.join(hf_dir, "config.json")) as f:
        cfg = json.load(f)
    sd = load_hf_state_dict(hf_dir)
    qtype, ftype = TYPES[wtype]

    n_head = cfg["num_attention_heads"]
    n_kv = cfg.get("num_key_value_heads", n_head)
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // n_head
    theta, scaling = _rope_params(cfg)
    rope_freqs = None

    w = gguf.GGUFWriter(out_path, arch)
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(name or os.path.basename(os.path.normpath(hf_dir)))
    w.add_vocab_size(cfg["vocab_size"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_rope_dimension_count(head_dim)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_layer_norm_rms_eps(float(cfg["rms_norm_eps"]))
    w.add_rope_freq_base(theta)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    if scaling is not None:
        rt = scaling.get("rope_type", scaling.get("type"))
        if rt == "linear":
            w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            w.add_rope_scaling_factor(float(scaling["factor"]))
        elif rt == "llama3":
            rope_freqs = llama3_rope_freqs(theta, head_dim, scaling)
        else:
            raise NotImplementedError(f"rope scaling {rt!r} not supported by this converter")
    window = cfg.get("sliding_window")
    if arch == "qwen2" and not cfg.get("use_sliding_window", False):
        window = None
    if window is not None and window < cfg["max_position_embeddings"]:
        w.add_sliding_window(int(window))
    w.add_file_type(ftype)
    if qtype not in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    if cfg.get("bos_token_id") is not None:
        w.add_bos_token_id(int(cfg["bos_token_id"]))
    eos = cfg.get("eos_token_id")
    if isinstance(eos, list):
        eos = eos[0]
    if eos is not None:
        w.add_eos_token_id(int(eos))

    if rope_freqs is not None:
        w.add_tensor("rope_freqs.weight", rope_freqs)
    for tname, t in hf_to_gguf_tensors(cfg, sd, arch):
        t = np.ascontiguousarray(t, dtype=np.float32)
        if t.ndim == 1 or qtype == GGMLQuantizationType.F32:
            w.add_tensor(tname, t)
        elif qtype == GGMLQuantizationType.F16:
            w.add_tensor(tname, t.astype(np.float16))
        else:
            q = gguf.quants.quantize(t, qtype)
            w.add_tensor(tname, q, raw_dtype=qtype)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("hf_dir")
    ap.add_argument("out")
    ap.add_argument("--type", default="f32", choices=sorted(TYPES))
    ap.add_argument("--name", default=None)
    ap.add_argument("--arch", default="llama", choices=["llama", "qwen2"])
    a = ap.parse_args(argv)
    convert(a.hf_dir, a.out, a.type, a.name, a.arch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
