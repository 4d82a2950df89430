#!/usr/bin/env bash
# Tensor parallel across processes (CPU backend, MPI all-reduce), through the llmrt command:
#  1. greedy tokens under mpirun -np 2 / -np 4 (--tp 2 / 4) equal one process at tp 1, for a
#     dense tiny model, GPTQ checkpoints with act-order on and off, and SmolLM2 when installed;
#     SmolLM2 with LoRA adapters (per request, and given at load) at tp 2 equal to tp 1;
#  2. a rank that fails mid-step (injected: hangs, exits, or reports an error) stops the whole
#     job with a non-zero status and a message within the timeout (3 s here), never a hang;
#  3. a data-parallel batch job over 2 processes (and 2 groups of tp 2 over 4 processes) writes
#     every custom_id exactly once, with the same greedy results as one process.
# usage: test_tp_mpi.sh LLMRT_BINARY MPIEXEC DATA_DIR [SMOLLM2_GGUF]
set -euo pipefail
bin=$1 mpiexec=$2 data=$3 smol=${4:-}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
mpirun() { "$mpiexec" --oversubscribe --allow-run-as-root -np "$@"; }
fail() { echo "FAIL: $*"; exit 1; }

# 1. greedy continuations
greedy() { grep '^greedy continuation' || true; }
models=("$data/tiny/llama_f32" "$data/gptq/g128_act_sym_v1" "$data/gptq/g32_noact_asym_v2")
[ -n "$smol" ] && [ -f "$smol" ] && models+=("$smol")
for m in "${models[@]}"; do
    ref=$("$bin" predict -m "$m" -p 1,2,3,4,5,6,7,8,9 -n 12 -t 1 --device cpu 2>/dev/null | greedy)
    [ -n "$ref" ] || fail "$m: no greedy continuation at tp 1"
    for np in 2 4; do
        got=$(mpirun $np "$bin" predict -m "$m" -p 1,2,3,4,5,6,7,8,9 -n 12 -t 1 --device cpu \
              --tp $np 2>"$dir/err" | greedy)
        [ "$got" = "$ref" ] || { cat "$dir/err"; fail "$m tp $np: '$got' != tp 1 '$ref'"; }
        echo "ok   $(basename "$m") tp $np: $got"
    done
done

# 1b. LoRA under MPI: the followers read the adapter file themselves and hold their slice (A
# and B split as their layer); an adapter per request (--lora-module) and one given at load on
# the 4-bit base (--lora: kept unmerged, applied to every request) give tp 1's greedy text
if [ -n "$smol" ] && [ -f "$smol" ]; then
    # gen [mpirun N] -- EXTRA OPTIONS: the greedy text of a fixed prompt
    gen() {
        local pre=()
        while [ "$1" != "--" ]; do pre+=("$1"); shift; done
        shift
        "${pre[@]}" "$bin" generate -m "$smol" --tokens 504,3575,282,4649,314 -n 10 \
            --temperature 0 --ignore-eos -t 1 --device cpu "$@" 2>"$dir/err"
    }
    base=$(gen --)
    # a random adapter strong enough to change the greedy text (PEFT's fixtures barely do)
    python3 "$(dirname "$0")/../tools/make_random_lora.py" --base "$smol" --out "$dir/lora" --r 8 \
        --alpha 16 --targets q_proj,v_proj,down_proj --seed 1 --b-std 0.1 >/dev/null
    for how in "--lora-module a=$dir/lora --lora-name a" "--lora $dir/lora"; do
        # shellcheck disable=SC2086
        ref=$(gen -- $how) || { cat "$dir/err"; fail "lora ($how) at tp 1"; }
        [ "$ref" != "$base" ] || fail "lora ($how): the adapter changes nothing"
        # shellcheck disable=SC2086
        got=$(gen "$mpiexec" --oversubscribe --allow-run-as-root -np 2 -- $how --tp 2) ||
            { cat "$dir/err"; fail "lora ($how) tp 2"; }
        [ "$got" = "$ref" ] || fail "lora ($how) tp 2 under mpirun: '$got' != tp 1 '$ref'"
        echo "ok   lora ($how) tp 2 under mpirun"
    done
fi

