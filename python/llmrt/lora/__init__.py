"""LoRA adapters served per request (vLLM's ``vllm.lora``): ``from llmrt.lora import LoRARequest``
or ``from llmrt.lora.request import LoRARequest``."""

from .request import LoRARequest

__all__ = ["LoRARequest"]
