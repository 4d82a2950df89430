#!/usr/bin/env bash
# llmrt batch: a malformed line yields an error record while the rest complete; a job killed with
# SIGKILL mid-run and restarted yields every custom_id exactly once.
# usage: test_batch_resume.sh LLMRT_BINARY MODEL
set -euo pipefail
bin=$1 model=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
n=60
{
    for i in $(seq 1 $n); do
        if [ "$i" = 7 ]; then echo '{"custom_id": "bad-json", "prompt": '; continue; fi
        if [ "$i" = 9 ]; then echo "{\"custom_id\": \"r$i\", \"prompt\": \"x\", \"top_p\": 0}"; continue; fi
        echo "{\"custom_id\": \"r$i\", \"prompt_token_ids\": [1, $((i % 300 + 2)), 5, 7], \"max_tokens\": 200, \"ignore_eos\": true}"
    done
} > "$dir/in.jsonl"

# run 1: killed once some results are out
"$bin" batch -m "$model" --input "$dir/in.jsonl" --output "$dir/out.jsonl" --max-concurrency 2 \
    --quiet -t 1 2>/dev/null &
pid=$!
for _ in $(seq 1 2000); do
    [ -f "$dir/out.jsonl" ] && [ "$(wc -l < "$dir/out.jsonl")" -ge 6 ] && break
    sleep 0.01
done
kill -9 $pid 2>/dev/null || true
wait $pid 2>/dev/null || true
before=$(wc -l < "$dir/out.jsonl")
echo "killed after $before lines"
[ "$before" -lt $n ] || { echo "FAIL: the job finished before it could be killed"; exit 1; }

# run 2: resumes
"$bin" batch -m "$model" --input "$dir/in.jsonl" --output "$dir/out.jsonl" --quiet -t 1

python3 - "$dir/out.jsonl" $n <<'PY'
import json, sys, collections
lines = open(sys.argv[1]).read().splitlines()
n = int(sys.argv[2])
recs = [json.loads(l) for l in lines]          # every line is whole JSON
# a line without a custom_id (line 7: not JSON) has "custom_id": null and its "line"
key = lambda r: r["custom_id"] if r["custom_id"] is not None else ("line", r["line"])
ids = collections.Counter(key(r) for r in recs)
dups = [k for k, c in ids.items() if c > 1]
assert not dups, f"duplicated custom_ids: {dups}"
assert len(recs) == n, f"{len(recs)} records for {n} lines"
errors = {key(r): r["error"] for r in recs if r["error"]}
assert set(errors) == {("line", 7), "r9"}, f"error records: {errors}"
assert "top_p" in errors["r9"]["message"], errors["r9"]
ok = [r for r in recs if not r["error"]]
assert all(r["response"]["completion_tokens"] == 200 for r in ok), "wrong lengths"
print(f"{len(recs)} records, each custom_id once; errors for {sorted(map(str, errors))}")
PY
echo "1 passed, 0 failed"
