"""Golden prompt logprobs for SamplingParams(prompt_logprobs=k), computed by HF transformers.

Run from the repository root with torch + transformers + safetensors + numpy (the peer venv
/tmp/peftvenv has them). CI never runs this script; tests/python/test_prompt_logprobs.py reads
its committed output.

    /tmp/peftvenv/bin/python python/tools/make_prompt_logprobs_golden.py

Model: tests/data/tiny/llama_f32 (vocab 320, 3 layers, max context 256), loaded by
LlamaForCausalLM in float64 with eager attention, so the reference is exact to well below
llmrt's fp32 error. For each prompt: one forward over the whole prompt; position i >= 1 gets
log_softmax(logits[i - 1])[prompt[i]] and the TOP_K best (id, logprob) of that row, descending,
ties by the smaller id (llmrt's order). Position 0 has no context (vLLM's None).

Prompts: lengths 1 (only the None entry), 2, 17 (one token past a 16-token KV block), 40 and
100 (longer than the chunks the test forces with max_batched_tokens, so chunked prefill is
exercised), token ids drawn with a fixed seed from [3, 320) (0..2 are special).

Writes tests/data/golden/prompt_logprobs_llama_f32.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import transformers

MODEL = Path("tests/data/tiny/llama_f32")
OUT = Path("tests/data/golden/prompt_logprobs_llama_f32.json")
LENGTHS = [1, 2, 17, 40, 100]
TOP_K = 5
SEED = 19


def top_k_desc(row: np.ndarray, k: int) -> list[int]:
    """Indices of the k largest values, descending, ties by the smaller index."""
    order = np.lexsort((np.arange(row.size), -row))
    return [int(i) for i in order[:k]]


def main() -> None:
    torch.manual_seed(SEED)
    model = transformers.LlamaForCausalLM.from_pretrained(
        MODEL, dtype=torch.float64, attn_implementation="eager")
    model.eval()
    rng = np.random.default_rng(SEED)
    prompts = []
    for n in LENGTHS:
        ids = [int(t) for t in rng.integers(3, model.config.vocab_size, size=n)]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].double()
        lp = torch.log_softmax(logits, dim=-1).numpy()
        entries = [None]
        for i in range(1, n):
            row = lp[i - 1]
            top = top_k_desc(row, TOP_K)
            entries.append({
                "token": ids[i],
                "logprob": float(row[ids[i]]),
                "rank": int(np.sum(row > row[ids[i]])) + 1,
                "top_ids": top,
                "top_logprobs": [float(row[t]) for t in top],
            })
        prompts.append({"token_ids": ids, "prompt_logprobs": entries})
    OUT.write_text(json.dumps({
        "model": str(MODEL),
        "top_k": TOP_K,
        "reference": "transformers LlamaForCausalLM, float64, eager attention, log_softmax",
        "generator": {"torch": torch.__version__, "transformers": transformers.__version__,
                      "numpy": np.__version__},
        "prompts": prompts,
    }, indent=1) + "\n")
    print(f"wrote {OUT}: {len(prompts)} prompts, lengths {LENGTHS}")


if __name__ == "__main__":
    main()
