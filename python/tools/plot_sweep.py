"""Plot an `llmrt bench sweep --format json` result: output tokens/s, TTFT p50/p99 and TPOT p50
against the swept value.

    python3 python/tools/plot_sweep.py sweep.json sweep.png

Needs matplotlib (pip install matplotlib); only for making figures, never in CI.
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(src: str, dst: str) -> None:
    data = json.load(open(src))
    rows = data["results"]
    key = "max_concurrency" if "max_concurrency" in rows[0] else "input_len"
    x = [r[key] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.plot(x, [r["output_throughput"] for r in rows], "o-")
    a.set_xscale("log", base=2)
    a.set_xlabel(key)
    a.set_ylabel("output tokens/s")
    a.set_title("throughput")
    a.grid(True, alpha=0.3)
    b.plot(x, [r["median_ttft_ms"] for r in rows], "o-", label="TTFT p50")
    b.plot(x, [r["p99_ttft_ms"] for r in rows], "s--", label="TTFT p99")
    b.plot(x, [r["median_tpot_ms"] for r in rows], "^-", label="TPOT p50")
    b.set_xscale("log", base=2)
    b.set_yscale("log")
    b.set_xlabel(key)
    b.set_ylabel("ms")
    b.set_title("latency")
    b.legend()
    b.grid(True, alpha=0.3)
    fig.suptitle(f"{data['model_id']} ({data['weight_format']}), {data['backend']}, "
                 f"{data['threads']} threads, git {data['git_revision']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
