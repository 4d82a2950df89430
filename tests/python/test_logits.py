"""llm.logits (llmrt_forward over every position) against the HF goldens."""

import json

import numpy as np
import pytest

import llmrt
from conftest import GOLDEN

REL_TOL = 1e-4  # max |ours - HF| <= REL_TOL * max |HF| (as tests/model/test_golden_logits.c)


def test_tiny_llama_f32_logits(tiny):
    g = json.load(open(GOLDEN / "llama_f32.json"))
    ref = np.fromfile(GOLDEN / g["logits_file"], dtype="<f4").reshape(-1, g["vocab_size"])
    row = 0
    for seq in g["sequences"]:
        got = tiny.logits(seq)
        assert got.shape == (len(seq), g["vocab_size"]) and got.dtype == np.float32
        want = ref[row:row + len(seq)]
        row += len(seq)
        err = np.max(np.abs(got - want))
        assert err <= REL_TOL * np.max(np.abs(want)), (len(seq), err)
    assert row == ref.shape[0]


def test_smollm2_logits(smollm2, smollm2_golden):
    g = smollm2_golden
    n_rows, vocab = g["logits_rows"], g["vocab_size"]
    ref = np.fromfile(GOLDEN / g["logits_file"], dtype="<f4").reshape(n_rows, vocab)
    seq = g["prompt_ids"] + g["generated_ids"][: n_rows - 1]
    got = smollm2.logits(np.array(seq, dtype=np.int64))
    start = len(g["prompt_ids"]) - 1
    want = got[start:start + n_rows]
    assert np.max(np.abs(want - ref)) <= REL_TOL * np.max(np.abs(ref))
    assert list(np.argmax(got[start:], axis=1)[:n_rows]) == g["generated_ids"][:n_rows]


def test_logits_errors(tiny):
    with pytest.raises(llmrt.InvalidArgument):
        tiny.logits([])
    with pytest.raises(llmrt.InvalidArgument):
        tiny.logits([1, 320])  # outside the vocabulary
    with pytest.raises(llmrt.InvalidArgument):
        tiny.logits([1] * 257)  # past max_position_embeddings (256)


def test_model_info(tiny):
    info = tiny.model_info
    assert info.architecture == "llama"
    assert (info.vocab_size, info.hidden_size, info.n_layers, info.n_heads, info.n_kv_heads,
            info.head_dim, info.max_context) == (320, 64, 3, 4, 2, 16, 256)
    assert info.bos_token_id == 1 and info.eos_token_ids == (2,)
    assert not info.tie_word_embeddings
