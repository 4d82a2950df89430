#!/usr/bin/env bash
# The engine's Prometheus text (tests/cli/metrics_dump.c after a few requests on a tiny fixture)
# passes `promtool check metrics` (Debian's `prometheus` package): valid exposition format and no
# lint problems (counters end in _total, histograms have cumulative buckets, _sum, _count).
# usage: test_metrics_promtool.sh METRICS_DUMP_BINARY MODEL. Exit 77 (skipped) without promtool.
set -euo pipefail
dump=$1
model=$2
if ! command -v promtool >/dev/null 2>&1; then
    echo "promtool not found (Debian package prometheus): skipped"
    exit 77
fi
text=$(mktemp)
trap 'rm -f "$text"' EXIT
"$dump" "$model" >"$text"
for name in llmrt_time_to_first_token_seconds llmrt_time_per_output_token_seconds \
            llmrt_request_queue_time_seconds llmrt_e2e_request_latency_seconds \
            llmrt_requests_finished_total llmrt_preemptions_total; do
    grep -q "^# TYPE $name " "$text" || { echo "missing metric $name"; exit 1; }
done
grep -q '^llmrt_request_queue_time_seconds_count 4$' "$text" || { echo "queue_time count != 4"; exit 1; }
grep -q '^llmrt_time_per_output_token_seconds_count 4$' "$text" || { echo "tpot count != 4"; exit 1; }
# promtool exits 0 on lint warnings too in some versions: fail on any output as well
out=$(promtool check metrics <"$text" 2>&1) && rc=0 || rc=$?
if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
    echo "promtool check metrics: exit $rc"
    echo "$out"
    exit 1
fi
echo "promtool check metrics: OK ($(grep -c '^# TYPE' "$text") metrics)"
