"""llm.tokenizer: encode / decode / chat template against the golden ids."""

import pytest

import llmrt


def test_golden_formatted_prompt_ids(smollm2, smollm2_golden):
    g = smollm2_golden
    tk = smollm2.tokenizer
    assert tk.encode(g["prompt_formatted"], add_special=False, parse_special=True) == g["prompt_ids"]
    assert tk.decode(g["prompt_ids"], skip_special=False) == g["prompt_formatted"]


def test_chat_template_matches_golden_formatting(smollm2, smollm2_golden):
    g = smollm2_golden
    msgs = [{"role": "user", "content": g["prompt_text"]}]
    assert smollm2.tokenizer.apply_chat_template(msgs) == g["prompt_formatted"]
    assert smollm2.tokenizer.apply_chat_template(msgs, tokenize=True) == g["prompt_ids"]
    no_gen = smollm2.tokenizer.apply_chat_template(msgs, add_generation_prompt=False)
    assert g["prompt_formatted"].startswith(no_gen) and no_gen != g["prompt_formatted"]


@pytest.mark.parametrize("text", ["Hello world", "", "  spaces  and\ttabs\n", "naïve café 日本語 🎉",
                                  "x" * 5000])
def test_round_trip(smollm2, text):
    tk = smollm2.tokenizer
    assert tk.decode(tk.encode(text)) == text


def test_special_tokens(smollm2):
    tk = smollm2.tokenizer
    ids = tk.encode("<|im_end|>", add_special=False, parse_special=True)
    assert ids == [2]
    assert tk.encode("<|im_end|>", add_special=False) != [2]  # literal text by default
    assert tk.decode([2], skip_special=True) == ""
    assert tk.decode([2], skip_special=False) == "<|im_end|>"
    assert tk.token_to_piece(2) == "<|im_end|>"
    assert tk.token_to_piece(10**7) is None


def test_vocab_and_ids(smollm2):
    tk = smollm2.tokenizer
    assert tk.vocab_size == smollm2.model_info.vocab_size == 49152
    assert len(tk) == 49152
    assert tk.eos_token_ids == [2]
    hello = tk.encode("Hello world")
    assert hello == tk.encode("Hello world", add_special=True, parse_special=False)
    assert all(isinstance(i, int) for i in hello)


def test_errors(smollm2, tiny):
    with pytest.raises(llmrt.InvalidArgument):
        smollm2.tokenizer.encode(123)
    with pytest.raises(llmrt.LLMRTError):
        smollm2.tokenizer.decode([10**8])
    with pytest.raises(llmrt.Unsupported, match="no tokenizer"):
        tiny.tokenizer.encode("hi")
