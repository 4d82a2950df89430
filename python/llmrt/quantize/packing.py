"""GPTQ 4- and 8-bit tensor layout: packing, unpacking, reference dequantisation (numpy only).

This module is the single place that knows the bit layout of a GPTQ checkpoint
(see shared/reference/kernels.md §3; AutoGPTQ ``qlinear_cuda.QuantLinear.pack`` / its torch
fallback ``forward``). It needs only numpy, so the tests run it in CI without torch.

Notation: a quantised ``nn.Linear`` has weight W [N, K] (N = out_features, K = in_features),
``gs`` = group size (K when ``group_size == -1``), G = ceil(K / gs).

=========  =======  ===========  ==================================================================
tensor     dtype    shape        layout
=========  =======  ===========  ==================================================================
qweight    int32    [K/8, N]     nibble j (LSB first) of qweight[r][n] = q[k = 8r + j][n]
qzeros     int32    [G, N/8]     nibble j of qzeros[g][c] = stored zero of (g, n = 8c + j)
scales     float16  [G, N]
g_idx      int32    [K]          group of input row k (``k // gs`` unless act-order)
=========  =======  ===========  ==================================================================

At 8 bits (``bits=8``) the same with bytes: qweight [K/4, N], qzeros [G, N/4], byte j of a word.

Dequantisation (kernels.md §3)::

    w[k][n] = scales[g_idx[k]][n] * (q[k][n] - z[g_idx[k]][n])
    z = nibble of (word + 0x11111111 mod 2^32)  (checkpoint_format "gptq", v1; see below)
    z = stored nibble                           (checkpoint_format "gptq_v2")

**v1 and an asym zero of 0.** v1 is v2 minus 0x11111111 on each whole int32 word, as GPTQModel
writes it (it packs the raw zero points, then ``convert_gptq_v2_to_v1_format_module`` subtracts
the constant from the int32 tensor) and as GPTQModel / transformers / optimum read it back
(``convert_gptq_v1_to_v2_format_module`` adds it). A zero of 0 becomes nibble 0xF and borrows 1
from the nibble above; the word-wise add undoes every borrow, so v1 round-trips exactly
(``pack_qzeros`` / ``unpack_qzeros``; llmrt's loader reads it the same way, host/model/gptq.c).
Reading each nibble + 1 instead (AutoGPTQ's ``qlinear_cuda`` torch fallback) gives 16 for that
zero. AutoGPTQ 0.7's own ``pack`` is lossy there: it ORs ``zeros - 1`` as uint32 shifted by 4·j,
so a zero of 0 sets nibbles j..7 of its word to 0xF (``pack_qzeros_autogptq``); the word-wise
read of such a word gives 0, 1, 1, ... from that column up. ``gptq_v2`` stores raw zeros.
"""

from __future__ import annotations

import numpy as np

BITS = 4  # the default; every function takes bits = 4 or 8
PACK = 32 // BITS  # values per int32 word at 4 bits
MAXQ = (1 << BITS) - 1
FORMATS = ("gptq", "gptq_v2")
V1_WORD_OFFSET = 0x11111111  # v1 qzeros word = v2 word - this (mod 2^32), 4 bits
V1_WORD_OFFSETS = {4: 0x11111111, 8: 0x01010101}  # GPTQModel's constants per bit width


def _layout(bits: int) -> tuple[int, int]:
    """(values per int32 word, largest code) of a bit width."""
    if bits not in V1_WORD_OFFSETS:
        raise ValueError(f"bits must be 4 or 8, got {bits!r}")
    return 32 // bits, (1 << bits) - 1


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"checkpoint_format must be one of {FORMATS}, got {fmt!r}")
    return fmt


def _to_i32(words: np.ndarray) -> np.ndarray:
    """uint32 bit patterns held in int64 -> int32 with the same bits."""
    return (words & 0xFFFFFFFF).astype(np.uint32).view(np.int32)


