"""ctypes declarations of the llmrt C API (include/llmrt.h), and finding the shared library.

Every struct here mirrors its C counterpart field for field, in the header's order and with the
header's types; ``struct_size`` is always set from ``ctypes.sizeof``. This is the only module that
touches ctypes declarations; the user-facing API lives in llm.py, tokenizer.py, sampling.py and
errors.py.

The shared library is looked up, in order:
  1. the file named by the environment variable ``LLMRT_LIBRARY`` (an override);
  2. ``libllmrt.so`` next to this file: the one a wheel bundles (``pip install .``);
  3. ``build/libllmrt.so`` in the nearest directory above this package that has one (a source
     checkout), then above the current working directory;
  4. ``libllmrt.so`` on the dynamic loader's search path.
"""

from __future__ import annotations

import ctypes
import os
import threading
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_bool,
    c_char,
    c_char_p,
    c_double,
    c_float,
    c_int,
    c_int32,
    c_int64,
    c_size_t,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path

# The header version these declarations mirror (LLMRT_VERSION_MAJOR / _MINOR).
HEADER_VERSION_MAJOR = 0
HEADER_VERSION_MINOR = 1

LIBRARY_NAME = "libllmrt.so"

# ------------------------------------------------------------------------------------------------
# enums (C enums are int-sized on every ABI llmrt targets)
# ------------------------------------------------------------------------------------------------

c_enum = c_int

LLMRT_OK = 0
LLMRT_ERR_INVALID_ARG = 1
LLMRT_ERR_IO = 2
LLMRT_ERR_FORMAT = 3
LLMRT_ERR_UNSUPPORTED = 4
LLMRT_ERR_OUT_OF_MEMORY = 5
LLMRT_ERR_MODEL_MISMATCH = 6
LLMRT_ERR_NO_KV_SPACE = 7
LLMRT_ERR_BACKEND = 8
LLMRT_ERR_DEAD = 9
LLMRT_ERR_ABORTED = 10
LLMRT_ERR_INTERNAL = 11
LLMRT_ERR_BUFFER_TOO_SMALL = 12
LLMRT_ERR_NOT_FOUND = 13

LLMRT_LOAD_AUTO = 0
LLMRT_LOAD_HF = 1
LLMRT_LOAD_GGUF = 2
LLMRT_LOAD_RANDOM = 3

LLMRT_DEVICE_CPU = 0
LLMRT_DEVICE_CUDA = 1

LLMRT_ACTIVATION_AUTO = 0
LLMRT_ACTIVATION_F16 = 1
LLMRT_ACTIVATION_BF16 = 2
LLMRT_ACTIVATION_F32 = 3

LLMRT_KV_CACHE_AUTO = 0
LLMRT_KV_CACHE_INT8 = 1
LLMRT_KV_CACHE_FP8_E4M3 = 2
LLMRT_KV_CACHE_BF16 = 3
LLMRT_KV_CACHE_FP32 = 4

LLMRT_CPU_ISA_AUTO = 0
LLMRT_CPU_ISA_AVX512 = 1
LLMRT_CPU_ISA_AVX2 = 2
LLMRT_CPU_ISA_GENERIC = 3

LLMRT_LOG_ERROR = 0
LLMRT_LOG_WARN = 1
LLMRT_LOG_INFO = 2
LLMRT_LOG_DEBUG = 3

LLMRT_KV_PREEMPT = 0
LLMRT_KV_RESERVE = 1

LLMRT_FINISH_NONE = 0
LLMRT_FINISH_STOP = 1
LLMRT_FINISH_LENGTH = 2
LLMRT_FINISH_ABORT = 3
LLMRT_FINISH_ERROR = 4

LLMRT_HISTOGRAM_BUCKETS = 16

# ------------------------------------------------------------------------------------------------
# structs
# ------------------------------------------------------------------------------------------------


