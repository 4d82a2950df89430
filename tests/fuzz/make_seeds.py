#!/usr/bin/env python3
"""Writes the small valid seed files of the fuzz corpora (stdlib only; each file < 8 KB).

    python3 tests/fuzz/make_seeds.py   # from the repository root
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def pattern(n):
    return bytes((i * 7 + 1) & 0xFF for i in range(n))


# --- safetensors ------------------------------------------------------------------------------

DTYPE_SIZE = {"BOOL": 1, "U8": 1, "I8": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2, "I32": 4,
              "U32": 4, "F32": 4, "F64": 8, "I64": 8, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1}


def safetensors(tensors, metadata=None, pad=True):
    """tensors: list of (name, dtype, shape); data laid out in order."""
    header, off = {}, 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape in tensors:
        n = DTYPE_SIZE[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + n]}
        off += n
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:  # as the reference writer: spaces up to a multiple of 8
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + pattern(off)


# --- GGUF -------------------------------------------------------------------------------------

T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64, T_F64 = range(13)
SCALAR_FMT = {T_U8: "B", T_I8: "b", T_U16: "H", T_I16: "h", T_U32: "I", T_I32: "i", T_F32: "f",
              T_BOOL: "?", T_U64: "Q", T_I64: "q", T_F64: "d"}
GGML = {"F32": (0, 1, 4), "F16": (1, 1, 2), "Q4_0": (2, 32, 18), "Q4_1": (3, 32, 20),
        "Q8_0": (8, 32, 34), "BF16": (30, 1, 2), "Q4_K": (12, 256, 144), "Q5_0": (6, 32, 22),
        "Q5_1": (7, 32, 24), "Q2_K": (10, 256, 84), "Q3_K": (11, 256, 110), "Q5_K": (13, 256, 176),
        "Q6_K": (14, 256, 210)}


def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gvalue(t, v):
    if t == T_STR:
        return gstr(v)
    if t == T_ARR:
        et, items = v
        out = struct.pack("<IQ", et, len(items))
        return out + b"".join(gvalue(et, x) for x in items)
    return struct.pack("<" + SCALAR_FMT[t], v)


def gguf(kvs, tensors, version=3, alignment=32):
    """kvs: list of (key, type, value); tensors: list of (name, ggml type name, ne)."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for key, t, v in kvs:
        out += gstr(key) + struct.pack("<I", t) + gvalue(t, v)
    off, sizes = 0, []
    for name, tname, ne in tensors:
        code, blck, nbytes = GGML[tname]
        n = 1
        for d in ne:
            n *= d
        size = n // blck * nbytes
        out += gstr(name) + struct.pack("<I", len(ne)) + struct.pack("<%dQ" % len(ne), *ne)
        out += struct.pack("<IQ", code, off)
        sizes.append(size)
        off += size + (-size % alignment)
    out += b"\0" * (-len(out) % alignment)
    data = b""
    for size in sizes:
        data += pattern(size) + b"\0" * (-size % alignment)
    return out + data


