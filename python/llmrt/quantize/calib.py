"""Calibration samples for the quantizer: token-id tensors [1, seqlen]."""

from __future__ import annotations

import numpy as np
import torch

from . import texts


def tokenize_text(model_dir: str, text: str) -> list[int]:
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(model_dir)
    return tok(text, add_special_tokens=False)["input_ids"]


def windows(ids: list[int], nsamples: int, seqlen: int, seed: int = 0,
            bos: int | None = None) -> list[torch.Tensor]:
    """nsamples windows of seqlen tokens at random offsets of ``ids`` (with replacement, as
    AutoGPTQ's wikitext examples do). A text no longer than seqlen gives a single sample holding
    all of it (repeating it would not add information to the Hessian)."""
    if bos is not None:
        seqlen -= 1
    ids = list(ids)
    if len(ids) == 0:
        raise ValueError("calibration text is empty after tokenization")
    rng = np.random.RandomState(seed)
    out = []
    if len(ids) <= seqlen:
        chunks = [ids]
    else:
        starts = rng.randint(0, len(ids) - seqlen + 1, size=nsamples)
        chunks = [ids[s:s + seqlen] for s in starts]
    for c in chunks:
        c = ([bos] if bos is not None else []) + c
        out.append(torch.tensor([c], dtype=torch.long))
    return out


def text_samples(model_dir: str, text: str, nsamples: int, seqlen: int, seed: int = 0,
                 bos: int | None = None) -> list[torch.Tensor]:
    return windows(tokenize_text(model_dir, text), nsamples, seqlen, seed, bos)


def builtin_samples(model_dir: str, nsamples: int, seqlen: int, seed: int = 0,
                    bos: int | None = None) -> list[torch.Tensor]:
    return text_samples(model_dir, texts.CALIBRATION, nsamples, seqlen, seed, bos)


def random_samples(vocab_size: int, nsamples: int, seqlen: int, seed: int,
                   bos: int | None = None) -> list[torch.Tensor]:
    """Random token ids (for tiny random test models, which have no tokenizer)."""
    rng = np.random.RandomState(seed)
    out = []
    for _ in range(nsamples):
        ids = rng.randint(0, vocab_size, size=seqlen).tolist()
        if bos is not None:
            ids[0] = bos
        out.append(torch.tensor([ids], dtype=torch.long))
    return out