class llmrt_model_params(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("load_format", c_enum),
        ("device", c_enum),
        ("n_threads", c_int32),
        ("random_seed", c_uint64),
        ("tensor_parallel", c_int32),
        ("tp_timeout_s", c_double),
        ("tp_spin_us", c_int32),
        ("activation_dtype", c_enum),
        ("cpu_isa", c_enum),
        ("dequantize_weights", c_bool),
        ("allow_fallback", c_bool),
        ("cpu_matmul", c_enum),
        ("lora_paths", POINTER(c_char_p)),
        ("lora_scales", POINTER(c_float)),
        ("n_loras", c_int32),
        ("enforce_eager", c_bool),
        ("kv_cache_dtype", c_enum),
        ("cpu_pin_threads", c_bool),
    ]


class llmrt_model_info(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("architecture", c_char * 32),
        ("weight_format", c_char * 16),
        ("vocab_size", c_int32),
        ("hidden_size", c_int32),
        ("intermediate_size", c_int32),
        ("n_layers", c_int32),
        ("n_heads", c_int32),
        ("n_kv_heads", c_int32),
        ("head_dim", c_int32),
        ("max_context", c_int32),
        ("rope_theta", c_float),
        ("rms_norm_eps", c_float),
        ("bos_token_id", c_int32),
        ("n_eos_token_ids", c_int32),
        ("eos_token_ids", c_int32 * 8),
        ("n_params", c_int64),
        ("weight_bytes", c_int64),
        ("tie_word_embeddings", c_bool),
        ("backend", c_char * 16),
        ("device_name", c_char * 64),
        ("kv_elem_bytes", c_int32),
        ("tp_size", c_int32),
        ("tp_rank", c_int32),
        ("tp_comm", c_char * 8),
        ("n_fallbacks", c_int32),
        ("fallback", c_char * 128),
        ("n_lora_merged", c_int32),
        ("n_lora_unmerged", c_int32),
        ("cuda_graphs", c_bool),
        ("cuda_graph_replays", c_int64),
    ]


class llmrt_kv_cache_params(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("block_size", c_int32),
        ("n_blocks", c_int32),
        ("max_tokens", c_int64),
        ("max_bytes", c_int64),
    ]


class llmrt_batch(Structure):
    _fields_ = [
        ("n_tokens", c_int32),
        ("tokens", POINTER(c_int32)),
        ("positions", POINTER(c_int32)),
        ("seq_ids", POINTER(c_int32)),
        ("n_seqs", c_int32),
        ("max_blocks_per_seq", c_int32),
        ("block_tables", POINTER(c_int32)),
        ("n_outputs", c_int32),
        ("output_tokens", POINTER(c_int32)),
        ("lora_slots", POINTER(c_int32)),
        ("lora_scales", POINTER(c_float)),
    ]


class llmrt_chat_message(Structure):
    _fields_ = [
        ("role", c_char_p),
        ("content", c_char_p),
    ]


class llmrt_sampling_params(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("temperature", c_float),
        ("top_p", c_float),
        ("top_k", c_int32),
        ("min_p", c_float),
        ("repetition_penalty", c_float),
        ("presence_penalty", c_float),
        ("frequency_penalty", c_float),
        ("max_tokens", c_int32),
        ("min_tokens", c_int32),
        ("seed", c_uint64),
        ("n_logprobs", c_int32),
        ("stop_token_ids", POINTER(c_int32)),
        ("n_stop_token_ids", c_int32),
        ("stop", POINTER(c_char_p)),
        ("n_stop", c_int32),
        ("has_seed", c_bool),
        ("ignore_eos", c_bool),
        ("skip_special_tokens", c_bool),
        ("n", c_int32),
        ("n_prompt_logprobs", c_int32),
        ("prompt_logprobs", c_bool),
        ("logit_bias_ids", POINTER(c_int32)),
        ("logit_bias", POINTER(c_float)),
        ("n_logit_bias", c_int32),
    ]


class llmrt_engine_params(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("block_size", c_int32),
        ("kv_tokens", c_int64),
        ("kv_bytes", c_int64),
        ("max_batched_tokens", c_int32),
        ("max_seqs", c_int32),
        ("policy", c_enum),
        ("prefix_caching", c_bool),
        ("max_loras", c_int32),
        ("max_lora_bytes", c_int64),
    ]