def main():
    st_dir = os.path.join(HERE, "corpus", "fuzz_safetensors")
    gg_dir = os.path.join(HERE, "corpus", "fuzz_gguf")
    os.makedirs(st_dir, exist_ok=True)
    os.makedirs(gg_dir, exist_ok=True)
    seeds = {
        os.path.join(st_dir, "two_tensors.safetensors"): safetensors(
            [("model.embed.weight", "F32", [4, 3]), ("model.norm.weight", "BF16", [3])],
            metadata={"format": "pt"}),
        os.path.join(st_dir, "empty.safetensors"): safetensors([], pad=False),
        os.path.join(st_dir, "zero_and_scalar.safetensors"): safetensors(
            [("z", "F16", [0, 4]), ("s", "I64", []), ("b", "BOOL", [2]), ("e", "F8_E4M3", [1, 1, 2])]),
        os.path.join(st_dir, "all_dtypes.safetensors"): safetensors(
            [(d.lower(), d, [2]) for d in DTYPE_SIZE]),
    }
    llama_kvs = [
        ("general.architecture", T_STR, "llama"),
        ("general.alignment", T_U32, 32),
        ("llama.block_count", T_U32, 1),
        ("llama.context_length", T_U64, 128),
        ("llama.rope.freq_base", T_F32, 10000.0),
        ("llama.attention.layer_norm_rms_epsilon", T_F64, 1e-5),
        ("general.flag", T_BOOL, True),
        ("general.i8", T_I8, -1),
        ("general.i16", T_I16, -2),
        ("general.u16", T_U16, 3),
        ("general.i64", T_I64, -4),
        ("general.u8", T_U8, 5),
        ("general.i32", T_I32, -6),
        ("tokenizer.ggml.tokens", T_ARR, (T_STR, ["<s>", "a", "bc"])),
        ("tokenizer.ggml.scores", T_ARR, (T_F32, [0.0, -1.0, -2.0])),
        ("tokenizer.ggml.token_type", T_ARR, (T_I32, [3, 1, 1])),
        ("general.flags", T_ARR, (T_BOOL, [True, False])),
    ]
    seeds[os.path.join(gg_dir, "llama_tiny.gguf")] = gguf(
        llama_kvs, [("token_embd.weight", "F32", [4, 3]), ("blk.0.attn_q.weight", "Q8_0", [32, 2]),
                    ("blk.0.ffn_up.weight", "Q4_0", [32, 1]), ("output_norm.weight", "F16", [4])])
    seeds[os.path.join(gg_dir, "v2_align64.gguf")] = gguf(
        [("general.alignment", T_U32, 64), ("general.name", T_STR, "t")],
        [("a", "Q4_1", [32]), ("b", "BF16", [2, 2, 2, 2]), ("c", "Q4_K", [256])],
        version=2, alignment=64)
    # every K-quant and Q5 type llmrt reads packed (a llama.cpp Q4_K_M / Q3_K_M file's mix)
    seeds[os.path.join(gg_dir, "kquants.gguf")] = gguf(
        [("general.architecture", T_STR, "llama"), ("general.file_type", T_U32, 15)],
        [("blk.0.attn_q.weight", "Q4_K", [256, 2]), ("blk.0.attn_v.weight", "Q6_K", [256, 1]),
         ("blk.0.ffn_up.weight", "Q5_K", [256, 1]), ("blk.0.ffn_gate.weight", "Q3_K", [256, 1]),
         ("blk.0.ffn_down.weight", "Q2_K", [256, 1]), ("output.weight", "Q5_0", [64, 2]),
         ("token_embd.weight", "Q5_1", [32, 3])])
    # a K-quant tensor whose K (128) is not a multiple of its 256-element block: rejected
    seeds[os.path.join(gg_dir, "q4_k_k128.gguf")] = gguf(
        [("general.architecture", T_STR, "llama")], [("blk.0.ffn_down.weight", "Q4_K", [128, 4])])
    seeds[os.path.join(gg_dir, "no_tensors.gguf")] = gguf([("general.architecture", T_STR, "x")], [])
    for path, blob in seeds.items():
        assert len(blob) < 4096, path
        with open(path, "wb") as f:
            f.write(blob)
        print(path, len(blob))


