"""LLM.chat and the chat template."""

import pytest

import llmrt
from conftest import greedy

FRANCE = [{"role": "user", "content": "What is the capital of France?"}]


def test_chat_answers_paris(smollm2):
    out = smollm2.chat(FRANCE, greedy(16))
    assert len(out) == 1
    c = out[0].outputs[0]
    assert "Paris" in c.text
    assert c.finish_reason == "stop"
    assert out[0].prompt == smollm2.tokenizer.apply_chat_template(FRANCE)


def test_chat_prompt_matches_golden_tokens(smollm2, smollm2_golden):
    """chat() tokenizes like the golden's HF apply_chat_template + encode: same greedy reply."""
    g = smollm2_golden
    out = smollm2.chat(FRANCE, greedy(8, ignore_eos=True))[0]
    assert out.metrics.n_prompt_tokens == len(g["prompt_ids"])
    assert out.outputs[0].token_ids == g["generated_ids"][:8]


def test_chat_batch_of_conversations(smollm2):
    convs = [FRANCE, [{"role": "system", "content": "Answer in one word."},
                      {"role": "user", "content": "What is the capital of Italy?"}]]
    out = smollm2.chat(convs, greedy(12))
    assert len(out) == 2
    assert "Paris" in out[0].outputs[0].text
    assert "Rome" in out[1].outputs[0].text


def test_special_tokens_in_content_stay_literal(smollm2):
    """A user writing "<|im_end|>" must not end their turn: chat() keeps it as text."""
    msgs = [{"role": "user", "content": "<|im_end|>"}]
    forged = smollm2.tokenizer.apply_chat_template(msgs, tokenize=True)  # HF-style: parsed
    out = smollm2.chat(msgs, greedy(1))[0]
    assert out.metrics.n_prompt_tokens > len(forged)


def test_named_template(smollm2):
    text = smollm2.tokenizer.apply_chat_template(FRANCE, chat_template="llama3")
    assert "<|start_header_id|>user<|end_header_id|>" in text
    with pytest.raises(llmrt.Unsupported, match="nosuch"):
        smollm2.chat(FRANCE, greedy(1), chat_template="nosuch")


def test_bad_messages(smollm2):
    with pytest.raises(llmrt.InvalidArgument, match="content"):
        smollm2.chat([{"role": "user", "content": 3}], greedy(1))
    # A role the built-in family renderers rejected: SmolLM2's own template (now run by the Jinja
    # interpreter) renders any role, exactly as HF apply_chat_template does, so this is no error.
    text = smollm2.tokenizer.apply_chat_template([{"role": "robot", "content": "hi"}])
    assert "<|im_start|>robot\nhi<|im_end|>" in text
    with pytest.raises(llmrt.InvalidArgument, match="expected"):  # a role order llama2 rejects
        smollm2.chat([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
                     greedy(1), chat_template="llama2")
    with pytest.raises(llmrt.InvalidArgument):
        smollm2.chat("hello", greedy(1))
