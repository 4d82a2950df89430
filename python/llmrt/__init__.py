"""llmrt: Python bindings over the llmrt C inference runtime (libllmrt.so, via ctypes).

    from llmrt import LLM, SamplingParams
    llm = LLM("SmolLM2-135M-Instruct.Q4_1.gguf")
    out = llm.generate(["The capital of France is"], SamplingParams(temperature=0, max_tokens=8))
    print(out[0].outputs[0].text)

The shared library is found through $LLMRT_LIBRARY, else build/libllmrt.so above this package or
the current directory, else libllmrt.so on the loader path (see llmrt._ffi).
"""

from .errors import (
    Aborted,
    BackendError,
    BufferTooSmall,
    EngineDead,
    FormatError,
    InternalError,
    InvalidArgument,
    LLMRTError,
    LLMRTIOError,
    ModelMismatch,
    NoKVSpace,
    NotFound,
    OutOfMemory,
    Status,
    Unsupported,
)
from .llm import (
    ENGINE_ARGS,
    LLM,
    CompletionOutput,
    Logprob,
    ModelInfo,
    RequestMetrics,
    RequestOutput,
    RequestStream,
    StreamOutput,
)
from .async_llm import AsyncLLM
from .lora import LoRARequest
from .sampling import SamplingParams
from .tokenizer import Tokenizer

__version__ = "0.1.0"


def library_version() -> str:
    """Version of the loaded libllmrt, "major.minor.patch"."""
    from . import _ffi

    v = _ffi.load_library().llmrt_version()
    return f"{v // 1000000}.{v // 1000 % 1000}.{v % 1000}"


def library_path() -> str:
    """Path of the loaded libllmrt."""
    from . import _ffi

    return _ffi.library_path()


__all__ = [
    "LLM",
    "AsyncLLM",
    "LoRARequest",
    "SamplingParams",
    "Tokenizer",
    "RequestOutput",
    "CompletionOutput",
    "RequestMetrics",
    "StreamOutput",
    "RequestStream",
    "Logprob",
    "ModelInfo",
    "ENGINE_ARGS",
    "Status",
    "LLMRTError",
    "InvalidArgument",
    "LLMRTIOError",
    "FormatError",
    "Unsupported",
    "OutOfMemory",
    "ModelMismatch",
    "NoKVSpace",
    "BackendError",
    "EngineDead",
    "Aborted",
    "InternalError",
    "BufferTooSmall",
    "NotFound",
    "library_version",
    "library_path",
]
