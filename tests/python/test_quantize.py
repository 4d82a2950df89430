"""llmrt.quantize: GPTQ bit layout (pack/unpack, v1/v2 zeros, act-order g_idx), the committed
GPTQ fixtures under tests/data/gptq (dequantise close to their base model; goldens consistent
with the checkpoints), and, where torch is installed, the quantizer itself.

Runs with numpy + pytest only (CI); the torch tests are skipped without torch/transformers.
If the installed llmrt package does not ship llmrt.quantize, it is loaded from python/ of this
checkout under the same name."""

import importlib
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
GPTQ_DATA = REPO / "tests" / "data" / "gptq"


def _import_quantize():
    try:
        return importlib.import_module("llmrt.quantize")
    except ImportError:
        pass
    import llmrt  # noqa: F401  (the installed package; its quantize subpackage is missing)
    src = REPO / "python" / "llmrt" / "quantize"
    spec = importlib.util.spec_from_file_location("llmrt.quantize", src / "__init__.py",
                                                  submodule_search_locations=[str(src)])
    mod = importlib.util.module_from_spec(spec)
    sys.modules["llmrt.quantize"] = mod
    spec.loader.exec_module(mod)
    return mod


Q = _import_quantize()
packing = importlib.import_module("llmrt.quantize.packing")
checkpoint = importlib.import_module("llmrt.quantize.checkpoint")


