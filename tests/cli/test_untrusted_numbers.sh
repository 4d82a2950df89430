#!/usr/bin/env bash
# Numbers from outside (issue 18, class 2): batch JSONL fields and bench --dataset output_len
# holding 1e300, -1e300, 1e999 (parses as inf), 1.5, "12", NaN (not JSON) and out-of-range ids
# must give a clear error naming the field and the line, never a crash (a segfault was an
# int overflow feeding a malloc size). The good lines around them still complete.
# usage: test_untrusted_numbers.sh LLMRT_BINARY MODEL_DIR GGUF_MODEL
set -euo pipefail
bin=$1 model=$2 gguf=$3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# --- batch --------------------------------------------------------------------------------------
cat > "$dir/in.jsonl" <<'JSONL'
{"custom_id": "ok1", "prompt_token_ids": [1, 2, 3], "max_tokens": 3}
{"custom_id": "big", "prompt_token_ids": [1, 2], "max_tokens": 1e300}
{"custom_id": "neg", "prompt_token_ids": [1, 2], "max_tokens": -1e300}
{"custom_id": "frac", "prompt_token_ids": [1, 2], "max_tokens": 1.5}
{"custom_id": "str", "prompt_token_ids": [1, 2], "max_tokens": "12"}
{"custom_id": "inf", "prompt_token_ids": [1, 2], "top_k": 1e999}
{"custom_id": "nan", "prompt_token_ids": [1, 2], "max_tokens": NaN}
{"custom_id": "temp", "prompt_token_ids": [1, 2], "temperature": 1e300}
{"custom_id": "seedneg", "prompt_token_ids": [1, 2], "seed": -1}
{"custom_id": "seedbig", "prompt_token_ids": [1, 2], "seed": 1e300}
{"custom_id": "ids", "prompt_token_ids": [1, 1e300]}
{"custom_id": "idsneg", "prompt_token_ids": [1, -5]}
{"custom_id": "stopids", "prompt_token_ids": [1, 2], "stop_token_ids": [2.5]}
{"custom_id": "n", "body": {"prompt_token_ids": [1, 2], "n": 1e300}}
{"custom_id": "ok2", "prompt_token_ids": [1, 2, 3], "max_tokens": 3}
{"custom_id": "stopnum", "prompt_token_ids": [1, 2], "stop": [1e300]}
JSONL
status=0
timeout 120 "$bin" batch -m "$model" --input "$dir/in.jsonl" --output "$dir/out.jsonl" --quiet \
    -t 1 2> "$dir/err" || status=$?
[ $status -eq 0 ] || fail "batch exited $status: $(cat "$dir/err")"
python3 - "$dir/out.jsonl" <<'PY' || fail "batch error records"
import json, sys
# a line without a custom_id (not JSON) has "custom_id": null and its "line"
recs = {r["custom_id"] if r["custom_id"] is not None else ("line", r["line"]): r
        for r in map(json.loads, open(sys.argv[1]))}
want = {  # custom_id -> (line, text the message must hold)
    "big": (2, '"max_tokens" must be an integer'), "neg": (3, '"max_tokens" must be an integer'),
    "frac": (4, '"max_tokens" must be an integer'), "str": (5, '"max_tokens" must be a number'),
    "inf": (6, '"top_k" must be an integer'), ("line", 7): (7, "invalid JSON"),
    "temp": (8, '"temperature" must be a finite number'), "seedneg": (9, '"seed" must be an integer'),
    "seedbig": (10, '"seed" must be an integer'), "ids": (11, '"prompt_token_ids[1]"'),
    "idsneg": (12, '"prompt_token_ids[1]"'), "stopids": (13, '"stop_token_ids[0]"'),
    "n": (14, '"n" must be an integer'), "stopnum": (16, '"stop" must be a string'),
}
for cid, (line, text) in want.items():
    r = recs.get(cid)
    assert r and r["error"], f"{cid}: no error record: {r}"
    msg = r["error"]["message"]
    assert r["line"] == line and f"line {line}" in msg and text in msg, f"{cid}: {r}"
for cid in ("ok1", "ok2"):
    assert recs[cid]["error"] is None and recs[cid]["response"]["completion_tokens"] == 3, recs[cid]
assert len(recs) == 16, len(recs)
print(f"ok: batch: {len(want)} error records naming field and line, the good lines complete")
PY

# --- bench serve --dataset ------------------------------------------------------------------------
cat > "$dir/ds.jsonl" <<'JSONL'
{"prompt": "a b", "output_len": 1e300}
{"prompt": "a b", "output_len": -1e300}
{"prompt": "a b", "output_len": 1.5}
{"prompt": "a b", "output_len": "12"}
{"prompt": "a b", "output_len": NaN}
{"prompt": "a b", "output_len": 1e999}
{"prompt": "a b", "output_len": 2147483647}
{"prompt": "a b", "output_len": 4}
JSONL
status=0
timeout 120 "$bin" bench serve -m "$gguf" --dataset "$dir/ds.jsonl" --num-prompts 8 -t 1 \
    > "$dir/bench.out" 2> "$dir/bench.err" || status=$?
[ $status -lt 128 ] && [ $status -ne 124 ] || fail "bench serve crashed or hung (exit $status): $(cat "$dir/bench.err")"
for spec in "line 1: \"output_len\" must be an integer" "line 2: \"output_len\" must be an integer" \
            "line 3: \"output_len\" must be an integer" "line 4: \"output_len\" must be a number" \
            "line 5: " "line 6: \"output_len\" must be an integer" \
            "line 7: \"output_len\" must be an integer"; do
    grep -qF "$spec" "$dir/bench.err" || fail "bench: no message \"$spec\": $(cat "$dir/bench.err")"
done
grep -qF "7 bad lines skipped" "$dir/bench.err" || fail "bench: no summary of skipped lines"
echo "ok: bench --dataset: 7 bad output_len values named by line and field, exit $status"
# every line bad: a clear failure, not a crash
head -n 7 "$dir/ds.jsonl" > "$dir/allbad.jsonl"
status=0
timeout 120 "$bin" bench serve -m "$gguf" --dataset "$dir/allbad.jsonl" --num-prompts 8 -t 1 \
    > /dev/null 2> "$dir/bench2.err" || status=$?
[ $status -ne 0 ] && [ $status -lt 124 ] || fail "all-bad dataset: exit $status"
echo "ok: an all-bad dataset fails with exit $status"
echo "3 passed, 0 failed"