class llmrt_prompt(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("tokens", POINTER(c_int32)),
        ("n_tokens", c_int32),
        ("text", c_char_p),
        ("text_len", c_size_t),
        ("messages", POINTER(llmrt_chat_message)),
        ("n_messages", c_int32),
        ("chat_template", c_char_p),
        ("priority", c_int32),
        ("user_data", c_void_p),
        ("lora_adapter", c_char_p),
        ("lora_scale", c_float),
        ("messages_json", c_char_p),
        ("tools_json", c_char_p),
    ]


class llmrt_lora_info(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("name", c_char * 128),
        ("path", c_char * 1024),
        ("max_rank", c_int32),
        ("n_modules", c_int32),
        ("bytes", c_uint64),
        ("resident", c_bool),
        ("n_requests", c_uint64),
        ("n_generated", c_uint64),
        ("n_loads", c_uint64),
    ]


class llmrt_output(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("request_id", c_uint64),
        ("user_data", c_void_p),
        ("tokens", POINTER(c_int32)),
        ("n_tokens", c_int32),
        # const char *: declared as POINTER(c_char), not c_char_p, so that ctypes does not stop
        # at an embedded NUL; read with ctypes.string_at(text, text_len).
        ("text", POINTER(c_char)),
        ("text_len", c_size_t),
        ("logprobs", POINTER(c_float)),
        ("top_ids", POINTER(c_int32)),
        ("top_logprobs", POINTER(c_float)),
        ("n_top", c_int32),
        ("finish", c_enum),
        ("status", c_enum),
        ("error_message", c_char_p),
        ("n_prompt_tokens", c_int32),
        ("n_cached_tokens", c_int32),
        ("n_generated", c_int32),
        ("n_preemptions", c_int32),
        ("t_submit", c_double),
        ("t_first_token", c_double),
        ("t_now", c_double),
        ("index", c_int32),
        ("prompt_token_ids", POINTER(c_int32)),
        ("prompt_logprobs", POINTER(c_float)),
        ("prompt_top_ids", POINTER(c_int32)),
        ("prompt_top_logprobs", POINTER(c_float)),
        ("n_prompt_logprobs", c_int32),
        ("n_prompt_top", c_int32),
    ]


class llmrt_histogram(Structure):
    _fields_ = [
        ("upper", c_double * LLMRT_HISTOGRAM_BUCKETS),
        ("count", c_int64 * LLMRT_HISTOGRAM_BUCKETS),
        ("sum", c_double),
        ("n", c_int64),
    ]


class llmrt_engine_metrics(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("n_waiting", c_int32),
        ("n_running", c_int32),
        ("kv_blocks_total", c_int32),
        ("kv_blocks_used", c_int32),
        ("kv_blocks_cached", c_int32),
        ("kv_blocks_free", c_int32),
        ("prefix_cache_queries", c_int64),
        ("prefix_cache_hits", c_int64),
        ("prefix_cache_hit_rate", c_double),
        ("preemptions", c_int64),
        ("prompt_tokens", c_int64),
        ("generation_tokens", c_int64),
        ("requests_finished", c_int64),
        ("requests_aborted", c_int64),
        ("steps", c_int64),
        ("ttft", llmrt_histogram),
        ("itl", llmrt_histogram),
        ("e2e", llmrt_histogram),
        ("healthy", c_bool),
        ("tpot", llmrt_histogram),
        ("queue_time", llmrt_histogram),
    ]


class llmrt_generate_result(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("finish", c_enum),
        ("n_prompt_tokens", c_int32),
        ("n_generated", c_int32),
        ("ttft_s", c_double),
        ("total_s", c_double),
    ]


# Every struct mirrored here, by C name (the layout test compares each with the C compiler's view).
STRUCTS = {
    cls.__name__: cls
    for cls in (
        llmrt_model_params,
        llmrt_model_info,
        llmrt_kv_cache_params,
        llmrt_batch,
        llmrt_chat_message,
        llmrt_sampling_params,
        llmrt_engine_params,
        llmrt_prompt,
        llmrt_lora_info,
        llmrt_output,
        llmrt_histogram,
        llmrt_engine_metrics,
        llmrt_generate_result,
    )
}

