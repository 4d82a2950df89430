"""Tokenizer: the model's own tokenizer and chat template (``LLM.tokenizer``), or a tokenizer
loaded on its own (``Tokenizer.from_file``)."""

from __future__ import annotations

import ctypes
import os
from typing import Any, Optional, Sequence, Union

from ._handle import (ModelHandle, TextTokenizerHandle, chat_json, messages_array, sized_text_call,
                      template_name, to_bool, token_array)
from .errors import InvalidArgument, Status, check


class Tokenizer:
    """Encodes and decodes with the tokenizer loaded with the model (tokenizer.json or the GGUF's
    vocabulary), and renders chat templates. Obtain it as ``LLM(...).tokenizer``, or load one
    without a model with ``Tokenizer.from_file(path)``."""

    def __init__(self, model: Union[ModelHandle, TextTokenizerHandle]):
        self._model = model
        self._lib = model.lib
        lib = self._lib
        # the C calls of this tokenizer: a model's (llmrt.h) or a standalone one's
        # (llmrt_experimental.h); both reach the same tokenizer and chat-template code
        if isinstance(model, TextTokenizerHandle):
            self._vocab_size = int(lib.llmrt_text_tokenizer_vocab_size(model.ptr))
            self._bos = int(lib.llmrt_text_tokenizer_bos(model.ptr))
            eos = int(lib.llmrt_text_tokenizer_eos(model.ptr))
            self._eos = [eos] if eos >= 0 else []
            self._c_encode = lib.llmrt_text_tokenizer_encode
            self._c_decode = lib.llmrt_text_tokenizer_decode
            self._c_piece = lib.llmrt_text_tokenizer_token_piece
            self._c_chat = lib.llmrt_text_tokenizer_apply_chat_template
            self._c_chat_json = lib.llmrt_text_tokenizer_apply_chat_template_json
        else:
            info = model.info()
            self._vocab_size = int(info.vocab_size)
            self._bos = int(info.bos_token_id)
            self._eos = [int(info.eos_token_ids[i]) for i in range(info.n_eos_token_ids)]
            self._c_encode = lib.llmrt_tokenize
            self._c_decode = lib.llmrt_detokenize
            self._c_piece = lib.llmrt_token_piece
            self._c_chat = lib.llmrt_chat_apply_template
            self._c_chat_json = lib.llmrt_chat_apply_template_json

    @classmethod
    def from_file(cls, path: Union[str, os.PathLike], config_path: Union[str, os.PathLike, None] = None
                  ) -> "Tokenizer":
        """A tokenizer without a model: ``path`` is a tokenizer.json, a directory holding one (and
        its tokenizer_config.json, whose chat_template apply_chat_template then uses), or a GGUF
        file (only its tokenizer metadata is read, chat template included). ``config_path``
        names a tokenizer_config.json for the tokenizer.json forms. The ids are those of a model
        loaded with the same files (HF's ``AutoTokenizer.from_pretrained(dir)``)."""
        return cls(TextTokenizerHandle(path, config_path))

    @property
    def chat_template(self) -> Optional[str]:
        """The tokenizer's own Jinja chat template (None when it has none). Standalone
        tokenizers only; a model's template is used by apply_chat_template all the same."""
        if not isinstance(self._model, TextTokenizerHandle):
            return None
        t = self._lib.llmrt_text_tokenizer_chat_template(self._model.ptr)
        return None if t is None else t.decode("utf-8", "replace")

    @property
    def vocab_size(self) -> int:
        """Number of token ids the model takes (its embedding rows)."""
        return self._vocab_size

    def __len__(self) -> int:
        return self._vocab_size

    @property
    def bos_token_id(self) -> Optional[int]:
        return self._bos if self._bos >= 0 else None

    @property
    def eos_token_ids(self) -> list[int]:
        return list(self._eos)

    def encode(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]:
        """Token ids of ``text``. add_special: add BOS/EOS as the tokenizer's post-processor says.
        parse_special: recognise special-token strings such as "<|im_end|>" in the text (never
        for text from users: it lets them forge turn boundaries)."""
        if isinstance(text, str):
            data = text.encode("utf-8", "surrogatepass")
        elif isinstance(text, (bytes, bytearray)):
            data = bytes(text)
        else:
            raise InvalidArgument(f"text must be a str, got {type(text).__name__}")
        add_special = to_bool("add_special", add_special)
        parse_special = to_bool("parse_special", parse_special)
        cap = len(data) + 16
        for _ in range(3):
            ids = (ctypes.c_int32 * cap)()
            n = ctypes.c_int32(0)
            status = self._c_encode(self._model.ptr, data, len(data), add_special, parse_special,
                                    ids, cap, ctypes.byref(n))
            if status == Status.BUFFER_TOO_SMALL:
                cap = n.value
                continue
            check(status)
            return list(ids[: n.value])
        check(Status.BUFFER_TOO_SMALL)
        raise AssertionError("unreachable")

    def decode(self, ids: Sequence[int], skip_special: bool = True) -> str:
        """Text of token ids (invalid UTF-8, e.g. half of a character, becomes U+FFFD)."""
        arr = token_array("ids", ids)
        skip_special = to_bool("skip_special", skip_special)
        n = len(arr)
        raw = sized_text_call(
            lambda buf, cap, ln: self._c_decode(self._model.ptr, arr, n, skip_special, buf, cap,
                                                ln),
            8 * n + 64,
        )
        return raw.decode("utf-8", "replace")

    def token_to_piece(self, token_id: int) -> Optional[str]:
        """The raw vocabulary string of a token (e.g. "Ġworld"), or None when out of range."""
        p = self._c_piece(self._model.ptr, int(token_id))
        return None if p is None else p.decode("utf-8", "replace")

    def apply_chat_template(self, messages: Sequence[Any], add_generation_prompt: bool = True,
                            chat_template: Optional[str] = None,
                            tokenize: bool = False, tools: Optional[Sequence[dict]] = None,
                            ) -> Union[str, list[int]]:
        """Renders ``messages`` with the model's own Jinja chat template as HF
        ``apply_chat_template(messages, tools=tools)`` does: messages are dicts with a "role" and
        any other fields the template reads (content as a str, a list of parts or None;
        tool_calls; tool_call_id; name); tools a list of JSON-schema dicts. ``chat_template``
        names a built-in family instead ("chatml", "llama2", "llama3", "mistral"; role + text
        content only, no tools). With tokenize=True, returns the ids of the rendered text encoded
        with special-token parsing on and no added BOS (as HF does); LLM.chat() instead keeps
        special-token strings inside message contents literal."""
        name = template_name(chat_template)
        agp = to_bool("add_generation_prompt", add_generation_prompt)
        as_json = chat_json(messages, tools)
        if as_json is not None:
            mj, tj = as_json
            raw = sized_text_call(
                lambda buf, cap, ln: self._c_chat_json(self._model.ptr, name, mj, tj, agp, buf,
                                                       cap, ln),
                256 + 2 * (len(mj) + len(tj or b"")),
            )
        else:
            arr, n, keep = messages_array(messages)
            guess = 256 + sum(len(k) for k in keep) * 2
            raw = sized_text_call(
                lambda buf, cap, ln: self._c_chat(self._model.ptr, name, arr, n, agp, buf, cap,
                                                  ln),
                guess,
            )
        text = raw.decode("utf-8", "replace")
        if tokenize:
            return self.encode(text, add_special=False, parse_special=True)
        return text

    # -- Hugging Face conveniences -----------------------------------------------------------------

    @property
    def eos_token_id(self) -> Optional[int]:
        """The first end-of-sequence id (HF's eos_token_id), None when the model has none."""
        return self._eos[0] if self._eos else None

    def __call__(self, text: Union[str, Sequence[str]], add_special_tokens: bool = True) -> dict:
        """HF's ``tokenizer(text)``: {"input_ids": ids, "attention_mask": ones} for one text, or
        lists of them for a list of texts (no padding)."""
        if isinstance(text, (list, tuple)):
            ids = [self.encode(t, add_special=add_special_tokens) for t in text]
            return {"input_ids": ids, "attention_mask": [[1] * len(x) for x in ids]}
        ids = self.encode(text, add_special=add_special_tokens)
        return {"input_ids": ids, "attention_mask": [1] * len(ids)}

    def batch_decode(self, sequences: Sequence[Sequence[int]],
                     skip_special_tokens: bool = True) -> list[str]:
        """HF's batch_decode: decode() of each sequence."""
        return [self.decode(s, skip_special=skip_special_tokens) for s in sequences]

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self._vocab_size})"


__all__ = ["Tokenizer"]
