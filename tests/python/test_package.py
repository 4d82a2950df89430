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
    (pip install python/) or these tests run the old code."""
    installed = Path(llmrt.__file__).resolve().parent
    source = REPO / "python" / "llmrt"
    if installed == source or not source.is_dir():
        return  # editable install, or no source tree to compare with
    stale = [p.name for p in sorted(source.glob("*.py"))
             if not (installed / p.name).is_file()
             or (installed / p.name).read_bytes() != p.read_bytes()]
    assert not stale, f"installed llmrt at {installed} differs from python/llmrt in {stale}: " \
                      "run `pip install python/`"
