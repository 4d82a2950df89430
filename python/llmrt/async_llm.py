"""asyncio over the engine: ``AsyncLLM.generate`` / ``AsyncLLM.chat`` are async iterators of
StreamOutput deltas, for FastAPI-style frontends that serve many requests from one event loop.

One driver thread per AsyncLLM steps the engine while any request submitted through it is
unfinished (LLM._step, which routes every output to its request under the step lock) and wakes
the waiting coroutines with ``loop.call_soon_threadsafe``. Coroutines never block the loop:
submitting is a short C call, waiting is an asyncio.Event. A consumer that stops early (break,
cancellation, an exception) aborts its request, whose KV blocks return to the pool."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any, AsyncIterator, Optional, Sequence, Union

from .errors import LLMRTError
from .llm import LLM, StreamOutput, _Request
from .lora.request import LoRARequest
from .sampling import SamplingParams


class AsyncLLM:
    """``AsyncLLM(model=None, **engine_args)``: the same arguments as LLM(). ``llm`` is the
    underlying LLM (its synchronous calls stay usable; they share the engine)."""

    def __init__(self, model: Union[str, os.PathLike, None] = None, **engine_args: Any):
        self.llm = LLM(model, **engine_args)
        self._cv = threading.Condition()
        self._waiters: dict[int, tuple[_Request, asyncio.AbstractEventLoop, asyncio.Event]] = {}
        self._closing = False
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._drive, name="llmrt-async", daemon=True)
        self._thread.start()

    # -- the driver thread -----------------------------------------------------------------------

    def _has_work(self) -> bool:
        """A request of ours is unfinished, or the engine holds work (e.g. an abort that takes
        effect at the next step and frees the request's KV blocks)."""
        if any(not r.finished for r, _, _ in self._waiters.values()):
            return True
        return self.llm._lib.llmrt_engine_pending(self.llm._engine_ptr()) > 0

    def _drive(self) -> None:
        while True:
            with self._cv:
                while not self._closing and not self._has_work():
                    self._cv.wait()
                if self._closing:
                    return
                watch = [r for r, _, _ in self._waiters.values() if not r.finished]
            try:
                self.llm._step(watch=watch)
            except BaseException as e:  # the engine failed: every waiter sees it
                with self._cv:
                    self._error = e
                    waiters = list(self._waiters.values())
                    self._closing = True
                for _, loop, ev in waiters:
                    loop.call_soon_threadsafe(ev.set)
                return
            with self._cv:
                ready = [(loop, ev) for r, loop, ev in self._waiters.values()
                         if r.queue or r.finished]
            for loop, ev in ready:
                loop.call_soon_threadsafe(ev.set)

    # -- the async API ---------------------------------------------------------------------------

    async def _follow(self, stream: Any) -> AsyncIterator[StreamOutput]:
        req: _Request = stream._req
        loop = asyncio.get_running_loop()
        ev = asyncio.Event()
        with self._cv:
            if self._closing:
                stream.close()
                raise self._error or LLMRTError("the AsyncLLM is closed")
            self._waiters[req.key] = (req, loop, ev)
            self._cv.notify()
        try:
            while True:
                item = req.next_delta()
                while item is not None:
                    yield item
                    item = req.next_delta()
                if req.finished or req.detached:
                    return
                if self._error is not None:
                    raise self._error
                ev.clear()
                if req.queue or req.finished:
                    continue
                await ev.wait()
        finally:
            with self._cv:
                self._waiters.pop(req.key, None)
            if not req.finished:
                stream.close()  # abort: its KV blocks go back to the pool at the next step
                with self._cv:
                    self._cv.notify()

    async def generate(self, prompt: Any, sampling_params: Optional[SamplingParams] = None, *,
                       priority: int = 0,
                       lora_request: Optional[LoRARequest] = None) -> AsyncIterator[StreamOutput]:
        """Streams one prompt (as LLM.stream takes it): StreamOutput deltas, the last with
        finished=True. lora_request: a LoRARequest (the LLM needs enable_lora=True); its first
        use reads the adapter on the calling thread."""
        stream = self.llm.stream(prompt, sampling_params, priority=priority,
                                 lora_request=lora_request)
        async for out in self._follow(stream):
            yield out

    async def chat(self, messages: Sequence[Any], sampling_params: Optional[SamplingParams] = None,
                   *, chat_template: Optional[str] = None, priority: int = 0,
                   lora_request: Optional[LoRARequest] = None,
                   tools: Optional[Sequence[dict]] = None) -> AsyncIterator[StreamOutput]:
        """Streams the reply to one conversation (as LLM.chat_stream)."""
        stream = self.llm.chat_stream(messages, sampling_params, chat_template=chat_template,
                                      priority=priority, lora_request=lora_request, tools=tools)
        async for out in self._follow(stream):
            yield out

    def close(self) -> None:
        """Stops the driver thread and closes the model (abandoned requests are dropped)."""
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        self._thread.join()
        self.llm.close()

    def __enter__(self) -> "AsyncLLM":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = ["AsyncLLM"]
