"""llmrt's logits vs llama.cpp's on the same GGUF files (SmolLM2 K-quants of
bench/kquant_vs_llamacpp.sh): one fixed token sequence, every position, max and mean |diff|
relative to max |logit|, and top-1 agreement. With the F32 file (DIR/smollm2_f32.gguf) as well,
the F32 line is the baseline of the two runtimes' arithmetic without quantisation; the K-quant
lines add llama.cpp's activation quantisation (Q8_K / Q8_0 / Q8_1 for its quantised dot
products; llmrt keeps fp32 activations).

Run with the llama-cpp-python interpreter:

    /tmp/lcpvenv/bin/python python/tools/kquant_accuracy.py --dump build/tests/logits_dump \
        DIR/smollm2_q4_k_m.gguf ...
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_kquant_golden as mk  # noqa: E402  (its llama.cpp low-level logits)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dump", required=True, help="the logits_dump binary (bench/tools)")
    ap.add_argument("-n", type=int, default=48, help="tokens in the sequence")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    import llama_cpp as L
    seq = [1] + [(i * 7919 + 13) % 40000 + 100 for i in range(a.n - 1)]
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
        d = np.abs(ours - theirs)
        ref = np.abs(theirs).max()
        agree = int((ours.argmax(1) == theirs.argmax(1)).sum())
        print(f"{os.path.basename(path):24s} max|diff| {d.max():8.4f} ({100 * d.max() / ref:5.2f}% of "
              f"max|logit| {ref:6.2f}), mean|diff| {d.mean():.4f}, top-1 equal {agree}/{a.n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