# Opaque handles are plain void pointers on the Python side.
llmrt_model_p = c_void_p
llmrt_kv_cache_p = c_void_p
llmrt_engine_p = c_void_p
llmrt_text_tokenizer_p = c_void_p

llmrt_output_callback = CFUNCTYPE(None, POINTER(llmrt_output), c_void_p)
llmrt_text_callback = CFUNCTYPE(None, POINTER(c_char), c_size_t, c_void_p)
llmrt_log_callback = CFUNCTYPE(None, c_enum, c_char_p, c_void_p)

# name: (restype, argtypes)
_FUNCTIONS = {
    "llmrt_version": (c_int32, []),
    "llmrt_status_str": (c_char_p, [c_enum]),
    "llmrt_last_error": (c_char_p, []),
    "llmrt_log_set": (None, [c_enum, llmrt_log_callback, c_void_p]),
    # model
    "llmrt_model_default_params": (llmrt_model_params, []),
    "llmrt_model_load": (c_enum, [c_char_p, POINTER(llmrt_model_params), POINTER(llmrt_model_p)]),
    "llmrt_model_destroy": (None, [llmrt_model_p]),
    "llmrt_model_get_info": (c_enum, [llmrt_model_p, POINTER(llmrt_model_info)]),
    # kv cache + forward
    "llmrt_kv_cache_default_params": (llmrt_kv_cache_params, []),
    "llmrt_kv_cache_create": (
        c_enum,
        [llmrt_model_p, POINTER(llmrt_kv_cache_params), POINTER(llmrt_kv_cache_p)],
    ),
    "llmrt_kv_cache_destroy": (None, [llmrt_kv_cache_p]),
    "llmrt_kv_cache_n_blocks": (c_int32, [llmrt_kv_cache_p]),
    "llmrt_kv_cache_block_size": (c_int32, [llmrt_kv_cache_p]),
    "llmrt_kv_cache_bytes_per_token": (c_int64, [llmrt_kv_cache_p]),
    "llmrt_forward": (c_enum, [llmrt_kv_cache_p, POINTER(llmrt_batch), POINTER(c_float), c_int64]),
    # tokenizer + chat
    "llmrt_tokenize": (
        c_enum,
        [llmrt_model_p, c_char_p, c_size_t, c_bool, c_bool, POINTER(c_int32), c_int32,
         POINTER(c_int32)],
    ),
    "llmrt_detokenize": (
        c_enum,
        [llmrt_model_p, POINTER(c_int32), c_int32, c_bool, POINTER(c_char), c_size_t,
         POINTER(c_size_t)],
    ),
    "llmrt_token_piece": (c_char_p, [llmrt_model_p, c_int32]),
    "llmrt_chat_apply_template": (
        c_enum,
        [llmrt_model_p, c_char_p, POINTER(llmrt_chat_message), c_int32, c_bool, POINTER(c_char),
         c_size_t, POINTER(c_size_t)],
    ),
    "llmrt_chat_apply_template_json": (
        c_enum,
        [llmrt_model_p, c_char_p, c_char_p, c_char_p, c_bool, POINTER(c_char), c_size_t,
         POINTER(c_size_t)],
    ),
    # standalone tokenizer (llmrt_experimental.h)
    "llmrt_text_tokenizer_load": (c_enum, [c_char_p, c_char_p, POINTER(llmrt_text_tokenizer_p)]),
    "llmrt_text_tokenizer_destroy": (None, [llmrt_text_tokenizer_p]),
    "llmrt_text_tokenizer_vocab_size": (c_int32, [llmrt_text_tokenizer_p]),
    "llmrt_text_tokenizer_bos": (c_int32, [llmrt_text_tokenizer_p]),
    "llmrt_text_tokenizer_eos": (c_int32, [llmrt_text_tokenizer_p]),
    "llmrt_text_tokenizer_encode": (
        c_enum,
        [llmrt_text_tokenizer_p, c_char_p, c_size_t, c_bool, c_bool, POINTER(c_int32), c_int32,
         POINTER(c_int32)],
    ),
    "llmrt_text_tokenizer_decode": (
        c_enum,
        [llmrt_text_tokenizer_p, POINTER(c_int32), c_int32, c_bool, POINTER(c_char), c_size_t,
         POINTER(c_size_t)],
    ),
    "llmrt_text_tokenizer_token_piece": (c_char_p, [llmrt_text_tokenizer_p, c_int32]),
    "llmrt_text_tokenizer_chat_template": (c_char_p, [llmrt_text_tokenizer_p]),
    "llmrt_text_tokenizer_apply_chat_template": (
        c_enum,
        [llmrt_text_tokenizer_p, c_char_p, POINTER(llmrt_chat_message), c_int32, c_bool,
         POINTER(c_char), c_size_t, POINTER(c_size_t)],
    ),
    "llmrt_text_tokenizer_apply_chat_template_json": (
        c_enum,
        [llmrt_text_tokenizer_p, c_char_p, c_char_p, c_char_p, c_bool, POINTER(c_char), c_size_t,
         POINTER(c_size_t)],
    ),
    # sampling
    "llmrt_sampling_default_params": (llmrt_sampling_params, []),
    "llmrt_model_sampling_defaults": (llmrt_sampling_params, [llmrt_model_p]),
    # engine
    "llmrt_engine_default_params": (llmrt_engine_params, []),
    "llmrt_engine_create": (
        c_enum, [llmrt_model_p, POINTER(llmrt_engine_params), POINTER(llmrt_engine_p)]
    ),
    "llmrt_engine_destroy": (None, [llmrt_engine_p]),
    "llmrt_engine_submit": (
        c_enum,
        [llmrt_engine_p, POINTER(llmrt_prompt), POINTER(llmrt_sampling_params), POINTER(c_uint64)],
    ),
    "llmrt_engine_abort": (c_enum, [llmrt_engine_p, c_uint64]),
    "llmrt_engine_lora_load": (c_enum, [llmrt_engine_p, c_char_p, c_char_p]),
    "llmrt_engine_lora_unload": (c_enum, [llmrt_engine_p, c_char_p]),
    "llmrt_engine_lora_list": (c_int32, [llmrt_engine_p, POINTER(llmrt_lora_info), c_int32]),
    "llmrt_engine_step": (
        c_enum, [llmrt_engine_p, POINTER(POINTER(llmrt_output)), POINTER(c_int32)]
    ),
    "llmrt_engine_pending": (c_int32, [llmrt_engine_p]),
    "llmrt_engine_start_loop": (c_enum, [llmrt_engine_p, llmrt_output_callback, c_void_p]),
    "llmrt_engine_stop_loop": (c_enum, [llmrt_engine_p]),
    "llmrt_engine_get_metrics": (c_enum, [llmrt_engine_p, POINTER(llmrt_engine_metrics)]),
    "llmrt_engine_metrics_prometheus": (
        c_enum, [llmrt_engine_p, POINTER(c_char), c_size_t, POINTER(c_size_t)]
    ),
    "llmrt_generate": (
        c_enum,
        [llmrt_engine_p, POINTER(llmrt_prompt), POINTER(llmrt_sampling_params),
         llmrt_text_callback, c_void_p, POINTER(llmrt_generate_result)],
    ),
}

