"""python -m llmrt.quantize: quantise a Hugging Face Llama-family checkpoint to GPTQ 4- or 8-bit.

Runs on the CPU; needs torch, transformers and a tokenizer in the model dir (unless
--calib-random is given). Writes OUT_DIR/model.safetensors, config.json (with
"quantization_config"), quantize_config.json and copies the tokenizer/generation files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m llmrt.quantize", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="HF checkpoint directory (config.json, "
                    "*.safetensors, tokenizer)")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--bits", type=int, default=4, choices=[4, 8])
    ap.add_argument("--group-size", type=int, default=128,
                    help="columns per group along K: 32, 64, 128, ... or -1 (one group)")
    ap.add_argument("--desc-act", action="store_true",
                    help="act-order: process columns by descending diag(H) (g_idx non-monotonic)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--sym", dest="sym", action="store_true", default=True,
                   help="symmetric: zero point 8 (default)")
    g.add_argument("--asym", dest="sym", action="store_false",
                   help="asymmetric: zero point round(-min/scale)")
    ap.add_argument("--format", dest="fmt", choices=["gptq", "gptq_v2"], default="gptq",
                    help='checkpoint_format: "gptq" (v1, stores zero-1, AutoGPTQ pack) or '
                         '"gptq_v2" (raw zeros)')
    ap.add_argument("--method", choices=["gptq", "rtn"], default="gptq")
    c = ap.add_mutually_exclusive_group()
    c.add_argument("--calib", metavar="FILE", help="calibration text file (UTF-8)")
    c.add_argument("--calib-builtin", action="store_true",
                   help="the ~5 KB English text shipped in llmrt.quantize.texts (too small for a "
                        "real model: GPTQ overfits it)")
    c.add_argument("--calib-pydoc", action="store_true",
                   help="~340 KB of Python documentation (pydoc_data.topics, minus the paragraphs "
                        "of the pydoc evaluation text) (default)")
    c.add_argument("--calib-random", action="store_true",
                   help="random token ids (models without a tokenizer)")
    ap.add_argument("--nsamples", type=int, default=128)
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0, help="seed of the calibration windows")
    ap.add_argument("--damp", type=float, default=0.01, help="damp_percent (of mean diag(H))")
    ap.add_argument("--static-groups", action="store_true",
                    help="group params from the original column order before GPTQ updates "
                         "(with --desc-act, g_idx stays k // group_size)")
    ap.add_argument("--lm-head", action="store_true", help="quantise lm_head too")
    ap.add_argument("--blocksize", type=int, default=128, help="GPTQ lazy-batch block size")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--quiet", action="store_true")
    return ap


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    import torch

    from . import calib, texts
    from .model import QuantizeOptions, load_float_model, options_dict, quantize_dir

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    opts = QuantizeOptions(bits=a.bits, group_size=a.group_size, desc_act=a.desc_act, sym=a.sym,
                           checkpoint_format=a.fmt, method=a.method, damp_percent=a.damp,
                           static_groups=a.static_groups, lm_head=a.lm_head,
                           blocksize=a.blocksize, log=not a.quiet)
    try:
        opts.validate()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    t0 = time.time()
    model = load_float_model(a.model)
    samples = []
    if a.method == "gptq":
        if a.calib_random:
            samples = calib.random_samples(model.config.vocab_size, a.nsamples, a.seqlen, a.seed)
        elif a.calib_builtin:
            samples = calib.builtin_samples(a.model, a.nsamples, a.seqlen, a.seed)
        elif a.calib:
            with open(a.calib, encoding="utf-8") as f:
                text = f.read()
            samples = calib.text_samples(a.model, text, a.nsamples, a.seqlen, a.seed)
        else:
            samples = calib.text_samples(a.model, texts.pydoc_calibration_text(), a.nsamples,
                                         a.seqlen, a.seed)
        ntok = sum(int(s.shape[1]) for s in samples)
        if not a.quiet:
            print(f"calibration: {len(samples)} samples, {ntok} tokens")
    quantize_dir(a.model, a.out, samples, opts, model=model)
    dt = time.time() - t0
    if not a.quiet:
        print(json.dumps({"out": os.path.abspath(a.out), "options": options_dict(opts),
                          "quantize_seconds": round(opts.stats.get("quantize_seconds", 0), 2),
                          "zero_points_of_0": opts.stats.get("zero_points_of_0", 0),
                          "total_seconds": round(dt, 2)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
