#!/usr/bin/env python3
"""Multi-turn chat benchmark against a running OpenAI-compatible server (starts nothing itself).

K conversations of T turns each. Turn t sends the whole history (earlier user messages and the
server's answers) plus a new user message of about N words, streamed (TTFT = request sent -> first
content delta), greedy (temperature 0), max_tokens 32. Turns run in order across conversations
(every conversation's turn 1, then every turn 2, ...), one request at a time, so the prefix cache
must keep K conversations to help. Reports per turn: prompt tokens, cached tokens
(usage.prompt_tokens_details.cached_tokens) and TTFT p50/mean.

Python standard library only. usage:
  bench/multiturn.py --base-url http://127.0.0.1:8000 [--conversations 8] [--turns 5]
                     [--words 40] [--max-tokens 32] [--json out.json]
"""
import argparse
import json
import random
import statistics
import sys
import time
import urllib.request

WORDS = ("the a river mountain city quiet engine music garden winter summer letter window "
         "story paper bridge forest ocean market light stone road train cloud coffee morning "
         "evening friend teacher doctor painter farmer kitchen library museum planet signal "
         "number pattern language question answer reason memory history travel island harbor "
         "simple careful bright heavy gentle ancient modern early late small large green blue "
         "red golden silver wooden broken open closed near far north south east west").split()


def user_message(rng, n_words, conv, turn):
    body = " ".join(rng.choice(WORDS) for _ in range(n_words))
    return f"Conversation {conv}, message {turn}: {body}. Please answer in one short sentence."


def post_stream(base_url, payload, api_key, timeout):
    req = urllib.request.Request(base_url.rstrip("/") + "/v1/chat/completions",
                                 data=json.dumps(payload).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    if api_key:
        req.add_header("Authorization", "Bearer " + api_key)
    t0 = time.perf_counter()
    ttft = None
    text = []
    usage = None
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        for raw in resp:
            line = raw.decode("utf-8", "replace").strip()
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk.get("choices") or []:
                delta = (choice.get("delta") or {}).get("content")
                if delta:
                    if ttft is None:
                        ttft = time.perf_counter() - t0
                    text.append(delta)
    e2e = time.perf_counter() - t0
    return {"ttft": ttft if ttft is not None else e2e, "e2e": e2e, "text": "".join(text),
            "usage": usage or {}}


def model_name(base_url, api_key, timeout):
    req = urllib.request.Request(base_url.rstrip("/") + "/v1/models")
    if api_key:
        req.add_header("Authorization", "Bearer " + api_key)
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.load(resp)["data"][0]["id"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--conversations", "-k", type=int, default=8)
    ap.add_argument("--turns", type=int, default=5)
    ap.add_argument("--words", type=int, default=40, help="words per new user message")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--model", default=None, help="default: the server's first /v1/models entry")
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--label", default="", help="a name printed with the results")
    ap.add_argument("--json", default=None, help="also write the per-turn results here")
    a = ap.parse_args()

    model = a.model or model_name(a.base_url, a.api_key, a.timeout)
    rngs = [random.Random(a.seed * 1000 + k) for k in range(a.conversations)]
    history = [[{"role": "system",
                 "content": f"You are assistant number {k}. Be brief."}]
               for k in range(a.conversations)]
    per_turn = []
    for t in range(1, a.turns + 1):
        rows = []
        for k in range(a.conversations):
            history[k].append({"role": "user", "content": user_message(rngs[k], a.words, k, t)})
            r = post_stream(a.base_url, {
                "model": model, "messages": history[k], "max_tokens": a.max_tokens,
                "temperature": 0, "stream": True,
                "stream_options": {"include_usage": True}}, a.api_key, a.timeout)
            history[k].append({"role": "assistant", "content": r["text"]})
            u = r["usage"]
            rows.append({"ttft": r["ttft"], "e2e": r["e2e"],
                         "prompt_tokens": u.get("prompt_tokens", 0),
                         "cached_tokens": (u.get("prompt_tokens_details") or {}).get(
                             "cached_tokens", 0),
                         "completion_tokens": u.get("completion_tokens", 0)})
        ttfts = [x["ttft"] for x in rows]
        per_turn.append({
            "turn": t,
            "ttft_p50_s": statistics.median(ttfts),
            "ttft_mean_s": statistics.fmean(ttfts),
            "prompt_tokens_mean": statistics.fmean(x["prompt_tokens"] for x in rows),
            "cached_tokens_mean": statistics.fmean(x["cached_tokens"] for x in rows),
            "cached_tokens_p50": statistics.median(x["cached_tokens"] for x in rows),
            "completion_tokens_mean": statistics.fmean(x["completion_tokens"] for x in rows),
        })

    label = f" [{a.label}]" if a.label else ""
    print(f"# multi-turn{label}: {a.conversations} conversations x {a.turns} turns, "
          f"{a.words} words per new message, max_tokens {a.max_tokens}, greedy, streamed, "
          f"one request at a time; model {model}")
    print(f"{'turn':>4} {'prompt tok':>10} {'cached tok':>10} {'cached p50':>10} "
          f"{'TTFT p50 ms':>11} {'TTFT mean ms':>12}")
    for p in per_turn:
        print(f"{p['turn']:>4} {p['prompt_tokens_mean']:>10.1f} {p['cached_tokens_mean']:>10.1f} "
              f"{p['cached_tokens_p50']:>10.0f} {p['ttft_p50_s'] * 1e3:>11.1f} "
              f"{p['ttft_mean_s'] * 1e3:>12.1f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"label": a.label, "conversations": a.conversations, "turns": a.turns,
                       "words": a.words, "max_tokens": a.max_tokens, "model": model,
                       "per_turn": per_turn}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
