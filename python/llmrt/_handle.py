"""Owning wrappers of the C handles, and argument conversions shared by the user-facing modules."""

from __future__ import annotations

import ctypes
import json
import numbers
import os
import threading
import warnings
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np

from . import _ffi
from .errors import InvalidArgument, LLMRTError, Status, check

LOAD_FORMATS = {
    "auto": _ffi.LLMRT_LOAD_AUTO,
    "hf": _ffi.LLMRT_LOAD_HF,
    "gguf": _ffi.LLMRT_LOAD_GGUF,
    "random": _ffi.LLMRT_LOAD_RANDOM,
}


# vLLM's --kv-cache-dtype names (llmrt_kv_cache_dtype)
KV_CACHE_DTYPES = {"auto": _ffi.LLMRT_KV_CACHE_AUTO, "int8": _ffi.LLMRT_KV_CACHE_INT8,
                   "fp8": _ffi.LLMRT_KV_CACHE_FP8_E4M3, "fp8_e4m3": _ffi.LLMRT_KV_CACHE_FP8_E4M3,
                   "bf16": _ffi.LLMRT_KV_CACHE_BF16, "fp32": _ffi.LLMRT_KV_CACHE_FP32}

# device= of LLM(): "auto" tries CUDA and falls back to the CPU (a RuntimeWarning when this is a
# CUDA build that found no device; silently in a CPU-only build)
DEVICES = {"auto": _ffi.LLMRT_DEVICE_CUDA, "cpu": _ffi.LLMRT_DEVICE_CPU,
           "cuda": _ffi.LLMRT_DEVICE_CUDA}


class ModelHandle:
    """Owns one llmrt_model. ``ptr`` raises once the model is closed, so that objects that keep a
    reference (a Tokenizer) fail cleanly instead of touching freed memory."""

    def __init__(self, path: str | os.PathLike, *, load_format: str = "auto", threads: int = 0,
                 random_seed: int = 0, tensor_parallel: int = 1, device: str = "auto",
                 kv_cache_dtype: str = "auto", cpu_pin_threads: bool = False):
        self.lib = _ffi.load_library()
        self._ptr: int | None = None
        self._lock = threading.Lock()
        path = os.fspath(path)
        if not isinstance(path, str) or not path:
            raise InvalidArgument(f"model must be a non-empty path, got {path!r}")
        if "\x00" in path:
            raise InvalidArgument("model path contains a NUL character")
        if load_format not in LOAD_FORMATS:
            raise InvalidArgument(
                f"load_format must be one of {', '.join(LOAD_FORMATS)}, got {load_format!r}"
            )
        if device not in DEVICES:
            raise InvalidArgument(f'device must be "auto", "cpu" or "cuda", got {device!r}')
        if kv_cache_dtype not in KV_CACHE_DTYPES:
            raise InvalidArgument(
                f"kv_cache_dtype must be one of {', '.join(KV_CACHE_DTYPES)}, got {kv_cache_dtype!r}"
            )
        self.path = path
        params = _ffi.by_value("llmrt_model_default_params")
        params.struct_size = ctypes.sizeof(_ffi.llmrt_model_params)
        params.load_format = LOAD_FORMATS[load_format]
        params.device = DEVICES[device]
        params.n_threads = to_int32("threads", threads)
        params.random_seed = to_int("random_seed", random_seed, 0, 2**64 - 1)
        params.tensor_parallel = to_int32("tensor_parallel_size", tensor_parallel)
        params.kv_cache_dtype = KV_CACHE_DTYPES[kv_cache_dtype]
        if not isinstance(cpu_pin_threads, bool):
            raise InvalidArgument(f"cpu_pin_threads must be True or False, got {cpu_pin_threads!r}")
        params.cpu_pin_threads = cpu_pin_threads
        out = _ffi.llmrt_model_p()
        status = self.lib.llmrt_model_load(os.fsencode(path), ctypes.byref(params), ctypes.byref(out))
        if status == _ffi.LLMRT_ERR_UNSUPPORTED and device == "auto":
            # as the command line: no CUDA in this build, or no usable device -> the CPU, said once
            raw = self.lib.llmrt_last_error() or b""
            why = raw.decode("utf-8", "replace")
            marker = "LLMRT_DEVICE_CUDA: "
            if marker in why:
                # a CPU-only build runs on the CPU as a matter of course; a CUDA build that finds
                # no usable device says so
                if "no CUDA backend" not in why:
                    warnings.warn("llmrt: running on the CPU (CUDA unavailable: "
                                  f"{why[why.index(marker) + len(marker):]})", RuntimeWarning,
                                  stacklevel=3)
                params.device = _ffi.LLMRT_DEVICE_CPU
                status = self.lib.llmrt_model_load(os.fsencode(path), ctypes.byref(params),
                                                   ctypes.byref(out))
        check(status)
        self.device = "cuda" if params.device == _ffi.LLMRT_DEVICE_CUDA else "cpu"
        self._ptr = out.value

    @property
    def ptr(self) -> int:
        p = self._ptr
        if p is None:
            raise LLMRTError("the model is closed", Status.INVALID_ARG)
        return p

    @property
    def closed(self) -> bool:
        return self._ptr is None

    def close(self) -> None:
        with self._lock:
            p, self._ptr = self._ptr, None
        if p is not None:
            self.lib.llmrt_model_destroy(p)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def info(self) -> _ffi.llmrt_model_info:
        info = _ffi.llmrt_model_info()
        info.struct_size = ctypes.sizeof(info)
        check(self.lib.llmrt_model_get_info(self.ptr, ctypes.byref(info)))
        return info


