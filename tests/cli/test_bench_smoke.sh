#!/usr/bin/env bash
# llmrt bench latency / serve / sweep on the tiny model: each produces valid JSON / CSV with every
# documented field (bench/README.md). usage: test_bench_smoke.sh LLMRT_BINARY MODEL
set -euo pipefail
bin=$1 model=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
common=(-m "$model" -t 1)
"$bin" bench latency "${common[@]}" -p 16,19 -b 1,3 -n 8 -r 2 -t 1 --format json > "$dir/latency.json"
# a case beyond the model's context is refused, naming the options, before anything runs
if "$bin" bench latency "${common[@]}" -p 16 -n 1000000 -r 1 > "$dir/ctx.out" 2> "$dir/ctx.err"; then
    echo "FAIL: bench latency ran a case longer than the model's context"; exit 1
fi
grep -q "exceed the model's context" "$dir/ctx.err" || { cat "$dir/ctx.err"; exit 1; }
[ ! -s "$dir/ctx.out" ] || { echo "FAIL: output before the context check"; exit 1; }
"$bin" bench serve "${common[@]}" --num-prompts 6 --input-len 8:24 --output-len 4:12 \
    --request-rate 200 --goodput ttft:50,tpot:10 --format json > "$dir/serve.json"
"$bin" bench serve "${common[@]}" --num-prompts 4 --format csv > "$dir/serve.csv"
"$bin" bench sweep "${common[@]}" --num-prompts 6 --input-len 10 --output-len 6 \
    --concurrency 1,2,4 --format json > "$dir/sweep.json"
"$bin" bench sweep "${common[@]}" --num-prompts 4 --concurrency 1,3 --format csv > "$dir/sweep.csv"
"$bin" bench serve "${common[@]}" --num-prompts 3 > "$dir/serve.txt"
python3 - "$dir" <<'PY'
import csv, json, sys, os
d = sys.argv[1]
context = ["command", "machine", "git_revision", "model_id", "weight_format", "backend", "threads",
           "kv_tokens", "block_size", "kv_policy", "prefix_caching", "peak_read_gbps"]
serve = ["duration", "completed", "failed", "total_input_tokens", "total_output_tokens",
         "request_throughput", "request_goodput", "output_throughput", "total_token_throughput",
         "num_preemptions", "prefix_cache_hit_rate", "achieved_read_gbps",
         "fraction_of_peak_bandwidth"]
for m in ["ttft", "tpot", "itl", "e2el"]:
    serve += [f"{s}_{m}_ms" for s in ["mean", "median", "std", "p90", "p99"]]
lat = json.load(open(f"{d}/latency.json"))
for k in context + ["results"]:
    assert k in lat, f"latency json lacks {k}"
for r in lat["results"]:
    for k in ["threads", "batch", "n_prompt", "n_gen", "depth", "prompt_tps_mean", "prompt_tps_std",
              "gen_tps_mean", "gen_tps_std", "ttft_ms_mean", "tpot_ms_mean", "e2e_ms_mean",
              "bytes_per_step", "achieved_gbps", "fraction_of_peak_bandwidth",
              "prefill_flops_per_token", "achieved_prefill_gflops"]:
        assert k in r, f"latency result lacks {k}"
    assert r["gen_tps_mean"] > 0 and r["prompt_tps_mean"] > 0
assert sorted((r["batch"], r["n_prompt"]) for r in lat["results"]) == \
    [(1, 16), (1, 19), (3, 16), (3, 19)], lat["results"]
s = json.load(open(f"{d}/serve.json"))
for k in context:
    assert k in s, f"serve json lacks {k}"
(res,) = s["results"]
for k in serve:
    assert k in res, f"serve result lacks {k}"
assert res["completed"] == 6 and res["total_output_tokens"] > 0
sw = json.load(open(f"{d}/sweep.json"))
assert [r["max_concurrency"] for r in sw["results"]] == [1, 2, 4]
for f in ["serve.csv", "sweep.csv"]:
    rows = list(csv.DictReader(open(f"{d}/{f}")))
    assert rows and all(k in rows[0] for k in ["output_throughput", "p99_ttft_ms", "median_tpot_ms"]), f
assert len(list(csv.DictReader(open(f"{d}/sweep.csv")))) == 2
assert "TTFT p50" in open(f"{d}/serve.txt").read()
print("bench outputs valid")
PY
echo "1 passed, 0 failed"
