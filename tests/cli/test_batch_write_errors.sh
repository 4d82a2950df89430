#!/usr/bin/env bash
# llmrt batch under write failures (issue 18, class 1):
#  1. --output /dev/full: refused, non-zero, the path in the message;
#  2. a file-size limit (RLIMIT_FSIZE, the portable stand-in for a full disk) hit mid-job: exit 1,
#     a message naming the file, only complete records left; then a run killed with SIGKILL, then
#     a resume without the limit: every custom_id exactly once, every line valid JSON;
#  3. a torn line in the MIDDLE of the output: resume refuses, naming the line; a torn LAST line
#     is repaired;
#  4. --ordered: the records come out in input order;
#  5. `generate > /dev/full` exits 1 (every command checks its standard output at exit).
# usage: test_batch_write_errors.sh LLMRT_BINARY MODEL
set -euo pipefail
bin=$1 model=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
n=40
for i in $(seq 1 $n); do
    echo "{\"custom_id\": \"r$i\", \"prompt_token_ids\": [1, $((i % 300 + 2)), 5], \"max_tokens\": $((i % 7 * 9 + 4)), \"ignore_eos\": true}"
done > "$dir/in.jsonl"
run() { timeout 120 "$bin" batch -m "$model" --input "$dir/in.jsonl" --quiet -t 1 "$@"; }
check_complete() { # every line valid JSON, each custom_id once, all n present
    python3 - "$1" "$n" <<'PY'
import json, sys, collections
raw = open(sys.argv[1], "rb").read()
assert raw.endswith(b"\n"), "torn last line"
recs = [json.loads(l) for l in raw.decode().splitlines()]
ids = collections.Counter(r["custom_id"] for r in recs)
assert not [k for k, c in ids.items() if c > 1], f"duplicates: {[k for k, c in ids.items() if c > 1]}"
assert len(ids) == int(sys.argv[2]), f"{len(ids)} ids for {sys.argv[2]} lines"
assert all(r["error"] is None for r in recs), [r for r in recs if r["error"]][:2]
PY
}

# 1. /dev/full
set +e
run --output /dev/full 2> "$dir/err1"; rc=$?
set -e
[ $rc -ne 0 ] || fail "--output /dev/full exited 0"
grep -q "/dev/full" "$dir/err1" || fail "no message naming /dev/full: $(cat "$dir/err1")"
echo "ok: /dev/full -> exit $rc: $(head -1 "$dir/err1")"

# 2. a 2 KiB file-size limit (bash's ulimit -f counts 1024-byte blocks); llmrt batch ignores
#    SIGXFSZ, so the write that crosses it fails with EFBIG like one on a full disk
out="$dir/out.jsonl"
set +e
(ulimit -f 2; run --output "$out") 2> "$dir/err2"; rc=$?
set -e
[ $rc -eq 1 ] || fail "the run that hit the file-size limit exited $rc, not 1: $(cat "$dir/err2")"
grep -q "writing $out failed" "$dir/err2" || fail "no message naming $out: $(cat "$dir/err2")"
size=$(stat -c %s "$out")
[ "$size" -le 2048 ] || fail "the output grew past the limit ($size bytes)"
[ "$(tail -c 1 "$out" | od -An -c | tr -d ' ')" = '\n' ] || fail "a torn line was left at the end"
python3 -c "import json,sys; [json.loads(l) for l in open(sys.argv[1])]" "$out" || fail "invalid JSON"
lines1=$(wc -l < "$out")
[ "$lines1" -gt 0 ] && [ "$lines1" -lt $n ] || fail "$lines1 records after the limit"
echo "ok: the file-size limit stopped the job with exit 1 after $lines1 whole records"
# a run killed with SIGKILL mid-job (no limit), then a resume
# (the binary itself in the background, so that $! is llmrt and not a wrapper)
"$bin" batch -m "$model" --input "$dir/in.jsonl" --quiet -t 1 --output "$out" --max-concurrency 2 \
    2>/dev/null &
