"""Quantise a Hugging Face Llama-family checkpoint to GPTQ 4- or 8-bit, layer by layer (needs torch,
transformers, safetensors).

The driver follows AutoGPTQ's ``BaseGPTQForCausalLM.quantize``: the inputs of decoder layer 0
are captured for every calibration sequence; then for each layer, in the true-sequential order
[k, v, q], [o], [up, gate], [down], the layer is run over all sequences with hooks that
accumulate each Linear's Hessian, the Linears of that step are quantised (GPTQ or RTN) and
their weights replaced by the dequantised values, and finally the layer's outputs (through the
quantised layer) become the next layer's inputs. With ``lm_head=True`` the lm_head is
quantised last, from the final norm's outputs.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from . import packing
from .checkpoint import write_safetensors
from .gptq import GPTQ, QuantResult, rtn

SEQUENTIAL = [["self_attn.k_proj", "self_attn.v_proj", "self_attn.q_proj"],
              ["self_attn.o_proj"],
              ["mlp.up_proj", "mlp.gate_proj"],
              ["mlp.down_proj"]]

COPY_FILES = ["generation_config.json", "tokenizer.json", "tokenizer_config.json",
              "special_tokens_map.json", "tokenizer.model", "vocab.json", "merges.txt",
              "added_tokens.json", "chat_template.jinja", "chat_template.json"]

VERSION = "0.1.0"


@dataclass
class QuantizeOptions:
    bits: int = 4
    group_size: int = 128
    desc_act: bool = False
    sym: bool = True
    checkpoint_format: str = "gptq"  # "gptq" (v1) | "gptq_v2"
    method: str = "gptq"             # "gptq" | "rtn"
    damp_percent: float = 0.01
    static_groups: bool = False
    lm_head: bool = False
    blocksize: int = 128
    true_sequential: bool = True
    log: bool = True
    stats: dict = field(default_factory=dict)

    def validate(self) -> None:
        if self.bits not in (4, 8):
            raise ValueError("bits must be 4 or 8")
        if self.group_size not in (-1,) and (self.group_size <= 0 or self.group_size % 8):
            raise ValueError("group_size must be -1 or a positive multiple of 8")
        if self.checkpoint_format not in packing.FORMATS:
            raise ValueError(f"checkpoint_format must be one of {packing.FORMATS}")
        if self.method not in ("gptq", "rtn"):
            raise ValueError("method must be gptq or rtn")
        if self.method == "rtn" and self.desc_act:
            raise ValueError("desc_act needs calibration statistics: use --method gptq")
        if not 0 < self.damp_percent < 1:
            raise ValueError("damp_percent must be in (0, 1)")

    def quantization_config(self) -> dict:
        return {
            "quant_method": "gptq",
            "bits": self.bits,
            "group_size": self.group_size,
            "desc_act": self.desc_act,
            "sym": self.sym,
            "static_groups": self.static_groups,
            "true_sequential": self.true_sequential,
            "damp_percent": self.damp_percent,
            "lm_head": self.lm_head,
            "checkpoint_format": self.checkpoint_format,
            "pack_dtype": "int32",
            "model_file_base_name": "model",
            "meta": {"quantizer": [f"llmrt.quantize:{VERSION}"], "method": self.method},
        }


def _log(opts: QuantizeOptions, msg: str) -> None:
    if opts.log:
        print(msg, flush=True)


def _get(module: torch.nn.Module, name: str) -> torch.nn.Module:
    for part in name.split("."):
        module = getattr(module, part)
    return module


class _Stop(Exception):
    pass


def _capture_layer0_inputs(model, samples: list[torch.Tensor]):
    """Run the model up to decoder layer 0 for each sample; return (hidden states, kwargs)."""
    layers = model.model.layers
    inputs, kwargs_all = [], []
    orig = layers[0]

    class Catcher(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m
            # some transformers models read the layer's attention_type to pick the mask
            if hasattr(m, "attention_type"):
                self.attention_type = m.attention_type

        def forward(self, hidden_states, *args, **kwargs):
            inputs.append(hidden_states.detach())
            kw = dict(kwargs)
            if args:
                kw["_args"] = args
            kwargs_all.append(kw)
            raise _Stop

    layers[0] = Catcher(orig)
    try:
        for s in samples:
            try:
                model(input_ids=s, use_cache=False)
            except _Stop:
                pass
    finally:
        layers[0] = orig
    return inputs, kwargs_all


def _run_layer(layer, h: torch.Tensor, kw: dict) -> torch.Tensor:
    kw = dict(kw)
    args = kw.pop("_args", ())
    out = layer(h, *args, **kw)
    return out[0] if isinstance(out, (tuple, list)) else out


def _quantize_linear(lin: torch.nn.Linear, g: GPTQ | None, opts: QuantizeOptions) -> QuantResult:
    if opts.method == "rtn":
        return rtn(lin.weight, opts.group_size, opts.sym, opts.bits)
    return g.fasterquant(group_size=opts.group_size, sym=opts.sym, blocksize=opts.blocksize,
                         percdamp=opts.damp_percent, actorder=opts.desc_act,
                         static_groups=opts.static_groups, bits=opts.bits)


def _is_llama_layer(layer, kws) -> bool:
    """The fast path needs the standard Llama decoder layer (pre-norm attention and SwiGLU MLP,
    the layer forward of transformers' LlamaDecoderLayer) and keyword-only layer arguments."""
    try:
        for n in sum(SEQUENTIAL, []) + ["input_layernorm", "post_attention_layernorm",
                                         "mlp.act_fn"]:
            _get(layer, n)
    except AttributeError:
        return False
    return all("_args" not in kw for kw in kws)


def _llama_forward(layer, h: torch.Tensor, kw: dict) -> torch.Tensor:
    """LlamaDecoderLayer.forward, spelled out (the self-check compares it with the layer)."""
    attn = layer.self_attn(hidden_states=layer.input_layernorm(h), **kw)[0]
    h = h + attn
    x = layer.post_attention_layernorm(h)
    m = layer.mlp
    return h + m.down_proj(m.act_fn(m.gate_proj(x)) * m.up_proj(x))


def _quantize_layer_fast(layer, li: int, hs: list, kws: list, opts: QuantizeOptions,
                         results: dict) -> list:
    """True-sequential GPTQ of one Llama decoder layer with one pass over the calibration
    inputs instead of one full layer forward per step. Each step's inputs are computed from the
    already quantised earlier steps, exactly as the hook-based path computes them: q/k/v see
    input_layernorm(h); o_proj sees the attention output of the quantised q/k/v; gate/up see
    post_attention_layernorm(h + o(attn)); down sees act(gate(x)) * up(x). Linears that share
    an input share one Hessian. Returns the layer outputs (through the quantised layer)."""

    def quant(names, g0):
        for n in names:
            mod = _get(layer, n)
            g = GPTQ(mod.weight)
            g.share_hessian(g0)
            r = _quantize_linear(mod, g, opts)
            mod.weight.data.copy_(r.Q.to(mod.weight.dtype))
            full = f"model.layers.{li}.{n}"
            results[full] = r
            _log(opts, f"  {full}: loss {r.loss:.4g}")

    attn, mlp = layer.self_attn, layer.mlp
    # [k, v, q]: input_layernorm(h)
    x1 = [layer.input_layernorm(h) for h in hs]
    g = GPTQ(attn.q_proj.weight[:1])
    for x in x1:
        g.add_batch(x)
    quant(SEQUENTIAL[0], g)
    # [o]: attention output through the quantised q/k/v (captured at o_proj's input)
    a_in = []
    hook = attn.o_proj.register_forward_hook(lambda mod, inp, out: a_in.append(inp[0]))
    try:
        for x, kw in zip(x1, kws):
            attn(hidden_states=x, **kw)
    finally:
        hook.remove()
    del x1
    g = GPTQ(attn.o_proj.weight[:1])
    for a in a_in:
        g.add_batch(a)
    quant(SEQUENTIAL[1], g)
    hs = [h + attn.o_proj(a) for h, a in zip(hs, a_in)]
    del a_in
    # [up, gate]: post_attention_layernorm(h)
    x2 = [layer.post_attention_layernorm(h) for h in hs]
    g = GPTQ(mlp.up_proj.weight[:1])
    for x in x2:
        g.add_batch(x)
    quant(SEQUENTIAL[2], g)
    # [down]: act(gate(x)) * up(x) through the quantised gate/up
    acts = [mlp.act_fn(mlp.gate_proj(x)) * mlp.up_proj(x) for x in x2]
    del x2
    g = GPTQ(mlp.down_proj.weight[:1])
    for a in acts:
        g.add_batch(a)
    quant(SEQUENTIAL[3], g)
    return [h + mlp.down_proj(a) for h, a in zip(hs, acts)]


def quantize_model(model, samples: list[torch.Tensor], opts: QuantizeOptions) -> dict[str, QuantResult]:
    """Quantise ``model`` (a float32 HF CausalLM with ``model.model.layers``) in place (weights
    of quantised Linears become their dequantised values); returns {module name: result}."""
    opts.validate()
    model.eval()
    results: dict[str, QuantResult] = {}
    t0 = time.time()
    with torch.no_grad():
        hs, kws = _capture_layer0_inputs(model, samples)
        layers = model.model.layers
        for li, layer in enumerate(layers):
            if opts.method == "gptq" and opts.true_sequential and hs and _is_llama_layer(layer, kws):
                # self-check: the spelled-out forward must be the layer's forward
                ref = _run_layer(layer, hs[0], kws[0])
                if torch.equal(_llama_forward(layer, hs[0], kws[0]), ref):
                    hs = _quantize_layer_fast(layer, li, hs, kws, opts, results)
                    _log(opts, f"layer {li + 1}/{len(layers)} done ({time.time() - t0:.1f} s)")
                    continue
                _log(opts, f"layer {li}: not a standard Llama layer forward; slow path")
            steps = SEQUENTIAL if opts.true_sequential else [sum(SEQUENTIAL, [])]
            for names in steps:
                mods = {n: _get(layer, n) for n in names}
                gptqs = {n: GPTQ(m.weight) for n, m in mods.items()}
                if opts.method == "gptq":
                    handles = []
                    for n, m in mods.items():
                        def hook(mod, inp, out, n=n):
                            gptqs[n].add_batch(inp[0].detach())
                        handles.append(m.register_forward_hook(hook))
                    try:
                        for h, kw in zip(hs, kws):
                            _run_layer(layer, h, kw)
                    finally:
                        for hd in handles:
                            hd.remove()
                for n in names:
                    r = _quantize_linear(mods[n], gptqs[n], opts)
                    mods[n].weight.data.copy_(r.Q.to(mods[n].weight.dtype))
                    full = f"model.layers.{li}.{n}"
                    results[full] = r
                    _log(opts, f"  {full}: loss {r.loss:.4g}")
            hs = [_run_layer(layer, h, kw) for h, kw in zip(hs, kws)]
            _log(opts, f"layer {li + 1}/{len(layers)} done ({time.time() - t0:.1f} s)")
        if opts.lm_head:
            g = GPTQ(model.lm_head.weight)
            if opts.method == "gptq":
                for h in hs:
                    g.add_batch(model.model.norm(h))
            r = _quantize_linear(model.lm_head, g, opts)
            model.lm_head.weight.data.copy_(r.Q.to(model.lm_head.weight.dtype))
            results["lm_head"] = r
            _log(opts, f"  lm_head: loss {r.loss:.4g}")
    opts.stats["quantize_seconds"] = time.time() - t0
    return results


def pack_result(r: QuantResult, fmt: str, bits: int = 4) -> dict[str, np.ndarray]:
    q = r.q.numpy().T  # [K, N]
    return {
        "qweight": packing.pack_qweight(q, bits),
        "qzeros": packing.pack_qzeros(r.zeros.numpy(), fmt, bits),
        "scales": r.scales.numpy().astype(np.float16),
        "g_idx": r.g_idx.numpy().astype(np.int32),
    }


def save_quantized(model, results: dict[str, QuantResult], src_dir: str, out_dir: str,
                   opts: QuantizeOptions) -> None:
    """Write model.safetensors (GPTQ tensors + every other weight in fp16), config.json with
    quantization_config, quantize_config.json, and the tokenizer/generation files of src_dir."""
    os.makedirs(out_dir, exist_ok=True)
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    sd = model.state_dict()
    tensors: dict[str, np.ndarray] = {}
    for name, t in sd.items():
        if "rotary_emb" in name or name.endswith(".inv_freq"):
            continue
        if name == "lm_head.weight" and tied and not opts.lm_head:
            continue
        mod = name[:-len(".weight")] if name.endswith(".weight") else None
        if mod is not None and mod in results:
            for k, v in pack_result(results[mod], opts.checkpoint_format, opts.bits).items():
                tensors[f"{mod}.{k}"] = v
            continue
        tensors[name] = t.detach().to(torch.float16).numpy()  # incl. P.bias of quantised P
    write_safetensors(os.path.join(out_dir, "model.safetensors"), tensors, {"format": "pt"})

    with open(os.path.join(src_dir, "config.json")) as f:
        cfg = json.load(f)
    qc = opts.quantization_config()
    cfg["quantization_config"] = qc
    if "dtype" in cfg and "torch_dtype" not in cfg:
        cfg["dtype"] = "float16"
    else:
        cfg["torch_dtype"] = "float16"
    if tied and opts.lm_head:
        cfg["tie_word_embeddings"] = False  # lm_head is stored (quantised) on its own
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    with open(os.path.join(out_dir, "quantize_config.json"), "w") as f:
        json.dump(qc, f, indent=2, sort_keys=True)
        f.write("\n")
    for fn in COPY_FILES:
        p = os.path.join(src_dir, fn)
        if os.path.exists(p) and os.path.abspath(p) != os.path.abspath(os.path.join(out_dir, fn)):
            shutil.copyfile(p, os.path.join(out_dir, fn))


def load_float_model(model_dir: str):
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                                 attn_implementation="eager")
    return model.eval()


def quantize_dir(model_dir: str, out_dir: str, samples: list[torch.Tensor],
                 opts: QuantizeOptions, model=None) -> dict[str, QuantResult]:
    model = model if model is not None else load_float_model(model_dir)
    results = quantize_model(model, samples, opts)
    save_quantized(model, results, model_dir, out_dir, opts)
    opts.stats["zero_points_of_0"] = sum(int((r.zeros == 0).sum()) for r in results.values())
    if opts.checkpoint_format == "gptq" and opts.stats["zero_points_of_0"]:
        _log(opts, f"note: {opts.stats['zero_points_of_0']} zero points of 0 were stored in v1 "
                   "format: their qzeros words borrow (GPTQModel's v1); loaders that read each "
                   "nibble + 1 (AutoGPTQ's torch fallback) get them wrong. --format gptq_v2 "
                   "has no such case.")
    return results


def options_dict(opts: QuantizeOptions) -> dict:
    d = asdict(opts)
    d.pop("stats", None)
    return d
