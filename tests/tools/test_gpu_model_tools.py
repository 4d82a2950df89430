#!/usr/bin/env python3
"""Checks of the static GPU tools (python/tools/cuda_resource_table.py, decode_time_model.py):
the launch configurations the resource table states still match cuda/ (so the committed table
cannot silently go stale), the ptxas log parser, the occupancy arithmetic on hand-computed cases,
and the decode model's launch count and bytes for Llama-2-7B. Plain asserts; exit status 0 = pass.

Usage: python3 tests/tools/test_gpu_model_tools.py [REPO]"""
import json
import os
import subprocess
import sys
import tempfile

REPO = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(os.path.dirname(__file__), "..", ".."))
TOOLS = os.path.join(REPO, "python", "tools")
sys.path.insert(0, TOOLS)

import cuda_resource_table as crt  # noqa: E402
import decode_time_model as dtm  # noqa: E402

PTXAS = """\
ptxas info    : Compiling entry function '_ZN4lora18lora_expand_kernelIfLi4EEEvPT_lPKfiiPK20llmrt_cuda_lora_slotiPKiS4_S9_S9_' for 'sm_80'
ptxas info    : Function properties for _ZN4lora18lora_expand_kernelIfLi4EEEvPT_lPKfiiPK20llmrt_cuda_lora_slotiPKiS4_S9_S9_
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 40 registers, used 1 barriers, 384 bytes cmem[0]
ptxas info    : Compiling entry function '_Z13swiglu_kernelIfEvPT_PKS0_S3_l' for 'sm_90'
ptxas info    : Function properties for _Z13swiglu_kernelIfEvPT_PKS0_S3_l
    16 bytes stack frame, 12 bytes spill stores, 8 bytes spill loads
ptxas info    : Used 255 registers, used 0 barriers, 128 bytes smem
"""


def run(args, **kw):
    return subprocess.run([sys.executable] + args, capture_output=True, text=True, **kw)


