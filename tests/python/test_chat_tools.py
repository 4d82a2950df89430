"""LLM.chat / apply_chat_template / create_chat_completion with tools, tool calls, tool results and
content-part lists (issue 16): the messages reach the model's template as HF
apply_chat_template(messages, tools=tools) passes them, byte for byte against the transformers
goldens (tests/data/chat_templates/golden.json) of Qwen2.5's template, on a tiny model carrying
that template (tests/chat_tool_model.py; no download)."""
import json
import sys
from pathlib import Path

import pytest

import llmrt

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from chat_tool_model import make_model, widen_checkpoint  # noqa: E402

CASES = json.loads((REPO / "tests" / "data" / "chat_templates" / "golden.json").read_text())["cases"]
QWEN = "Qwen-Qwen2.5-7B-Instruct"


def golden(conversation, agp):
    return next(c for c in CASES if (c["template"], c["conversation"], c["add_generation_prompt"])
                == (QWEN, conversation, agp))


@pytest.fixture(scope="module")
def llm(tmp_path_factory):
    weights = tmp_path_factory.mktemp("w") / "model.safetensors"
    widen_checkpoint(weights)
    template = (REPO / "tests" / "data" / "chat_templates" / f"{QWEN}.jinja").read_text()
    model = make_model(tmp_path_factory.mktemp("m") / "qwen", weights, template)
    m = llmrt.LLM(str(model), kv_tokens=2048)
    yield m
    m.close()


@pytest.mark.parametrize("conversation", ["tools", "tool_call"])
@pytest.mark.parametrize("agp", [True, False])
def test_apply_chat_template_matches_transformers(llm, conversation, agp):
    case = golden(conversation, agp)
    text = llm.tokenizer.apply_chat_template(case["vars"]["messages"], agp,
                                             tools=case["vars"]["tools"])
    assert text == case["expected"]


def test_content_parts_raise_where_transformers_raised(llm):
    case = golden("parts", True)
    assert "error" in case  # Qwen2.5's template concatenates content as a string
    with pytest.raises(llmrt.InvalidArgument):
        llm.tokenizer.apply_chat_template(case["vars"]["messages"], True)


def test_chat_renders_tools_and_tool_messages(llm):
    case = golden("tool_call", True)
    sp = llmrt.SamplingParams(max_tokens=2, temperature=0)
    out = llm.chat(case["vars"]["messages"], sp, tools=case["vars"]["tools"])[0]
    want = llm.tokenizer.encode(case["expected"], add_special=False, parse_special=True)
    assert out.metrics.n_prompt_tokens == len(want)
    # without the tools the template renders a different (shorter) system block
    bare = llm.chat(case["vars"]["messages"], sp)[0]
    assert bare.metrics.n_prompt_tokens < out.metrics.n_prompt_tokens
    with llm.chat_stream(case["vars"]["messages"], sp, tools=case["vars"]["tools"]) as s:
        assert "".join(d.text for d in s) == out.outputs[0].text


def test_create_chat_completion_tools(llm):
    case = golden("tools", True)
    r = llm.create_chat_completion(case["vars"]["messages"], tools=case["vars"]["tools"],
                                   tool_choice="auto", max_tokens=2, temperature=0)
    want = llm.tokenizer.encode(case["expected"], add_special=False, parse_special=True)
    assert r["usage"]["prompt_tokens"] == len(want)
    with pytest.raises(llmrt.InvalidArgument, match="tool-call parser"):
        llm.create_chat_completion(case["vars"]["messages"], tools=case["vars"]["tools"],
                                   tool_choice="required")


def test_bad_tools_and_messages_are_named(llm):
    msgs = [{"role": "user", "content": "hi"}]
    with pytest.raises(llmrt.InvalidArgument, match="tools must be a list"):
        llm.tokenizer.apply_chat_template(msgs, tools={"type": "function"})
    with pytest.raises(llmrt.InvalidArgument, match=r"tools\[0\] must be a dict"):
        llm.tokenizer.apply_chat_template(msgs, tools=[print])
    with pytest.raises(llmrt.InvalidArgument, match=r"messages\[1\].role"):
        llm.tokenizer.apply_chat_template(msgs + [{"content": None}], tools=[])
    with pytest.raises(llmrt.InvalidArgument, match="JSON-serialisable"):
        llm.tokenizer.apply_chat_template([{"role": "user", "content": {1, 2}}])
    with pytest.raises(llmrt.InvalidArgument, match=r"messages\[0\].tool_calls"):
        llm.tokenizer.apply_chat_template(
            [{"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "f"}}]}],
            chat_template="chatml")