# Functions returning a params struct by value, whose struct_size tells the library's sizeof.
_DEFAULT_PARAM_FUNCTIONS = {
    "llmrt_model_default_params": llmrt_model_params,
    "llmrt_kv_cache_default_params": llmrt_kv_cache_params,
    "llmrt_sampling_default_params": llmrt_sampling_params,
    "llmrt_engine_default_params": llmrt_engine_params,
    "llmrt_model_sampling_defaults": llmrt_sampling_params,
}

# A struct returned by value is written by the callee into a caller-allocated buffer (every
# params struct is larger than 16 bytes, so the x86-64 and AArch64 ABIs both return it in
# memory). A newer library whose struct grew would write past a buffer of our size, so these
# functions are declared to return the struct followed by spare room; the size check at load
# then reads struct_size safely. Call them through by_value().
_RETURN_RESERVE = 1024


def _padded(cls):
    return type(cls.__name__ + "_ret", (Structure,),
                {"_fields_": [("value", cls), ("_reserve", ctypes.c_uint8 * _RETURN_RESERVE)]})


_PADDED = {name: _padded(cls) for name, cls in _DEFAULT_PARAM_FUNCTIONS.items()}
for _name, _ret in _PADDED.items():
    _FUNCTIONS[_name] = (_ret, _FUNCTIONS[_name][1])


