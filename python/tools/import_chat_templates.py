"""Imports the real chat templates of tests/data/chat_templates/ from a llama.cpp source tree.

No model hub is reachable from the development machines, so the templates come from
llama.cpp, which keeps verbatim copies of models' Hugging Face chat templates:
  - models/templates/<org>-<model>.jinja, written by its scripts/get_chat_template.py from the
    model's tokenizer_config.json on the Hub (see models/templates/README.md there);
  - tests/test-chat-template.cpp, test cases named by the Hub repository whose
    tokenizer_config.json chat_template they quote (cases marked "modified" are skipped).
The llama.cpp tree used: the vendor/llama.cpp directory of the llama-cpp-python 0.3.36 sdist
(`pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36`).
Two more come from the same sdist's llama_cpp/llama_chat_format.py (its Python constants, each
under a "# Source: <URL of the model's tokenizer_config.json>" comment): Mixtral-8x7B-Instruct
and Meta-Llama-3-8B-Instruct's updated template (the one with add_generation_prompt).
Five more come from this repository's tests/data/chat_golden/*.json (the goldens of
python/tools/make_chat_golden.py, which names their origin: SmolLM2's GGUF (smollm2_gguf.json),
the Llama 3 tokenizer fixture, Llama-2-7b-chat-hf, Mistral-7B-Instruct v0.2 and the original
v0.1). chatml.json's template is OpenHermes-2.5's, imported above from test-chat-template.cpp.

    import_chat_templates.py LLAMA_CPP_DIR OUT_DIR [LLAMA_CHAT_FORMAT_PY]

(LLAMA_CHAT_FORMAT_PY defaults to LLAMA_CPP_DIR/../../llama_cpp/llama_chat_format.py) writes
OUT_DIR/<name>.jinja and OUT_DIR/SOURCES.json ({name: {"repo", "file", "via"[, "url"]}}).
"""
import ast
import json
import os
import re
import sys

# file in models/templates -> Hugging Face repository it was fetched from
FROM_FILES = {
    "meta-llama-Llama-3.1-8B-Instruct": "meta-llama/Llama-3.1-8B-Instruct",
    "meta-llama-Llama-3.2-3B-Instruct": "meta-llama/Llama-3.2-3B-Instruct",
    "meta-llama-Llama-3.3-70B-Instruct": "meta-llama/Llama-3.3-70B-Instruct",
    "Qwen-Qwen2.5-7B-Instruct": "Qwen/Qwen2.5-7B-Instruct",
    "Qwen-QwQ-32B": "Qwen/QwQ-32B",
    "Qwen-Qwen3-0.6B": "Qwen/Qwen3-0.6B",
    "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use": "NousResearch/Hermes-2-Pro-Llama-3-8B (tool_use)",
    "NousResearch-Hermes-3-Llama-3.1-8B-tool_use": "NousResearch/Hermes-3-Llama-3.1-8B (tool_use)",
    "deepseek-ai-DeepSeek-R1-Distill-Llama-8B": "deepseek-ai/DeepSeek-R1-Distill-Llama-8B",
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B": "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
    "google-gemma-2-2b-it": "google/gemma-2-2b-it",
    "ibm-granite-granite-3.3-2B-Instruct": "ibm-granite/granite-3.3-2b-instruct",
    "microsoft-Phi-3.5-mini-instruct": "microsoft/Phi-3.5-mini-instruct",
    "mistralai-Mistral-Nemo-Instruct-2407": "mistralai/Mistral-Nemo-Instruct-2407",
    "fireworks-ai-llama-3-firefunction-v2": "fireworks-ai/llama-3-firefunction-v2",
    "meetkai-functionary-medium-v3.1": "meetkai/functionary-medium-v3.1",
    "meetkai-functionary-medium-v3.2": "meetkai/functionary-medium-v3.2",
    "CohereForAI-c4ai-command-r-plus-tool_use": "CohereForAI/c4ai-command-r-plus (tool_use)",
    "HuggingFaceTB-SmolLM3-3B": "HuggingFaceTB/SmolLM3-3B",
    "CohereForAI-c4ai-command-r7b-12-2024-tool_use": "CohereForAI/c4ai-command-r7b-12-2024 (tool_use)",
    "deepseek-ai-DeepSeek-V3.1": "deepseek-ai/DeepSeek-V3.1",
    "openai-gpt-oss-120b": "openai/gpt-oss-120b",
    "Mistral-Small-3.2-24B-Instruct-2506": "mistralai/Mistral-Small-3.2-24B-Instruct-2506",
}
# Repositories above that llama.cpp's models/templates/README.md does not list (SmolLM3,
# granite-3.3, gpt-oss-120b, Mistral-Small-3.2) are named after the file llama.cpp stores.

