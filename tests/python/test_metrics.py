"""Engine metrics as a dict and as Prometheus text."""

import llmrt
from conftest import DATA, greedy


def test_metrics_count_a_batch():
    with llmrt.LLM(DATA / "tiny" / "llama_f32", kv_tokens=512, threads=1) as llm:
        m0 = llm.metrics()
        assert m0["requests_finished"] == 0 and m0["generation_tokens"] == 0
        assert m0["kv_blocks_total"] == 32  # 512 tokens / 16 per block
        llm.generate([[1, 2, 3], [1, 2, 3, 4, 5]], greedy(4, ignore_eos=True))
        m = llm.metrics()
        assert m["requests_finished"] == 2
        assert m["generation_tokens"] == 8
        assert m["prompt_tokens"] == 8
        assert m["n_waiting"] == m["n_running"] == 0
        assert m["ttft"]["count"] == 2 and m["e2e"]["count"] == 2
        buckets = m["e2e"]["buckets"]
        assert len(buckets) == 16 and buckets[-1][1] == 2
        assert [c for _, c in buckets] == sorted(c for _, c in buckets)  # cumulative
        text = llm.metrics_prometheus()
        assert "llmrt_kv_blocks_capacity 32" in text
        assert "# TYPE" in text and text.endswith("\n")


def test_prefix_cache_hits_show_in_metrics():
    with llmrt.LLM(DATA / "tiny" / "llama_f32", kv_tokens=512, threads=1) as llm:
        prompt = list(range(1, 40))
        llm.generate([prompt], greedy(2))
        out = llm.generate([prompt], greedy(2))[0]
        assert out.metrics.n_cached_tokens >= 32
        assert llm.metrics()["prefix_cache_hits"] >= 32


def test_engine_args_reach_the_engine():
    path = DATA / "tiny" / "llama_f32"
    # tiny: 3 layers x (K + V) x 2 kv heads x 16 dims x 4 bytes = 768 bytes per token
    with llmrt.LLM(path, kv_bytes=768 * 64, threads=1) as llm:
        assert llm.metrics()["kv_blocks_total"] == 4  # 64 tokens / 16
    with llmrt.LLM(path, kv_tokens=64, block_size=8, max_seqs=2, max_batched_tokens=16,
                   kv_policy="reserve", prefix_caching=False, threads=1) as llm:
        assert llm.metrics()["kv_blocks_total"] == 8
        outs = llm.generate([[1] * 10] * 5, greedy(20, ignore_eos=True))
        assert [len(o.outputs[0].token_ids) for o in outs] == [20] * 5
        m = llm.metrics()
        assert m["preemptions"] == 0 and m["prefix_cache_hits"] == 0


def test_every_histogram_has_its_bounds_before_and_after_the_first_step():
    # the same bucket bounds at all times (Prometheus requires it): increasing, last +inf
    import math
    with llmrt.LLM(DATA / "tiny" / "llama_f32", kv_tokens=512, threads=1) as llm:
        for when in ("before", "after"):
            m = llm.metrics()
            hists = {k: v for k, v in m.items() if isinstance(v, dict) and "buckets" in v}
            assert set(hists) >= {"ttft", "itl", "e2e", "tpot", "queue_time"}
            for name, h in hists.items():
                bounds = [b for b, _ in h["buckets"]]
                assert bounds[0] > 0 and bounds == sorted(set(bounds)) and math.isinf(bounds[-1]), \
                    (when, name, bounds)
            text = llm.metrics_prometheus()
            assert 'le="0"}' not in text, when
            llm.generate([[1, 2, 3]], greedy(3, ignore_eos=True))
