"""Generate llmrt's tiny random Llama-family test models and their golden logits.

Run from the repository root (needs torch, transformers, safetensors, gguf, numpy):

    python3 python/tools/make_tiny_models.py [--out tests/data]

Everything is deterministic (fixed seeds, single thread, eager attention), so a rerun
with the same torch/transformers/gguf versions reproduces the committed files.
CI never runs this script; the C tests read its committed outputs.

Produces, under tests/data/:

tiny/<model>/            HF checkpoints written by save_pretrained(safe_serialization=True)
    llama_f32              LlamaForCausalLM, V=320, d=64, ffn=160, 3 layers, 4 heads, 2 kv
                           heads (GQA), head_dim 16, f32, untied lm_head.
                           config.json in the transformers-4 style (rope_theta at top level,
                           "rope_scaling": null, "torch_dtype"), as on the HF hub.
    llama3_bf16_sharded    same shapes, llama3 rope scaling (factor 8, orig. ctx 32), tied
                           embeddings, eos [2, 5], bf16, sharded (model.safetensors.index.json),
                           generation_config.json with the eos list. transformers-4 style config.
    llama_linear_f16       same shapes, linear rope scaling factor 2, rope_theta 50000, f16.
                           config.json in the transformers-5 style ("rope_parameters" holding
                           rope_type/factor/rope_theta, "dtype") as save_pretrained writes it.
    mistral_f32            MistralForCausalLM, 4 heads, 1 kv head, head_dim 32 (!= 64/4),
                           sliding_window null, f32. transformers-4 style config.
tiny/llama_<t>.gguf      llama_f32 converted with hf_to_gguf.py, t in f32, f16, q8_0, q4_0,
                         q4_1 (Q/K rows permuted as llama.cpp does; norms F32).
golden/<name>.json       {"model_dir" or "model_file", "vocab_size", "sequences",
                          "logits_file", "argmax", "generator", ...}
golden/<name>.logits.f32 raw little-endian float32 logits, one row of vocab_size floats per
                         position: sequence 0 positions 0..n0-1, then sequence 1, ...

Reference: the HF model evaluated in float32 (eager attention) on each whole sequence.
For the bf16/f16 checkpoints the stored low-precision weights are loaded and upcast to f32.
For the GGUF files the reference is transformers' own GGUF loader
(AutoModelForCausalLM.from_pretrained(dir, gguf_file=..., dtype=float32), which dequantises
with gguf.quants.dequantize and un-permutes Q/K); if it fails, the script falls back to
dequantising + un-permuting itself and records that in the JSON's "reference".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

import numpy as np
import torch

import transformers
from transformers import (AutoModelForCausalLM, GenerationConfig, LlamaConfig, LlamaForCausalLM,
                          MistralConfig, MistralForCausalLM)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_to_gguf  # noqa: E402

import gguf  # noqa: E402

SCRIPT = "python/tools/make_tiny_models.py"
VOCAB = 320
BOS, EOS = 1, 2
SEQ_LENS = [1, 7, 23, 40]
SEQ_SEED = 20240601
GGUF_TYPES = ["f32", "f16", "q8_0", "q4_0", "q4_1"]

COMMON = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=160, num_hidden_layers=3,
              num_attention_heads=4, rms_norm_eps=1e-5, max_position_embeddings=256,
              bos_token_id=BOS, eos_token_id=EOS, hidden_act="silu")

# name -> (config class, model class, config kwargs, save dtype, config.json style, seed)
MODELS = {
    "llama_f32": (LlamaConfig, LlamaForCausalLM,
                  dict(COMMON, num_key_value_heads=2, head_dim=16, rope_theta=10000.0,
                       tie_word_embeddings=False),
                  torch.float32, "v4", 1001),
    "llama3_bf16_sharded": (LlamaConfig, LlamaForCausalLM,
                            dict(COMMON, num_key_value_heads=2, head_dim=16, rope_theta=10000.0,
                                 rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                               "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                               "original_max_position_embeddings": 32},
                                 tie_word_embeddings=True, eos_token_id=[2, 5]),
                            torch.bfloat16, "v4", 1002),
    "llama_linear_f16": (LlamaConfig, LlamaForCausalLM,
                         dict(COMMON, num_key_value_heads=2, head_dim=16, rope_theta=50000.0,
                              rope_scaling={"rope_type": "linear", "factor": 2.0},
                              tie_word_embeddings=False),
                         torch.float16, "v5", 1003),
    "mistral_f32": (MistralConfig, MistralForCausalLM,
                    dict(COMMON, num_key_value_heads=1, head_dim=32, rope_theta=10000.0,
                         sliding_window=None, tie_word_embeddings=False),
                    torch.float32, "v4", 1004),
}

DTYPE_NAME = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


def versions() -> dict:
    return {"script": SCRIPT, "torch": torch.__version__, "transformers": transformers.__version__,
            "gguf": getattr(gguf, "__version__", None) or _pkg_version("gguf"),
            "numpy": np.__version__}


def _pkg_version(name: str) -> str:
    from importlib.metadata import version
    return version(name)


def sequences() -> list[list[int]]:
    rng = np.random.RandomState(SEQ_SEED)
    return [[BOS] + rng.randint(0, VOCAB, size=n - 1).tolist() for n in SEQ_LENS]


def init_weights(model: torch.nn.Module, seed: int) -> None:
    """Larger-than-default random weights so logits are O(1..10) and argmaxes well separated."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if "norm" in name:
                v = 1.0 + 0.1 * torch.randn(p.shape, generator=g)
            elif "embed_tokens" in name:
                v = torch.randn(p.shape, generator=g)
            else:
                v = 0.3 * torch.randn(p.shape, generator=g)
            p.copy_(v)


