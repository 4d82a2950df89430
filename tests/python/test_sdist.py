"""The sdist (pyproject.toml's sdist.exclude): every file the build of `pip install llmrt-*.tar.gz`
needs, and nothing else (no tests, fixtures, scripts, build outputs or caches).

The sdist is built here from the checkout with scikit-build-core's own hook (the CI venv has it:
tests/run_all.sh installs the wheel from an sdist built the same way)."""

import fnmatch
import shutil
import subprocess
import tarfile

import pytest

from conftest import REPO

# What `pip install` of the sdist compiles or packages (tracked files matching these must all be
# in it) ...
NEEDED = [
    "CMakeLists.txt", "pyproject.toml", "README.md", "python/README.md",
    "cmake/*", "include/*.h", "host/*", "cuda/CMakeLists.txt", "cuda/*.cu", "cuda/*.cuh",
    "cuda/*.h", "cuda/sim/*", "bench/*.c", "bench/*.h", "python/llmrt/*",
]
# ... and what may come with it besides (documentation, the formatter's settings, metadata).
ALLOWED = NEEDED + ["PKG-INFO", "docs/*.md", "bench/README.md", ".clang-format", ".gitignore"]
# Never: tests and fixtures, CI, scripts, benchmark results, build trees, caches, binaries.
FORBIDDEN = ["tests/*", ".ci/*", "bench/results/*", "bench/tools/*", "bench/configs/*", "bench/*.sh", "bench/*.py",
             "python/tools/*", "cuda/tests/*", "build*", "*/__pycache__/*", "*.pyc", "*.o",
             "*.so", "*.a", "*.gguf", "*.safetensors", "*.egg-info/*", ".git/*"]
MAX_BYTES = 2 << 20  # compressed; the sources are ~0.7 MB


def matches(path, patterns):
    return any(fnmatch.fnmatch(path, p) for p in patterns)


@pytest.fixture(scope="module")
def sdist(tmp_path_factory):
    build = pytest.importorskip("scikit_build_core.build")
    if not (REPO / "pyproject.toml").is_file() or not (REPO / "host").is_dir():
        pytest.skip("no source checkout to build an sdist from")
    out = tmp_path_factory.mktemp("sdist")
    import os
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        name = build.build_sdist(str(out))
    finally:
        os.chdir(cwd)
    path = out / name
    with tarfile.open(path) as tf:
        names = [m.name.split("/", 1)[1] for m in tf.getmembers() if m.isfile()]
    return path, names


def tracked_files():
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: cannot list the tracked sources")
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    return [p for p in out.splitlines() if (REPO / p).is_file()]


def test_sdist_has_every_needed_source(sdist):
    _, names = sdist
    have = set(names)
    needed = [p for p in tracked_files() if matches(p, NEEDED) and not matches(p, FORBIDDEN)]
    assert any(p.startswith("host/engine/") for p in needed)  # the pattern list still matches
    missing = [p for p in needed if p not in have]
    assert not missing, f"the sdist lacks {missing}"


def test_sdist_has_nothing_else(sdist):
    path, names = sdist
    junk = [n for n in names if matches(n, FORBIDDEN) or not matches(n, ALLOWED)]
    assert not junk, f"the sdist carries files it does not need: {junk}"
    assert path.stat().st_size <= MAX_BYTES, path.stat().st_size
    assert "PKG-INFO" in names and "pyproject.toml" in names
