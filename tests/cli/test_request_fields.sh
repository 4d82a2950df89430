#!/usr/bin/env bash
# Request fields of the wrong type, misspelt or unknown (issue 18, class 4) in batch lines and
# bench --dataset lines: each is an error naming the field and the line (one unknown-field
# policy: refused, host/cli/request_fields.h), never silently ignored or misread ("stop": 123 and
# "ignore_eos": "yes" were ignored, ["a"] became token 0, [1.5, 2] was truncated); a string
# holding \u0000 is refused instead of coming back cut short. The good lines around them
# complete, with the fields they give applied.
# usage: test_request_fields.sh LLMRT_BINARY MODEL_DIR GGUF_MODEL
set -euo pipefail
bin=$1 model=$2 gguf=$3
export LLMRT_MODEL=$model
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# --- batch ----------------------------------------------------------------------------------------
cat > "$dir/in.jsonl" <<'JSONL'
{"custom_id": "ok", "prompt_token_ids": [1, 2, 3], "max_tokens": 3}
{"custom_id": "sid-str", "prompt_token_ids": [1, 2], "stop_token_ids": ["a"]}
{"custom_id": "sid-notlist", "prompt_token_ids": [1, 2], "stop_token_ids": "a"}
{"custom_id": "stop-num", "prompt_token_ids": [1, 2], "stop": 123}
{"custom_id": "eos-str", "prompt_token_ids": [1, 2], "ignore_eos": "yes"}
{"custom_id": "ids-frac", "prompt_token_ids": [1.5, 2]}
{"custom_id": "prompt-num", "prompt": 5}
{"custom_id": "msgs-str", "messages": "hi"}
{"custom_id": "msg-extra", "messages": [{"role": "user", "content": "x", "nmae": "a"}]}
{"custom_id": "misspelt", "prompt_token_ids": [1, 2], "max_token": 5}
{"custom_id": "body-str", "body": "x"}
{"custom_id": "body-extra", "body": {"prompt_token_ids": [1, 2], "foo": 1}}
{"custom_id": "two-forms", "prompt": "a", "prompt_token_ids": [1]}
{"custom_id": "seed-neg", "prompt_token_ids": [1, 2], "seed": -5}
{"custom_id": "temp-str", "prompt_token_ids": [1, 2], "temperature": "0.5"}
{"custom_id": "n-bool", "prompt_token_ids": [1, 2], "n": true}
{"custom_id": "lp-big", "prompt_token_ids": [1, 2], "logprobs": 21}
{"custom_id": "topp-zero", "prompt_token_ids": [1, 2], "top_p": 0}
{"custom_id": "a\u0000b", "prompt_token_ids": [1, 2]}
{"custom_id": "line-22", "prompt_token_ids": [1, 2], "max_tokens": 1}
not json: its error record must not take the custom_id "line-22" of the line above
{"custom_id": 5, "prompt_token_ids": [1, 2]}
{"custom_id": "ok-body", "method": "POST", "url": "/v1/completions", "body": {"prompt_token_ids": [1, 2, 3], "max_completion_tokens": 2, "ignore_eos": true, "temperature": 0, "stop": null}}
JSONL
status=0
timeout 120 "$bin" batch -m "$model" --input "$dir/in.jsonl" --output "$dir/out.jsonl" --quiet \
    -t 1 2> "$dir/err" || status=$?
[ $status -eq 0 ] || fail "batch exited $status: $(cat "$dir/err")"
python3 - "$dir/out.jsonl" <<'PY' || fail "batch error records"
import json, sys
# a line without a string custom_id: "custom_id": null and its "line" (a made-up id such as
# "line-22" collided with a real one: one of the two records was dropped)
recs = {r["custom_id"] if r["custom_id"] is not None else ("line", r["line"]): r
        for r in map(json.loads, open(sys.argv[1]))}
want = {  # custom_id -> (line, text the message must hold)
    "sid-str": (2, '"stop_token_ids[0]" must be a number'),
    "sid-notlist": (3, '"stop_token_ids" must be a list'),
    "stop-num": (4, '"stop" must be a string'),
    "eos-str": (5, '"ignore_eos" must be true or false'),
    "ids-frac": (6, '"prompt_token_ids[0]" must be an integer'),
    "prompt-num": (7, '"prompt" must be a string'),
    "msgs-str": (8, '"messages" must be a non-empty list'),
    "msg-extra": (9, '"nmae" is not a known field'),
    "misspelt": (10, '"max_token" is not a known field'),
    "body-str": (11, '"body" must be an object'),
    "body-extra": (12, '"foo" is not a known field'),
    "two-forms": (13, 'give one of "prompt", "messages" or "prompt_token_ids"'),
    "seed-neg": (14, '"seed" must be an integer in [0, 9007199254740991]'),
    "temp-str": (15, '"temperature" must be a number'),
    "n-bool": (16, '"n" must be a number'),
    "lp-big": (17, '"logprobs" must be an integer in [0, 20]'),
    "topp-zero": (18, '"top_p" must be a finite number in (0, 1]'),
    ("line", 19): (19, "\\u0000"),
    ("line", 21): (21, "invalid JSON"),
    ("line", 22): (22, 'no string "custom_id"'),
}
for cid, (line, text) in want.items():
    r = recs.get(cid)
    assert r and r["error"], f"{cid}: no error record: {r}"
    msg = r["error"]["message"]
    assert r["line"] == line and f"line {line}" in msg and text in msg, f"{cid}: {r}"
assert recs["ok"]["error"] is None and recs["ok"]["response"]["completion_tokens"] == 3, recs["ok"]
ob = recs["ok-body"]
assert ob["error"] is None and ob["response"]["completion_tokens"] == 2, ob  # max_completion_tokens
assert recs["line-22"]["error"] is None, recs["line-22"]
assert len(recs) == 23, sorted(map(str, recs))
print(f"ok: batch: {len(want)} wrongly typed / unknown / NUL fields refused naming field and line")
PY

# --- bench serve --dataset ------------------------------------------------------------------------
cat > "$dir/ds.jsonl" <<'JSONL'
{"prompt": "a b", "output_len": 4, "extra": 1}
{"prompt": 5, "output_len": 4}
[1, 2]
{"prompt": "a b", "output_len": true}
{"prompt": "a\u0000b", "output_len": 4}
{"prompt": "a b", "output_len": 4}
JSONL
status=0
timeout 120 "$bin" bench serve -m "$gguf" --dataset "$dir/ds.jsonl" --num-prompts 6 -t 1 \
    > "$dir/bench.out" 2> "$dir/bench.err" || status=$?
[ $status -eq 0 ] || fail "bench serve exited $status: $(cat "$dir/bench.err")"
for spec in 'line 1: "extra" is not a known field' 'line 2: no "prompt" string' \
            'line 3: not a JSON object' 'line 4: "output_len" must be a number' \
            'line 5: ' '5 bad lines skipped'; do
    grep -qF -- "$spec" "$dir/bench.err" || fail "bench: no \"$spec\": $(cat "$dir/bench.err")"
done
grep -qF -- '\u0000' "$dir/bench.err" || fail "bench: line 5's NUL not named"
echo "ok: bench --dataset: wrongly typed / unknown / NUL fields skipped naming file, line and field"
