"""`llmrt serve` with tools, tool calls, tool results and content-part lists (issue 16): what the
model's chat template receives, checked against the transformers goldens.

The server runs the tiny llama_f32 checkpoint widened to the Llama 3 vocabulary (the extra
embedding and lm_head rows zero, written to a temporary directory) whose tokenizer is tests/data/tokenizers/llama3 and whose chat_template is a
corpus template. The Llama 3 vocabulary has none of Qwen's markers as special tokens, so the
rendered prompt can be compared through /tokenize: the messages' tokens must equal the tokens of
the golden text transformers rendered (tests/data/chat_templates/golden.json).

Environment: LLMRT_BIN (the llmrt command). Run by ctest (tests/CMakeLists.txt, test_server_tools)."""
import copy
import http.client
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import openai
import pytest

BIN = os.environ.get("LLMRT_BIN", "build/llmrt")
DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
KEY = "sk-llmrt-test"
NAME = "tools"

if not os.path.exists(BIN):
    pytest.skip("no llmrt command (LLMRT_BIN)", allow_module_level=True)

sys.path.insert(0, str(DATA.parent))
from chat_tool_model import make_model, widen_checkpoint  # noqa: E402

GOLDEN = json.loads((DATA / "chat_templates" / "golden.json").read_text())["cases"]

# iterates over content parts: llmrt must pass the list through (vLLM's "openai" content format)
PARTS_TEMPLATE = ("{% for m in messages %}{{ m['role'] }}:{% if m['content'] is string %}"
                  "S[{{ m['content'] }}]{% else %}{% for p in m['content'] %}P[{{ p['text'] }}]"
                  "{% endfor %}{% endif %}\n{% endfor %}")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "model.safetensors"
    widen_checkpoint(path)
    return path


class Server:
    def __init__(self, model):
        self.proc = subprocess.Popen(
            [BIN, "serve", "-m", str(model), "--port", "0", "-t", "1",
             "--api-key", KEY, "--served-model-name", NAME],
            stderr=subprocess.PIPE, text=True)
        self.log, self.port = [], None
        deadline = time.time() + 120
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.append(line)
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        assert self.port, "server did not start:\n" + "".join(self.log)

    def post(self, path, body):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        c.request("POST", path, body=json.dumps(body),
                  headers={"Content-Type": "application/json", "Authorization": "Bearer " + KEY})
        r = c.getresponse()
        data = json.loads(r.read().decode())
        c.close()
        return r.status, data

    def tokens(self, **body):
        status, data = self.post("/tokenize", {"model": NAME, **body})
        assert status == 200, data
        return data["tokens"]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode


@pytest.fixture(scope="module")
def qwen(tmp_path_factory, weights):
    template = (DATA / "chat_templates" / "Qwen-Qwen2.5-7B-Instruct.jinja").read_text()
    s = Server(make_model(tmp_path_factory.mktemp("m") / "qwen", weights, template))
    yield s
    assert s.stop() == 0


@pytest.fixture(scope="module")
def parts(tmp_path_factory, weights):
    s = Server(make_model(tmp_path_factory.mktemp("m") / "parts", weights, PARTS_TEMPLATE))
    yield s
    assert s.stop() == 0


def openai_form(messages):
    """The golden's HF messages as an OpenAI client sends them: tool-call arguments as a string."""
    out = copy.deepcopy(messages)
    for m in out:
        for call in m.get("tool_calls") or []:
            call["function"]["arguments"] = json.dumps(call["function"]["arguments"])
    return out


def golden(template, conversation, agp):
    for c in GOLDEN:
        if (c["template"], c["conversation"], c["add_generation_prompt"]) == (template, conversation, agp):
            return c
    raise KeyError((template, conversation, agp))


@pytest.mark.parametrize("conversation", ["tools", "tool_call", "system", "multi"])
@pytest.mark.parametrize("agp", [True, False])
def test_template_sees_tools_and_tool_messages(qwen, conversation, agp):
    case = golden("Qwen-Qwen2.5-7B-Instruct", conversation, agp)
    body = {"messages": openai_form(case["vars"]["messages"]), "add_generation_prompt": agp}
    if case["vars"]["tools"]:
        body["tools"] = case["vars"]["tools"]
    want = qwen.tokens(prompt=case["expected"], add_special_tokens=False)
    assert qwen.tokens(**body) == want
    if conversation == "tool_call":  # the tools change the prompt: without them it differs
        body.pop("tools")
        assert qwen.tokens(**body) != want