def main():
    checks = 0

    # every LAUNCHES entry was read from source that is still there
    missing = crt.check_sources(os.path.join(REPO, "cuda"))
    assert not missing, f"launch configurations changed, update LAUNCHES: {missing}"
    checks += 1

    res = crt.parse_log(PTXAS.splitlines())
    assert len(res) == 2, res
    lora = next(v for k, v in res.items() if k[1] == "sm_80")
    assert lora == {"stack": 0, "spill_st": 0, "spill_ld": 0, "regs": 40, "smem": 0, "barriers": 1}, lora
    sw = next(v for k, v in res.items() if k[1] == "sm_90")
    assert (sw["regs"], sw["spill_st"], sw["spill_ld"], sw["stack"], sw["smem"]) == (255, 12, 8, 16, 128)
    assert crt.split_name("void (anonymous namespace)::dec::attn_decode_kernel<__half, 128>"
                          "(__half const*, int)") == ("attn_decode_kernel", ["__half", "128"])
    checks += 3

    # occupancy by hand: regs/warp rounded up to 256, 65536 per SM; smem + 1 KB per block
    # 168 regs -> 5376/warp -> 12 warps = 3 CTAs of 4; 68 KB + 1 KB -> 3 CTAs in 228 KB, 2 in 164 KB
    assert crt.occupancy("sm_90", 168, 128, 69632) == (12, "registers + smem")
    assert crt.occupancy("sm_80", 164, 128, 69632) == (8, "smem")
    # 207 regs -> 6656/warp -> 9 warps -> 2 CTAs of 4 (8 warps); 64 KB: 2 CTAs in 164 KB as well
    assert crt.occupancy("sm_80", 207, 128, 65536) == (8, "registers + smem")
    assert crt.occupancy("sm_90", 14, 256, 0) == (64, "full")
    assert crt.occupancy("sm_90", 96, 128, None) == (20, "registers")  # 3072/warp -> 21 -> 5 CTAs
    checks += 5

    # the table fails on a spill, and prints what it parsed
    with tempfile.TemporaryDirectory() as d:
        log = os.path.join(d, "log")
        with open(log, "w") as f:
            f.write(PTXAS)
        r = run([os.path.join(TOOLS, "cuda_resource_table.py"), log])
        assert r.returncode == 1 and "swiglu_kernel<f32> sm_90: spills" in r.stderr, r.stderr
        assert "| `lora_expand_kernel<f32, 4>` | 128 | 0 + 17.0 KB | 40 | 0/0 | 0 |" in r.stdout, r.stdout
        checks += 2

        # decode model: Llama-2-7B kernel counts and bytes, hand-counted from forward.c
        # unfused (llmrt_cuda_options.unfused, and every batch above the fused GEMV's 8 rows)
        assert dtm.launches("fp16", 1, 512, "H100 SXM", 1, unfused=True) == (13, 32 * 13 + 5, 2, 2)
        assert dtm.launches("fp16", 32, 512, "H100 SXM", 1) == (12, 32 * 12 + 5, 2, 1)
        assert dtm.launches("4-bit", 1, 512, "A100-80GB SXM", 1, unfused=True)[0] == 6 + 7  # split-K in-kernel
        assert dtm.launches("4-bit", 1, 512, "A100-80GB SXM", 1, True, True)[0] == 6 + 7 * 2  # + finalize
        # fused decode (batch <= 8): norm+qkv, rope_kv, attention (+ combine), o+add, norm+gate/up,
        # swiglu+down+add, the 4-bit GEMV grouped as well (before: one launch per weight).
        # cuda_launches_per_layer.md: 7 for both, 10 for 4-bit before the grouping
        assert dtm.launches("fp16", 1, 512, "H100 SXM", 1) == (7, 32 * 7 + 4, 2, 2)
        assert dtm.launches("4-bit", 1, 512, "H100 SXM", 1) == (7, 32 * 7 + 4, 2, 2)
        assert dtm.launches("4-bit", 1, 512, "H100 SXM", 1, q4_ungrouped=True) == (10, 32 * 10 + 4, 2, 2)
        assert dtm.launches("4-bit", 32, 512, "H100 SXM", 1) == (12, 32 * 12 + 5, 2, 1)  # > 8: unfused
        wb, kv = dtm.bytes_per_step("fp16", 1, 512)
        assert abs(wb - 13.21e9) < 0.01e9 and kv == 512 * 32 * 2 * 32 * 128 * 2, (wb, kv)
        wb4, _ = dtm.bytes_per_step("4-bit", 1, 512)
        assert abs(wb4 - 3.70e9) < 0.01e9, wb4
        checks += 7

        out = run([os.path.join(TOOLS, "decode_time_model.py")])
        assert out.returncode == 0 and "MODELLED" in out.stdout, out.stderr
        assert "| H100 SXM | fp16 | 1 | 13.48 (13.21 + 0.27) | 4.02 | 7 (2) | 228 |" in out.stdout
        probe = os.path.join(d, "probe.jsonl")
        with open(probe, "w") as f:
            for mode, us in (("eager", 2.5), ("graph", 0.75)):
                f.write(json.dumps({"probe": "launch", "device": "NVIDIA H100 80GB HBM3",
                                    "mode": mode, "n": 1000, "us_per_launch": us}) + "\n")
        out = run([os.path.join(TOOLS, "decode_time_model.py"), "--probe-json", probe])
        assert out.returncode == 0 and "2.50 us per eager launch, 0.75 us per graph node" in out.stdout
        with open(probe, "w") as f:
            f.write(json.dumps({"probe": "launch", "device": "NVIDIA H100 80GB HBM3 (cusim)",
                                "mode": "eager", "us_per_launch": 11.0}) + "\n")
        out = run([os.path.join(TOOLS, "decode_time_model.py"), "--probe-json", probe])
        assert out.returncode != 0 and "cusim" in out.stderr, out.stderr
        out = run([os.path.join(TOOLS, "decode_time_model.py"), "--launch-us", "-1"])
        assert out.returncode != 0 and "--launch-us" in out.stderr
        checks += 5

    print(f"test_gpu_model_tools: {checks} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
