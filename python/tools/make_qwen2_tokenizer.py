#!/usr/bin/env python3
"""Builds Qwen2's tokenizer.json from Qwen's BPE ranks and writes golden ids for it.

  python python/tools/make_qwen2_tokenizer.py --ranks DIR/dashscope/resources/qwen.tiktoken \\
      [--qwen-py DIR/dashscope/tokenizers/qwen_tokenizer.py]

Source: the PyPI wheel of Alibaba's `dashscope` (2.0.2) ships `dashscope/resources/qwen.tiktoken`
(151,643 byte sequences with their BPE ranks, base64) and `dashscope/tokenizers/qwen_tokenizer.py`
(its split pattern PAT_STR and special tokens from id 151643: <|endoftext|>, <|im_start|>,
<|im_end|>, ...). Qwen2 / Qwen2.5 kept this vocabulary: their published tokenizer.json holds the
same 151,643 byte-level tokens, one merge per multi-byte token, and <|endoftext|> 151643,
<|im_start|> 151644, <|im_end|> 151645 as special added tokens.

The tokenizer.json written here has Qwen2's layout (transformers' Qwen2 converter): BPE without
unk or byte fallback, normalizer NFC, pre-tokenizer Sequence[Split(PAT_STR, isolated),
ByteLevel(add_prefix_space false, use_regex false)], ByteLevel decoder and post-processor.
Each multi-byte token's merge is the last step of tiktoken's own BPE over its bytes with only the
lower ranks allowed, so that merge-rank BPE over the json equals rank BPE over the ranks file.

Golden ids come from two independent encoders that must agree on every case (the script stops if
they do not): `tiktoken` over the ranks file with dashscope's own pattern (text NFC-normalised
first, as Qwen2's normalizer does), and `tokenizers` over the written json. Corpus: the one of
make_tokenizer_golden.py plus Chinese, code, digit-run, whitespace and rendered-chat cases.

Writes (the json is large, so it is committed as a .tar.xz that CMake unpacks at configure time):
  tests/data/tokenizers/qwen2/tokenizer.json.tar.xz
  tests/data/tokenizers/qwen2/tokenizer_config.json  (Qwen2.5-Instruct's fields; chat_template =
                                                      tests/data/chat_templates/Qwen-Qwen2.5-7B-Instruct.jinja)
  tests/data/tokenizer_golden/qwen2.json             (format of make_tokenizer_golden.py)
Needs: tiktoken, tokenizers (PyPI), only to regenerate.
"""
import argparse
import base64
import io
import json
import os
import re
import sys
import tarfile
import unicodedata

import tiktoken
import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from tokenizers import processors

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_tokenizer_golden as mtg  # noqa: E402  (the shared corpus and the case format)

ROOT = mtg.ROOT
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
FIRST_SPECIAL = 151643


def read_pattern(qwen_py):
    """PAT_STR of dashscope's qwen_tokenizer.py (a raw triple-quoted string)."""
    src = open(qwen_py, encoding="utf-8").read()
    m = re.search(r'PAT_STR = r"""(.*?)"""', src, re.S)
    if not m:
        sys.exit("%s: PAT_STR not found" % qwen_py)
    return m.group(1)


def read_ranks(path):
    ranks = {}
    for n, line in enumerate(open(path, "rb"), 1):
        if not line.strip():
            continue
        tok, rank = line.split()
        ranks[base64.b64decode(tok)] = int(rank)
    if sorted(ranks.values()) != list(range(len(ranks))):
        sys.exit("%s: ranks are not 0..%d" % (path, len(ranks) - 1))
    return ranks


