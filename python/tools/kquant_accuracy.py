"""llmrt's logits vs llama.cpp's on the same GGUF files (SmolLM2 K-quants of
bench/kquant_vs_llamacpp.sh): one fixed token sequence, every position, max and mean |diff|
relative to max |logit|, and top-1 agreement. With the F32 file (DIR/smollm2_f32.gguf) as well,
the F32 line is the baseline of the two runtimes' arithmetic without quantisation; the K-quant
lines add llama.cpp's activation quantisation (Q8_K / Q8_0 / Q8_1 for its quantised dot
products; llmrt keeps fp32 activations). With --hf-python (an interpreter with torch,
transformers and gguf), both are also compared with an fp64 forward of HF transformers over the
file's weights dequantised by gguf-py: which of the two is off.

Run with the llama-cpp-python interpreter:

    /tmp/lcpvenv/bin/python python/tools/kquant_accuracy.py --dump build/tests/logits_dump \
        [--hf-python /tmp/peftvenv/bin/python] DIR/smollm2_q4_k_m.gguf ...
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_kquant_golden as mk  # noqa: E402  (its llama.cpp low-level logits)


def hf_worker(path: str, out: str, seq) -> None:
    """fp64 logits of HF transformers over the GGUF's dequantised weights (run by --hf-python)."""
    import torch
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                             dtype=torch.float32, attn_implementation="eager")
    m = m.to(torch.float64).eval()
    with torch.no_grad():
        lg = m(input_ids=torch.tensor([seq]), use_cache=False).logits[0].numpy()
    np.save(out, lg)


def stats(a, b, ref_max) -> str:
    d = np.abs(a - b)
    return (f"max|diff| {d.max():8.4f} ({100 * d.max() / ref_max:5.2f}%), mean {d.mean():.4f}, "
            f"top-1 {int((a.argmax(1) == b.argmax(1)).sum())}/{len(a)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dump", default="build/tests/logits_dump", help="the logits_dump binary (bench/tools)")
    ap.add_argument("-n", type=int, default=48, help="tokens in the sequence")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--hf-python", default="", help="python with torch/transformers/gguf")
    ap.add_argument("--hf-worker", nargs=2, metavar=("GGUF", "OUT_NPY"), help=argparse.SUPPRESS)
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()
    seq = [1] + [(i * 7919 + 13) % 40000 + 100 for i in range(a.n - 1)]
    if a.hf_worker:
        hf_worker(a.hf_worker[0], a.hf_worker[1], seq)
        return 0
    import llama_cpp as L
    print(f"# {a.n} tokens, logits at every position; llama.cpp (llama-cpp-python "
          f"{L.__version__}, F32 KV cache, no repacking, 1 thread) vs llmrt (fp32 activations)")
    for path in a.files:
        with tempfile.TemporaryDirectory() as td:
            out = os.path.join(td, "llmrt.f32")
            subprocess.run([a.dump, path, str(a.threads), out] + [str(t) for t in seq],
                           check=True, capture_output=True)
            ours = np.fromfile(out, dtype="<f4").reshape(a.n, -1)
        lp = mk.logits_llamacpp(L, path, [seq])
        theirs = np.fromfile(lp, dtype="<f4").reshape(a.n, -1)
        os.remove(lp)
        ref = np.abs(theirs).max()
        name = os.path.basename(path)
        print(f"{name:24s} llmrt vs llama.cpp: {stats(ours, theirs, ref)} (max|logit| {ref:.2f})")
        if a.hf_python:
            with tempfile.TemporaryDirectory() as td:
                npy = os.path.join(td, "hf.npy")
                subprocess.run([a.hf_python, os.path.abspath(__file__), "-n", str(a.n),
                                "--hf-worker", path, npy], check=True, capture_output=True)
                hf = np.load(npy)
            print(f"{'':24s} llmrt vs fp64 HF:   {stats(ours, hf, ref)}")
            print(f"{'':24s} llama.cpp vs fp64:  {stats(theirs, hf, ref)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