def rewrite_config(path: str, style: str, dtype: torch.dtype) -> None:
    """v4: config.json as transformers 4.x / the HF hub has it (rope_theta, rope_scaling,
    torch_dtype). v5: keep what transformers 5 writes (rope_parameters, dtype)."""
    with open(path) as f:
        cfg = json.load(f)
    cfg.pop("torch_dtype", None)
    cfg.pop("dtype", None)
    if style == "v4":
        rp = dict(cfg.pop("rope_parameters"))
        cfg["rope_theta"] = rp.pop("rope_theta")
        cfg["rope_scaling"] = rp if rp.get("rope_type", "default") != "default" else None
        cfg["torch_dtype"] = DTYPE_NAME[dtype]
    else:
        cfg["dtype"] = DTYPE_NAME[dtype]
    cfg["architectures"] = cfg.get("architectures") or []
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


def run_logits(model: torch.nn.Module, seqs: list[list[int]]) -> list[np.ndarray]:
    model.eval()
    out = []
    with torch.no_grad():
        for s in seqs:
            ids = torch.tensor([s], dtype=torch.long)
            lg = model(input_ids=ids, use_cache=False).logits[0].float().numpy()
            assert lg.shape == (len(s), model.config.vocab_size)
            out.append(np.ascontiguousarray(lg, dtype="<f4"))
    return out


def write_golden(out_dir: str, name: str, seqs, logits, extra: dict) -> dict:
    gdir = os.path.join(out_dir, "golden")
    os.makedirs(gdir, exist_ok=True)
    lf = f"{name}.logits.f32"
    np.concatenate(logits, axis=0).astype("<f4").tofile(os.path.join(gdir, lf))
    margins = []  # per position: top-1 minus top-2 logit (near-ties can flip an argmax)
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
    with open(os.path.join(gdir, f"{name}.json"), "w") as f:
        json.dump(j, f, indent=1)
        f.write("\n")
    return j


def load_hf(path: str) -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32,
                                                attn_implementation="eager")


def make_hf_model(out_dir: str, name: str, seqs) -> None:
    cfg_cls, model_cls, kw, dtype, style, seed = MODELS[name]
    kw = dict(kw)
    cfg = cfg_cls(**kw)
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = model_cls(cfg)
    init_weights(model, seed)
    if cfg.tie_word_embeddings:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    model = model.to(dtype)
    model.generation_config = GenerationConfig(bos_token_id=BOS, eos_token_id=kw["eos_token_id"])

    mdir = os.path.join(out_dir, "tiny", name)
    if os.path.exists(mdir):
        shutil.rmtree(mdir)
    save_kw = {"max_shard_size": "60KB"} if "sharded" in name else {}
    model.save_pretrained(mdir, safe_serialization=True, **save_kw)
    for fn in os.listdir(mdir):
        os.chmod(os.path.join(mdir, fn), 0o644)
    rewrite_config(os.path.join(mdir, "config.json"), style, dtype)

    # Reference: the checkpoint as stored, reloaded from disk, evaluated in float32.
    ref = load_hf(mdir)
    expect = cfg_cls(**kw)
    assert ref.config.rope_parameters == expect.rope_parameters, (ref.config.rope_parameters,
                                                                   expect.rope_parameters)
    assert ref.config.head_dim == kw["head_dim"]
    assert ref.config.num_key_value_heads == kw["num_key_value_heads"]
    assert ref.config.tie_word_embeddings == kw["tie_word_embeddings"]
    if "sharded" in name:
        idx = os.path.join(mdir, "model.safetensors.index.json")
        with open(idx) as f:
            n = len(set(json.load(f)["weight_map"].values()))
        assert n >= 3, n
    logits = run_logits(ref, seqs)
    write_golden(out_dir, name, seqs, logits,
                 {"model_dir": f"tiny/{name}", "model_type": ref.config.model_type,
                  "weights_dtype": DTYPE_NAME[dtype],
                  "reference": "HF transformers %s model loaded from model_dir with dtype=float32 "
                               "(stored weights upcast), eager attention, whole sequence, "
                               "logits at every position" % type(ref).__name__})


