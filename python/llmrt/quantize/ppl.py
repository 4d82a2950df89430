"""Perplexity of a float or GPTQ checkpoint with transformers in float32 (needs torch,
transformers).

    python -m llmrt.quantize.ppl --model DIR [--model DIR2 ...] [--ref DIR] [--text FILE]

A GPTQ directory (config.json has "quantization_config", or quantize_config.json exists) is
dequantised with llmrt.quantize.checkpoint (numpy, the reference formula of kernels.md §3) and
loaded into the plain float32 HF model of its architecture, so no GPTQ kernel library is
involved. The text defaults to llmrt.quantize.texts.EVALUATION (~3 KB, not part of the
calibration text), tokenized with the model's tokenizer without special tokens. PPL =
exp(mean NLL of tokens 1..T-1), in non-overlapping windows of --window tokens. With --ref,
also the mean per-token KL(ref || model) and the top-1 agreement with the reference: on a short
text these measure fidelity to the unquantised model far less noisily than the perplexity does.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np


def is_gptq_dir(d: str) -> bool:
    if os.path.exists(os.path.join(d, "quantize_config.json")):
        return True
    with open(os.path.join(d, "config.json")) as f:
        return "quantization_config" in json.load(f)


def load_model(d: str):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if not is_gptq_dir(d):
        return AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32,
                                                    attn_implementation="eager").eval()
    from . import checkpoint
    with open(os.path.join(d, "config.json")) as f:
        cfg_d = json.load(f)
    cfg_d.pop("quantization_config", None)
    cfg = AutoConfig.for_model(**cfg_d)
    cfg._attn_implementation = "eager"
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).eval()
    sd = checkpoint.dequantize_checkpoint(d, dtype=np.float32)
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in sd.items()}
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    missing = [m for m in missing if not (m == "lm_head.weight" and cfg.tie_word_embeddings)]
    if missing or unexpected:
        raise RuntimeError(f"{d}: missing {missing}, unexpected {unexpected}")
    if cfg.tie_word_embeddings:
        model.tie_weights()
    return model


def log_probs(model, ids: list[int], window: int = 1024) -> list:
    """Per window: log-softmax [T, V] (float64) of positions 0..T-2 and the targets 1..T-1."""
    import torch
    out = []
    with torch.no_grad():
        for s in range(0, len(ids), window):
            chunk = ids[s:s + window]
            if len(chunk) < 2:
                continue
            x = torch.tensor([chunk])
            logits = model(input_ids=x, use_cache=False).logits[0].double()
            out.append((torch.log_softmax(logits[:-1], dim=-1), x[0, 1:]))
    return out


def perplexity(model, ids: list[int], window: int = 1024, lps=None) -> tuple[float, int]:
    import torch
    nll, n = 0.0, 0
    for lp, tgt in (lps if lps is not None else log_probs(model, ids, window)):
        nll -= float(lp[torch.arange(len(tgt)), tgt].sum())
        n += len(tgt)
    return math.exp(nll / n), n


def divergence(ref_lps, lps) -> dict:
    """Mean KL(ref || model) per token and top-1 agreement, over the same windows."""
    kl, agree, n = 0.0, 0, 0
    for (rp, _), (p, _) in zip(ref_lps, lps):
        kl += float((rp.exp() * (rp - p)).sum())
        agree += int((rp.argmax(-1) == p.argmax(-1)).sum())
        n += rp.shape[0]
    return {"kl_vs_ref": kl / n, "top1_agree_vs_ref": agree / n}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m llmrt.quantize.ppl", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="checkpoint dir (repeatable)")
    ap.add_argument("--text", help="UTF-8 text file (default: llmrt.quantize.texts.EVALUATION)")
    ap.add_argument("--window", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--ref", help="reference checkpoint (e.g. the unquantised model): also report "
                                  "mean KL(ref || model) per token and top-1 agreement")
    a = ap.parse_args(argv)
    import torch
    from transformers import AutoTokenizer

    from . import texts
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    text = open(a.text, encoding="utf-8").read() if a.text else texts.EVALUATION
    ref_lps = None
    if a.ref:
        tok = AutoTokenizer.from_pretrained(a.ref)
        ref_ids = tok(text, add_special_tokens=False)["input_ids"]
        ref_lps = log_probs(load_model(a.ref), ref_ids, a.window)
    for d in a.model:
        t0 = time.time()
        tok = AutoTokenizer.from_pretrained(d)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        model = load_model(d)
        lps = log_probs(model, ids, a.window)
        ppl, n = perplexity(model, ids, a.window, lps)
        row = {"model": d, "gptq": is_gptq_dir(d), "ppl": ppl, "tokens": n}
        if ref_lps is not None:
            if ids != ref_ids:
                raise SystemExit(f"{d}: tokenization differs from --ref")
            row.update(divergence(ref_lps, lps))
        row["seconds"] = round(time.time() - t0, 2)
        print(json.dumps(row), flush=True)
        del model
    return 0


if __name__ == "__main__":
    sys.exit(main())
