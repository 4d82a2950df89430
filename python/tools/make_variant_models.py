"""Generate llmrt's tiny random Llama-family *variant* models and their golden logits (issue 16).

Run from the repository root (needs torch, transformers, safetensors, gguf, numpy):

    python3 python/tools/make_variant_models.py [--out tests/data]

Deterministic like make_tiny_models.py (fixed seeds, one thread, eager attention); CI never runs
it, the C tests read its committed outputs. The shapes are smaller than make_tiny_models.py's
(d=32, 2 layers) so every file stays under 300 KB: V=320, hidden 32, ffn 64, 2 layers, 4 heads,
2 kv heads, head_dim 16 (!= 32/4), f32.

tiny/<model>/ (HF save_pretrained, config.json in the transformers-4 style as on the hub):
    qwen2_f32          Qwen2ForCausalLM: q/k/v biases (no o bias), rope_theta 1e6, tied
                       embeddings, use_sliding_window false (sliding_window 16 written, unused).
    llama_bias_f32     LlamaForCausalLM with attention_bias and mlp_bias (q/k/v/o and
                       gate/up/down biases), untied.
    mistral_window_f32 MistralForCausalLM with sliding_window 8 (< the 23- and 40-token test
                       sequences), untied.
    llama32_tied_f32   Llama 3.2 style: tied embeddings, rope llama3 (factor 32, low 1, high 4,
                       original 8192), rope_theta 500000, max_position_embeddings 131072.
tiny/<model>.gguf: qwen2_f32 (architecture qwen2, no Q/K permutation), llama_bias_f32,
    mistral_window_f32 and llama32_tied_f32 (architecture llama, Q/K rows and biases permuted as
    llama.cpp does; llama.attention.sliding_window 8; the llama3 scaling as llama.cpp's
    rope_freqs.weight tensor), all F32, written by hf_to_gguf.py.
golden/<name>.json + .logits.f32: the make_tiny_models.py format.

Reference: the HF model evaluated in float32 (eager attention) on each whole sequence. GGUF
goldens: transformers' own GGUF loader (which un-permutes Q/K for llama only) for qwen2 and
llama_bias; transformers' GGUF loader ignores llama.attention.sliding_window and
rope_freqs.weight, so the window and Llama 3.2 models' GGUF goldens are the HF model's logits
(the F32 GGUF holds the same weights); the script
checks every F32 GGUF golden against its HF golden (max |diff| < 1e-4).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

import numpy as np
import torch
from transformers import (AutoConfig, AutoModelForCausalLM, GenerationConfig, LlamaConfig, LlamaForCausalLM,
                          MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_to_gguf  # noqa: E402
import make_tiny_models as mtm  # noqa: E402

SCRIPT = "python/tools/make_variant_models.py"
WINDOW = 8

SMALL = dict(vocab_size=mtm.VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-6,
             max_position_embeddings=256, bos_token_id=mtm.BOS, eos_token_id=mtm.EOS,
             hidden_act="silu")

# name -> (config class, model class, config kwargs, seed, gguf arch or None)
MODELS = {
    "qwen2_f32": (Qwen2Config, Qwen2ForCausalLM,
                  dict(SMALL, rope_theta=1000000.0, tie_word_embeddings=True,
                       use_sliding_window=False, sliding_window=16, max_window_layers=2),
                  2001, "qwen2"),
    "llama_bias_f32": (LlamaConfig, LlamaForCausalLM,
                       dict(SMALL, rope_theta=10000.0, attention_bias=True, mlp_bias=True,
                            tie_word_embeddings=False),
                       2002, "llama"),
    "mistral_window_f32": (MistralConfig, MistralForCausalLM,
                           dict(SMALL, rope_theta=10000.0, sliding_window=WINDOW,
                                tie_word_embeddings=False),
                           2003, "llama"),
    "llama32_tied_f32": (LlamaConfig, LlamaForCausalLM,
                         dict(SMALL, rope_theta=500000.0, max_position_embeddings=131072,
                              rope_scaling={"rope_type": "llama3", "factor": 32.0,
                                            "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                            "original_max_position_embeddings": 8192},
                              tie_word_embeddings=True),
                         2004, "llama"),
}


def init_weights(model: torch.nn.Module, seed: int) -> None:
    """mtm.init_weights, plus biases of the same scale as the weights (so that skipping one
    moves the logits well past any tolerance)."""
    mtm.init_weights(model, seed)
    g = torch.Generator().manual_seed(seed + 77)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.endswith(".bias"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))


def make_hf(out_dir: str, name: str, seqs) -> np.ndarray:
    cfg_cls, model_cls, kw, seed, _ = MODELS[name]
    cfg = cfg_cls(**kw)
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = model_cls(cfg)
    init_weights(model, seed)
    model.generation_config = GenerationConfig(bos_token_id=mtm.BOS, eos_token_id=mtm.EOS)
    mdir = os.path.join(out_dir, "tiny", name)
    if os.path.exists(mdir):
        shutil.rmtree(mdir)
    model.save_pretrained(mdir, safe_serialization=True)
    for fn in os.listdir(mdir):
        os.chmod(os.path.join(mdir, fn), 0o644)
    mtm.rewrite_config(os.path.join(mdir, "config.json"), "v4", torch.float32)

    ref = mtm.load_hf(mdir)
    n_bias = sum(1 for k, _ in ref.named_parameters() if k.endswith(".bias"))
    if name == "qwen2_f32":
        assert n_bias == 3 * kw["num_hidden_layers"], n_bias
    elif name == "llama_bias_f32":
        assert n_bias == 7 * kw["num_hidden_layers"], n_bias
    else:
        assert n_bias == 0, n_bias
    if name == "mistral_window_f32":
        assert ref.config.sliding_window == WINDOW
    logits = mtm.run_logits(ref, seqs)
    mtm.write_golden(out_dir, name, seqs, logits,
                     {"model_dir": f"tiny/{name}", "model_type": ref.config.model_type,
                      "weights_dtype": "float32", "generator_script": SCRIPT,
                      "reference": "HF transformers %s loaded from model_dir, dtype=float32, "
                                   "eager attention, whole sequence, logits at every position"
                                   % type(ref).__name__})
    return np.concatenate(logits).ravel()


def make_gguf(out_dir: str, name: str, seqs, hf_logits: np.ndarray) -> None:
    arch = MODELS[name][4]
    fn = f"{name}.gguf"
    path = os.path.join(out_dir, "tiny", fn)
    hf_to_gguf.convert(os.path.join(out_dir, "tiny", name), path, "f32",
                       name=f"llmrt tiny {name}", arch=arch)
    if name in ("mistral_window_f32", "llama32_tied_f32"):
        n = 0
        logits = []
        for s in seqs:
            logits.append(hf_logits[n:n + len(s) * mtm.VOCAB].reshape(len(s), mtm.VOCAB))
            n += len(s) * mtm.VOCAB
        ref = ("the HF golden tiny/%s (same f32 weights; transformers' GGUF loader ignores "
               "llama.attention.sliding_window and rope_freqs.weight)" % name)
    else:
        # the HF config given explicitly: transformers' GGUF config mapping for qwen2 drops
        # attention.key_length (head_dim != hidden / heads); the tensors still come from the GGUF
        model = AutoModelForCausalLM.from_pretrained(
            os.path.join(out_dir, "tiny"), gguf_file=fn, dtype=torch.float32,
            attn_implementation="eager",
            config=AutoConfig.from_pretrained(os.path.join(out_dir, "tiny", name)))
        logits = mtm.run_logits(model, seqs)
        ref = ("HF transformers AutoModelForCausalLM.from_pretrained(gguf_file=...) (Q/K "
               "un-permuted for llama only) with the HF dir's config, float32, eager attention")
        d = float(np.max(np.abs(np.concatenate(logits).ravel() - hf_logits)))
        print(f"max |gguf {name} - hf| = {d:.3g}")
        assert d < 1e-4, d
    mtm.write_golden(out_dir, f"{name}_gguf", seqs, logits,
                     {"model_file": f"tiny/{fn}", "source_model_dir": f"tiny/{name}",
                      "weights_type": "f32", "gguf_architecture": arch,
                      "generator_script": SCRIPT, "reference": ref})


def make_window_greedy(out_dir: str) -> None:
    """golden/mistral_window_f32_greedy.json: HF greedy decoding of mistral_window_f32 (window 8)
    from a 6-token prompt for 40 new tokens (the sequence ends 5.75 windows past its start), with
    each step's top-1 / top-2 margin. The engine's sliding-window test must reproduce the tokens
    with a KV pool that cannot hold the sequence."""
    import json
    ref = mtm.load_hf(os.path.join(out_dir, "tiny", "mistral_window_f32"))
    prompt = [mtm.BOS, 17, 250, 3, 99, 141]
    ids = list(prompt)
    margins = []
    with torch.no_grad():
        for _ in range(40):
            lg = ref(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1].float()
            top2 = torch.topk(lg, 2).values
            margins.append(round(float(top2[0] - top2[1]), 6))
            ids.append(int(lg.argmax()))
    j = {"model_dir": "tiny/mistral_window_f32", "sliding_window": WINDOW, "prompt": prompt,
         "tokens": ids[len(prompt):], "top1_top2_margin": margins,
         "min_top1_top2_margin": min(margins), "generator": mtm.versions(),
         "reference": "HF transformers MistralForCausalLM, dtype=float32, eager attention, "
                      "greedy, whole sequence recomputed at every step (no KV cache)"}
    with open(os.path.join(out_dir, "golden", "mistral_window_f32_greedy.json"), "w") as f:
        json.dump(j, f, indent=1)
        f.write("\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/data")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    seqs = mtm.sequences()
    for name in MODELS:
        print("model", name)
        hf = make_hf(a.out, name, seqs)
        if MODELS[name][4]:
            make_gguf(a.out, name, seqs, hf)
    make_window_greedy(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