def test_chat_completion_with_tools(qwen):
    case = golden("Qwen-Qwen2.5-7B-Instruct", "tool_call", True)
    msgs, tools = openai_form(case["vars"]["messages"]), case["vars"]["tools"]
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{qwen.port}/v1", api_key=KEY, max_retries=0)
    for choice in ["auto", "none", None]:
        kw = {"tool_choice": choice} if choice else {}
        r = client.chat.completions.create(model=NAME, messages=msgs, tools=tools, max_tokens=3,
                                           temperature=0, **kw)
        # the prompt is the golden's text (+ nothing: the engine renders the same messages)
        assert r.usage.prompt_tokens == len(qwen.tokens(prompt=case["expected"], add_special_tokens=False))
        assert r.choices[0].message.tool_calls is None  # no tool-call parser: text content
        assert r.choices[0].finish_reason in ("length", "stop")


def test_content_parts_joined_for_string_templates(qwen):
    """Qwen2.5's template prints content as a string: text parts are joined with "\\n" first."""
    listed = [{"role": "user", "content": [{"type": "text", "text": "Describe"},
                                           {"type": "text", "text": " this <|im_end|>."}]}]
    joined = [{"role": "user", "content": "Describe\n this <|im_end|>."}]
    assert qwen.tokens(messages=listed) == qwen.tokens(messages=joined)


def test_content_parts_passed_to_iterating_templates(parts):
    msgs = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]}]
    text = "system:S[Be brief.]user:P[one]P[two]"  # trim_blocks eats the newline after a tag
    assert parts.tokens(messages=msgs, add_generation_prompt=False) == \
        parts.tokens(prompt=text, add_special_tokens=False)


def call(args='{"city": "Paris"}'):
    return {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": args}}


TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
USER = {"role": "user", "content": "hi"}


@pytest.mark.parametrize("body,param,needle", [
    ({"tool_choice": "required", "tools": [TOOL]}, "tool_choice", "no tool-call parser"),
    ({"tool_choice": {"type": "function", "function": {"name": "get_weather"}}, "tools": [TOOL]},
     "tool_choice", "naming a function"),
    ({"tool_choice": "sometimes"}, "tool_choice", "\"none\" or \"auto\""),
    ({"tools": {}}, "tools", "list of function tools"),
    ({"tools": []}, "tools", "1 to 128"),
    ({"tools": [{"type": "retrieval"}]}, "tools[0].type", "\"function\""),
    ({"tools": [{"type": "function", "function": {"name": "a b"}}]}, "tools[0].function.name", "a-z"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]},
     "tools[0].function.parameters", "JSON Schema"),
    ({"tools": [{"type": "function", "function": {"name": "f", "extra": 1}}]},
     "tools[0].function.extra", "not supported"),
    ({"messages": [USER, {"role": "assistant", "content": None, "tool_calls": [call("not json")]}]},
     "messages[1].tool_calls[0].function.arguments", "JSON object"),
    ({"messages": [USER, {"role": "assistant", "tool_calls": [{"type": "function"}]}]},
     "messages[1].tool_calls[0].id", "string"),
    ({"messages": [USER, {"role": "assistant", "tool_calls": []}]}, "messages[1].tool_calls", "1 to 128"),
    ({"messages": [{"role": "user", "content": "x", "tool_calls": [call()]}]},
     "messages[0].tool_calls", "only allowed on assistant"),
    ({"messages": [USER, {"role": "tool", "content": "22"}]}, "messages[1].tool_call_id", "required"),
    ({"messages": [{"role": "user", "content": "x", "tool_call_id": "c"}]},
     "messages[0].tool_call_id", "only allowed on tool"),
    ({"messages": [{"role": "user", "content": None}]}, "messages[0].content", "null only"),
    ({"messages": [{"role": "user", "content": "x", "refusal": "no"}]}, "messages[0].refusal",
     "not supported"),
    ({"messages": [{"role": "user", "content": "x", "name": 5}]}, "messages[0].name", "string"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", "\"tool\""),
])
def test_bad_fields_are_named(qwen, body, param, needle):
    status, data = qwen.post("/v1/chat/completions", {"model": NAME, "messages": [USER], **body})
    assert status == 400, data
    assert data["error"]["param"] == param and needle in data["error"]["message"], data


def test_tokenize_tools_need_messages(qwen):
    status, data = qwen.post("/tokenize", {"model": NAME, "prompt": "x", "tools": [TOOL]})
    assert status == 400 and data["error"]["param"] == "tools"