def vocab_seeds():
    """fuzz_gguf_vocab: GGUF files holding only a tokenizer (tokenizer.ggml.*), both models."""
    d = os.path.join(HERE, "corpus", "fuzz_gguf_vocab")
    os.makedirs(d, exist_ok=True)
    byte_toks = ["<0x%02X>" % b for b in range(256)]
    spm_toks = ["<unk>", "<s>", "</s>"] + byte_toks + ["\u2581", "\u2581a", "b", "c", "ab", "<|im_end|>"]
    spm_types = [2, 3, 3] + [6] * 256 + [1, 1, 1, 1, 1, 4]
    spm = [
        ("tokenizer.ggml.model", T_STR, "llama"),
        ("tokenizer.ggml.tokens", T_ARR, (T_STR, spm_toks)),
        ("tokenizer.ggml.scores", T_ARR, (T_F32, [0.0] * 259 + [-1.0, -2.0, -3.0, -4.0, -5.0, 0.0])),
        ("tokenizer.ggml.token_type", T_ARR, (T_I32, spm_types)),
        ("tokenizer.ggml.bos_token_id", T_U32, 1),
        ("tokenizer.ggml.eos_token_id", T_U32, 2),
        ("tokenizer.ggml.unknown_token_id", T_U32, 0),
        ("tokenizer.ggml.add_bos_token", T_BOOL, True),
        ("tokenizer.chat_template", T_STR,
         "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] | trim }}\n"
         "{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}"),
    ]
    gpt2_toks = ["a", "b", "c", "ab", "abc", "\u0120", "\u0120a", "<|endoftext|>", "1", "2"]
    gpt2 = [
        ("tokenizer.ggml.model", T_STR, "gpt2"),
        ("tokenizer.ggml.pre", T_STR, "qwen2"),
        ("tokenizer.ggml.tokens", T_ARR, (T_STR, gpt2_toks)),
        ("tokenizer.ggml.token_type", T_ARR, (T_I32, [1] * 7 + [3, 1, 1])),
        ("tokenizer.ggml.merges", T_ARR, (T_STR, ["a b", "ab c", "\u0120 a"])),
        ("tokenizer.ggml.eos_token_id", T_U32, 7),
        ("tokenizer.ggml.eot_token_id", T_I32, 7),
        ("tokenizer.ggml.padding_token_id", T_I32, -1),
        ("tokenizer.chat_template", T_STR,
         "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
         "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"),
    ]
    seeds = {
        "spm.gguf": gguf(spm, []),
        "gpt2_qwen2.gguf": gguf(gpt2, []),
        "gpt2_llama3.gguf": gguf([(k, t, "llama-bpe" if k == "tokenizer.ggml.pre" else v)
                                  for k, t, v in gpt2 if k != "tokenizer.chat_template"], []),
        "gpt2_smollm.gguf": gguf([(k, t, "smollm" if k == "tokenizer.ggml.pre" else v)
                                  for k, t, v in gpt2], []),
        "gpt2_default.gguf": gguf([kv for kv in gpt2 if kv[0] != "tokenizer.ggml.pre"], []),
        "spm_min.gguf": gguf([("tokenizer.ggml.model", T_STR, "llama"),
                              ("tokenizer.ggml.tokens", T_ARR, (T_STR, ["<unk>", "<s>", "a"])),
                              ("tokenizer.ggml.bos_token_id", T_U32, 1)], []),
    }
    for name, blob in seeds.items():
        assert len(blob) < 8192, name
        with open(os.path.join(d, name), "wb") as f:
            f.write(blob)
        print(name, len(blob))