# test case name in tests/test-chat-template.cpp -> (our file name, Hugging Face repository)
FROM_TESTS = {
    "teknium/OpenHermes-2.5-Mistral-7B": ("teknium-OpenHermes-2.5-Mistral-7B", "teknium/OpenHermes-2.5-Mistral-7B"),
    "mistralai/Mistral-7B-Instruct-v0.2 (NOTE: Old pre-v1 without a system prompt)":
        ("mistralai-Mistral-7B-Instruct-v0.2-old", "mistralai/Mistral-7B-Instruct-v0.2 (earlier revision)"),
    "google/gemma-7b-it": ("google-gemma-7b-it", "google/gemma-7b-it"),
    "openchat/openchat-3.5-0106": ("openchat-openchat-3.5-0106", "openchat/openchat-3.5-0106"),
    "deepseek-ai/deepseek-coder-33b-instruct": ("deepseek-ai-deepseek-coder-33b-instruct", "deepseek-ai/deepseek-coder-33b-instruct"),
    "mlabonne/AlphaMonarch-7B": ("mlabonne-AlphaMonarch-7B", "mlabonne/AlphaMonarch-7B"),
    "OrionStarAI/Orion-14B-Chat": ("OrionStarAI-Orion-14B-Chat", "OrionStarAI/Orion-14B-Chat"),
    "Phi-3-mini": ("microsoft-Phi-3-mini-4k-instruct", "microsoft/Phi-3-mini-4k-instruct"),
    "ibm-granite/granite-3.0-8b-instruct": ("ibm-granite-granite-3.0-8b-instruct", "ibm-granite/granite-3.0-8b-instruct"),
    "bofenghuang/vigogne-2-70b-chat": ("bofenghuang-vigogne-2-70b-chat", "bofenghuang/vigogne-2-70b-chat"),
}

# constant in llama-cpp-python's llama_cpp/llama_chat_format.py -> (our file name, repository)
FROM_CHAT_FORMAT = {
    "MIXTRAL_INSTRUCT_CHAT_TEMPLATE": ("mistralai-Mixtral-8x7B-Instruct-v0.1",
                                       "mistralai/Mixtral-8x7B-Instruct-v0.1"),
    "LLAMA3_INSTRUCT_CHAT_TEMPLATE": ("meta-llama-Meta-Llama-3-8B-Instruct-updated",
                                      "meta-llama/Meta-Llama-3-8B-Instruct (updated revision)"),
}


def chat_format_templates(path):
    """{constant: (template, source URL)} of the string constants named in FROM_CHAT_FORMAT."""
    with open(path, encoding="utf-8") as f:
        src = f.read()
    lines = src.split("\n")
    found = {}
    for node in ast.parse(src).body:
        if (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id in FROM_CHAT_FORMAT and isinstance(node.value, ast.Constant)):
            above = lines[node.lineno - 2]
            m = re.match(r"# Source: (\S+)", above)
            if not m:
                sys.exit(f"{path}:{node.lineno}: no '# Source:' line above {node.targets[0].id}")
            found[node.targets[0].id] = (node.value.value, m.group(1))
    missing = set(FROM_CHAT_FORMAT) - set(found)
    if missing:
        sys.exit(f"{path}: not found: {sorted(missing)}")
    return found