pid=$!
for _ in $(seq 1 3000); do
    [ "$(wc -l < "$out")" -ge $((lines1 + 3)) ] && break
    sleep 0.01
done
kill -9 $pid 2>/dev/null || true
wait $pid 2>/dev/null || true
echo "killed at $(wc -l < "$out") records"
run --output "$out" 2> "$dir/err3" || fail "the resume failed: $(cat "$dir/err3")"
check_complete "$out" || fail "after the resume"
echo "ok: limit, kill -9, resume -> every custom_id exactly once"

# a second job on an output that another holds (flock(1) takes the same lock, here in this
# shell on descriptor 9, so no background process and no race) is refused
if command -v flock > /dev/null; then
    exec 9>> "$out"
    flock -x 9
    set +e
    run --output "$out" 2> "$dir/err_lock" 9>&-; rc=$?
    set -e
    flock -u 9
    exec 9>&-
    [ $rc -ne 0 ] && grep -q "another llmrt batch job is writing" "$dir/err_lock" ||
        fail "a second job on a locked output was not refused: $(cat "$dir/err_lock")"
    echo "ok: a second job on the same output is refused"
fi

# 3. a torn line in the middle: refused, naming line 3
head -n 2 "$out" > "$dir/mid.jsonl"
printf '{"custom_id": "r99", "resp' >> "$dir/mid.jsonl"
printf '\n' >> "$dir/mid.jsonl"
tail -n +3 "$out" >> "$dir/mid.jsonl"
cp "$dir/mid.jsonl" "$dir/mid.before"
set +e
run --output "$dir/mid.jsonl" 2> "$dir/err4"; rc=$?
set -e
[ $rc -ne 0 ] || fail "a torn line in the middle was accepted"
grep -q "mid.jsonl line 3" "$dir/err4" || fail "the message does not name line 3: $(cat "$dir/err4")"
cmp -s "$dir/mid.jsonl" "$dir/mid.before" || fail "the damaged file was modified"
# a duplicated custom_id is damage too
{ cat "$out"; head -n 1 "$out"; } > "$dir/dup.jsonl"
set +e
run --output "$dir/dup.jsonl" 2> "$dir/err5"; rc=$?
set -e
[ $rc -ne 0 ] && grep -q "line $((n + 1)).*custom_id" "$dir/err5" || fail "a repeated custom_id was accepted: $(cat "$dir/err5")"
# a torn LAST line is repaired and redone
head -n 5 "$out" > "$dir/tail.jsonl"
printf '{"custom_id": "r6", "respo' >> "$dir/tail.jsonl"
run --output "$dir/tail.jsonl" 2> "$dir/err6" || fail "a torn last line was not repaired: $(cat "$dir/err6")"
grep -q "partial record" "$dir/err6" || fail "no note of the repair"
check_complete "$dir/tail.jsonl" || fail "after repairing a torn last line"
echo "ok: torn middle line refused (line 3), repeated id refused, torn last line repaired"

# 4. --ordered: input order, even with requests of different lengths in flight together
run --output "$dir/ordered.jsonl" --ordered --max-concurrency 8 || fail "--ordered run failed"
python3 - "$dir/ordered.jsonl" "$n" <<'PY' || fail "--ordered output is not in input order"
import json, sys
ids = [json.loads(l)["custom_id"] for l in open(sys.argv[1])]
assert ids == [f"r{i}" for i in range(1, int(sys.argv[2]) + 1)], ids[:10]
PY
echo "ok: --ordered writes in input order"
# 5. the same rule for the other commands' standard output: lost output is not success
set +e
timeout 60 "$bin" generate -m "$model" --tokens 1,2,3 -n 4 -t 1 > /dev/full 2> "$dir/err7"; rc=$?
set -e
[ $rc -eq 1 ] && grep -q "writing the standard output failed" "$dir/err7" ||
    fail "generate > /dev/full exited $rc: $(cat "$dir/err7")"
echo "ok: generate > /dev/full -> exit 1"
echo "5 passed, 0 failed"
