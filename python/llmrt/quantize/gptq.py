"""The GPTQ algorithm for one Linear layer (Frantar et al. 2022), after AutoGPTQ's
``auto_gptq/quantization/gptq.py`` (``GPTQ.add_batch`` / ``fasterquant``) and ``quantizer.py``.
Needs torch.

Same algorithm, same group bookkeeping (including AutoGPTQ's choice of computing a group's
parameters from the block-start copy of W when a group starts inside a 128-column block), same
act-order permutation and g_idx. Two deliberate differences, both so that what the loop
quantises against is exactly what the checkpoint stores:
  * scales are rounded to fp16 before they are used (AutoGPTQ rounds only when packing);
  * the integer codes q are kept from the loop itself instead of being re-derived from the
    fp16-cast dequantised weight in ``pack`` (AutoGPTQ's ``round((W + z·s) / s_fp16)``).
So ``packing.dequantize`` of the written tensors equals the loop's Q bit for bit (v2, and v1
wherever no zero of 0 hits the word; see ``packing``).
"""

from __future__ import annotations

import contextlib
import math

import torch

MAXQ = 15  # 4 bits; Quantizer(bits=8) uses 255


class Quantizer:
    """AutoGPTQ ``Quantizer`` with perchannel=True, mse=False, for weights [rows, cols].

    sym: xmax = max(|min(x,0)|, max(x,0)); xmin = -xmax only if the group has a negative value
    (AutoGPTQ: a group with no negative value keeps xmin = 0, so s = max/15 with z = 8 and values
    above 7·s clip). asym: s = (max(x,0) − min(x,0)) / 15, z = round(−min(x,0) / s)."""

    def __init__(self, sym: bool, bits: int = 4):
        if bits not in (4, 8):
            raise ValueError(f"bits must be 4 or 8, got {bits!r}")
        self.sym = sym
        self.maxq = (1 << bits) - 1
        self.scale = None
        self.zero = None

    def find_params(self, x: torch.Tensor) -> None:
        x = x.float()
        tmp = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        xmin = torch.minimum(x.min(1)[0], tmp)
        xmax = torch.maximum(x.max(1)[0], tmp)
        if self.sym:
            xmax = torch.maximum(torch.abs(xmin), xmax)
            neg = xmin < 0
            xmin = torch.where(neg, -xmax, xmin)
        both0 = (xmin == 0) & (xmax == 0)
        xmin = torch.where(both0, torch.full_like(xmin, -1), xmin)
        xmax = torch.where(both0, torch.full_like(xmax, 1), xmax)
        scale = (xmax - xmin) / self.maxq
        scale = scale.half().float().clamp_min(2.0 ** -24)  # exactly the stored fp16 value
        if self.sym:
            zero = torch.full_like(scale, (self.maxq + 1) // 2)
        else:
            zero = torch.round(-xmin / scale).clamp(0, self.maxq)
        self.scale = scale.reshape(-1, 1)
        self.zero = zero.reshape(-1, 1)

    def ready(self) -> bool:
        return self.scale is not None

    def quantize_int(self, x: torch.Tensor) -> torch.Tensor:
        """x [rows, c] -> integer codes (float tensor) in 0..maxq."""
        return torch.clamp(torch.round(x / self.scale) + self.zero, 0, self.maxq)

    def dequant(self, q: torch.Tensor) -> torch.Tensor:
        return self.scale * (q - self.zero)


@contextlib.contextmanager
def _one_thread():
    """The column loop is thousands of tiny ops: OpenMP fan-out only costs there (10x slower
    with 2 threads on a busy 2-core box), so run it on one thread; the block updates keep all."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


class QuantResult:
    """Per layer: ``q`` int codes [N, K] (original column order), ``scales`` [G, N] float32
    (fp16-exact), ``zeros`` [G, N] int, ``g_idx`` [K] int, ``Q`` dequantised weight [N, K]."""

    def __init__(self, q, scales, zeros, g_idx, Q, loss):
        self.q, self.scales, self.zeros, self.g_idx, self.Q, self.loss = q, scales, zeros, g_idx, Q, loss


class GPTQ:
    def __init__(self, weight: torch.Tensor):
        self.W = weight.detach().float().clone()  # [N, K]
        self.rows, self.columns = self.W.shape
        self.H = torch.zeros((self.columns, self.columns), dtype=torch.float32)
        self.nsamples = 0

    def share_hessian(self, other: "GPTQ") -> None:
        """Take a copy of ``other``'s Hessian (Linears fed by the same input, e.g. q/k/v)."""
        self.H = other.H.clone()
        self.nsamples = other.nsamples

    def add_batch(self, inp: torch.Tensor) -> None:
        """H = 2/n Σ x xᵀ over all calibration tokens seen so far (AutoGPTQ running mean; a
        'sample' is one calibration sequence)."""
        if inp.dim() == 2:
            inp = inp.unsqueeze(0)
        tmp = inp.shape[0]
        inp = inp.reshape(-1, inp.shape[-1]).t().float()
        self.H *= self.nsamples / (self.nsamples + tmp)
        self.nsamples += tmp
        inp = math.sqrt(2 / self.nsamples) * inp
        self.H += inp.matmul(inp.t())

    def fasterquant(self, group_size: int = 128, sym: bool = True, blocksize: int = 128,
                    percdamp: float = 0.01, actorder: bool = False,
                    static_groups: bool = False, bits: int = 4) -> QuantResult:
        W = self.W.clone()
        K = self.columns
        quantizer = Quantizer(sym, bits)
        quantizer.find_params(W)  # the single group of group_size == -1

        H = self.H
        self.H = None
        dead = torch.diag(H) == 0
        H[dead, dead] = 1
        W[:, dead] = 0

        scale, zero = [], []
        now_idx = 1
        groups = []
        if static_groups and group_size != -1:
            for i in range(0, K, group_size):
                qz = Quantizer(sym, bits)
                qz.find_params(W[:, i:i + group_size])
                scale.append(qz.scale)
                zero.append(qz.zero)
                groups.append(qz)

        perm = invperm = None
        if actorder:
            perm = torch.argsort(torch.diag(H), descending=True, stable=True)
            W = W[:, perm]
            H = H[perm][:, perm]
            invperm = torch.argsort(perm)

        Losses = torch.zeros_like(W)
        Q = torch.zeros_like(W)
        Qi = torch.zeros_like(W)

        damp = percdamp * torch.mean(torch.diag(H))
        diag = torch.arange(K)
        H[diag, diag] += damp
        H = torch.linalg.cholesky(H)
        H = torch.cholesky_inverse(H)
        H = torch.linalg.cholesky(H, upper=True)
        Hinv = H

        for i1 in range(0, K, blocksize):
            i2 = min(i1 + blocksize, K)
            count = i2 - i1
            W1 = W[:, i1:i2].clone()
            Q1 = torch.zeros_like(W1)
            Qi1 = torch.zeros_like(W1)
            Err1 = torch.zeros_like(W1)
            Losses1 = torch.zeros_like(W1)
            Hinv1 = Hinv[i1:i2, i1:i2]
            with _one_thread():
                for i in range(count):
                    w = W1[:, i]
                    d = Hinv1[i, i]
                    if group_size != -1:
                        if not static_groups:
                            if (i1 + i) % group_size == 0:
                                # AutoGPTQ reads W (the block-start copy), not W1
                                quantizer.find_params(W[:, (i1 + i):(i1 + i + group_size)])
                            if ((i1 + i) // group_size) - now_idx == -1:
                                scale.append(quantizer.scale)
                                zero.append(quantizer.zero)
                                now_idx += 1
                        else:
                            idx = i1 + i
                            if actorder:
                                idx = int(perm[idx])
                            quantizer = groups[idx // group_size]
                    qi = quantizer.quantize_int(w.unsqueeze(1))
                    q = quantizer.dequant(qi).flatten()
                    Qi1[:, i] = qi.flatten()
                    Q1[:, i] = q
                    Losses1[:, i] = (w - q) ** 2 / d ** 2
                    err1 = (w - q) / d
                    W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
                    Err1[:, i] = err1
            Q[:, i1:i2] = Q1
            Qi[:, i1:i2] = Qi1
            Losses[:, i1:i2] = Losses1 / 2
            W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])

        gs = group_size if group_size != -1 else K
        if static_groups and actorder:
            g_idx = torch.tensor([int(perm[i]) // gs for i in range(K)], dtype=torch.int32)
        else:
            g_idx = torch.tensor([i // gs for i in range(K)], dtype=torch.int32)
        if actorder:
            Q = Q[:, invperm]
            Qi = Qi[:, invperm]
            g_idx = g_idx[invperm]
        if not scale:
            scale.append(quantizer.scale)
            zero.append(quantizer.zero)
        scales = torch.cat(scale, dim=1).t().contiguous()  # [G, N]
        zeros = torch.cat(zero, dim=1).t().contiguous()
        return QuantResult(Qi.to(torch.uint8), scales, zeros.to(torch.int64), g_idx, Q,
                           float(Losses.sum()))


def rtn(weight: torch.Tensor, group_size: int, sym: bool, bits: int = 4) -> QuantResult:
    """Round-to-nearest per group (no calibration), same Quantizer and layout."""
    W = weight.detach().float()
    N, K = W.shape
    gs = group_size if group_size != -1 else K
    scale, zero, Qi, Q = [], [], torch.zeros_like(W), torch.zeros_like(W)
    qz = Quantizer(sym, bits)
    with _one_thread():
        for i in range(0, K, gs):
            qz.find_params(W[:, i:i + gs])
            qi = qz.quantize_int(W[:, i:i + gs])
            Qi[:, i:i + gs] = qi
            Q[:, i:i + gs] = qz.dequant(qi)
            scale.append(qz.scale)
            zero.append(qz.zero)
    g_idx = torch.arange(K, dtype=torch.int32) // gs
    scales = torch.cat(scale, dim=1).t().contiguous()
    zeros = torch.cat(zero, dim=1).t().contiguous()
    return QuantResult(Qi.to(torch.uint8), scales, zeros.to(torch.int64), g_idx, Q,
                       float(((W - Q) ** 2).sum()))
