"""llama-cpp-python's habits on an LLM: ``llm("prompt", max_tokens=...)`` (create_completion) and
``llm.create_chat_completion(messages=...)``, returning OpenAI-shaped dicts (``text_completion``,
``chat.completion``), or with ``stream=True`` an iterator of chunk dicts
(``text_completion`` / ``chat.completion.chunk``, the role first for chat).

The defaults are llama-cpp-python's (0.3): completions temperature 0.8, top_p 0.95, top_k 40,
min_p 0.05, max_tokens 16; chat temperature 0.2, same top_p/top_k/min_p, max_tokens None (until
the context or an end token). repeat_penalty 1.0 (off). A ``seed`` makes sampling repeatable."""

from __future__ import annotations

import itertools
import time
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence, Union

from .errors import InvalidArgument
from .sampling import SamplingParams

if TYPE_CHECKING:
    from .llm import LLM

_ids = itertools.count(1)


def _sampling(max_tokens: Optional[int], temperature: float, top_p: float, top_k: int,
              min_p: float, repeat_penalty: float, presence_penalty: float,
              frequency_penalty: float, stop: Union[str, Sequence[str], None],
              seed: Optional[int]) -> SamplingParams:
    if max_tokens is not None and max_tokens <= 0:
        max_tokens = None  # llama-cpp-python: <= 0 means "until the context ends"
    return SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p,
                          top_k=top_k if top_k > 0 else -1, min_p=min_p,
                          repetition_penalty=repeat_penalty, presence_penalty=presence_penalty,
                          frequency_penalty=frequency_penalty, stop=stop or None, seed=seed)


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def _model_name(llm: "LLM") -> str:
    return llm._model.path if llm._model else "llmrt"


def create_completion(llm: "LLM", prompt: Union[str, Sequence[int]], *, max_tokens: Optional[int] = 16,
                      temperature: float = 0.8, top_p: float = 0.95, top_k: int = 40,
                      min_p: float = 0.05, repeat_penalty: float = 1.0,
                      presence_penalty: float = 0.0, frequency_penalty: float = 0.0,
                      stop: Union[str, Sequence[str], None] = None, seed: Optional[int] = None,
                      echo: bool = False, stream: bool = False) -> Union[dict, Iterator[dict]]:
    """A text completion as llama-cpp-python's ``Llama.create_completion`` returns it."""
    if not isinstance(prompt, str) and not (isinstance(prompt, (list, tuple)) and prompt):
        raise InvalidArgument("prompt must be a string or a non-empty list of token ids")
    sp = _sampling(max_tokens, temperature, top_p, top_k, min_p, repeat_penalty,
                   presence_penalty, frequency_penalty, stop, seed)
    cid, created, model = f"cmpl-{next(_ids)}", int(time.time()), _model_name(llm)
    head = prompt if (echo and isinstance(prompt, str)) else ""
    if stream:
        return _stream_completion(llm, prompt, sp, cid, created, model, head)
    out = llm.generate([list(prompt) if not isinstance(prompt, str) else prompt], sp)[0]
    seq = out.outputs[0]
    return {"id": cid, "object": "text_completion", "created": created, "model": model,
            "choices": [{"text": head + seq.text, "index": 0, "logprobs": None,
                         "finish_reason": seq.finish_reason}],
            "usage": _usage(out.metrics.n_prompt_tokens, len(seq.token_ids))}


def _stream_completion(llm: "LLM", prompt: Any, sp: SamplingParams, cid: str, created: int,
                       model: str, head: str) -> Iterator[dict]:
    def chunk(text: str, finish: Optional[str]) -> dict:
        return {"id": cid, "object": "text_completion", "created": created, "model": model,
                "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}]}

    with llm.stream(list(prompt) if not isinstance(prompt, str) else prompt, sp) as s:
        if head:
            yield chunk(head, None)
        for delta in s:
            if delta.text or delta.finished:
                yield chunk(delta.text, delta.finish_reason if delta.finished else None)


def create_chat_completion(llm: "LLM", messages: Sequence[dict], *, max_tokens: Optional[int] = None,
                           temperature: float = 0.2, top_p: float = 0.95, top_k: int = 40,
                           min_p: float = 0.05, repeat_penalty: float = 1.0,
                           presence_penalty: float = 0.0, frequency_penalty: float = 0.0,
                           stop: Union[str, Sequence[str], None] = None,
                           seed: Optional[int] = None,
                           stream: bool = False,
                           tools: Optional[Sequence[dict]] = None,
                           tool_choice: Union[str, dict, None] = None) -> Union[dict, Iterator[dict]]:
    """A chat completion as llama-cpp-python's ``Llama.create_chat_completion`` returns it (the
    model's own chat template renders the messages, and the tools when given). tool_choice:
    None, "auto" or "none"; a tool call the model writes comes back as text content (there is
    no tool-call parser), so "required" and a named function are refused."""
    if tool_choice is not None and tool_choice not in ("auto", "none"):
        raise InvalidArgument(
            f"tool_choice {tool_choice!r} is not supported: there is no tool-call parser (tool "
            'calls come back as text content); use "auto" or "none"')
    sp = _sampling(max_tokens, temperature, top_p, top_k, min_p, repeat_penalty,
                   presence_penalty, frequency_penalty, stop, seed)
    cid, created, model = f"chatcmpl-{next(_ids)}", int(time.time()), _model_name(llm)
    if stream:
        return _stream_chat(llm, messages, sp, cid, created, model, tools)
    out = llm.chat(list(messages), sp, tools=tools)[0]
    seq = out.outputs[0]
    return {"id": cid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": seq.text},
                         "logprobs": None, "finish_reason": seq.finish_reason}],
            "usage": _usage(out.metrics.n_prompt_tokens, len(seq.token_ids))}


def _stream_chat(llm: "LLM", messages: Sequence[dict], sp: SamplingParams, cid: str, created: int,
                 model: str, tools: Optional[Sequence[dict]] = None) -> Iterator[dict]:
    def chunk(delta: dict, finish: Optional[str]) -> dict:
        return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None,
                             "finish_reason": finish}]}

    with llm.chat_stream(list(messages), sp, tools=tools) as s:
        yield chunk({"role": "assistant"}, None)
        for d in s:
            if d.text:
                yield chunk({"content": d.text}, None)
            if d.finished:
                yield chunk({}, d.finish_reason)
