#!/usr/bin/env bash
# llmrt tokenize --tokenizer PATH [--chat FILE]: a tokenizer without a model (Qwen2's real
# tokenizer directory, unpacked by CMake) renders the conversations of the Qwen2.5-Instruct golden
# cases (tests/data/chat_templates/golden.json, transformers) byte for byte with the directory's
# own template (--render), and their ids are the golden ids of the rendered prompts
# (tests/data/tokenizer_golden/qwen2.json, cases chat_qwen25_*: tiktoken == tokenizers). Bad
# input is refused with exit status 1 or 2 and a message naming the option, file or field.
# usage: test_tokenize_chat.sh LLMRT_BINARY QWEN2_TOKENIZER_DIR TEST_DATA_DIR
set -euo pipefail
bin=$1 qwen=$2 data=$3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() {
    echo "FAIL: $*"
    exit 1
}

# the golden conversations, their renders and ids, as files (python3's standard library only)
python3 - "$data" "$dir" <<'PY'
import json, sys
data, out = sys.argv[1], sys.argv[2]
cases = [c for c in json.load(open(data + "/chat_templates/golden.json"))["cases"]
         if c["template"] == "Qwen-Qwen2.5-7B-Instruct" and "expected" in c]
ids = {c["name"]: c["ids"] for c in json.load(open(data + "/tokenizer_golden/qwen2.json"))["cases"]
       if c["parse_special"] and c["add_special"]}  # Qwen2 adds no BOS either way
for i, c in enumerate(cases):
    v = c["vars"]
    with open("%s/chat%d.json" % (out, i), "w") as f:
        json.dump(v["messages"], f)
    if v.get("tools") is not None:
        with open("%s/tools%d.json" % (out, i), "w") as f:
            json.dump(v["tools"], f)
    with open("%s/agp%d" % (out, i), "w") as f:
        f.write("1" if v["add_generation_prompt"] else "0")
    with open("%s/expected%d.txt" % (out, i), "wb") as f:
        f.write(c["expected"].encode())
    # make_qwen2_tokenizer.py took the first four renders as tokenizer cases
    if "chat_qwen25_%d" % i in ids:
        with open("%s/ids%d.txt" % (out, i), "w") as f:
            f.write(",".join(map(str, ids["chat_qwen25_%d" % i])) + "\n")
PY

n=0
n_ids=0
for chat in "$dir"/chat*.json; do
    i=${chat##*/chat}
    i=${i%.json}
    args=(tokenize --tokenizer "$qwen" --chat "$chat")
    [ -f "$dir/tools$i.json" ] && args+=(--tools "$dir/tools$i.json")
    [ "$(cat "$dir/agp$i")" = 0 ] && args+=(--no-generation-prompt)
    "$bin" "${args[@]}" --render > "$dir/got$i.txt" 2> "$dir/err" || fail "case $i: $(cat "$dir/err")"
    cmp -s "$dir/got$i.txt" "$dir/expected$i.txt" || {
        diff "$dir/expected$i.txt" "$dir/got$i.txt" || true
        fail "case $i: the render differs from transformers'"
    }
    if [ -f "$dir/ids$i.txt" ]; then
        "$bin" "${args[@]}" --ids > "$dir/gotids$i.txt" 2> "$dir/err" || fail "case $i ids: $(cat "$dir/err")"
        cmp -s "$dir/gotids$i.txt" "$dir/ids$i.txt" || fail "case $i: ids $(cat "$dir/gotids$i.txt") != golden $(cat "$dir/ids$i.txt")"
        n_ids=$((n_ids + 1))
    fi
    n=$((n + 1))
done
[ $n -ge 15 ] || fail "only $n golden conversations"
[ $n_ids -ge 3 ] || fail "only $n_ids id checks"

# expect_refusal NAME RC NEEDLE ARGS...: exit status RC and NEEDLE in stderr
expect_refusal() {
    local name=$1 want=$2 needle=$3 rc=0
    shift 3
    timeout 30 "$bin" "$@" > "$dir/out" 2> "$dir/err" || rc=$?
    [ $rc -eq "$want" ] || fail "$name: exit $rc, expected $want ($(cat "$dir/err"))"
    grep -qF -- "$needle" "$dir/err" || fail "$name: the message does not name $needle: $(cat "$dir/err")"
}
printf '[{"role": 7, "content": "x"}]' > "$dir/bad_role.json"
printf '[{"role": "user", "content": "x"}' > "$dir/truncated.json"
printf '{"role": "user"}' > "$dir/not_list.json"
printf '[{"role": "user", "content": "x"}]' > "$dir/ok.json"
expect_refusal "role not a string" 1 "messages[0].role" tokenize --tokenizer "$qwen" --chat "$dir/bad_role.json"
expect_refusal "truncated JSON" 1 "$dir/truncated.json" tokenize --tokenizer "$qwen" --chat "$dir/truncated.json"
expect_refusal "messages not a list" 1 "messages" tokenize --tokenizer "$qwen" --chat "$dir/not_list.json"
expect_refusal "missing file" 1 "$dir/none.json" tokenize --tokenizer "$qwen" --chat "$dir/none.json"
expect_refusal "directory as file" 1 "$dir" tokenize --tokenizer "$qwen" --chat "$dir"
expect_refusal "tools not a list" 1 "tools" tokenize --tokenizer "$qwen" --chat "$dir/ok.json" --tools "$dir/not_list.json"
expect_refusal "no template" 1 "no chat template" tokenize --tokenizer "$qwen/tokenizer.json" --chat "$dir/ok.json"
expect_refusal "unknown family" 1 "vicuna" tokenize --tokenizer "$qwen" --chat "$dir/ok.json" --chat-template vicuna
expect_refusal "missing tokenizer" 1 "$dir/nothing" tokenize --tokenizer "$dir/nothing" x
expect_refusal "model and tokenizer" 2 "not both" tokenize --tokenizer "$qwen" -m "$qwen" x
expect_refusal "TEXT with --chat" 2 "TEXT" tokenize --tokenizer "$qwen" --chat "$dir/ok.json" x
expect_refusal "--tools without --chat" 2 "--tools" tokenize --tokenizer "$qwen" --tools "$dir/ok.json" x
expect_refusal "--parse-special with --chat" 2 "--parse-special" tokenize --tokenizer "$qwen" --chat "$dir/ok.json" --parse-special
# the tokenizer.json alone renders with a family name
"$bin" tokenize --tokenizer "$qwen/tokenizer.json" --chat "$dir/ok.json" --chat-template chatml --render > "$dir/out" 2> "$dir/err" ||
    fail "chatml override: $(cat "$dir/err")"
# (the built-in ChatML is plain ChatML: no system turn is added to a conversation without one)
[ "$(cat "$dir/out")" = "$(printf '<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant')" ] ||
    fail "chatml override: $(cat "$dir/out")"
# plain text through the standalone tokenizer: Qwen2's single digits
[ "$("$bin" tokenize --tokenizer "$qwen" --ids "12345" 2> /dev/null)" = "16,17,18,19,20" ] || fail "digits"
echo "test_tokenize_chat: $n golden renders ($n_ids with golden ids), 14 refusals: OK"
