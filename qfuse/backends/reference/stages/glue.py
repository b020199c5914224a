"""Glue stages: elementwise math, activations, casts, split-K reduce, flatten, rope,
row gather and SmoothQuant channel scaling. All arithmetic is fp32, one IEEE operation
per step in the order written (``silu``/``gelu`` use exp/erf/tanh: a few ulp)."""
from __future__ import annotations

import math
from typing import Optional

import torch

from ....dialect.options import Act, GeluApprox, MRope, RopeStyle
from ..numerics import round_to_float
from ._common import as_f32_operand, f32, zero_rows

__all__ = ["run_add", "run_mul", "run_silu", "run_gelu", "run_act_mul", "run_cast",
           "run_reduce", "run_flatten", "run_rope", "run_gather", "run_smooth"]

_SQRT2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _device(*vals):
    for v in vals:
        if isinstance(v, torch.Tensor):
            return v.device
    return None


def run_add(a, b) -> tuple:
    """``out = f32(a) + f32(b)``; either may be a scalar (taken as fp32), a ``[N]`` vector
    broadcast over rows, or a tensor of the same shape."""
    dev = _device(a, b)
    return (as_f32_operand(a, dev) + as_f32_operand(b, dev),)


def run_mul(a, b) -> tuple:
    """``out = f32(a) * f32(b)``, broadcasting as :func:`run_add`."""
    dev = _device(a, b)
    return (as_f32_operand(a, dev) * as_f32_operand(b, dev),)


def _silu(x32: torch.Tensor) -> torch.Tensor:
    return x32 / (1.0 + torch.exp(-x32))


def _gelu(x32: torch.Tensor, approx: str) -> torch.Tensor:
    half = 0.5 * x32
    if approx == GeluApprox.NONE:
        return half * (1.0 + torch.erf(x32 / torch.tensor(_SQRT2, dtype=torch.float32)))
    if approx == GeluApprox.TANH:
        inner = x32 + 0.044715 * ((x32 * x32) * x32)
        return half * (1.0 + torch.tanh(torch.tensor(_SQRT_2_OVER_PI, dtype=torch.float32) * inner))
    raise ValueError(f"unknown gelu approx {approx!r}")


def run_silu(x: torch.Tensor) -> tuple:
    """``silu(x) = x / (1 + exp(-x))`` (fp32)."""
    return (_silu(f32(x)),)


def run_gelu(x: torch.Tensor, *, approx: str = GeluApprox.NONE) -> tuple:
    """``gelu(x) = (0.5 x) (1 + erf(x / sqrt 2))``; ``approx=tanh``:
    ``(0.5 x) (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` with ``x^3 = (x x) x`` (fp32)."""
    return (_gelu(f32(x), approx),)