# bad arguments: clear messages, non-zero status
set +e
out=$("$bin" predict -m "$data/tiny/llama_f32" --tp 0 2>&1); rc=$?
set -e
[ $rc -ne 0 ] && grep -q -- "--tp must be an integer in \[1, 256\]" <<<"$out" || fail "--tp 0: $rc $out"
set +e
out=$(mpirun 3 "$bin" predict -m "$data/tiny/llama_f32" -p 1,2 -n 2 -t 1 --device cpu --tp 2 2>&1); rc=$?
set -e
[ $rc -ne 0 ] && grep -q "3 processes do not form whole groups" <<<"$out" || fail "-np 3 --tp 2: $rc $out"
set +e
out=$("$bin" predict -m "$data/tiny/llama_f32" -p 1,2 -n 2 -t 1 --device cpu --tp 8 2>&1); rc=$?
set -e
[ $rc -ne 0 ] && grep -q "tp 8 exceeds the 4 attention heads" <<<"$out" || fail "--tp 8: $rc $out"
echo "ok   bad --tp values and job sizes are clear errors"

# 2. injected failures of rank 1 in its 3rd forward
for kind in hang exit error; do
    start=$(date +%s.%N)
    set +e
    LLMRT_TP_FAULT=1:3:$kind LLMRT_TP_TIMEOUT_S=3 timeout 60 \
        "$mpiexec" --oversubscribe --allow-run-as-root -np 2 "$bin" predict -m "$data/tiny/llama_f32" \
        -p 1,2,3,4 -n 12 -t 1 --device cpu --tp 2 >"$dir/out" 2>"$dir/err"
    rc=$?
    set -e
    took=$(python3 -c "import time; print(f'{time.time() - $start:.1f}')")
    [ $rc -ne 0 ] || fail "fault $kind: the job exited 0"
    [ $rc -ne 124 ] || fail "fault $kind: the job hung (killed by timeout 60)"
    python3 -c "import sys; sys.exit(0 if $took < 30 else 1)" || fail "fault $kind: took $took s"
    case $kind in
        hang) grep -q "not complete within 3 s" "$dir/err" || { cat "$dir/err"; fail "hang: no timeout message"; } ;;
        exit) grep -q "rank 1 exits in forward 3" "$dir/err" || { cat "$dir/err"; fail "exit: no message"; } ;;
        error) grep -q "injected fault (LLMRT_TP_FAULT) on rank 1" "$dir/err" || { cat "$dir/err"; fail "error: no message"; } ;;
    esac
    echo "ok   fault $kind: job stopped with status $rc after $took s"
done

# 3. data-parallel batch (SmolLM2 when installed: its tokenizer makes the texts comparable)
bm="$data/tiny/llama_f32"
[ -n "$smol" ] && [ -f "$smol" ] && bm=$smol
n=23
for i in $(seq 1 $n); do
    echo "{\"custom_id\": \"r$i\", \"prompt_token_ids\": [1, $((i * 7 % 250 + 2)), 5], \"max_tokens\": 6, \"temperature\": 0, \"ignore_eos\": true}"
    if [ $i = 11 ]; then echo ""; fi  # a blank line: skipped, numbering the same everywhere
done > "$dir/in.jsonl"
"$bin" batch -m "$bm" --input "$dir/in.jsonl" --output "$dir/ref.jsonl" --quiet \
    -t 1 --device cpu 2>/dev/null
for spec in "2 1" "4 2"; do
    set -- $spec
    np=$1 tp=$2
    rm -f "$dir/out.jsonl"
    mpirun $np "$bin" batch -m "$bm" --input "$dir/in.jsonl" \
        --output "$dir/out.jsonl" --quiet -t 1 --device cpu --tp $tp --data-parallel 2>"$dir/err" \
        || { cat "$dir/err"; fail "batch -np $np --tp $tp"; }
    ls "$dir" | grep -q "dp" && fail "shards left behind: $(ls "$dir")"
    python3 - "$dir/out.jsonl" "$dir/ref.jsonl" $n "$np/$tp" <<'PY'
