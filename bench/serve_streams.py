"""Memory of a server process holding many open SSE streams.

    python3 bench/serve_streams.py URL PID [--streams 1000] [--max-tokens 64] [--limit-s 300]

Opens --streams connections to URL (an OpenAI-compatible server, e.g. `llmrt serve`), sends a
streaming /v1/completions request on each at once, reads every stream as it arrives
(selectors, one thread) and samples the server's VmRSS / VmHWM / thread count from
/proc/PID/status every 0.5 s until every stream has ended or --limit-s passes. Prints the RSS
before, the peak while the streams were open, the streams that got their first event, and the
ones that ended with data: [DONE]."""
import argparse
import json
import re
import selectors
import socket
import time
from urllib.parse import urlparse


def proc_status(pid):
    with open(f"/proc/{pid}/status") as f:
        s = f.read()
    get = lambda k: int(re.search(rf"{k}:\s+(\d+)", s).group(1))
    return get("VmRSS"), get("VmHWM"), get("Threads")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("pid", type=int)
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--limit-s", type=float, default=300)
    ap.add_argument("--model", default=None)
    a = ap.parse_args()
    u = urlparse(a.url)
    body = {"prompt": "Write a long story about a lighthouse keeper.", "max_tokens": a.max_tokens,
            "stream": True, "ignore_eos": True, "temperature": 0}
    if a.model:
        body["model"] = a.model
    data = json.dumps(body).encode()
    req = (f"POST /v1/completions HTTP/1.1\r\nHost: {u.hostname}\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode() + data
    rss0, _, thr0 = proc_status(a.pid)
    sel = selectors.DefaultSelector()
    state = {}
    t0 = time.time()
    for i in range(a.streams):
        s = socket.create_connection((u.hostname, u.port), timeout=30)
        s.sendall(req)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
        state[i] = {"first": None, "done": False, "buf": b"", "head": b""}
    opened = time.time() - t0
    peak_rss, peak_thr, next_sample, open_n = 0, 0, 0.0, a.streams
    while open_n and time.time() - t0 < a.limit_s:
        if time.time() >= next_sample:
            rss, _, thr = proc_status(a.pid)
            peak_rss, peak_thr = max(peak_rss, rss), max(peak_thr, thr)
            next_sample = time.time() + 0.5
        for key, _ in sel.select(timeout=0.5):
            st = state[key.data]
            chunk = key.fileobj.recv(65536)
            if st["first"] is None and b"data: " in st["buf"] + chunk:
                st["first"] = time.time() - t0
            st["buf"] = (st["buf"] + chunk)[-64:]
            if len(st["head"]) < 16:
                st["head"] += chunk[: 16 - len(st["head"])]
            if not chunk:
                st["done"] = b"data: [DONE]" in st["buf"]
                sel.unregister(key.fileobj)
                key.fileobj.close()
                open_n -= 1
    rss, hwm, thr = proc_status(a.pid)
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    firsts = sorted(s["first"] for s in state.values() if s["first"] is not None)
    done = sum(s["done"] for s in state.values())
    print(f"streams {a.streams} (opened in {opened:.1f} s), max_tokens {a.max_tokens}")
    print(f"server RSS before {rss0 / 1024:.1f} MiB ({thr0} threads); peak while open "
          f"{peak_rss / 1024:.1f} MiB ({peak_thr} threads); +{(peak_rss - rss0) / a.streams:.1f} KiB "
          f"per stream; VmHWM {hwm / 1024:.1f} MiB")
    print(f"first event on {len(firsts)}/{a.streams} streams"
          + (f" (p50 {firsts[len(firsts) // 2]:.1f} s, last {firsts[-1]:.1f} s)" if firsts else ""))
    print(f"ended with [DONE]: {done}/{a.streams} in {time.time() - t0:.1f} s")
    heads = {}
    for st in state.values():
        h = st["head"][:12].decode("latin-1") or "(nothing)"
        heads[h] = heads.get(h, 0) + 1
    print("responses: " + ", ".join(f"{k!r} x{v}" for k, v in sorted(heads.items())))


if __name__ == "__main__":
    main()
