"""LoRARequest: the LoRA adapter a request runs with (vLLM's ``vllm.lora.request.LoRARequest``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional, Union

from ..errors import InvalidArgument


@dataclass
class LoRARequest:
    """A LoRA adapter for ``LLM.generate(..., lora_request=...)`` and ``LLM.chat``.

    ``lora_name`` names the adapter in the engine (``llmrt_engine_lora_load``: printable ASCII
    without spaces or quotes, < 128 bytes); ``lora_int_id`` is vLLM's positive integer id (kept for
    compatibility; two requests are the same adapter when their names are equal); ``lora_path``
    is a PEFT directory (adapter_config.json + adapter_model.safetensors) or a GGUF adapter. The
    adapter is read on its first use by an LLM and reused by later requests of the same name.
    ``lora_scale`` (an llmrt extension) multiplies the adapter's delta on top of its alpha / r."""

    lora_name: str
    lora_int_id: int
    lora_path: Union[str, os.PathLike] = ""
    base_model_name: Optional[str] = field(default=None)
    lora_scale: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.lora_name, str) or not self.lora_name:
            raise InvalidArgument(f"LoRARequest.lora_name must be a non-empty str, got "
                                  f"{self.lora_name!r}")
        bad = [ch for ch in self.lora_name if ch <= " " or ch > "~" or ch in "\"'\\"]
        if bad or len(self.lora_name.encode()) >= 128:
            raise InvalidArgument(f"LoRARequest.lora_name {self.lora_name!r} must be 1 to 127 "
                                  "printable ASCII characters without spaces, quotes or "
                                  "backslashes")
        if isinstance(self.lora_int_id, bool) or not isinstance(self.lora_int_id, int) \
                or self.lora_int_id < 1:
            raise InvalidArgument(f"LoRARequest.lora_int_id must be an int > 0, got "
                                  f"{self.lora_int_id!r}")
        self.lora_path = os.fspath(self.lora_path)
        if not self.lora_path or "\x00" in self.lora_path:
            raise InvalidArgument(f"LoRARequest({self.lora_name!r}): lora_path must be a "
                                  f"non-empty path, got {self.lora_path!r}")
        scale = float(self.lora_scale)
        if not (-1e4 <= scale <= 1e4) or scale == 0:
            raise InvalidArgument(f"LoRARequest({self.lora_name!r}): lora_scale must be a "
                                  f"non-zero finite number in [-1e4, 1e4], got {self.lora_scale!r}")
        self.lora_scale = scale

    # vLLM's accessors
    @property
    def adapter_id(self) -> int:
        return self.lora_int_id

    @property
    def name(self) -> str:
        return self.lora_name

    @property
    def path(self) -> str:
        return self.lora_path

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LoRARequest) and self.lora_name == other.lora_name

    def __hash__(self) -> int:
        return hash(self.lora_name)


__all__ = ["LoRARequest"]
