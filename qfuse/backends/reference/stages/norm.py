"""``norm``: RMSNorm / LayerNorm over the last dim, with an optional residual add."""
from __future__ import annotations

from typing import Optional

import torch

from ....dialect.options import DEFAULT_EPS, FloatDType, NormKind, ResidualSum
from ..numerics import round_to_float
from ._common import Scalar, f32, scalar_f32

__all__ = ["run_norm"]


def run_norm(x: torch.Tensor, w: Optional[torch.Tensor] = None, eps: Scalar = DEFAULT_EPS,
             b: Optional[torch.Tensor] = None, residual: Optional[torch.Tensor] = None, *,
             kind: str = NormKind.RMS, gemma: bool = False,
             residual_sum: str = ResidualSum.FP32, dtype: str = FloatDType.F32) -> tuple:
    """Normalise each row ``u`` (length N) of the norm input; all steps fp32, in this order.

    * Residual: ``h = x + residual`` (fp32); ``residual_out = round_to(x.dtype, h)`` (RNE).
      ``u = h`` (``residual_sum=fp32``) or ``u = f32(residual_out)`` (``rounded``).
      Without a residual ``u = f32(x)``.
    * rms: ``ms = (sum_j u_j*u_j) / N``; ``inv = 1 / sqrt(ms + eps)``; ``y_j = (u_j*inv) * w'_j``.
    * layer: ``mean = (sum_j u_j) / N``; ``d_j = u_j - mean``; ``var = (sum_j d_j*d_j) / N``;
      ``inv = 1 / sqrt(var + eps)``; ``y_j = (d_j*inv) * w'_j + b_j``.
    * ``w' = w``, or ``1 + w`` (fp32) with ``gemma``; no ``w`` means no multiply; no ``b``
      means no add. ``eps`` is taken as fp32.
    * ``dtype=bf16|f16`` rounds ``y`` (RNE); ``f32`` keeps it.

    The sums may be taken in any order (the one place backends may differ in the last bit).
    Returns ``(y,)`` or ``(y, residual_out)``.
    """
    x32 = f32(x)
    dev = x32.device
    residual_out = None
    if residual_sum not in tuple(ResidualSum):
        raise ValueError(f"unknown residual_sum {residual_sum!r}")
    if residual is not None:
        h = x32 + f32(residual.to(dev))
        residual_out = round_to_float(h, x.dtype)
        u = h if residual_sum == ResidualSum.FP32 else f32(residual_out)
    else:
        u = x32
    n = torch.tensor(float(u.shape[-1]), dtype=torch.float32, device=dev)
    e = scalar_f32(eps, dev)
    one = torch.ones((), dtype=torch.float32, device=dev)
    if kind == NormKind.RMS:
        ms = (u * u).sum(dim=-1, keepdim=True) / n
        inv = one / torch.sqrt(ms + e)
        y = u * inv
    elif kind == NormKind.LAYER:
        mean = u.sum(dim=-1, keepdim=True) / n
        d = u - mean
        var = (d * d).sum(dim=-1, keepdim=True) / n
        inv = one / torch.sqrt(var + e)
        y = d * inv
    else:
        raise ValueError(f"unknown norm kind {kind!r}")
    if w is not None:
        wp = f32(w.to(dev))
        if gemma:
            wp = one + wp
        y = y * wp
    if b is not None:
        if kind != NormKind.LAYER:
            raise ValueError("a bias b is only defined for kind=layer")
        y = y + f32(b.to(dev))
    y = round_to_float(y, dtype)
    return (y,) if residual_out is None else (y, residual_out)