def text_seeds():
    """fuzz_batch_request (flag byte + one JSONL line), fuzz_bench_dataset (a dataset file) and
    fuzz_cli_options (argv joined by NUL bytes after a selector byte)."""
    batch = {
        "prompt": {"custom_id": "a1", "prompt": "hello", "max_tokens": 8, "temperature": 0.5,
                   "top_p": 0.9, "top_k": 40, "min_p": 0.05, "seed": 42, "stop": ["\n", "END"],
                   "stop_token_ids": [2, 7], "ignore_eos": True, "logprobs": 2, "n": 3},
        "messages": {"custom_id": "a2", "body": {"messages": [{"role": "system", "content": "s"},
                     {"role": "user", "content": "hi"}], "presence_penalty": 0.5,
                     "frequency_penalty": -0.5, "repetition_penalty": 1.1, "min_tokens": 1}},
        "ids": {"custom_id": "a3", "prompt_token_ids": [1, 2, 3], "stop": "x", "seed": 0},
        "lora": {"custom_id": "a4", "prompt": "p", "lora": "b", "lora_scale": 0.5},
        "model": {"custom_id": "a5", "prompt": "p", "model": "base", "max_tokens": 1e300},
        "bad": {"custom_id": "a6", "prompt_token_ids": [1.5, -1], "stop": 123, "top_k": "12"},
        # the request-parameter layer (host/cli/request_fields.c): types, unknown fields, aliases
        "types": {"custom_id": "a7", "prompt": "p", "ignore_eos": "yes", "stop_token_ids": ["a"],
                  "n": True, "seed": -5, "top_p": 0, "logprobs": 21},
        "unknown": {"custom_id": "a8", "method": "POST", "url": "/v1/completions",
                    "body": {"prompt": "p", "max_completion_tokens": 4, "max_token": 3}},
        "nul": {"custom_id": "a\u0000b", "prompt": "p", "messages": [{"role": "user",
                "content": "x", "name": "n"}]},
    }
    d = os.path.join(HERE, "corpus", "fuzz_batch_request")
    os.makedirs(d, exist_ok=True)
    for name, obj in batch.items():
        flags = b"\x03" if name in ("lora", "model") else b"\x00"
        with open(os.path.join(d, name), "wb") as f:
            f.write(flags + json.dumps(obj).encode())
    d = os.path.join(HERE, "corpus", "fuzz_bench_dataset")
    os.makedirs(d, exist_ok=True)
    datasets = {
        "jsonl": b'{"prompt": "hello there", "output_len": 16}\n{"prompt": "x", "max_tokens": 4}\n'
                 b'{"prompt": "y"}\n\n{"prompt": 5}\n{"output_len": 1e300, "prompt": "z"}\n',
        "sharegpt": json.dumps([{"conversations": [{"from": "human", "value": "hi"},
                                                   {"from": "gpt", "value": "hello you"}]}]).encode(),
    }
    for name, blob in datasets.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(blob)
    d = os.path.join(HERE, "corpus", "fuzz_chat_template")  # the family renderers' input layout
    for fam in range(1, 5):  # roles: system, user, assistant, user
        with open(os.path.join(d, "family_%d" % fam), "wb") as f:
            f.write(bytes([fam, 0x83, 0x08, 0x03]) + b"be brief  hi <|im_end|> [INST]ok </s> again!")
    d = os.path.join(HERE, "corpus", "fuzz_cli_options")
    os.makedirs(d, exist_ok=True)
    argvs = {
        "sampling": ["--temperature", "0.7", "--top-p", "0.9", "--top-k", "40", "--seed", "1",
                     "--max-tokens", "16", "--stop", "x", "--ignore-eos"],
        "engine": ["-m", "model.gguf", "--threads", "2", "--device", "cpu", "--tp", "1",
                   "--max-batch", "4", "--cpu-matmul", "int8,bf16"],
        "lora": ["--lora-module", "a=/x/a", "--lora-module", "b=/x/b", "--lora-name", "a",
                 "--lora-scale", "0.5", "--lora", "/x/c:0.5"],
        "bad": ["--seed", "xyz", "--top-k", "-5", "--temperature", "nan", "--tp", "0"],
        # the checked option parsers (host/cli/cli_args.c)
        "checked": ["--seed", "-1", "--tokens", "", "--input-len", "10:2", "--goodput",
                    "ttft:5,,tpot:nan", "--load-format", "onnx", "--kv-policy", "fifo",
                    "--max-tokens", "1e3", "--top-p", "0", "-t", " 4", "--tokens", "1,-3,"],
    }
    for name, argv in argvs.items():
        for sel in range(2):
            with open(os.path.join(d, "%s_%d" % (name, sel)), "wb") as f:
                f.write(bytes([sel]) + b"\0".join(a.encode() for a in argv))