def by_value(name: str, *args):
    """Calls one of the by-value params functions; returns a copy of the mirrored struct."""
    ret = getattr(load_library(), name)(*args)
    return _DEFAULT_PARAM_FUNCTIONS[name].from_buffer_copy(ret.value)


class LibraryNotFound(OSError):
    """The llmrt shared library could not be found or loaded."""


def _walk_up_for_build(start: Path) -> Path | None:
    try:
        start = start.resolve()
    except OSError:
        return None
    for d in (start, *start.parents):
        cand = d / "build" / LIBRARY_NAME
        if cand.is_file():
            return cand
    return None


def candidate_paths() -> list[str]:
    """Where the library is looked for, in order (see the module docstring)."""
    env = os.environ.get("LLMRT_LIBRARY")
    if env:
        return [env]
    out = []
    bundled = Path(__file__).parent / LIBRARY_NAME
    if bundled.is_file():
        out.append(str(bundled))
    for start in (Path(__file__).parent, Path.cwd()):
        p = _walk_up_for_build(start)
        if p is not None and str(p) not in out:
            out.append(str(p))
    out.append(LIBRARY_NAME)  # the dynamic loader's search path
    return out


def _declare(lib: ctypes.CDLL) -> None:
    for name, (restype, argtypes) in _FUNCTIONS.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes


def _check_abi(lib: ctypes.CDLL, path: str) -> None:
    version = lib.llmrt_version()
    major, minor = version // 1000000, (version // 1000) % 1000
    if major != HEADER_VERSION_MAJOR or minor < HEADER_VERSION_MINOR:
        raise LibraryNotFound(
            f"{path}: library version {major}.{minor} is not compatible with these bindings "
            f"(written for {HEADER_VERSION_MAJOR}.{HEADER_VERSION_MINOR})"
        )
    # A newer library may append fields; ours must never be larger than what the library returns
    # by value, nor (for the same minor version) differ from it.
    for fname, cls in _DEFAULT_PARAM_FUNCTIONS.items():
        if fname == "llmrt_model_sampling_defaults":
            continue  # needs a model; same struct as llmrt_sampling_default_params
        got = getattr(lib, fname)().value.struct_size
        ours = ctypes.sizeof(cls)
        if got < ours or (minor == HEADER_VERSION_MINOR and got != ours):
            raise LibraryNotFound(
                f"{path}: sizeof({cls.__name__}) is {got} in the library but {ours} in the Python "
                f"bindings; the bindings and the library come from different versions"
            )


_lib: ctypes.CDLL | None = None
_lib_path: str | None = None
_lib_lock = threading.Lock()


def load_library() -> ctypes.CDLL:
    """The loaded, declared library (loaded once per process)."""
    global _lib, _lib_path
    if _lib is not None:
        return _lib
    with _lib_lock:
        if _lib is not None:
            return _lib
        errors = []
        for path in candidate_paths():
            try:
                lib = ctypes.CDLL(path)
            except OSError as e:
                errors.append(f"{path}: {e}")
                continue
            try:
                _declare(lib)
            except AttributeError as e:
                errors.append(f"{path}: missing symbol ({e})")
                continue
            _check_abi(lib, path)
            _lib, _lib_path = lib, path
            return lib
        raise LibraryNotFound(
            "cannot load the llmrt shared library; build it (cmake --build build --target llmrt) "
            "or set LLMRT_LIBRARY to the path of libllmrt.so. Tried: " + "; ".join(errors)
        )


def library_path() -> str:
    """The path the library was loaded from."""
    load_library()
    assert _lib_path is not None
    return _lib_path