class TextTokenizerHandle:
    """Owns one llmrt_text_tokenizer (a tokenizer loaded without a model: tokenizer.json, a
    directory holding it, or a GGUF file's vocabulary)."""

    def __init__(self, path: str | os.PathLike, config_path: str | os.PathLike | None = None):
        self.lib = _ffi.load_library()
        self._ptr: int | None = None
        self._lock = threading.Lock()
        path = os.fspath(path)
        if not isinstance(path, str) or not path or "\x00" in path:
            raise InvalidArgument(f"path must be a non-empty path without NUL, got {path!r}")
        cfg = None
        if config_path is not None:
            cfg = os.fspath(config_path)
            if not isinstance(cfg, str) or not cfg or "\x00" in cfg:
                raise InvalidArgument(f"config_path must be a non-empty path, got {cfg!r}")
        out = ctypes.c_void_p()
        check(self.lib.llmrt_text_tokenizer_load(path.encode(), cfg.encode() if cfg else None,
                                                 ctypes.byref(out)))
        self._ptr = out.value
        self.path = path

    @property
    def ptr(self) -> int:
        p = self._ptr
        if p is None:
            raise LLMRTError("the tokenizer is closed", Status.INVALID_ARG)
        return p

    def close(self) -> None:
        with self._lock:
            p, self._ptr = self._ptr, None
        if p is not None:
            self.lib.llmrt_text_tokenizer_destroy(p)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


# ------------------------------------------------------------------------------------------------
# conversions
# ------------------------------------------------------------------------------------------------