def chat_json_seeds():
    """fuzz_chat_json (messages JSON [0x1e tools JSON]) and fuzz_server_request chat bodies with
    tools, tool calls, tool results and content parts (endpoint byte 0 = chat, 2 = tokenize)."""
    tool = {"type": "function", "function": {"name": "get_weather", "description": "Weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"]}}}
    call = {"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    convo = [{"role": "system", "content": "Be brief."},
             {"role": "user", "content": [{"type": "text", "text": "Weather"},
                                          {"type": "text", "text": " in <|eot_id|> Paris?"}]},
             {"role": "assistant", "content": None, "tool_calls": [call]},
             {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "22"}]
    hf_convo = json.loads(json.dumps(convo))
    hf_convo[2]["tool_calls"][0]["function"]["arguments"] = {"city": "Paris"}
    seeds = {
        "tools": json.dumps(hf_convo).encode() + b"\x1e" + json.dumps([tool]).encode(),
        "plain": json.dumps([{"role": "user", "content": "hi"}]).encode(),
        "parts_only": json.dumps(convo[:2]).encode(),
        "bad_role": b'[{"role": 1, "content": "x"}]\x1e[1]',
        "deep": b'[{"role": "user", "content": "x", "e": ' + b"[" * 80 + b"]" * 80 + b"}]",
        "template": b"{% for m in messages %}{% set c = m['content'] %}{% for p in c %}"
                    b"{{ p.text }}{% endfor %}{% endfor %}",
    }
    d = os.path.join(HERE, "corpus", "fuzz_chat_json")
    os.makedirs(d, exist_ok=True)
    for name, blob in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(blob)
    bodies = {
        "chat_tools": (0, {"messages": convo, "tools": [tool], "tool_choice": "auto"}),
        "chat_tool_required": (0, {"messages": convo[:2], "tools": [tool], "tool_choice": "required"}),
        "chat_tool_bad": (0, {"messages": [convo[0], {"role": "assistant", "tool_calls": [
            dict(call, function={"name": "f", "arguments": "[1]"})]}], "tools": [dict(tool, x=1)]}),
        "tokenize_tools": (2, {"messages": convo, "tools": [tool], "add_generation_prompt": False}),
    }
    d = os.path.join(HERE, "corpus", "fuzz_server_request")
    for name, (kind, body) in bodies.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(bytes([kind]) + json.dumps(body).encode())


def quant_config_seeds():
    """GPTQ / AWQ quantization configs as GPTQModel, AutoGPTQ, AutoAWQ and transformers write
    them (host/model/gptq.c, awq.c, gptq_dynamic.c)."""
    d = os.path.join(HERE, "corpus", "fuzz_quant_config")
    os.makedirs(d, exist_ok=True)
    seeds = {
        "gptqmodel_v1": {"bits": 4, "group_size": 128, "desc_act": True, "sym": False,
                         "lm_head": False, "quant_method": "gptq", "checkpoint_format": "gptq",
                         "pack_dtype": "int32", "meta": {"quantizer": ["gptqmodel:7.7.0"]}},
        "gptq_8bit_v2": {"bits": 8, "group_size": -1, "sym": True, "format": "gptq_v2"},
        # 8-bit act-order asym (kept packed as Q8_Z, model/gptq8.h), group 256: in_features that
        # are not a multiple of it have a short last group
        "gptq_8bit_act_asym_g256": {"bits": 8, "group_size": 256, "desc_act": True, "sym": False,
                                    "checkpoint_format": "gptq_v2", "pack_dtype": "int32"},
        "autogptq_base_name": {"bits": 4, "group_size": 128, "desc_act": False,
                               "model_file_base_name": "gptq_model-4bit-128g"},
        "dynamic": {"bits": 4, "group_size": 128, "sym": False, "lm_head": True,
                    "dynamic": {"+:lm_head": {"bits": 8, "group_size": 32, "sym": True},
                                r"-:model\.layers\.1\.mlp\.down_proj": {},
                                r"+:.*\.0\.mlp\..*": {"bits": 8, "group_size": 64},
                                r"model\.layers\.\d+\.self_attn\.[qk]_proj": {"desc_act": True},
                                "+:(?i)bad": {}}},
        "awq_transformers": {"quant_method": "awq", "bits": 4, "group_size": 128,
                             "zero_point": True, "version": "gemm",
                             "modules_to_not_convert": None},
        "awq_autoawq": {"quant_method": "awq", "w_bit": 4, "q_group_size": 64,
                        "zero_point": True, "version": "GEMM"},
    }
    for name, obj in seeds.items():
        with open(os.path.join(d, name + ".json"), "w") as f:
            json.dump(obj, f)


if __name__ == "__main__":
    main()
    vocab_seeds()
    text_seeds()
    chat_json_seeds()
    quant_config_seeds()
