"""``scale`` and ``round``: dynamic scales from group amax, and quantisation to codes.

Groups ("granularity"): ``per_tensor`` (all of x), ``per_token`` (one last-dim row),
``per_1x32/64/128`` (K consecutive elements of a row; the last group may be partial and
counts only real elements), ``per_128x128`` (tiles of a 2-D x, partial at the edges) and
``mx`` (1x32 groups with an E8M0 byte scale).
"""
from __future__ import annotations

from typing import Optional

import torch

from ....dialect.options import (DEFAULT_AMAX_FLOOR, E8M0Mode, Granularity, QuantTarget, Recip,
                                  RoundMode, ZeroPolicy)
from ....dialect.stages import default_dtype_max
from ..numerics import (decode_codes, e8m0_byte, e8m0_to_f32, pow2_ceil, quantize,
                        round_to_float)
from ._common import abs_amax, f32, scalar_f32

__all__ = ["run_scale", "run_round", "run_dequant", "group_amax", "expand_scale",
           "scale_shape"]


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _granularity(granularity: str) -> Granularity:
    try:
        return Granularity(granularity)
    except ValueError:
        raise ValueError(f"unknown granularity {granularity!r}") from None


def scale_shape(x_shape: tuple, granularity: str) -> tuple:
    """Scale shape: per_tensor [1]; per_token [..., 1]; per_1xK / mx [..., ceil(N/K)];
    per_128x128 [ceil(M/128), ceil(N/128)]."""
    granularity = _granularity(granularity)
    lead, n = tuple(x_shape[:-1]), x_shape[-1]
    if granularity == Granularity.PER_TENSOR:
        return (1,)
    if granularity == Granularity.PER_TOKEN:
        return lead + (1,)
    if granularity.group_size:
        return lead + (_cdiv(n, granularity.group_size),)
    if granularity == Granularity.PER_128X128:
        if len(x_shape) != 2:
            raise ValueError(f"per_128x128 needs a 2-D x, got shape {tuple(x_shape)}")
        return (_cdiv(x_shape[0], 128), _cdiv(n, 128))
    raise AssertionError(granularity)


def group_amax(x32: torch.Tensor, granularity: str) -> torch.Tensor:
    """``amax(G) = max |v|`` per group, shaped like the scale; NaN if any element is NaN;
    0 for an empty group (N = 0).

    Partial groups are padded with zeros, which never change a maximum of magnitudes."""
    granularity = _granularity(granularity)
    a = x32.abs()
    if granularity == Granularity.PER_TENSOR:
        if a.numel() == 0:
            return torch.zeros(1, dtype=torch.float32, device=a.device)
        return a.amax().reshape(1)
    if granularity == Granularity.PER_TOKEN:
        return abs_amax(a, -1, keepdim=True)
    if granularity.group_size:
        k = granularity.group_size
        n = a.shape[-1]
        g = _cdiv(n, k)
        a = torch.nn.functional.pad(a, (0, g * k - n))
        return a.reshape(a.shape[:-1] + (g, k)).amax(dim=-1)
    if granularity == Granularity.PER_128X128:
        m, n = a.shape
        mt, nt = _cdiv(m, 128), _cdiv(n, 128)
        a = torch.nn.functional.pad(a, (0, nt * 128 - n, 0, mt * 128 - m))
        return a.reshape(mt, 128, nt, 128).amax(dim=(1, 3))
    raise AssertionError(granularity)


def expand_scale(s: torch.Tensor, granularity: str, x_shape: tuple) -> torch.Tensor:
    """Broadcast a scale tensor to ``x_shape`` by the granularity (the inverse of grouping)."""
    granularity = _granularity(granularity)
    want = scale_shape(tuple(x_shape), granularity)
    if granularity == Granularity.PER_TENSOR:
        if s.numel() != 1:
            raise ValueError(f"per_tensor scale must have one element, got shape {tuple(s.shape)}")
        return s.reshape(())
    if tuple(s.shape) != want:
        raise ValueError(f"{granularity} scale for x of shape {tuple(x_shape)} must have shape "
                         f"{want}, got {tuple(s.shape)}")
    if granularity == Granularity.PER_TOKEN:
        return s
    if granularity.group_size:
        n = x_shape[-1]
        return s.repeat_interleave(granularity.group_size, dim=-1)[..., :n]
    m, n = x_shape
    return s.repeat_interleave(128, dim=0).repeat_interleave(128, dim=1)[:m, :n]