def bytes_to_unicode():
    """GPT-2's byte -> printable character map, which ByteLevel uses."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def last_merge(ranks, token, rank):
    """tiktoken's BPE over `token`'s bytes with ranks below `rank`: the two parts it ends with."""
    parts = [bytes([b]) for b in token]
    while len(parts) > 2:
        best, at = None, None
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and r < rank and (best is None or r < best):
                best, at = r, i
        if best is None:
            break
        parts[at:at + 2] = [parts[at] + parts[at + 1]]
    if len(parts) != 2:
        sys.exit("token of rank %d is not reachable by merges (%d parts)" % (rank, len(parts)))
    return parts


def build_json(ranks, pattern):
    b2u = bytes_to_unicode()

    def s(b):
        return "".join(b2u[x] for x in b)

    vocab = {s(t): r for t, r in ranks.items()}
    merges = []
    for t, r in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(t) > 1:
            a, b = last_merge(ranks, t, r)
            merges.append((s(a), s(b)))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, dropout=None, unk_token=None,
                               continuing_subword_prefix="", end_of_word_suffix="",
                               fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False,
                                              use_regex=False)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIALS])
    for i, t in enumerate(SPECIALS):
        if tok.token_to_id(t) != FIRST_SPECIAL + i:
            sys.exit("%s got id %s, want %d" % (t, tok.token_to_id(t), FIRST_SPECIAL + i))
    return tok, len(merges)


def extra_cases():
    chat = open(os.path.join(ROOT, "tests", "data", "chat_templates", "golden.json"),
                encoding="utf-8")
    renders = [c["expected"] for c in json.load(chat)["cases"]
               if c["template"] == "Qwen-Qwen2.5-7B-Instruct" and "expected" in c]
    return [
        ("zh_sentence", "通义千问是阿里云研发的大语言模型，它能够回答问题、创作文字。".encode()),
        ("zh_mixed", "我喜欢用Python写代码，版本3.12，速度提升了25%！Qwen2.5真不错。".encode()),
        ("zh_punct", "「你好」『世界』——《红楼梦》第1回…（注：见上）；问：何如？答：甚好！".encode()),
        ("ja_ko", "東京タワーは333メートルです。서울은 한국의 수도입니다.".encode()),
        ("code_python", b"import numpy as np\n\nclass Foo(object):\n    def __init__(self, n=10):\n"
                        b"        self.x = np.zeros((n, n), dtype=np.float32)  # 2-D\n\n"
                        b"    def __repr__(self):\n        return f\"Foo({self.x.shape!r})\"\n"),
        ("code_c", b"int main(void) {\n\tfor (int i = 0; i < 10; ++i) printf(\"%d\\n\", i);\n"
                   b"\treturn 0;\n}\n"),
        ("code_json", b'{"a": [1, 2.5e-3, null], "b": {"c": "\\u00e9"}, "d": true}\r\n'),
        ("digit_runs", b"3.14159265358979 2024-06-07 1,000,000 0x7FFF 007 123456789012345678"),
        ("ws_runs", b"a  b   c    d\t\te\n\n\nf \n \n g\r\n\r\n   \t \n"),
        ("ws_trailing", b"end with spaces   "),
        ("ws_only_mix", b" \t \r\n \x0b\x0c "),
        ("nfc_decomposed", "cafe\u0301 A\u030a \u1100\u1161\u11a8 e\u0301\u0301".encode()),
        ("contractions_caps", b"I'M YOU'RE he'S they'LL WE'D it'T"),
    ] + [("chat_qwen25_%d" % i, r.encode()) for i, r in enumerate(renders[:4])]


def check_agree(tok, enc, cases):
    """Both encoders on every (case, parse_special) pair; returns the number of cases compared."""
    n = 0
    for name, raw in cases:
        text = mtg.reference_text(raw)
        for parse in (True, False):
            tok.encode_special_tokens = not parse
            a = tok.encode(text, add_special_tokens=False).ids
            tok.encode_special_tokens = False
            nfc = unicodedata.normalize("NFC", text)
            if parse:
                b = enc.encode(nfc, allowed_special="all")
            else:
                b = enc.encode(nfc, allowed_special=set(), disallowed_special=())
            if a != b:
                at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
                sys.exit("%s (parse_special=%s): tokenizers and tiktoken differ at %d: %s vs %s"
                         % (name, parse, at, a[at:at + 6], b[at:at + 6]))
            n += 1
    return n


def write_tar_xz(path, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0  # reproducible archive
    info.mode = 0o644
    with tarfile.open(path, "w:xz", format=tarfile.USTAR_FORMAT, preset=9) as tf:
        tf.addfile(info, io.BytesIO(data))


def tokenizer_config():
    tpl = open(os.path.join(ROOT, "tests", "data", "chat_templates",
                            "Qwen-Qwen2.5-7B-Instruct.jinja"), encoding="utf-8").read()
    return {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": {
            str(FIRST_SPECIAL + i): {"content": t, "lstrip": False, "normalized": False,
                                     "rstrip": False, "single_word": False, "special": True}
            for i, t in enumerate(SPECIALS)},
        "bos_token": None,
        "chat_template": tpl,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 131072,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ranks", required=True, help="dashscope/resources/qwen.tiktoken")
    ap.add_argument("--qwen-py", help="dashscope/tokenizers/qwen_tokenizer.py (default: beside "
                                      "the ranks, ../tokenizers/qwen_tokenizer.py)")
    args = ap.parse_args()
    qwen_py = args.qwen_py or os.path.join(os.path.dirname(args.ranks), "..", "tokenizers",
                                           "qwen_tokenizer.py")
    pattern = read_pattern(qwen_py)
    ranks = read_ranks(args.ranks)
    if len(ranks) != FIRST_SPECIAL:
        sys.exit("%s: %d ranks, expected %d" % (args.ranks, len(ranks), FIRST_SPECIAL))
    tok, n_merges = build_json(ranks, pattern)
    print("vocabulary %d + %d specials, %d merges" % (len(ranks), len(SPECIALS), n_merges))

    tdir = os.path.join(ROOT, "tests", "data", "tokenizers", "qwen2")
    os.makedirs(tdir, exist_ok=True)
    data = tok.to_str().encode("utf-8")
    write_tar_xz(os.path.join(tdir, "tokenizer.json.tar.xz"), "tokenizer.json", data)
    with open(os.path.join(tdir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer_config(), f, ensure_ascii=False, indent=2)
        f.write("\n")
    # the golden ids come from the json as written (reloaded), like the test loads it
    tok = Tokenizer.from_str(data.decode("utf-8"))

    enc = tiktoken.Encoding("qwen", pat_str=pattern, mergeable_ranks=ranks,
                            special_tokens={t: FIRST_SPECIAL + i for i, t in enumerate(SPECIALS)})
    cases = mtg.corpus() + extra_cases()
    n = check_agree(tok, enc, cases)
    print("tiktoken %s and tokenizers %s agree on %d encodings" % (tiktoken.__version__,
                                                                   tokenizers.__version__, n))

    saved = mtg.corpus
    mtg.corpus = lambda: cases
    try:
        mtg.run(tok, "qwen2", "tests/data/tokenizers/qwen2/tokenizer.json.tar.xz",
                os.path.join(ROOT, "tests", "data", "tokenizer_golden"),
                [(True, True), (False, False), (True, False)])
    finally:
        mtg.corpus = saved
    doc_path = os.path.join(ROOT, "tests", "data", "tokenizer_golden", "qwen2.json")
    doc = json.load(open(doc_path))
    doc["reference"] += " and tiktoken %s (identical ids)" % tiktoken.__version__
    doc["generator"] = "python/tools/make_qwen2_tokenizer.py"
    for c in doc["cases"]:  # NFC changes these texts, so decode(encode(x)) is NFC(x), not x
        text = mtg.reference_text(bytes.fromhex(c["text_hex"]))
        if unicodedata.normalize("NFC", text) != text:
            c["lossless"] = False
    with open(doc_path, "w") as f:
        json.dump(doc, f, ensure_ascii=True, indent=None, separators=(",", ":"))
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
