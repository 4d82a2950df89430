"""SamplingParams: how to pick tokens and when to stop, with vLLM's field names."""

from __future__ import annotations

import ctypes
import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence, Union

from . import _ffi
from .errors import InvalidArgument

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_UINT64_MAX = 2**64 - 1

# The request parameters' ranges: host/cli/request_fields.c's table, the same for batch lines,
# `llmrt serve` bodies (openapi.json) and the command-line options (tests/python/
# test_request_fields.py checks that the two agree). name -> (low, high, low excluded). Checked
# before a value is converted to C (a double out of a float's range converts with undefined
# behaviour). The seed is not here: a Python int carries any 64-bit seed exactly (JSON numbers
# stop at 2^53).
_RANGES: dict = {
    "temperature": (0, 2, False),
    "top_p": (0, 1, True),
    "top_k": (-1, 2**30, False),
    "min_p": (0, 1, False),
    "repetition_penalty": (1e-6, 10, False),
    "presence_penalty": (-2, 2, False),
    "frequency_penalty": (-2, 2, False),
    "max_tokens": (1, 2**30, False),
    "min_tokens": (0, 2**30, False),
    "n": (1, 64, False),
    "logprobs": (0, 20, False),
}


@dataclass
class SamplingParams:
    """Sampling parameters of one request (vLLM's names and meanings).

    A field left at ``None`` takes the model's default: the checkpoint's generation_config.json
    where it sets one (temperature, top_p, top_k, repetition_penalty), else llmrt's library
    default (temperature 1.0, top_p 1.0, top_k off, repetition_penalty 1.0, max_tokens 256).
    Types are checked here; ranges when the request is submitted (the request parameters' ranges,
    the same as ``llmrt batch`` and ``llmrt serve`` take), and a bad value raises
    :class:`llmrt.InvalidArgument` naming the field.

    temperature: [0, 2], 0 = greedy.  top_p: (0, 1], 1 = off.  top_k: -1 or 0 = off.
    min_p: [0, 1].
    repetition_penalty: [1e-6, 10], 1 = off (prompt and output tokens).  presence_penalty /
    frequency_penalty: [-2, 2] on output tokens.  max_tokens: >= 1.  min_tokens: stop tokens and
    strings are ignored before this many.  seed: makes sampling reproducible.  stop: strings that
    end generation (not included in the text).  stop_token_ids: extra token ids that end it (the
    model's EOS ids always do unless ignore_eos).  logprobs: None = no logprobs; n >= 0 = the
    sampled token's logprob plus the top n (at most 20) per token.  skip_special_tokens: leave
    special tokens out of the text.  n: sequences generated from the prompt (1..64), returned as
    RequestOutput.outputs[0..n-1]; the prompt is computed once and its KV cache shared; with a
    seed, sequence i samples with seed + i.  prompt_logprobs: None = off; k >= 0 (at most 20) =
    RequestOutput.prompt_logprobs, per prompt token its logprob given the tokens before it plus
    the top k (the first entry None, as vLLM); such a request does not use the prefix cache
    (a cached prefix has no logits), so its whole prompt is computed.  logit_bias: {token id:
    bias in [-100, 100]} (ids as int or decimal str, as vLLM takes them) added to those logits
    before the penalties and sampling, greedy included: -100 bans a token in practice, 100
    forces it; logprobs stay those of the raw logits.
    """

    temperature: Optional[float] = None
    top_p: Optional[float] = None
    top_k: Optional[int] = None
    min_p: float = 0.0
    repetition_penalty: Optional[float] = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    max_tokens: Optional[int] = None
    min_tokens: int = 0
    seed: Optional[int] = None
    stop: Optional[Union[str, Sequence[str]]] = None
    stop_token_ids: Optional[Sequence[int]] = None
    ignore_eos: bool = False
    logprobs: Optional[int] = None
    skip_special_tokens: bool = True
    n: int = 1
    prompt_logprobs: Optional[int] = None
    logit_bias: Optional[Mapping[Union[int, str], float]] = None

    def __post_init__(self) -> None:
        self._checked()

    def clone(self, **changes: Any) -> "SamplingParams":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    # -- conversion ------------------------------------------------------------------------------

    def _checked(self) -> dict:
        """The fields as plain Python values, type-checked (InvalidArgument names the field)."""
        out: dict[str, Any] = {}
        for name in ("temperature", "top_p", "min_p", "repetition_penalty", "presence_penalty",
                     "frequency_penalty"):
            out[name] = _float_field(name, getattr(self, name))
        for name in ("top_k", "max_tokens", "min_tokens"):
            out[name] = _int_field(name, getattr(self, name), _INT32_MIN, _INT32_MAX)
        out["seed"] = _int_field("seed", self.seed, 0, _UINT64_MAX)
        out["logprobs"] = _int_field("logprobs", self.logprobs, _INT32_MIN, _INT32_MAX)
        out["prompt_logprobs"] = _int_field("prompt_logprobs", self.prompt_logprobs, 0,
                                            _INT32_MAX)
        out["ignore_eos"] = _bool_field("ignore_eos", self.ignore_eos)
        out["skip_special_tokens"] = _bool_field("skip_special_tokens", self.skip_special_tokens)
        out["n"] = _int_field("n", self.n, _INT32_MIN, _INT32_MAX, allow_none=False)

        stop = self.stop
        if stop is None:
            stop = []
        elif isinstance(stop, str):
            stop = [stop]
        elif isinstance(stop, (bytes, bytearray)) or not isinstance(stop, Sequence):
            raise InvalidArgument(
                f"SamplingParams.stop must be a str or a list of str, got {type(stop).__name__}"
            )
        stops = []
        for i, s in enumerate(stop):
            if not isinstance(s, str):
                raise InvalidArgument(
                    f"SamplingParams.stop[{i}] must be a str, got {type(s).__name__}"
                )
            if "\x00" in s:
                raise InvalidArgument(f"SamplingParams.stop[{i}] contains a NUL character")
            stops.append(s)
        out["stop"] = stops

        ids = self.stop_token_ids
        if ids is None:
            ids = []
        elif isinstance(ids, (str, bytes)) or not hasattr(ids, "__iter__"):
            raise InvalidArgument(
                f"SamplingParams.stop_token_ids must be a list of int, got {type(ids).__name__}"
            )
        out["stop_token_ids"] = [
            _int_field(f"stop_token_ids[{i}]", t, _INT32_MIN, _INT32_MAX, allow_none=False)
            for i, t in enumerate(ids)
        ]

        bias = self.logit_bias
        if bias is None:
            bias = {}
        elif not isinstance(bias, Mapping):
            raise InvalidArgument(
                f"SamplingParams.logit_bias must be a dict of token id to bias, got "
                f"{type(bias).__name__}")
        pairs = []
        for k, b in bias.items():
            tok = k
            if isinstance(k, str):
                if not (k.isascii() and k.isdigit() and len(k) <= 10):
                    raise InvalidArgument(
                        f"SamplingParams.logit_bias key {k[:40]!r} is not a token id")
                tok = int(k)
            tok = _int_field(f"logit_bias key {k!r}", tok, _INT32_MIN, _INT32_MAX,
                             allow_none=False)
            if b is None:
                raise InvalidArgument(
                    f"SamplingParams.logit_bias[{k!r}] must be a number, got None")
            pairs.append((tok, _float_field(f"logit_bias[{k!r}]", b)))
        out["logit_bias"] = pairs
        return out

    def _to_c(self, defaults: "_ffi.llmrt_sampling_params") -> tuple:
        """(llmrt_sampling_params, keepalive): the fields set here over ``defaults``. Keep the
        second element alive as long as the struct is used (it owns the arrays it points to)."""
        v = self._checked()
        for name, (lo, hi, lo_open) in _RANGES.items():
            x = v[name]
            if x is None:
                continue
            if not (math.isfinite(x) and (x > lo if lo_open else x >= lo) and x <= hi):
                raise InvalidArgument(f"SamplingParams.{name} = {x!r} is out of range "
                                      f"{'(' if lo_open else '['}{lo}, {hi}]")
        p = _ffi.llmrt_sampling_params.from_buffer_copy(defaults)
        p.struct_size = ctypes.sizeof(_ffi.llmrt_sampling_params)
        for name in ("temperature", "top_p", "top_k", "min_p", "repetition_penalty",
                     "presence_penalty", "frequency_penalty", "max_tokens", "min_tokens"):
            if v[name] is not None:
                setattr(p, name, v[name])
        if v["seed"] is not None:
            p.seed = v["seed"]
            p.has_seed = True
        p.n_logprobs = 0 if v["logprobs"] is None else v["logprobs"]
        p.ignore_eos = v["ignore_eos"]
        p.skip_special_tokens = v["skip_special_tokens"]
        p.n = v["n"]
        p.prompt_logprobs = v["prompt_logprobs"] is not None
        p.n_prompt_logprobs = v["prompt_logprobs"] or 0

        keep: list = []
        pairs = v["logit_bias"]
        if pairs:  # ranges and the vocabulary are checked at submit, naming the entry
            bid = (ctypes.c_int32 * len(pairs))(*[t for t, _ in pairs])
            bval = (ctypes.c_float * len(pairs))(*[b for _, b in pairs])
            keep += [bid, bval]
            p.logit_bias_ids = ctypes.cast(bid, ctypes.POINTER(ctypes.c_int32))
            p.logit_bias = ctypes.cast(bval, ctypes.POINTER(ctypes.c_float))
            p.n_logit_bias = len(pairs)
        ids = v["stop_token_ids"]
        if ids:
            arr = (ctypes.c_int32 * len(ids))(*ids)
            keep.append(arr)
            p.stop_token_ids = ctypes.cast(arr, ctypes.POINTER(ctypes.c_int32))
            p.n_stop_token_ids = len(ids)
        else:
            p.stop_token_ids = None
            p.n_stop_token_ids = 0
        stops = [s.encode("utf-8") for s in v["stop"]]
        if stops:
            arr = (ctypes.c_char_p * len(stops))(*stops)
            keep.extend((arr, stops))
            p.stop = ctypes.cast(arr, ctypes.POINTER(ctypes.c_char_p))
            p.n_stop = len(stops)
        else:
            p.stop = None
            p.n_stop = 0
        return p, keep


def _float_field(name: str, value: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidArgument(
            f"SamplingParams.{name} must be a number, got {type(value).__name__} {value!r}"
        )
    value = float(value)
    if math.isnan(value):
        raise InvalidArgument(f"SamplingParams.{name} must be a number, got nan")
    return value


def _int_field(name: str, value: Any, lo: int, hi: int, allow_none: bool = True) -> Optional[int]:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidArgument(
            f"SamplingParams.{name} must be an int, got {type(value).__name__} {value!r}"
        )
    value = int(value)
    if not lo <= value <= hi:
        raise InvalidArgument(f"SamplingParams.{name} = {value} is out of range [{lo}, {hi}]")
    return value


def _bool_field(name: str, value: Any) -> bool:
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    raise InvalidArgument(
        f"SamplingParams.{name} must be a bool, got {type(value).__name__} {value!r}"
    )


__all__ = ["SamplingParams"]
