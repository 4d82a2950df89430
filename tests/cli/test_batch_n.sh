#!/usr/bin/env bash
# llmrt batch with "n": the record of an n > 1 line has n choices (index 0..n-1), greedy choices
# equal the n = 1 text, completion_tokens sums the choices; an n out of range is an error record.
# usage: test_batch_n.sh LLMRT_BINARY MODEL
set -euo pipefail
bin=$1 model=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/in.jsonl" <<'J'
{"custom_id": "one", "prompt_token_ids": [1, 17, 5, 7, 9, 11, 13, 15, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 3], "max_tokens": 12, "ignore_eos": true, "temperature": 0}
{"custom_id": "three", "prompt_token_ids": [1, 17, 5, 7, 9, 11, 13, 15, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 3], "max_tokens": 12, "ignore_eos": true, "temperature": 0, "n": 3}
{"custom_id": "sampled", "body": {"prompt_token_ids": [1, 2, 3], "max_tokens": 8, "ignore_eos": true, "seed": 5, "n": 2}}
{"custom_id": "bad-n", "prompt_token_ids": [1, 2, 3], "n": 65}
J
"$bin" batch -m "$model" --input "$dir/in.jsonl" --output "$dir/out.jsonl" --quiet -t 1
python3 - "$dir/out.jsonl" <<'PY'
import json, sys
recs = {r["custom_id"]: r for r in map(json.loads, open(sys.argv[1]).read().splitlines())}
assert len(recs) == 4, recs.keys()
one, three, sampled = recs["one"]["response"], recs["three"]["response"], recs["sampled"]["response"]
assert "choices" not in one, one
assert one["completion_tokens"] == 12, one
ch = three["choices"]
assert [c["index"] for c in ch] == [0, 1, 2], ch
assert all(c["text"] == one["text"] and c["finish_reason"] == "length" and c["completion_tokens"] == 12 for c in ch), (one, ch)
assert three["completion_tokens"] == 36 and three["prompt_tokens"] == 19, three
assert three["text"] == one["text"] and three["finish_reason"] == "length"
assert len(sampled["choices"]) == 2 and sampled["completion_tokens"] == 16, sampled
assert recs["bad-n"]["response"] is None and '"n" must be an integer in [1, 64], got 65' in recs["bad-n"]["error"]["message"], recs["bad-n"]
print("ok")
PY