def group_count(k: int, group_size: int) -> int:
    gs = k if group_size == -1 else group_size
    return -(-k // gs)


def default_g_idx(k: int, group_size: int) -> np.ndarray:
    """g_idx without act-order: k // gs."""
    gs = k if group_size == -1 else group_size
    return (np.arange(k, dtype=np.int64) // gs).astype(np.int32)


def act_order_g_idx(perm: np.ndarray, group_size: int) -> np.ndarray:
    """g_idx of AutoGPTQ ``fasterquant`` with ``actorder=True, static_groups=False``.

    Columns are processed in ``perm`` order (argsort of diag(H), descending) and groups are
    consecutive runs of gs in that order; g_idx is ``[i // gs for i in range(K)][invperm]``,
    i.e. g_idx[k] = (position of k in perm) // gs."""
    perm = np.asarray(perm, dtype=np.int64)
    k = perm.shape[0]
    gs = k if group_size == -1 else group_size
    invperm = np.argsort(perm, kind="stable")
    return (np.arange(k, dtype=np.int64) // gs)[invperm].astype(np.int32)


def pack_qweight(q: np.ndarray, bits: int = BITS) -> np.ndarray:
    """q [K, N] integers in 0..2^bits-1 (K a multiple of 32/bits) -> qweight int32
    [K*bits/32, N]: field j (LSB first) of qweight[r][n] = q[r*32/bits + j][n]."""
    pack, maxq = _layout(bits)
    q = np.asarray(q)
    if q.ndim != 2 or q.shape[0] % pack:
        raise ValueError(f"q must be [K, N] with K % {pack} == 0, got {q.shape}")
    if q.size and (q.min() < 0 or q.max() > maxq):
        raise ValueError(f"q values must be in 0..{maxq}")
    q = q.astype(np.int64).reshape(q.shape[0] // pack, pack, q.shape[1])
    words = np.zeros((q.shape[0], q.shape[2]), dtype=np.int64)
    for j in range(pack):
        words |= q[:, j, :] << (bits * j)
    return _to_i32(words)


def unpack_qweight(qweight: np.ndarray, bits: int = BITS) -> np.ndarray:
    """qweight int32 [K*bits/32, N] -> q uint8 [K, N]."""
    pack, maxq = _layout(bits)
    w = np.asarray(qweight).astype(np.int32).view(np.uint32)
    shifts = (bits * np.arange(pack, dtype=np.uint32))[None, :, None]
    q = (w[:, None, :] >> shifts) & maxq
    return q.reshape(w.shape[0] * pack, w.shape[1]).astype(np.uint8)


def _check_zeros(zeros: np.ndarray, bits: int) -> np.ndarray:
    pack, maxq = _layout(bits)
    z = np.asarray(zeros)
    if z.ndim != 2 or z.shape[1] % pack:
        raise ValueError(f"zeros must be [G, N] with N % {pack} == 0, got {z.shape}")
    if z.size and (z.min() < 0 or z.max() > maxq):
        raise ValueError(f"zero points must be in 0..{maxq}")
    return z.astype(np.int64)


def _pack_words(z: np.ndarray, bits: int) -> np.ndarray:
    """int64 [G, N] field values (may exceed the width: masked by the word) -> int64 words."""
    pack, _ = _layout(bits)
    z = z.reshape(z.shape[0], z.shape[1] // pack, pack)
    words = np.zeros(z.shape[:2], dtype=np.int64)
    for j in range(pack):
        words |= (z[:, :, j] << (bits * j)) & 0xFFFFFFFF
    return words


def pack_qzeros(zeros: np.ndarray, fmt: str, bits: int = BITS) -> np.ndarray:
    """Integer zero points [G, N] (0..2^bits-1; N a multiple of 32/bits) -> qzeros int32
    [G, N*bits/32].

    "gptq_v2": raw zero fields. "gptq" (v1): GPTQModel's writing, the v2 words minus
    0x11111111 (0x01010101 at 8 bits) modulo 2^32 (a zero of 0 borrows from the field above;
    see the module docstring). Exact: ``unpack_qzeros(pack_qzeros(z, fmt), fmt) == z``."""
    _check_format(fmt)
    words = _pack_words(_check_zeros(zeros, bits), bits)
    if fmt == "gptq":
        words = (words - V1_WORD_OFFSETS[bits]) & 0xFFFFFFFF
    return _to_i32(words)


def pack_qzeros_autogptq(zeros: np.ndarray) -> np.ndarray:
    """AutoGPTQ 0.7's v1 ``pack`` (lossy for a zero of 0): ``zeros - 1`` as uint32, each OR-ed in
    shifted left by 4·j within a 32-bit word, so a zero of 0 sets nibbles j..7 to 0xF."""
    z = (_check_zeros(zeros, BITS) - 1) & 0xFFFFFFFF
    return _to_i32(_pack_words(z, BITS))


def unpack_qzeros_raw(qzeros: np.ndarray, bits: int = BITS) -> np.ndarray:
    """qzeros int32 [G, N*bits/32] -> stored fields uint8 [G, N] (no v1 offset)."""
    pack, maxq = _layout(bits)
    w = np.asarray(qzeros).astype(np.int32).view(np.uint32)
    shifts = (bits * np.arange(pack, dtype=np.uint32))[None, None, :]
    z = (w[:, :, None] >> shifts) & maxq
    return z.reshape(w.shape[0], w.shape[1] * pack).astype(np.uint8)


def unpack_qzeros(qzeros: np.ndarray, fmt: str, bits: int = BITS) -> np.ndarray:
    """qzeros -> zero points z int16 [G, N] (0..2^bits-1): the fields of the words, v1 words
    first plus 0x11111111 / 0x01010101 (``v1_to_v2_gptqmodel``)."""
    _check_format(fmt)
    if fmt == "gptq":
        qzeros = v1_to_v2_gptqmodel(qzeros, bits)
    return unpack_qzeros_raw(qzeros, bits).astype(np.int16)


def v1_to_v2_gptqmodel(qzeros: np.ndarray, bits: int = BITS) -> np.ndarray:
    """GPTQModel's v1 -> v2 conversion at load: ``qzeros += 0x11111111`` (0x01010101 at 8 bits)
    on the int32 words (carries propagate between fields, undoing the borrows of
    ``pack_qzeros(..., "gptq")``)."""
    _layout(bits)
    w = np.asarray(qzeros).astype(np.int32).view(np.uint32).astype(np.int64)
    return _to_i32(w + V1_WORD_OFFSETS[bits])


def dequantize(qweight: np.ndarray, qzeros: np.ndarray, scales: np.ndarray,
               g_idx: np.ndarray | None, fmt: str, dtype=np.float64,
               group_size: int | None = None, bits: int = BITS) -> np.ndarray:
    """Reference dequantisation -> W [N, K] in ``nn.Linear`` layout (out = x · Wᵀ).

    ``w[k][n] = scales[g_idx[k]][n] * (q[k][n] - z[g_idx[k]][n])``. The product of an fp16 scale
    and an integer in -255..255 is exact in float32, so float32 and float64 give the same values.
    Without g_idx (very old checkpoints) g_idx = k // group_size; group_size is then required
    unless there is a single group. K need not be a multiple of the group size: G = ceil(K / gs)
    and the last group is shorter (e.g. K = 576 with gs = 128 in SmolLM2-135M)."""
    q = unpack_qweight(qweight, bits)
    k, n = q.shape
    z = unpack_qzeros(qzeros, fmt, bits)
    s = np.asarray(scales)
    g = z.shape[0]
    if s.shape != (g, n) or z.shape != (g, n):
        raise ValueError(f"shape mismatch: qweight {np.shape(qweight)}, qzeros {np.shape(qzeros)}, "
                         f"scales {s.shape}")
    if g_idx is None:
        if group_size is None and g != 1:
            raise ValueError("no g_idx: group_size is needed")
        g_idx = default_g_idx(k, -1 if g == 1 else group_size)
    g_idx = np.asarray(g_idx).astype(np.int64)
    if g_idx.shape != (k,) or g_idx.min() < 0 or g_idx.max() >= g:
        raise ValueError(f"g_idx must be [K={k}] with values in 0..{g - 1}")
    w = s.astype(dtype)[g_idx] * (q.astype(dtype) - z.astype(dtype)[g_idx])
    return np.ascontiguousarray(w.T)


def quantize_rtn_groups(w: np.ndarray, group_size: int, sym: bool, bits: int = BITS):
    """Round-to-nearest reference in numpy (AutoGPTQ ``Quantizer.find_params`` per group, scales
    rounded to fp16 first). w [N, K] -> (q [K, N] uint8, scales fp16 [G, N], zeros int [G, N])."""
    w = np.asarray(w, dtype=np.float32)
    n, k = w.shape
    gs = k if group_size == -1 else group_size
    g = -(-k // gs)
    q = np.zeros((k, n), dtype=np.uint8)
    scales = np.zeros((g, n), dtype=np.float16)
    zeros = np.zeros((g, n), dtype=np.int64)
    for gi in range(g):
        blk = w[:, gi * gs:(gi + 1) * gs]
        s, z = find_params_np(blk, sym, bits)
        scales[gi] = s.astype(np.float16)
        zeros[gi] = z
        qq = np.clip(np.round(blk / s[:, None]) + z[:, None], 0, _layout(bits)[1])
        q[gi * gs:(gi + 1) * gs] = qq.T.astype(np.uint8)
    return q, scales, zeros


def find_params_np(x: np.ndarray, sym: bool, bits: int = BITS):
    """numpy twin of ``llmrt.quantize.gptq.Quantizer.find_params`` (rows = output channels):
    returns (scale float32 [rows] already rounded to fp16, zero int64 [rows])."""
    maxq = _layout(bits)[1]
    x = np.asarray(x, dtype=np.float32)
    xmin = np.minimum(x.min(axis=1), 0).astype(np.float32)
    xmax = np.maximum(x.max(axis=1), 0).astype(np.float32)
    if sym:
        xmax = np.maximum(np.abs(xmin), xmax)
        neg = xmin < 0
        xmin = np.where(neg, -xmax, xmin)
    both0 = (xmin == 0) & (xmax == 0)
    xmin = np.where(both0, np.float32(-1), xmin)
    xmax = np.where(both0, np.float32(1), xmax)
    scale = ((xmax - xmin) / np.float32(maxq)).astype(np.float32)
    scale = np.maximum(scale.astype(np.float16).astype(np.float32), np.float32(2.0 ** -24))
    if sym:
        zero = np.full(scale.shape, (maxq + 1) // 2, dtype=np.int64)
    else:
        zero = np.clip(np.round(-xmin / scale), 0, maxq).astype(np.int64)
    return scale, zero
