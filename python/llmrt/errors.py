"""Exceptions: one class per llmrt_status, all derived from LLMRTError.

Every exception carries the C library's message (``llmrt_last_error()`` of the failing call,
which names the file, tensor, key or argument at fault) and the numeric status.
Where a Python built-in exception means the same thing, the class derives from it too, so
``except ValueError`` catches InvalidArgument and ``except OSError`` catches LLMRTIOError.
"""

from __future__ import annotations

import enum


class Status(enum.IntEnum):
    """llmrt_status, value for value."""

    OK = 0
    INVALID_ARG = 1
    IO = 2
    FORMAT = 3
    UNSUPPORTED = 4
    OUT_OF_MEMORY = 5
    MODEL_MISMATCH = 6
    NO_KV_SPACE = 7
    BACKEND = 8
    DEAD = 9
    ABORTED = 10
    INTERNAL = 11
    BUFFER_TOO_SMALL = 12
    NOT_FOUND = 13


class LLMRTError(Exception):
    """An llmrt call failed. ``status`` is the llmrt_status (a Status when known, else the int);
    ``message`` the library's message."""

    status: int = -1

    def __init__(self, message: str, status: int | None = None):
        if status is not None:
            self.status = _as_status(status)
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        name = self.status.name if isinstance(self.status, Status) else str(self.status)
        return f"[{name}] {self.message}" if self.message else f"[{name}]"


class InvalidArgument(LLMRTError, ValueError):
    """LLMRT_ERR_INVALID_ARG: an argument is out of range or missing."""

    status = Status.INVALID_ARG


class LLMRTIOError(LLMRTError, OSError):
    """LLMRT_ERR_IO: a file could not be opened, read or mapped."""

    status = Status.IO

    def __init__(self, message: str, status: int | None = None):
        LLMRTError.__init__(self, message, status)

    def __str__(self) -> str:  # OSError's own __str__ would drop the status name
        return LLMRTError.__str__(self)


class FormatError(LLMRTError):
    """LLMRT_ERR_FORMAT: a file is malformed (bad magic, sizes, offsets, JSON)."""

    status = Status.FORMAT


class Unsupported(LLMRTError):
    """LLMRT_ERR_UNSUPPORTED: valid input llmrt does not handle (architecture, dtype, template)."""

    status = Status.UNSUPPORTED


class OutOfMemory(LLMRTError, MemoryError):
    """LLMRT_ERR_OUT_OF_MEMORY: a host or device allocation failed."""

    status = Status.OUT_OF_MEMORY


class ModelMismatch(LLMRTError):
    """LLMRT_ERR_MODEL_MISMATCH: files disagree (missing tensor, shape != config)."""

    status = Status.MODEL_MISMATCH


class NoKVSpace(LLMRTError):
    """LLMRT_ERR_NO_KV_SPACE: the KV cache cannot hold what was asked."""

    status = Status.NO_KV_SPACE


class BackendError(LLMRTError):
    """LLMRT_ERR_BACKEND: a backend (device, library) call failed."""

    status = Status.BACKEND


class EngineDead(LLMRTError):
    """LLMRT_ERR_DEAD: a sticky fault happened earlier; create a new LLM."""

    status = Status.DEAD


class Aborted(LLMRTError):
    """LLMRT_ERR_ABORTED: the operation was cancelled."""

    status = Status.ABORTED


class InternalError(LLMRTError):
    """LLMRT_ERR_INTERNAL: a bug in llmrt."""

    status = Status.INTERNAL


class BufferTooSmall(LLMRTError):
    """LLMRT_ERR_BUFFER_TOO_SMALL (the bindings size buffers themselves; seen only on a bug)."""

    status = Status.BUFFER_TOO_SMALL


class NotFound(LLMRTError, LookupError):
    """LLMRT_ERR_NOT_FOUND: no such request id / token / template."""

    status = Status.NOT_FOUND


_BY_STATUS: dict[int, type[LLMRTError]] = {
    Status.INVALID_ARG: InvalidArgument,
    Status.IO: LLMRTIOError,
    Status.FORMAT: FormatError,
    Status.UNSUPPORTED: Unsupported,
    Status.OUT_OF_MEMORY: OutOfMemory,
    Status.MODEL_MISMATCH: ModelMismatch,
    Status.NO_KV_SPACE: NoKVSpace,
    Status.BACKEND: BackendError,
    Status.DEAD: EngineDead,
    Status.ABORTED: Aborted,
    Status.INTERNAL: InternalError,
    Status.BUFFER_TOO_SMALL: BufferTooSmall,
    Status.NOT_FOUND: NotFound,
}


def _as_status(status: int) -> int:
    try:
        return Status(status)
    except ValueError:
        return int(status)  # a status added after these bindings were written


def error_for_status(status: int, message: str) -> LLMRTError:
    """The exception for a status (LLMRTError itself for a status these bindings do not know)."""
    cls = _BY_STATUS.get(status, LLMRTError)
    return cls(message, status)


def check(status: int, what: str = "") -> None:
    """Raises the exception for a failed llmrt call, with llmrt_last_error() as its message.

    Call it right after the C call, on the same thread: the message is thread-local in C and
    ctypes runs the call on the calling thread."""
    if status == Status.OK:
        return
    from . import _ffi

    raw = _ffi.load_library().llmrt_last_error()
    message = raw.decode("utf-8", "replace") if raw else ""
    if not message:
        message = what or "llmrt call failed"
    raise error_for_status(status, message)