import collections, json, sys
out = [json.loads(l) for l in open(sys.argv[1]).read().splitlines()]
ref = {r["custom_id"]: r for r in map(json.loads, open(sys.argv[2]).read().splitlines())}
n, what = int(sys.argv[3]), sys.argv[4]
ids = collections.Counter(r["custom_id"] for r in out)
assert not [k for k, c in ids.items() if c > 1], f"{what}: duplicated custom_ids"
assert set(ids) == set(ref) and len(out) == n, f"{what}: {len(out)} records for {n} lines"
for r in out:
    assert r["error"] is None, r
    a, b = r["response"], ref[r["custom_id"]]["response"]
    assert (a["text"], a["completion_tokens"]) == (b["text"], b["completion_tokens"]), (r, b)
texts = sum(1 for r in out if r["response"]["text"])
print(f"ok   batch -np/--tp {what}: {n} records, each custom_id once, equal to one process "
      f"({texts} non-empty texts)")
PY
done

# resume: an interrupted data-parallel job (output cut to 9 records, a torn last line, and a
# leftover shard holding 2 more) finishes with every custom_id exactly once
head -n 9 "$dir/out.jsonl" > "$dir/cut.jsonl"
printf '{"custom_id": "r1' >> "$dir/cut.jsonl"
mv "$dir/cut.jsonl" "$dir/out.jsonl"
sed -n '10,11p' "$dir/ref.jsonl" > "$dir/out.jsonl.dp0-of-2"
mpirun 2 "$bin" batch -m "$bm" --input "$dir/in.jsonl" --output "$dir/out.jsonl" --quiet -t 1 \
    --device cpu --data-parallel 2>"$dir/err" || { cat "$dir/err"; fail "resumed batch"; }
python3 - "$dir/out.jsonl" $n <<'PY'
import collections, json, sys
out = [json.loads(l) for l in open(sys.argv[1]).read().splitlines()]
ids = collections.Counter(r["custom_id"] for r in out)
assert not [k for k, c in ids.items() if c > 1] and len(out) == int(sys.argv[2]), ids
print(f"ok   resumed data-parallel batch: {len(out)} records, each custom_id once")
PY

# 4. `llmrt serve` under mpirun (rank 0 serves, rank 1 follows): the greedy completion equals
#    one process's, and SIGTERM (mpirun forwards it to every rank) lets rank 0 drain and stop.
#    mpirun's own status after a SIGTERM is 1 whatever the ranks do (Open MPI), so the ranks'
#    messages are what is checked.
if [ -n "$smol" ] && [ -f "$smol" ] && "$bin" serve --help >/dev/null 2>&1; then
    want=$("$bin" generate -m "$smol" -p "The capital of France is" -n 8 --temperature 0 -t 1 \
           --device cpu 2>/dev/null)
    # mpiexec itself in the background (not the mpirun function: $! would be its subshell)
    "$mpiexec" --oversubscribe --allow-run-as-root -np 2 "$bin" serve -m "$smol" --tp 2 -t 1 \
        --device cpu --port 0 2>"$dir/serve.err" &
    mp=$!
    port=""
    for _ in $(seq 1 600); do
        port=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$dir/serve.err" | grep -o '[0-9]*$' || true)
        [ -n "$port" ] && break
        sleep 0.1
    done
    [ -n "$port" ] || { kill $mp; cat "$dir/serve.err"; fail "serve under mpirun did not start"; }
    got=$(curl -sf "http://127.0.0.1:$port/v1/completions" -H 'Content-Type: application/json' \
          -d '{"prompt": "The capital of France is", "max_tokens": 8, "temperature": 0}' |
          python3 -c 'import json,sys; print(json.load(sys.stdin)["choices"][0]["text"])') ||
        { kill $mp; fail "serve under mpirun: no completion"; }
    [ "$got" = "$want" ] || { kill $mp; fail "serve tp 2 under mpirun: '$got' != one process '$want'"; }
    kill -TERM $mp
    timeout 120 tail --pid=$mp -f /dev/null || { kill -KILL $mp; fail "serve under mpirun: no exit after SIGTERM"; }
    grep -q "llmrt serve: stopped" "$dir/serve.err" || { cat "$dir/serve.err"; fail "serve under mpirun: no clean stop"; }
    echo "ok   serve under mpirun -np 2 --tp 2: '$got', SIGTERM drained and stopped"
fi
