"""The package itself: installed (not imported from the source tree), library found, ABI checks."""

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import llmrt
from llmrt import _ffi
from conftest import REPO


def test_imported_from_an_installed_package():
    pkg = Path(llmrt.__file__).resolve().parent
    # an editable install points into python/llmrt; a regular one into site-packages
    assert pkg.name == "llmrt"
    assert pkg.parent != REPO / "tests" / "python"


def test_library_found_and_versions_match():
    assert os.path.exists(llmrt.library_path()) or llmrt.library_path() == _ffi.LIBRARY_NAME
    major, minor, _ = (int(x) for x in llmrt.library_version().split("."))
    assert (major, minor) == (_ffi.HEADER_VERSION_MAJOR, _ffi.HEADER_VERSION_MINOR)


def test_default_params_sizes_match_library():
    for fname, cls in _ffi._DEFAULT_PARAM_FUNCTIONS.items():
        if fname == "llmrt_model_sampling_defaults":
            continue
        assert _ffi.by_value(fname).struct_size == ctypes.sizeof(cls), cls.__name__


def test_library_lookup_order(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMRT_LIBRARY", "/some/where/libllmrt.so")
    assert _ffi.candidate_paths() == ["/some/where/libllmrt.so"]
    monkeypatch.delenv("LLMRT_LIBRARY")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "libllmrt.so").write_bytes(b"")
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    paths = _ffi.candidate_paths()
    assert str(tmp_path / "build" / "libllmrt.so") in paths
    assert paths[-1] == "libllmrt.so"


_LAYOUT_C = r"""
#include <stddef.h>
#include <stdio.h>
#include "llmrt_experimental.h"
#define S(T) printf("%s sizeof %zu\n", #T, sizeof(T));
#define F(T, f) printf("%s %s %zu\n", #T, #f, offsetof(T, f));
int main(void) {
%BODY%
    return 0;
}
"""


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler to read the header's layout")
def test_struct_layouts_match_the_header(tmp_path):
    """Every mirrored struct: same size and same offset of every field as the C compiler says."""
    body = []
    for name, cls in _ffi.STRUCTS.items():
        body.append(f"S({name})")
        for fname, _ in cls._fields_:
            body.append(f"F({name}, {fname})")
    src = tmp_path / "layout.c"
    src.write_text(_LAYOUT_C.replace("%BODY%", "\n".join(body)))
    exe = tmp_path / "layout"
    subprocess.run(["cc", "-std=c11", "-I", str(REPO / "include"), str(src), "-o", str(exe)],
                   check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    c_layout = {}
    for line in out.splitlines():
        struct, key, value = line.split()
        c_layout[(struct, key)] = int(value)
    for name, cls in _ffi.STRUCTS.items():
        assert ctypes.sizeof(cls) == c_layout[(name, "sizeof")], name
        for fname, _ in cls._fields_:
            assert getattr(cls, fname).offset == c_layout[(name, fname)], f"{name}.{fname}"


def test_installed_package_is_current():
    """A regular (non-editable) install is a copy: after editing python/llmrt, reinstall it
    (pip install . from the root) or these tests run the old code."""
    installed = Path(llmrt.__file__).resolve().parent
    source = REPO / "python" / "llmrt"
    if installed == source or not source.is_dir():
        return  # editable install, or no source tree to compare with
    stale = [p.name for p in sorted(source.glob("*.py"))
             if not (installed / p.name).is_file()
             or (installed / p.name).read_bytes() != p.read_bytes()]
    assert not stale, f"installed llmrt at {installed} differs from python/llmrt in {stale}: " \
                      "run `pip install .` from the repository root"


# --- the wheel (root pyproject.toml: scikit-build-core builds and bundles the library) ----------

from conftest import BUNDLED  # noqa: E402


@pytest.mark.skipif(not BUNDLED, reason="this installation has no bundled library (not a wheel)")
def test_wheel_uses_its_own_library():
    assert "LLMRT_LIBRARY" not in os.environ
    pkg = Path(llmrt.__file__).resolve().parent
    assert Path(llmrt.library_path()).resolve() == (pkg / "libllmrt.so").resolve()
    assert _ffi.candidate_paths()[0] == str(pkg / "libllmrt.so")


@pytest.mark.skipif(not BUNDLED, reason="this installation has no bundled library (not a wheel)")
def test_wheel_console_script_runs_the_bundled_command():
    exe = shutil.which("llmrt", path=os.path.dirname(os.sys.executable))
    assert exe, "the wheel's `llmrt` console script is not next to this python"
    out = subprocess.run([exe, "generate", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "usage: llmrt generate" in out.stdout + out.stderr


def test_device_argument_checked():
    with pytest.raises(llmrt.InvalidArgument, match="device must be"):
        llmrt.LLM(str(REPO / "tests" / "data" / "tiny" / "llama_f32"), device="tpu")


def _cuda_load_error():
    try:
        llmrt.LLM(str(REPO / "tests" / "data" / "tiny" / "llama_f32"), device="cuda", threads=1).close()
        return ""
    except llmrt.LLMRTError as e:
        return str(e)


def test_device_auto_falls_back_to_cpu_or_uses_cuda():
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        llm = llmrt.LLM(str(REPO / "tests" / "data" / "tiny" / "llama_f32"), threads=1)
    try:
        dev = llm._model.device
        assert dev in ("cpu", "cuda")
        cuda_build = "no CUDA backend" not in _cuda_load_error()
        if dev == "cpu" and cuda_build:  # a CUDA build without a device: said, not silent
            assert any("running on the CPU" in str(w.message) for w in caught)
        if not cuda_build:  # a CPU-only build: the CPU as a matter of course
            assert dev == "cpu" and not any("running on the CPU" in str(w.message) for w in caught)
    finally:
        llm.close()


def test_default_model(smollm2_file):
    llm = llmrt.LLM(threads=2, kv_tokens=1024)
    try:
        assert os.path.samefile(llm._model.path, smollm2_file)
    finally:
        llm.close()


# --- typing: PEP 561 marker and annotations on the whole public API -----------------------------

_DUNDERS = {"__init__", "__call__", "__iter__", "__next__", "__enter__", "__exit__", "__aiter__",
            "__anext__", "__aenter__", "__aexit__"}


def test_py_typed_installed():
    assert (Path(llmrt.__file__).resolve().parent / "py.typed").is_file()


def test_public_api_is_fully_annotated():
    """Every parameter and return of every public function and method (llmrt.__all__) has a type
    hint, so type checkers see the package as typed (py.typed) rather than as Any."""
    import inspect

    missing, seen = [], 0

    def check(name, fn):
        nonlocal seen
        sig = inspect.signature(fn)
        seen += 1
        for p in sig.parameters.values():
            if p.name not in ("self", "cls") and p.annotation is inspect.Parameter.empty:
                missing.append(f"{name}({p.name})")
        if sig.return_annotation is inspect.Signature.empty and not name.endswith("__init__"):
            missing.append(f"{name} -> ?")

    for n in llmrt.__all__:
        obj = getattr(llmrt, n)
        if inspect.isfunction(obj):
            check(n, obj)
        if not inspect.isclass(obj) or issubclass(obj, BaseException):
            continue
        for m, f in vars(obj).items():
            if m.startswith("_") and m not in _DUNDERS:
                continue
            f = f.__func__ if isinstance(f, (staticmethod, classmethod)) else f
            f = f.fget if isinstance(f, property) else f
            if inspect.isfunction(f):
                check(f"{n}.{m}", f)
    assert seen > 50  # the walk reached the API
    assert not missing, f"public API without type hints: {missing}"