def gguf_reference_fallback(path: str) -> torch.nn.Module:
    """Dequantise a llama GGUF ourselves, un-permute Q/K, load into LlamaForCausalLM."""
    r = gguf.GGUFReader(path)

    def kv(key):
        f = r.fields[key]
        return f.contents()

    n_head = int(kv("llama.attention.head_count"))
    n_kv = int(kv("llama.attention.head_count_kv"))
    tensors = {t.name: gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
               for t in r.tensors}
    cfg = LlamaConfig(vocab_size=int(kv("llama.vocab_size")),
                      hidden_size=int(kv("llama.embedding_length")),
                      intermediate_size=int(kv("llama.feed_forward_length")),
                      num_hidden_layers=int(kv("llama.block_count")),
                      num_attention_heads=n_head, num_key_value_heads=n_kv,
                      head_dim=int(kv("llama.attention.key_length")),
                      rms_norm_eps=float(kv("llama.attention.layer_norm_rms_epsilon")),
                      rope_theta=float(kv("llama.rope.freq_base")),
                      max_position_embeddings=int(kv("llama.context_length")),
                      tie_word_embeddings="output.weight" not in tensors)
    cfg._attn_implementation = "eager"
    m = LlamaForCausalLM(cfg)
    sd = {"model.embed_tokens.weight": tensors["token_embd.weight"],
          "model.norm.weight": tensors["output_norm.weight"]}
    if "output.weight" in tensors:
        sd["lm_head.weight"] = tensors["output.weight"]
    for i in range(cfg.num_hidden_layers):
        b, p = f"blk.{i}.", f"model.layers.{i}."
        sd[p + "input_layernorm.weight"] = tensors[b + "attn_norm.weight"]
        sd[p + "self_attn.q_proj.weight"] = hf_to_gguf.unpermute(tensors[b + "attn_q.weight"], n_head)
        sd[p + "self_attn.k_proj.weight"] = hf_to_gguf.unpermute(tensors[b + "attn_k.weight"], n_kv)
        sd[p + "self_attn.v_proj.weight"] = tensors[b + "attn_v.weight"]
        sd[p + "self_attn.o_proj.weight"] = tensors[b + "attn_output.weight"]
        sd[p + "post_attention_layernorm.weight"] = tensors[b + "ffn_norm.weight"]
        sd[p + "mlp.gate_proj.weight"] = tensors[b + "ffn_gate.weight"]
        sd[p + "mlp.up_proj.weight"] = tensors[b + "ffn_up.weight"]
        sd[p + "mlp.down_proj.weight"] = tensors[b + "ffn_down.weight"]
    m.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()},
                      strict=False)
    return m.float().eval()


def make_ggufs(out_dir: str, seqs) -> dict:
    src = os.path.join(out_dir, "tiny", "llama_f32")
    results = {}
    for t in GGUF_TYPES:
        fn = f"llama_{t}.gguf"
        path = os.path.join(out_dir, "tiny", fn)
        hf_to_gguf.convert(src, path, t, name=f"llmrt tiny llama {t}")
        try:
            model = AutoModelForCausalLM.from_pretrained(
                os.path.join(out_dir, "tiny"), gguf_file=fn, dtype=torch.float32,
                attn_implementation="eager")
            ref = ("HF transformers %s AutoModelForCausalLM.from_pretrained(gguf_file=...) "
                   "(dequantised by gguf.quants.dequantize, Q/K un-permuted by transformers), "
                   "float32, eager attention" % transformers.__version__)
        except Exception as e:  # pragma: no cover - depends on transformers version
            print(f"transformers could not load {fn}: {e!r}; using fallback", file=sys.stderr)
            model = gguf_reference_fallback(path)
            ref = ("fallback: gguf.quants.dequantize + un-permute Q/K by make_tiny_models.py, "
                   "loaded into HF LlamaForCausalLM, float32, eager attention "
                   f"(transformers GGUF loading failed: {e!r})")
        logits = run_logits(model, seqs)
        results[t] = logits
        write_golden(out_dir, f"llama_{t}_gguf", seqs, logits,
                     {"model_file": f"tiny/{fn}", "source_model_dir": "tiny/llama_f32",
                      "weights_type": t, "reference": ref})
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/data")
    a = ap.parse_args(argv)

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    seqs = sequences()
    for name in MODELS:
        print("model", name)
        make_hf_model(a.out, name, seqs)
    print("gguf")
    gg = make_ggufs(a.out, seqs)

    # Self-check: the F32 GGUF round trip (permute -> transformers un-permute) must reproduce
    # the HF llama_f32 goldens.
    hf = np.fromfile(os.path.join(a.out, "golden", "llama_f32.logits.f32"), dtype="<f4")
    for t, lg in gg.items():
        d = float(np.max(np.abs(np.concatenate(lg).ravel() - hf)))
        print(f"max |gguf {t} - hf f32| = {d:.3g}")
        if t == "f32":
            assert d < 1e-4, d
    return 0


if __name__ == "__main__":
    sys.exit(main())