def run_scale(x: torch.Tensor, static: Optional[torch.Tensor] = None, *, dtype: str,
              granularity: str, dtype_max: Optional[float] = None, zero: Optional[str] = None,
              amax_floor: float = DEFAULT_AMAX_FLOOR, e8m0: str = E8M0Mode.ROUNDUP,
              pow2: bool = False) -> tuple:
    """Dynamic quantisation scale of ``x`` (or the given ``static`` f32[1] scale, returned as is).

    Non-mx (fp32 result, shape per :func:`scale_shape`): ``s = amax(G) / dtype_max`` and
    the zero policy: ``one`` (default except per_tensor): ``s == 0 -> 1``; ``floor``:
    ``s = max(amax, amax_floor) / dtype_max``; ``zero`` (per_tensor default): s stays 0.
    ``dtype_max`` and ``amax_floor`` are taken as fp32. ``pow2`` then rounds ``s`` up to
    a power of two (:func:`~qfuse.backends.reference.numerics.pow2_ceil`; 0 stays 0): the
    ue8m0 scales of DeepGEMM-style 1x128 groups, still stored as fp32.

    mx (uint8 result ``[..., ceil(N/32)]``): ``b = e8m0_byte(amax(G), e8m0, dtype)`` with the
    target's fixed constants (``dtype_max`` is not used).
    """
    if static is not None:
        return (f32(static).clone(),)
    x32 = f32(x)
    amax = group_amax(x32, granularity)
    if granularity == Granularity.MX:
        return (e8m0_byte(amax, e8m0, dtype),)
    dm = scalar_f32(default_dtype_max(dtype) if dtype_max is None else dtype_max, x32.device)
    if zero is None:
        zero = ZeroPolicy.ZERO if granularity == Granularity.PER_TENSOR else ZeroPolicy.ONE
    if zero == ZeroPolicy.FLOOR:
        s = torch.maximum(amax, scalar_f32(amax_floor, x32.device)) / dm
    else:
        s = amax / dm
        if zero == ZeroPolicy.ONE:
            s = torch.where(s == 0, torch.ones_like(s), s)
        elif zero != ZeroPolicy.ZERO:
            raise ValueError(f"unknown zero policy {zero!r}")
    return (pow2_ceil(s) if pow2 else s,)


def run_round(x: torch.Tensor, s: torch.Tensor, *, dtype: str, granularity: str,
              dtype_max: Optional[float] = None, mode: Optional[str] = None, sat: bool = True,
              recip: str = Recip.DIV) -> tuple:
    """Quantise ``x`` with scale ``s`` to codes of ``dtype`` (storage per qfuse/dialect/types.py).

    Non-mx: ``v = x / s`` (``recip=div``) or ``v = x * (1 / s)`` (``mul_rcp``), fp32; where
    ``s == 0`` every code is 0. mx: ``v = x / 2^(b-127)`` (``b = 0`` is ``2^-127``, 255 NaN).
    Then by target (:func:`~qfuse.backends.reference.numerics.quantize`): fp8 ``sat`` clamp to
    ``+-dtype_max`` then RNE (NaN/overflow -> NaN code); i8 / int4 ``trunc`` (default) or ``rne``,
    clamped; fp4_e2m1 RNE saturating at 6.
    """
    if dtype_max is None:
        dtype_max = default_dtype_max(dtype)
    if mode is None:
        mode = RoundMode.TRUNC if QuantTarget(dtype).is_int else RoundMode.RNE
    x32 = f32(x)
    if granularity == Granularity.MX:
        v = x32 / expand_scale(e8m0_to_f32(s.to(x32.device)), granularity, tuple(x32.shape))
    else:
        sb = expand_scale(f32(s.to(x32.device)), granularity, tuple(x32.shape))
        if recip == Recip.DIV:
            v = x32 / sb
        elif recip == Recip.MUL_RCP:
            v = x32 * (torch.ones_like(sb) / sb)   # two correctly rounded steps
        else:
            raise ValueError(f"unknown recip {recip!r}")
        v = torch.where(sb == 0, torch.zeros_like(v), v)
    return (quantize(v, dtype, dtype_max=dtype_max, mode=mode, sat=sat),)


def run_dequant(q: torch.Tensor, s: Optional[torch.Tensor] = None, *, granularity: str,
                codes: str, dtype: str = "f32") -> tuple:
    """Codes and scales back to floats: ``y = decode(q) * s`` in fp32 (one correctly rounded
    multiply), then RNE to ``dtype`` (bf16 / f16; f32 keeps it).

    ``decode`` (:func:`~qfuse.backends.reference.numerics.decode_codes`): fp8 its value
    (NaN codes NaN), i8 the integer, int4 the two's-complement low nibble, fp4_e2m1 the E2M1
    value of the low nibble (code 8 is -0); ``codes`` names q's format. ``s`` is broadcast by ``granularity`` as for
    ``round`` (per_tensor ``[1]``, per_token ``[..., 1]``, per_1xK ``[..., ceil(N/K)]``, the
    last group partial); mx: ``s`` holds E8M0 bytes, the factor ``2^(b-127)`` (``b = 0`` is
    ``2^-127``, 255 NaN). No ``s``: the factor 1 (the decoded value itself)."""
    v = decode_codes(q, codes)
    if s is not None:
        if granularity == Granularity.MX:
            sb = expand_scale(e8m0_to_f32(s.to(v.device)), granularity, tuple(v.shape))
        else:
            sb = expand_scale(f32(s.to(v.device)), granularity, tuple(v.shape))
        v = v * sb
    return (round_to_float(v, dtype),)
