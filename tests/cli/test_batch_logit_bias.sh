#!/usr/bin/env bash
# llmrt batch with OpenAI's "logit_bias" on the default model (it has a tokenizer, so the text
# shows the tokens): +100 on " Paris" makes every greedy token " Paris", both line layouts (flat
# and "body"); a line without it is unchanged beside them; a bad key and an id outside the
# vocabulary are error records naming logit_bias, and the other lines still run.
# usage: test_batch_logit_bias.sh LLMRT_BINARY MODEL
set -euo pipefail
bin=$1 model=$2
[ -e "$model" ] || { echo "skip: no model $model"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# `llmrt tokenize` prints one "id piece" line per token
paris=$("$bin" tokenize -m "$model" " Paris" 2>/dev/null | awk '{print $1}')
set -- $paris
[ $# -eq 1 ] || { echo "FAIL: \" Paris\" is not one token: $paris"; exit 1; }
cat > "$dir/in.jsonl" <<J
{"custom_id": "forced", "prompt": "1, 2, 3,", "max_tokens": 3, "temperature": 0, "ignore_eos": true, "logit_bias": {"$1": 100}}
{"custom_id": "forced-body", "body": {"prompt": "1, 2, 3,", "max_tokens": 3, "temperature": 0, "ignore_eos": true, "logit_bias": {"$1": 100.0}}}
{"custom_id": "plain", "prompt": "1, 2, 3,", "max_tokens": 3, "temperature": 0, "ignore_eos": true}
{"custom_id": "bad-key", "prompt": "x", "logit_bias": {"Paris": 1}}
{"custom_id": "oov", "prompt": "x", "logit_bias": {"2000000": 1}}
J
"$bin" batch -m "$model" --input "$dir/in.jsonl" --output "$dir/out.jsonl" --quiet -t 2
python3 - "$dir/out.jsonl" <<'PY'
import json, sys
recs = {r["custom_id"]: r for r in map(json.loads, open(sys.argv[1]).read().splitlines())}
assert len(recs) == 5, recs.keys()
for k in ("forced", "forced-body"):
    assert recs[k]["response"]["text"] == " Paris" * 3, recs[k]
plain = recs["plain"]["response"]["text"]
assert plain and plain != " Paris" * 3, plain
for k in ("bad-key", "oov"):
    assert recs[k]["response"] is None and "logit_bias" in recs[k]["error"]["message"], recs[k]
print("ok")
PY