def to_int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidArgument(f"{name} must be an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise InvalidArgument(f"{name} = {value} is out of range [{lo}, {hi}]")
    return value


def to_int32(name: str, value: Any) -> int:
    return to_int(name, value, -(2**31), 2**31 - 1)


def to_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    raise InvalidArgument(f"{name} must be a bool, got {type(value).__name__} {value!r}")


def token_array(name: str, ids: Any) -> "ctypes.Array":
    """A ctypes int32 array from a sequence of ints (or a 1-D integer numpy array)."""
    if isinstance(ids, (str, bytes, bytearray)) or not isinstance(ids, Iterable):
        raise InvalidArgument(f"{name} must be a sequence of int token ids, got {type(ids).__name__}")
    if isinstance(ids, np.ndarray):
        if ids.ndim != 1 or ids.dtype.kind not in "iu":
            raise InvalidArgument(f"{name} must be a 1-D integer array, got {ids.dtype}{ids.shape}")
        if ids.size and (ids.min() < -(2**31) or ids.max() > 2**31 - 1):
            raise InvalidArgument(f"{name} holds ids outside int32")
        a = np.ascontiguousarray(ids, dtype=np.int32)
        return (ctypes.c_int32 * a.size).from_buffer_copy(a.tobytes())
    vals = [to_int32(f"{name}[{i}]", t) for i, t in enumerate(ids)]
    return (ctypes.c_int32 * len(vals))(*vals)


def messages_array(messages: Any) -> tuple:
    """(llmrt_chat_message array, n, keepalive) from a list of {"role", "content"} mappings."""
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
        raise InvalidArgument(
            'messages must be a list of {"role": ..., "content": ...} dicts, got '
            f"{type(messages).__name__}"
        )
    if not messages:
        raise InvalidArgument("messages is empty")
    keep = []
    arr = (_ffi.llmrt_chat_message * len(messages))()
    for i, m in enumerate(messages):
        if isinstance(m, Mapping):
            role, content = m.get("role"), m.get("content")
        else:
            role, content = getattr(m, "role", None), getattr(m, "content", None)
        for key, val in (("role", role), ("content", content)):
            if not isinstance(val, str):
                raise InvalidArgument(
                    f"messages[{i}]['{key}'] must be a str, got {type(val).__name__}"
                )
            if "\x00" in val:
                raise InvalidArgument(f"messages[{i}]['{key}'] contains a NUL character")
        rb, cb = role.encode("utf-8"), content.encode("utf-8")
        keep.extend((rb, cb))
        arr[i].role = rb
        arr[i].content = cb
    return arr, len(messages), keep


def chat_json(messages: Any, tools: Any) -> Optional[tuple]:
    """(messages_json, tools_json or None) for llmrt_chat_apply_template_json when the
    conversation needs it: tools, or a message that is more than a string role and a string
    content (content-part lists, None content, tool_calls, tool_call_id, name, ...); None when
    messages_array's {"role", "content"} form says it all. The messages go to the template as
    they are, as HF apply_chat_template(messages, tools=tools) passes them."""
    if tools is not None:
        if isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Sequence):
            raise InvalidArgument(f"tools must be a list of tool dicts, got {type(tools).__name__}")
        for i, t in enumerate(tools):
            if not isinstance(t, Mapping):
                raise InvalidArgument(f"tools[{i}] must be a dict (a JSON schema), got "
                                      f"{type(t).__name__}")
    simple = isinstance(messages, Sequence) and not isinstance(messages, (str, bytes)) and all(
        isinstance(m, Mapping) and set(m) <= {"role", "content"}
        and isinstance(m.get("content"), str) for m in messages)
    if tools is None and simple:
        return None
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
        raise InvalidArgument(
            f"messages must be a list of message dicts, got {type(messages).__name__}")
    if not messages:
        raise InvalidArgument("messages is empty")
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            raise InvalidArgument(f"messages[{i}] must be a dict, got {type(m).__name__}")
    try:
        mj = json.dumps(list(messages), ensure_ascii=False, allow_nan=False).encode("utf-8")
        tj = None if tools is None else json.dumps(list(tools), ensure_ascii=False,
                                                   allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as e:  # UnicodeEncodeError (lone surrogates) included
        raise InvalidArgument(f"messages and tools must be JSON-serialisable text: {e}") from None
    return mj, tj


def template_name(name: Any) -> bytes | None:
    if name is None:
        return None
    if not isinstance(name, str) or "\x00" in name:
        raise InvalidArgument(f"chat_template must be a template family name (str), got {name!r}")
    return name.encode("utf-8")


def sized_text_call(fn, first_capacity: int) -> bytes:
    """Runs a C call with the size protocol (pass capacity, get the size needed in *len)."""
    cap = max(int(first_capacity), 16)
    for _ in range(3):
        buf = ctypes.create_string_buffer(cap)
        n = ctypes.c_size_t(0)
        status = fn(buf, cap, ctypes.byref(n))
        if status == Status.BUFFER_TOO_SMALL:
            cap = n.value + 1
            continue
        check(status)
        return ctypes.string_at(buf, n.value)
    check(Status.BUFFER_TOO_SMALL)
    raise AssertionError("unreachable")