def run_act_mul(x: torch.Tensor, *, act: str = Act.SILU) -> tuple:
    """``act(x[..., :N/2]) * x[..., N/2:]``; act is silu, gelu (erf) or gelu_tanh."""
    x32 = f32(x)
    n = x32.shape[-1]
    if n % 2:
        raise ValueError(f"act_mul needs an even last dim, got {n}")
    g, u = x32[..., : n // 2], x32[..., n // 2:]
    if act == Act.SILU:
        a = _silu(g)
    elif act == Act.GELU:
        a = _gelu(g, GeluApprox.NONE)
    elif act == Act.GELU_TANH:
        a = _gelu(g, GeluApprox.TANH)
    else:
        raise ValueError(f"unknown activation {act!r}")
    return (a * u,)


def run_cast(x: torch.Tensor, *, dtype: str) -> tuple:
    """Round to bf16 / f16 (RNE) or widen exactly to f32."""
    return (round_to_float(f32(x), dtype),)


def run_reduce(x: torch.Tensor) -> tuple:
    """Split-K reduce over dim 0 in order: ``((x[0] + x[1]) + x[2]) + ...`` (fp32)."""
    x32 = f32(x)
    acc = x32[0].clone()
    for i in range(1, x32.shape[0]):
        acc = acc + x32[i]
    return (acc,)


def run_flatten(x: torch.Tensor) -> tuple:
    """``[M, A, B] -> [M, A*B]`` (same dtype, contiguous copy of a possibly strided x)."""
    m, a, b = x.shape
    return (x.reshape(m, a * b).contiguous(),)


def _table_rows(table: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """``table[pos[t]]`` per token, a row of NaN where ``pos[t]`` is outside ``[0, P)``."""
    p = pos.to(device=table.device, dtype=torch.int64)
    n = table.shape[0]
    ok = (p >= 0) & (p < n)
    rows = table[p.clamp(0, max(n - 1, 0))] if n else \
        torch.zeros((p.shape[0], table.shape[1]), dtype=table.dtype, device=table.device)
    return torch.where(ok[:, None], rows, torch.full((), float("nan"), device=table.device))


def mrope_rows(mrope: str, half: int, h: int, w: int, device=None) -> torch.Tensor:
    """The positions row (0 t, 1 h, 2 w) each rotary frequency ``i < half`` reads."""
    i = torch.arange(half, device=device)
    if MRope(mrope) == MRope.CHUNKED:
        t = half - h - w
        return (i >= t).to(torch.int64) + (i >= t + h).to(torch.int64)
    if MRope(mrope) == MRope.INTERLEAVED:
        return torch.where((i % 3 == 1) & (i < 3 * h), 1,
                           torch.where((i % 3 == 2) & (i < 3 * w), 2, 0))
    return torch.zeros(half, dtype=torch.int64, device=device)


def _mrope_table(table: torch.Tensor, pos: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``table[pos[rows[i], t], i]`` per token and frequency (NaN where that position is
    outside the table)."""
    per_row = torch.stack([_table_rows(table, pos[r]) for r in range(pos.shape[0])])
    return per_row.gather(0, rows.view(1, 1, -1).expand(1, *per_row.shape[1:]))[0]


def run_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, pos: torch.Tensor, *,
             style: str = RopeStyle.NEOX, mrope: str = MRope.NONE, mrope_h: int = 0,
             mrope_w: int = 0) -> tuple:
    """Rotary embedding of ``x [T, H, D]``; rotary dim ``R = 2 * cos.shape[1]``, the rest of D
    passes through. neox pairs ``(i, i + R/2)``, gptj ``(2i, 2i+1)``; with ``c = cos[pos[t], i]``,
    ``s = sin[pos[t], i]``: ``o1 = x1*c - x2*s``, ``o2 = x2*c + x1*s`` (each product rounded).
    A position outside the table ``[0, P)`` rotates by NaN: that token's rotated dims are
    NaN (the pass-through dims keep x).

    ``mrope`` (chunked / interleaved): ``pos`` is ``[3, T]`` and frequency ``i`` reads
    ``cos[pos[r(i), t], i]`` with ``r`` from :func:`mrope_rows` (sections ``mrope_h``,
    ``mrope_w``); an out-of-table position makes the dims of the frequencies that read it
    NaN."""
    x32 = f32(x)
    dev = x32.device
    half = cos.shape[1]
    r = 2 * half
    if r > x32.shape[-1]:
        raise ValueError(f"rope rotary dim {r} exceeds head dim {x32.shape[-1]}")
    if tuple(sin.shape) != tuple(cos.shape):
        raise ValueError(f"rope sin table {tuple(sin.shape)} must have the shape of the cos "
                         f"table {tuple(cos.shape)}")
    if MRope(mrope) == MRope.NONE:
        c = _table_rows(f32(cos.to(dev)), pos)[:, None, :]
        s = _table_rows(f32(sin.to(dev)), pos)[:, None, :]
    else:
        if pos.dim() != 2 or pos.shape[0] != 3:
            raise ValueError(f"mrope positions must be [3, T], got {tuple(pos.shape)}")
        rows = mrope_rows(mrope, half, mrope_h, mrope_w, dev)
        c = _mrope_table(f32(cos.to(dev)), pos, rows)[:, None, :]
        s = _mrope_table(f32(sin.to(dev)), pos, rows)[:, None, :]
    out = x32.clone()
    if style == RopeStyle.NEOX:
        i1, i2 = slice(0, half), slice(half, r)
    elif style == RopeStyle.GPTJ:
        i1, i2 = slice(0, r, 2), slice(1, r, 2)
    else:
        raise ValueError(f"unknown rope style {style!r}")
    x1, x2 = x32[..., i1], x32[..., i2]
    out[..., i1] = x1 * c - x2 * s
    out[..., i2] = x2 * c + x1 * s
    return (out,)


def run_gather(x: torch.Tensor, idx: torch.Tensor, *, packed_ids: bool = False,
               topk: int = 1) -> tuple:
    """``out[i] = x[t]``, ``t = idx[i]`` (``& 0xFFFFFF`` with ``packed_ids``); ``t < 0`` or
    ``t >= M`` gives a zero row. Same dtype as x. With ``topk > 1`` (packed ids of AITER's
    MoE sort, ``token | slot << 24``; x holds ``topk`` rows per token) the row is
    ``(id & 0xFFFFFF) * topk + (id >> 24)``, the slot ``id >> 24`` taken with the id's
    sign (an arithmetic shift of its integer type); a slot outside ``[0, topk)`` gives a
    zero row too."""
    raw = idx.to(device=x.device, dtype=torch.int64)
    if idx.dtype == torch.int32:
        raw = torch.where(raw >= 2 ** 31, raw - 2 ** 32, raw)
    t = raw & 0xFFFFFF if packed_ids else raw
    slot_ok = torch.ones_like(t, dtype=torch.bool)
    if topk > 1:
        k = raw >> 24
        slot_ok = (k >= 0) & (k < topk)
        t = t * topk + k.clamp(0, topk - 1)
    m = x.shape[0]
    valid = (t >= 0) & (t < m) & slot_ok
    if m == 0:
        return (torch.zeros((t.shape[0],) + tuple(x.shape[1:]), dtype=x.dtype, device=x.device),)
    rows = x[t.clamp(0, m - 1)]
    return (zero_rows(rows, valid),)


def run_smooth(x: torch.Tensor, s: torch.Tensor, ids: Optional[torch.Tensor] = None) -> tuple:
    """SmoothQuant: ``y = f32(x) * f32(s)[col]`` with ``s [N]``. Expert-indexed (``ids [M, K]``,
    ``s [E, N]``, x ``[M, N]``): ``y[m, k, :] = x[m, :] * s[ids[m, k], :]``; with one x row
    per slot (x ``[M, K, N]``): ``y[m, k, :] = x[m, k, :] * s[ids[m, k], :]``; an id outside
    ``[0, E)`` gives a zero row."""
    x32 = f32(x)
    s32 = f32(s.to(x32.device))
    if ids is None:
        return (x32 * s32,)
    e = s32.shape[0]
    i = ids.to(device=x32.device, dtype=torch.int64)
    valid = (i >= 0) & (i < e)
    rows = s32[i.clamp(0, max(e - 1, 0))] if e else torch.zeros(i.shape + (x32.shape[-1],),
                                                                 device=x32.device)
    y = (x32 if x32.dim() == 3 else x32[:, None, :]) * rows
    return (torch.where(valid[..., None], y, torch.zeros((), device=y.device)),)