# tests/data/chat_golden/<name>.json -> our file names of its templates[0], templates[1], ...
FROM_CHAT_GOLDEN = {
    "smollm2_gguf": ["HuggingFaceTB-SmolLM2-135M-Instruct"],
    "llama3": ["meta-llama-Meta-Llama-3-8B-Instruct"],
    "llama2": ["meta-llama-Llama-2-7b-chat-hf"],
    "mistral": ["mistralai-Mistral-7B-Instruct-v0.2", "mistralai-Mistral-7B-Instruct-v0.1-original"],
}


def c_unescape(lit):
    out, i = [], 0
    esc = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}
    while i < len(lit):
        ch = lit[i]
        if ch == "\\":
            out.append(esc[lit[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def main():
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    sources = {}
    via = "llama-cpp-python 0.3.36 sdist, vendor/llama.cpp/"
    for name, repo in FROM_FILES.items():
        path = os.path.join(src, "models", "templates", name + ".jinja")
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
        with open(os.path.join(out, name + ".jinja"), "w", encoding="utf-8", newline="") as f:
            f.write(text)
        sources[name] = {"repo": repo, "file": "tokenizer_config.json chat_template",
                         "via": via + "models/templates/" + name + ".jinja"}
    with open(os.path.join(src, "tests", "test-chat-template.cpp"), encoding="utf-8") as f:
        cpp = f.read()
    case = re.compile(r'/\* \.name= \*/ "((?:[^"\\]|\\.)*)",\s*\n(?:\s*//[^\n]*\n)*\s*/\* \.template_str= \*/ "((?:[^"\\]|\\.)*)"')
    for m in case.finditer(cpp):
        name = c_unescape(m.group(1))
        if name not in FROM_TESTS:
            continue
        fname, repo = FROM_TESTS[name]
        with open(os.path.join(out, fname + ".jinja"), "w", encoding="utf-8", newline="") as f:
            f.write(c_unescape(m.group(2)))
        sources[fname] = {"repo": repo, "file": "tokenizer_config.json chat_template",
                          "via": via + 'tests/test-chat-template.cpp, case "' + name + '"'}
    chat_format = (sys.argv[3] if len(sys.argv) > 3 else
                   os.path.join(src, "..", "..", "llama_cpp", "llama_chat_format.py"))
    for const, (text, url) in chat_format_templates(chat_format).items():
        fname, repo = FROM_CHAT_FORMAT[const]
        with open(os.path.join(out, fname + ".jinja"), "w", encoding="utf-8", newline="") as f:
            f.write(text)
        sources[fname] = {"repo": repo, "file": "tokenizer_config.json chat_template",
                          "via": "llama-cpp-python 0.3.36 sdist, llama_cpp/llama_chat_format.py " + const,
                          "url": url}
    golden_dir = os.path.join(os.path.dirname(os.path.abspath(out)), "chat_golden")
    for fam, names in FROM_CHAT_GOLDEN.items():
        with open(os.path.join(golden_dir, fam + ".json"), encoding="utf-8") as f:
            templates = json.load(f)["templates"]
        for i, fname in enumerate(names):
            with open(os.path.join(out, fname + ".jinja"), "w", encoding="utf-8", newline="") as f:
                f.write(templates[i]["chat_template"])
            sources[fname] = {"repo": templates[i]["source"],
                              "file": "tokenizer_config.json chat_template / GGUF tokenizer.chat_template",
                              "via": f"tests/data/chat_golden/{fam}.json templates[{i}] "
                                     "(python/tools/make_chat_golden.py)"}
    missing = set(v[0] for v in FROM_TESTS.values()) - set(sources)
    if missing:
        sys.exit(f"not found in test-chat-template.cpp: {sorted(missing)}")
    with open(os.path.join(out, "SOURCES.json"), "w", encoding="utf-8") as f:
        json.dump(dict(sorted(sources.items())), f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
