"""The request parameters' ranges (issue 18, classes 3 and 4): the Python package checks the same
ranges as the C request-parameter layer (host/cli/request_fields.c: batch lines, `llmrt serve`,
the command line), before any value is converted to C, naming the field."""

import math
import pathlib
import re

import pytest

import llmrt
from llmrt import sampling

SOURCE = pathlib.Path(__file__).resolve().parents[2] / "host" / "cli" / "request_fields.c"


def c_table() -> dict:
    text = SOURCE.read_text()
    consts = {"MAX_LEN": 2**30, "MAX_SAFE_INT": 2**53 - 1}
    entry = re.compile(r'\[REQ_\w+\]\s*=\s*\{"(\w+)",\s*"[^"]*",\s*REQ_(\w+),\s*([-\w.]+),\s*'
                       r'([-\w.]+),\s*(true|false)\}')
    out = {}
    for name, kind, lo, hi, lo_open in entry.findall(text):
        if kind == "BOOL":
            continue
        val = lambda t: consts[t] if t in consts else float(t)
        out[name] = (val(lo), val(hi), lo_open == "true")
    return out


@pytest.mark.skipif(not SOURCE.exists(), reason="the C sources are not next to the tests")
def test_python_ranges_are_the_c_table():
    table = c_table()
    assert len(table) == 12, table  # every numeric parameter was read
    table.pop("seed")  # Python takes any 64-bit seed (a JSON number is exact to 2^53 only)
    assert {k: (float(lo), float(hi), o) for k, (lo, hi, o) in sampling._RANGES.items()} == table


@pytest.mark.parametrize("kw,field", [
    (dict(temperature=math.inf), "temperature"),
    (dict(temperature=1e39), "temperature"),  # past a float: undefined in the C conversion
    (dict(temperature=2.5), "temperature"),
    (dict(top_p=0.0), "top_p"),
    (dict(top_k=2**31 - 1), "top_k"),
    (dict(repetition_penalty=math.inf), "repetition_penalty"),
    (dict(max_tokens=2**31 - 1), "max_tokens"),
    (dict(n=65), "n"),
    (dict(logprobs=21), "logprobs"),
])
def test_out_of_range_refused_before_c(kw, field):
    defaults = llmrt._ffi.llmrt_sampling_params()
    with pytest.raises(llmrt.InvalidArgument, match=f"SamplingParams.{field} = .* out of range"):
        llmrt.SamplingParams(**kw)._to_c(defaults)


def test_in_range_converts():
    defaults = llmrt._ffi.llmrt_sampling_params()
    p, _ = llmrt.SamplingParams(temperature=2, top_p=5e-324, top_k=-1, max_tokens=2**30,
                                seed=2**64 - 1, n=64, logprobs=20)._to_c(defaults)
    assert p.temperature == 2 and p.max_tokens == 2**30 and p.seed == 2**64 - 1 and p.n == 64
