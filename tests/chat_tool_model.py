"""A model for chat-template tests without a download: the tiny llama_f32 checkpoint widened to
the Llama 3 vocabulary (the extra embedding and lm_head rows zero) with the Llama 3 tokenizer of
tests/data/tokenizers and any chat_template. Used by tests/server/test_server_tools.py and
tests/python/test_chat_tools.py."""
import json
import pathlib
import struct

DATA = pathlib.Path(__file__).resolve().parent / "data"
VOCAB = 128256


def widen_checkpoint(path):
    """tiny/llama_f32's safetensors with embed_tokens and lm_head grown to VOCAB rows (zeros)."""
    raw = (DATA / "tiny" / "llama_f32" / "model.safetensors").read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header, body = json.loads(raw[8:8 + n]), raw[8 + n:]
    out_header, chunks, offset = {}, [], 0
    for name, t in header.items():
        if name == "__metadata__":
            out_header[name] = t
            continue
        data = body[t["data_offsets"][0]:t["data_offsets"][1]]
        shape = list(t["shape"])
        if name in ("lm_head.weight", "model.embed_tokens.weight"):
            data += bytes((VOCAB - shape[0]) * shape[1] * 4)
            shape[0] = VOCAB
        out_header[name] = {"dtype": t["dtype"], "shape": shape, "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    head = json.dumps(out_header).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head)
        for c in chunks:
            f.write(c)


def make_model(dirname, weights, template):
    """dirname (created): config.json, the weights (a link), tokenizer.json, tokenizer_config.json."""
    dirname.mkdir()
    cfg = json.loads((DATA / "tiny" / "llama_f32" / "config.json").read_text())
    cfg["vocab_size"] = VOCAB
    cfg["max_position_embeddings"] = 2048  # the tool prompts are ~300 tokens
    (dirname / "config.json").write_text(json.dumps(cfg))
    (dirname / "model.safetensors").symlink_to(weights)
    tok = json.loads((DATA / "tokenizers" / "llama3" / "tokenizer_config.json").read_text())
    tok["chat_template"] = template
    (dirname / "tokenizer_config.json").write_text(json.dumps(tok))
    (dirname / "tokenizer.json").symlink_to(DATA / "tokenizers" / "llama3" / "tokenizer.json")
    return dirname