def _fixtures_module():
    spec = importlib.util.spec_from_file_location(
        "make_gptq_fixtures", REPO / "python" / "tools" / "make_gptq_fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


FIX = _fixtures_module()
VARIANTS = list(FIX.variants())  # (name, group_size, desc_act, sym, checkpoint_format)


def u32(x):
    return int(np.int32(x).view(np.uint32))


# ----------------------------------------------------------------------------- bit layout


def test_qweight_pack_layout_and_round_trip():
    rng = np.random.RandomState(0)
    q = rng.randint(0, 16, size=(64, 24))
    qw = packing.pack_qweight(q)
    assert qw.dtype == np.int32 and qw.shape == (8, 24)
    # nibble j (LSB first) of qweight[r][n] holds row k = 8r + j
    for r in range(8):
        for n in range(24):
            word = u32(qw[r, n])
            for j in range(8):
                assert (word >> (4 * j)) & 0xF == q[8 * r + j, n]
    assert np.array_equal(packing.unpack_qweight(qw), q)
    # a 15 in the top nibble makes the int32 negative; unpacking must use unsigned shifts
    q2 = np.full((8, 8), 15)
    qw2 = packing.pack_qweight(q2)
    assert np.all(qw2 == -1)
    assert np.array_equal(packing.unpack_qweight(qw2), q2)


def test_pack_rejects_bad_input():
    with pytest.raises(ValueError):
        packing.pack_qweight(np.zeros((12, 8), dtype=int))
    with pytest.raises(ValueError):
        packing.pack_qweight(np.full((8, 8), 16))
    with pytest.raises(ValueError):
        packing.pack_qzeros(np.zeros((2, 12), dtype=int), "gptq")
    with pytest.raises(ValueError):
        packing.pack_qzeros(np.zeros((2, 8), dtype=int), "gptq_v3")


def test_qzeros_v1_v2_round_trip():
    rng = np.random.RandomState(1)
    z = rng.randint(1, 16, size=(5, 32))  # no zero of 0: v1 is exact
    for fmt in ("gptq", "gptq_v2"):
        qz = packing.pack_qzeros(z, fmt)
        assert qz.dtype == np.int32 and qz.shape == (5, 4)
        assert np.array_equal(packing.unpack_qzeros(qz, fmt), z)
    raw_v1 = packing.unpack_qzeros_raw(packing.pack_qzeros(z, "gptq"))
    raw_v2 = packing.unpack_qzeros_raw(packing.pack_qzeros(z, "gptq_v2"))
    assert np.array_equal(raw_v1, z - 1) and np.array_equal(raw_v2, z)
    # nibble j of qzeros[g][c] holds column n = 8c + j
    qz = packing.pack_qzeros(z, "gptq_v2")
    assert (u32(qz[2, 1]) >> 12) & 0xF == z[2, 8 + 3]
    # GPTQModel's v1 -> v2 word add equals per-nibble +1 when no nibble is 0xF
    assert np.array_equal(packing.v1_to_v2_gptqmodel(packing.pack_qzeros(z, "gptq")),
                          packing.pack_qzeros(z, "gptq_v2"))


def test_sym_zero_words():
    z = np.full((3, 16), 8)
    assert np.all(packing.pack_qzeros(z, "gptq").view(np.uint32) == 0x77777777)
    assert np.all(packing.pack_qzeros(z, "gptq_v2").view(np.uint32) == 0x88888888)


def test_v1_zero_of_0_borrows():
    """GPTQModel's v1: the v2 words minus 0x11111111; a zero of 0 is 0xF and borrows from the
    nibble above, and the word-wise add (GPTQModel's and llmrt's reading) undoes it exactly."""
    z = np.array([[3, 4, 5, 6, 7, 0, 9, 10], [1, 2, 3, 4, 5, 6, 7, 0], [0, 0, 9, 9, 9, 9, 9, 0]])
    qz = packing.pack_qzeros(z, "gptq")
    assert u32(qz[0, 0]) == 0x97F65432  # 0xA9076543 - 0x11111111: the 0 borrows from the 9
    assert u32(qz[1, 0]) == 0xF6543210  # a 0 in the top nibble borrows out of the word
    for row in range(3):
        word = sum(int(v) << (4 * j) for j, v in enumerate(z[row]))
        assert u32(qz[row, 0]) == (word - 0x11111111) % (1 << 32)
    assert packing.unpack_qzeros(qz, "gptq").tolist() == z.tolist()
    # reading each nibble + 1 (AutoGPTQ's qlinear_cuda) is wrong there: 16 for the zero of 0
    per_nibble = packing.unpack_qzeros_raw(qz).astype(int) + 1
    assert per_nibble[0].tolist() == [3, 4, 5, 6, 7, 16, 8, 10]
    # AutoGPTQ 0.7's own pack is lossy: nibbles j..7 of the word become 0xF
    qa = packing.pack_qzeros_autogptq(z)
    assert u32(qa[0, 0]) == 0xFFF65432
    assert u32(qa[1, 0]) == 0xF6543210  # the top-nibble case is the same bits as GPTQModel's
    conv = packing.unpack_qzeros(qa, "gptq")  # the word-wise reading of such a word
    assert conv[0].tolist() == [3, 4, 5, 6, 7, 0, 1, 1]
    assert conv[1].tolist() == [1, 2, 3, 4, 5, 6, 7, 0]
    # v2 stores the raw zero
    assert packing.unpack_qzeros(packing.pack_qzeros(z, "gptq_v2"), "gptq_v2").tolist() == z.tolist()


def test_8bit_layout_round_trip_and_borrow():
    """bits=8: byte j of a word; v1 is the v2 words minus 0x01010101 (GPTQModel), so a zero of 0
    borrows from the byte above and the word-wise add reads it back exactly."""
    rng = np.random.RandomState(8)
    q = rng.randint(0, 256, size=(12, 5))
    qw = packing.pack_qweight(q, 8)
    assert qw.shape == (3, 5) and (u32(qw[1, 2]) >> 16) & 0xFF == q[4 + 2, 2]
    assert np.array_equal(packing.unpack_qweight(qw, 8), q)
    z = np.array([[128, 0, 7, 255, 0, 0, 1, 0]])
    qz = packing.pack_qzeros(z, "gptq", 8)
    for c in range(2):
        word = sum(int(v) << (8 * j) for j, v in enumerate(z[0, 4 * c:4 * c + 4]))
        assert u32(qz[0, c]) == (word - 0x01010101) % (1 << 32)
    assert u32(qz[0, 0]) == 0xFE05FF7F  # the 0 in byte 1 borrows from the 7 (7 - 1 - 1)
    assert packing.unpack_qzeros(qz, "gptq", 8).tolist() == z.tolist()
    assert packing.unpack_qzeros(packing.pack_qzeros(z, "gptq_v2", 8), "gptq_v2", 8).tolist() \
        == z.tolist()
    assert np.all(packing.pack_qzeros(np.full((2, 8), 128), "gptq", 8).view(np.uint32)
                  == 0x7F7F7F7F)  # sym 8-bit v1
    with pytest.raises(ValueError):
        packing.pack_qweight(np.full((4, 4), 256), 8)
    with pytest.raises(ValueError):
        packing.pack_qzeros(z, "gptq", 3)
    # the reference formula at 8 bits
    s = (rng.rand(1, 8) + 0.5).astype(np.float16)
    qq = rng.randint(0, 256, size=(8, 8))
    w = packing.dequantize(packing.pack_qweight(qq, 8), qz, s, None, "gptq", bits=8)
    assert np.array_equal(w, (s.astype(np.float64) * (qq - z)).T)
    q8, s8, z8 = packing.quantize_rtn_groups(rng.randn(8, 64), 32, False, bits=8)
    assert q8.max() > 15 and z8.max() <= 255


PEER = sorted(p.name for p in GPTQ_DATA.glob("peer_*") if p.is_dir())


def test_peer_fixture_set_is_complete():
    assert len(PEER) >= 8 and any("_b8_" in p for p in PEER) and any("dynamic" in p for p in PEER)


@pytest.mark.parametrize("name", [p for p in PEER if "dynamic" not in p])
def test_peer_golden_matches_our_reader(name):
    """Checkpoints written by GPTQModel (python/tools/make_gptq_peer_fixtures.py): llmrt.quantize's
    numpy reader (v1 read word-wise, 4 and 8 bits) + the float64 forward give the golden logits,
    which came from GPTQModel's own reading."""
    g = json.loads((GPTQ_DATA / "golden" / f"{name}.json").read_text())
    logits = np.fromfile(GPTQ_DATA / "golden" / g["logits_file"], dtype="<f4").reshape(-1, 320)
    d = GPTQ_DATA / name
    cfg = json.loads((d / "config.json").read_text())
    sd = checkpoint.dequantize_checkpoint(str(d))
    assert checkpoint.gptq_config(str(d))["bits"] == g["quantization"]["bits"]
    ref = np.concatenate([FIX.numpy_forward(sd, cfg, s) for s in g["sequences"]])
    assert np.max(np.abs(ref - logits)) < 1e-4


def test_act_order_g_idx():
    rng = np.random.RandomState(2)
    K, gs = 96, 32
    diag = rng.rand(K)
    perm = np.argsort(-diag, kind="stable")
    g = packing.act_order_g_idx(perm, gs)
    assert g.dtype == np.int32 and g.shape == (K,)
    for i in range(K):  # the i-th processed column is in group i // gs
        assert g[perm[i]] == i // gs
    assert np.all(np.bincount(g) == gs)
    assert np.any(np.diff(g) < 0)  # non-monotonic
    assert np.array_equal(packing.act_order_g_idx(np.arange(K), gs), packing.default_g_idx(K, gs))
    assert np.all(packing.act_order_g_idx(perm, -1) == 0)


def test_dequantize_matches_the_formula():
    rng = np.random.RandomState(3)
    K, N, gs = 64, 16, 16
    G = K // gs
    q = rng.randint(0, 16, size=(K, N))
    z = rng.randint(0, 16, size=(G, N))
    s = (rng.rand(G, N) * 0.1 + 0.01).astype(np.float16)
    perm = rng.permutation(K)
    g_idx = packing.act_order_g_idx(perm, gs)
    for fmt in ("gptq", "gptq_v2"):
        qz = packing.pack_qzeros(z, fmt)
        zr = packing.unpack_qzeros(qz, fmt)
        w = packing.dequantize(packing.pack_qweight(q), qz, s, g_idx, fmt)
        assert w.shape == (N, K)
        for k in range(K):
            for n in range(N):
                g = g_idx[k]
                assert w[n, k] == float(s[g, n]) * (q[k, n] - zr[g, n])
        w32 = packing.dequantize(packing.pack_qweight(q), qz, s, g_idx, fmt, dtype=np.float32)
        assert np.array_equal(w32.astype(np.float64), w)  # exact in float32 too


def test_partial_last_group():
    """K not a multiple of the group size (SmolLM2-135M: K = 576, gs = 128): G = ceil(K / gs),
    the last group is shorter, g_idx = k // gs."""
    rng = np.random.RandomState(4)
    K, N, gs = 40, 8, 16
    assert packing.group_count(K, gs) == 3
    g_idx = packing.default_g_idx(K, gs)
    assert np.bincount(g_idx).tolist() == [16, 16, 8]
    W = rng.randn(N, K).astype(np.float32)
    q, s, z = packing.quantize_rtn_groups(W, gs, sym=False)
    assert s.shape == (3, N)
    assert np.all(z > 0)  # no zero of 0 here: v1 and v2 hold the same zeros
    for fmt in ("gptq", "gptq_v2"):
        w = packing.dequantize(packing.pack_qweight(q), packing.pack_qzeros(z, fmt), s, g_idx,
                               fmt)
        assert w.shape == (N, K)
        # round to nearest: error at most half a step (scales are per (group, row))
        assert np.all(np.abs(w - W) <= 0.5 * s.astype(np.float64)[g_idx].T + 1e-6)
        w2 = packing.dequantize(packing.pack_qweight(q), packing.pack_qzeros(z, fmt), s, None,
                                fmt, group_size=gs)
        assert np.array_equal(w, w2)
    with pytest.raises(ValueError):
        packing.dequantize(packing.pack_qweight(q), packing.pack_qzeros(z, "gptq_v2"), s, None,
                           "gptq_v2")
    perm = rng.permutation(K)
    ga = packing.act_order_g_idx(perm, gs)
    assert np.bincount(ga).tolist() == [16, 16, 8]
    assert all(ga[perm[i]] == i // gs for i in range(K))


def test_safetensors_round_trip(tmp_path):
    t = {"a.qweight": np.arange(24, dtype=np.int32).reshape(3, 8) - 7,
         "a.scales": np.linspace(-1, 1, 10).astype(np.float16).reshape(2, 5),
         "b": np.ones((0, 3), dtype=np.float32)}
    p = tmp_path / "x.safetensors"
    checkpoint.write_safetensors(str(p), t, {"format": "pt"})
    back = checkpoint.read_safetensors(str(p))
    assert sorted(back) == sorted(t)
    for k in t:
        assert back[k].dtype == t[k].dtype and np.array_equal(back[k], t[k])
    n = int.from_bytes(p.read_bytes()[:8], "little")
    assert n % 8 == 0 and json.loads(p.read_bytes()[8:8 + n])["__metadata__"] == {"format": "pt"}


# ----------------------------------------------------------------------------- fixtures

# Bounds on ||W_deq - W_base||_F / ||W_base||_F per Linear (measured maxima 0.143 / 0.177 / 0.177;
# GPTQ trades weight error for output error, and the sym variants clip the all-positive rows).
REL_ERR_BOUND = {32: 0.17, 128: 0.20, -1: 0.20}


@pytest.fixture(scope="module")
def base_tensors():
    return checkpoint.load_tensors(str(GPTQ_DATA / "base"))


def test_fixture_set_is_complete():
    names = sorted(p.name for p in GPTQ_DATA.iterdir() if p.is_dir() and p.name not in
                   ("base", "golden") and not p.name.startswith(("peer_", "awq_", "q8_")))
    assert names == sorted(v[0] for v in VARIANTS) and len(names) == 24
    for name in names + ["base"]:
        assert (GPTQ_DATA / "golden" / f"{name}.json").is_file()


@pytest.mark.parametrize("name,gs,act,sym,fmt", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_fixture_checkpoint(name, gs, act, sym, fmt, base_tensors):
    d = GPTQ_DATA / name
    assert sorted(p.name for p in d.iterdir()) == ["config.json", "model.safetensors",
                                                  "quantize_config.json"]
    cfg = json.loads((d / "config.json").read_text())
    qc = cfg["quantization_config"]
    assert qc == json.loads((d / "quantize_config.json").read_text())
    assert checkpoint.gptq_config(str(d)) == qc
    assert (qc["quant_method"], qc["bits"], qc["group_size"], qc["desc_act"], qc["sym"],
            qc["checkpoint_format"], qc["lm_head"]) == ("gptq", 4, gs, act, sym, fmt, False)

    t = checkpoint.load_tensors(str(d))
    prefixes = checkpoint.quantized_prefixes(t)
    assert len(prefixes) == 14  # 7 Linears x 2 layers; lm_head stays fp16
    for k, v in base_tensors.items():  # everything not quantised is the base tensor, fp16
        if k[:-len(".weight")] not in prefixes:
            assert t[k].dtype == np.float16 and np.array_equal(t[k], v), k

    borrow_seen = False
    any_nonmonotonic = False
    for p in prefixes:
        W0 = base_tensors[p + ".weight"].astype(np.float64)
        N, K = W0.shape
        G = 1 if gs == -1 else K // gs
        gsz = K if gs == -1 else gs
        qw, qz, sc, gi = (t[p + s] for s in (".qweight", ".qzeros", ".scales", ".g_idx"))
        assert qw.dtype == np.int32 and qw.shape == (K // 8, N)
        assert qz.dtype == np.int32 and qz.shape == (G, N // 8)
        assert sc.dtype == np.float16 and sc.shape == (G, N)
        assert gi.dtype == np.int32 and gi.shape == (K,)
        assert np.all(np.bincount(gi, minlength=G) == gsz)
        if act and G > 1:
            assert np.any(np.diff(gi) < 0), f"{p}: act-order g_idx should be non-monotonic"
            any_nonmonotonic = True
        if not act:
            assert np.array_equal(gi, packing.default_g_idx(K, gs))
        raw = packing.unpack_qzeros_raw(qz)
        if sym:
            assert np.all(qz.view(np.uint32) == (0x77777777 if fmt == "gptq" else 0x88888888))
        else:
            assert np.any(raw != (7 if fmt == "gptq" else 8))

        w = checkpoint.dequantize_layer(t, p, fmt)
        ok = np.ones_like(w, dtype=bool)
        if fmt == "gptq" and not sym and np.any(packing.unpack_qzeros(qz, fmt) == 0):
            borrow_seen = True  # a v1 zero of 0: nibble 0xF, borrowing from the next
            z = packing.unpack_qzeros(qz, fmt)
            assert np.all(raw[z == 0] == 15)
        rel = np.linalg.norm((w - W0)[ok]) / np.linalg.norm(W0[ok])
        assert rel < REL_ERR_BOUND[gs], f"{p}: relative error {rel:.3f}"
    if act and gs != -1:
        assert any_nonmonotonic
    if fmt == "gptq" and not sym:
        assert borrow_seen, "the v1 asym fixtures must exercise a zero point of 0"
    if fmt == "gptq_v2" and not sym:
        assert any(np.any(packing.unpack_qzeros_raw(t[p + ".qzeros"]) == 0) for p in prefixes)


@pytest.mark.parametrize("name", ["base"] + [v[0] for v in VARIANTS])
def test_fixture_golden_matches_checkpoint(name):
    """The golden logits are the numpy float64 forward of the dequantised checkpoint."""
    g = json.loads((GPTQ_DATA / "golden" / f"{name}.json").read_text())
    assert g["model_dir"] == f"gptq/{name}" and g["vocab_size"] == 320
    assert [len(s) for s in g["sequences"]] == [1, 9, 30]
    logits = np.fromfile(GPTQ_DATA / "golden" / g["logits_file"], dtype="<f4").reshape(-1, 320)
    assert logits.shape[0] == 40
    d = GPTQ_DATA / name
    cfg = json.loads((d / "config.json").read_text())
    sd = (checkpoint.load_tensors(str(d)) if name == "base"
          else checkpoint.dequantize_checkpoint(str(d)))
    ref = np.concatenate([FIX.numpy_forward(sd, cfg, s) for s in g["sequences"]])
    assert np.max(np.abs(ref - logits)) < 1e-4
    assert [r.tolist() for r in np.split(logits.argmax(axis=1), [1, 10])] == g["argmax"]


def test_quantized_checkpoints_differ_from_each_other():
    """Sanity: act-order and group size change the quantised weights, v1/v2 only the zeros."""
    def load(n):
        return checkpoint.load_tensors(str(GPTQ_DATA / n))
    a, b = load("g128_noact_asym_v1"), load("g128_noact_asym_v2")
    p = "model.layers.1.mlp.down_proj"
    assert np.array_equal(a[p + ".qweight"], b[p + ".qweight"])
    assert not np.array_equal(a[p + ".qzeros"], b[p + ".qzeros"])
    c = load("g128_act_asym_v2")
    assert not np.array_equal(b[p + ".qweight"], c[p + ".qweight"])


# ----------------------------------------------------------------------------- quantizer (torch)


def _torch():
    return pytest.importorskip("torch")


def test_gptq_layer_act_order_and_static_groups():
    torch = _torch()
    from llmrt.quantize.gptq import GPTQ, rtn

    g = torch.Generator().manual_seed(0)
    N, K = 24, 96
    W = torch.randn(N, K, generator=g) * 0.3
    X = torch.randn(4, 50, K, generator=g) * (torch.rand(K, generator=g) * 3 + 0.1)
    results = {}
    for act, static in ((False, False), (True, False), (True, True)):
        q = GPTQ(W)
        for x in X:
            q.add_batch(x)
        H = q.H.clone()
        r = q.fasterquant(group_size=32, sym=False, actorder=act, static_groups=static)
        results[(act, static)] = r
        gi = r.g_idx.numpy()
        if act and not static:
            perm = torch.argsort(torch.diag(H), descending=True, stable=True).numpy()
            assert np.array_equal(gi, packing.act_order_g_idx(perm, 32))
            assert np.any(np.diff(gi) < 0)
        else:
            assert np.array_equal(gi, packing.default_g_idx(K, 32))
        # the packed tensors dequantise exactly to the loop's Q
        qw = packing.pack_qweight(r.q.numpy().T)
        z = r.zeros.numpy()
        w = packing.dequantize(qw, packing.pack_qzeros(z, "gptq_v2"),
                               r.scales.numpy().astype(np.float16), gi, "gptq_v2")
        assert np.array_equal(w, r.Q.double().numpy())
    # GPTQ beats RTN on the layer output error it minimises
    Xf = X.reshape(-1, K)
    err = {k: float(((Xf @ (r.Q - W).T) ** 2).sum()) for k, r in results.items()}
    e_rtn = float(((Xf @ (rtn(W, 32, False).Q - W).T) ** 2).sum())
    assert err[(False, False)] < e_rtn and err[(True, False)] < e_rtn


def test_quantizer_matches_numpy_find_params():
    torch = _torch()
    from llmrt.quantize.gptq import Quantizer

    rng = np.random.RandomState(5)
    x = rng.randn(16, 32).astype(np.float32)
    x[3] = np.abs(x[3])  # all-positive row: asym zero 0; sym keeps xmin = 0 (AutoGPTQ)
    x[4] = 0  # all-zero row
    for sym in (True, False):
        qz = Quantizer(sym)
        qz.find_params(torch.from_numpy(x))
        s, z = packing.find_params_np(x, sym)
        assert np.array_equal(qz.scale.flatten().numpy(), s)
        assert np.array_equal(qz.zero.flatten().numpy().astype(np.int64), z)
        if not sym:
            assert z[3] == 0


def test_quantize_tiny_model_end_to_end(tmp_path):
    """python -m llmrt.quantize on tests/data/gptq/base with random calibration (RTN and GPTQ,
    lm_head quantised, static groups); the result reloads and dequantises close to the base."""
    _torch()
    pytest.importorskip("transformers")
    from llmrt.quantize.__main__ import main

    base = str(GPTQ_DATA / "base")
    for extra in (["--method", "rtn", "--asym", "--format", "gptq_v2"],
                  ["--desc-act", "--static-groups", "--lm-head", "--nsamples", "8",
                   "--seqlen", "32", "--calib-random"],
                  ["--bits", "8", "--asym", "--nsamples", "8", "--seqlen", "32",
                   "--calib-random"]):
        out = tmp_path / extra[1]
        assert main(["--model", base, "--out", str(out), "--group-size", "64", "--quiet"]
                    + extra) == 0
        qc = checkpoint.gptq_config(str(out))
        t = checkpoint.load_tensors(str(out))
        assert ("lm_head.qweight" in t) == ("--lm-head" in extra)
        if "--static-groups" in extra:
            assert qc["static_groups"] and qc["desc_act"]
            assert np.array_equal(t["model.layers.0.mlp.down_proj.g_idx"],
                                  packing.default_g_idx(384, 64))
        deq = checkpoint.dequantize_checkpoint(str(out))
        b = checkpoint.load_tensors(base)
        for k in ("model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight"):
            rel = np.linalg.norm(deq[k] - b[k]) / np.linalg.norm(b[k].astype(np.float64))
            assert rel < (0.02 if "--bits" in extra else 0.2), (extra, k, rel)
        if "--bits" in extra:  # 8-bit v1 asym: byte fields, words borrowing where a zero is 0
            assert qc["bits"] == 8 and qc["checkpoint_format"] == "gptq"
            assert t["model.layers.0.mlp.down_proj.qweight"].shape == (384 // 4, 128)


def test_fast_layer_path_equals_hook_path(monkeypatch):
    """The one-pass Llama layer driver gives bit-identical results to AutoGPTQ-style hooks
    (one full layer forward per true-sequential step)."""
    torch = _torch()
    pytest.importorskip("transformers")
    from llmrt.quantize import calib, model as qmodel

    torch.set_num_threads(1)
    samples = calib.random_samples(320, 4, 24, seed=3, bos=1)
    out = {}
    for fast in (True, False):
        if not fast:
            monkeypatch.setattr(qmodel, "_is_llama_layer", lambda layer, kws: False)
        m = qmodel.load_float_model(str(GPTQ_DATA / "base"))
        opts = qmodel.QuantizeOptions(group_size=32, desc_act=True, sym=False, log=False)
        out[fast] = qmodel.quantize_model(m, samples, opts)
    assert out[True].keys() == out[False].keys() and len(out[True]) == 14
    for k, r in out[True].items():
        s = out[False][k]
        assert torch.equal(r.Q, s.Q), k
        assert torch.equal(r.q, s.q) and torch.equal(r.scales, s.scales), k
        assert torch.equal(r.g_idx, s.g_idx), k
