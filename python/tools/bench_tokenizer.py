#!/usr/bin/env python3
"""Single-thread throughput of the `tokenizers` package (the reference llmrt is compared with):
encode MB/s and tokens/s of a whole text file as one string, the way `llmrt bench tokenizer`
measures llmrt.

  python python/tools/bench_tokenizer.py TOKENIZER [TEXT_FILE] [--time S] [--reps N]

TOKENIZER: a tokenizer.json, a directory holding one, or a .gguf file (byte-level BPE GGUFs are
rebuilt as in make_tokenizer_golden.py; only SmolLM2's pipeline is known here). Without
TEXT_FILE the long English text of the golden corpus is written to a temporary file and used.
Prints the matching llmrt command.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one thread, like llmrt's encode

import tokenizers
from tokenizers import Tokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_tokenizer_golden as golden  # noqa: E402


def load(path):
    if path.endswith(".gguf"):
        return golden.smollm2_reference(path)
    if os.path.isdir(path):
        path = os.path.join(path, "tokenizer.json")
    return Tokenizer.from_file(path)


def timed(fn, min_time):
    n = 0
    t0 = time.perf_counter()
    while True:
        fn()
        n += 1
        el = time.perf_counter() - t0
        if el >= min_time:
            return el / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("tokenizer")
    ap.add_argument("text", nargs="?")
    ap.add_argument("--time", type=float, default=1.0, help="seconds per repetition")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    text_path = args.text
    if not text_path:
        fd, text_path = tempfile.mkstemp(suffix=".txt", prefix="llmrt_bench_text_")
        with os.fdopen(fd, "wb") as f:
            f.write(golden.LONG_TEXT.encode())
    with open(text_path, "rb") as f:
        raw = f.read()
    text = raw.decode("utf-8", "replace")
    t0 = time.perf_counter()
    tok = load(args.tokenizer)
    load_s = time.perf_counter() - t0
    ids = tok.encode(text, add_special_tokens=False).ids
    enc, dec = [], []
    for _ in range(args.reps):
        enc.append(timed(lambda: tok.encode(text, add_special_tokens=False), args.time))
        dec.append(timed(lambda: tok.decode(ids, skip_special_tokens=False), args.time))
    e, d = statistics.median(enc), statistics.median(dec)
    print("tokenizer: %s (tokenizers %s, loaded in %.3f s)" % (args.tokenizer, tokenizers.__version__, load_s))
    print("text:      %s (%d bytes -> %d tokens)" % (text_path, len(raw), len(ids)))
    print("encode:    %8.2f MB/s  %8.3f M tokens/s  (%.1f us per text, median of %d)"
          % (len(raw) / e / 1e6, len(ids) / e / 1e6, e * 1e6, args.reps))
    print("decode:    %8.2f MB/s  %8.3f M tokens/s  (%.1f us per text)" % (len(raw) / d / 1e6, len(ids) / d / 1e6, d * 1e6))
    print("llmrt:     llmrt bench tokenizer %s %s" % (args.tokenizer, text_path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
