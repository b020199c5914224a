"""The fp8 / int8 quantisers behind ``ops.quant``, ``ops.triton.quant`` and the dispatch
tables: bind AITER's arguments to the ``quant.qp`` pipelines with the numerics of the
entry point being mirrored (:class:`Numerics`)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...dialect.options import Granularity, Recip, ZeroPolicy
from .. import _args as A
from .._pipes import pipeline

__all__ = ["Numerics", "TORCH_TENSOR", "TORCH_TOKEN", "HIP", "HIP_GROUP", "TRITON", "GROUPS",
           "target", "quantise_per_tensor", "quantise_per_token", "quantise_groups"]


@dataclass(frozen=True)
class Numerics:
    """How an AITER entry point rounds (aiter-semantics.md, docs/aiter.md):

    * ``zero``: an all-zero row / tensor (``one``: scale 1, the torch references;
      ``floor``: amax floored at ``floor``, the HIP group kernels; ``zero``: scale 0 and
      codes 0, qfuse's defined result where AITER divides by zero and gets NaN codes);
    * ``recip``: ``x / s`` (torch) or ``x * (1 / s)`` (HIP, Triton).

    Codes always saturate at the format's largest value (448, 240, 127): torch's cast to
    e4m3fn saturates too (inf included), its cast to e4m3fnuz gives NaN past 240 and its
    int8 cast wraps, the HIP and Triton kernels clamp fp8 and wrap int8; a scale's own
    ``dtypeMax`` may be smaller.
    """
    zero: ZeroPolicy
    recip: Recip
    floor: float = 1e-10

    def subs(self) -> dict:
        return {"ZERO": str(self.zero), "RECIP": str(self.recip), "FLOOR": A.literal(self.floor)}


TORCH_TENSOR = Numerics(ZeroPolicy.ZERO, Recip.DIV)
TORCH_TOKEN = Numerics(ZeroPolicy.ONE, Recip.DIV)
HIP = Numerics(ZeroPolicy.ZERO, Recip.MUL_RCP)
HIP_GROUP = Numerics(ZeroPolicy.FLOOR, Recip.MUL_RCP)
TRITON = Numerics(ZeroPolicy.ZERO, Recip.MUL_RCP)

GROUPS = {32: Granularity.PER_1X32, 64: Granularity.PER_1X64, 128: Granularity.PER_1X128}


def target(func: str, quant_dtype, dtype_max=None) -> dict:
    """The substitutions of a target: ``Q`` (DSL name), ``DMAX`` (the scales' dtype_max:
    the dtype's largest value unless given) and ``RMAX`` (the bound codes saturate at)."""
    q = A.quant_dsl(func, "quant_dtype", quant_dtype)
    top = A.dtype_max(quant_dtype)
    dmax = top
    if dtype_max is not None:
        dmax = float(dtype_max)
        A.need(0 < dmax < float("inf"), func, f"dtypeMax must be positive and finite, got "
               f"{dtype_max}")
        A.need(quant_dtype == torch.int8 or dmax <= top, func,
               f"dtypeMax={dmax:g} is above the largest {quant_dtype} value ({top:g})")
    return {"Q": q, "DMAX": A.literal(dmax), "RMAX": A.literal(top)}


def _static_scale(func: str, scale, rows: int) -> tuple:
    """A given scale as ``(granularity, f32 tensor)``: one value (per tensor) or one per row."""
    A.tensor(func, "scale", scale)
    s = scale.detach().reshape(-1).to(torch.float32)
    if s.numel() == 1:
        return Granularity.PER_TENSOR, s.contiguous()
    A.need(s.numel() == rows, func, f"scale must hold one value or one per row ({rows}), "
           f"got shape {tuple(scale.shape)}")
    return Granularity.PER_TOKEN, s.reshape(rows, 1).contiguous()


def quantise_per_tensor(func: str, kind: str, num: Numerics, x, scale, quant_dtype,
                        dtype_max=None, x_scale=None) -> tuple:
    """``(y, scale[1])``: dynamic (``scale is None``) or with the given scale; ``x_scale``:
    a SmoothQuant channel scale applied first."""
    subs = dict(X=A.float_dsl(func, "x", x), **target(func, quant_dtype, dtype_max),
                **num.subs())
    xs = _smooth_scale(func, x_scale, x.shape[-1], subs)
    s_in = None if scale is None else _static_scale(func, scale, 1)[1]
    A.same_device(func, x=x, x_scale=xs, scale=s_in)
    y, s = pipeline("quant", "per_tensor", kind, **subs)(A.rows2d(x), xs, s_in)
    return y.view(x.shape), s


def quantise_per_token(func: str, kind: str, num: Numerics, x, scale=None, x_scale=None,
                       quant_dtype=torch.int8, dtype_max=None) -> tuple:
    """``(y, scale[..., 1])``; ``x_scale``: a SmoothQuant channel scale ``[N]`` / ``[1, N]``;
    a given ``scale`` (one value, or one per row) is used as is and returned."""
    x2 = A.rows2d(x)
    gran, s_in = (None, None) if scale is None else _static_scale(func, scale, x2.shape[0])
    if gran == Granularity.PER_TENSOR:
        y, _ = quantise_per_tensor(func, kind, num, x, scale, quant_dtype, dtype_max, x_scale)
        return y, scale
    subs = dict(X=A.float_dsl(func, "x", x), **target(func, quant_dtype, dtype_max),
                **num.subs())
    xs = _smooth_scale(func, x_scale, x.shape[-1], subs)
    A.same_device(func, x=x, x_scale=xs, scale=s_in)
    y, s = pipeline("quant", "per_token", kind, **subs)(x2, xs, s_in)
    return y.view(x.shape), (s.view(*x.shape[:-1], 1) if scale is None else scale)


def _smooth_scale(func: str, x_scale, n: int, subs: dict):
    """A SmoothQuant scale ``[N]`` / ``[1, N]`` as ``[N]`` (its dtype into ``subs``)."""
    if x_scale is None:
        return None
    A.tensor(func, "x_scale", x_scale)
    A.need(x_scale.numel() == n and x_scale.shape[-1] == n, func,
           f"x_scale (the smooth scale) must be [{n}] or [1, {n}], got shape "
           f"{tuple(x_scale.shape)}")
    subs["S"] = A.float_dsl(func, "x_scale", x_scale)
    return A.rows2d(x_scale).reshape(n)


def quantise_groups(func: str, kind: str, num: Numerics, x, group_size: int, quant_dtype,
                    dtype_max=None, pow2: bool = False) -> tuple:
    """``(y [..., N], scale [..., ceil(N / group_size)])`` for 1x32 / 1x64 / 1x128 groups;
    ``pow2``: each fp32 scale rounded up to a power of two (ue8m0 scales)."""
    X = A.float_dsl(func, "x", x)
    gran = GROUPS.get(group_size)
    A.need(gran is not None, func, f"group_size must be 32, 64 or 128, got {group_size}")
    y, s = pipeline("quant", "per_group", kind, X=X, GRAN=str(gran), **num.subs(),
                    POW2="true" if pow2 else "false",
                    **target(func, quant_dtype, dtype_max))(A.rows2d(x))
    return y.view(x.shape), s.view(*x.shape[:-1], s.shape[-1])
