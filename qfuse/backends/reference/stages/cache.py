"""``cache_write``: paged KV-cache writes through a slot mapping, optionally quantised.

The implementation works on a *logical* view of the cache, ``[NB, BS, H, D]`` indexed
``[blk, off, h, d]``, and converts from/to the physical layout with one permutation:

| layout    | physical shape          | element ``(t, h, d)`` at   |
|-----------|-------------------------|----------------------------|
| key       | ``[NB, H, D/X, BS, X]`` | ``[blk, h, d//X, off, d%X]`` |
| value     | ``[NB, H, D, BS]``      | ``[blk, h, d, off]``         |
| value_asm | ``[NB, H, BS/X, D, X]`` | ``[blk, h, off//X, d, off%X]`` |
| flash     | ``[NB, BS, H, D]``      | ``[blk, off, h, d]``         |
| preshuffle | ``[NB, BS/X, H, D/X, X, X]`` | ``[blk, off//X, h, d//X, off%X, d%X]`` |
"""
from __future__ import annotations

from typing import Optional

import torch

from ....dialect.options import (BlockRequant, CacheFloor, CacheLayout, CacheQuant,
                                  QuantTarget, Recip, RoundMode, ScaleLayout, ZeroPolicy)
from ....errors import InputError
from ..numerics import quantize, round_to_float
from ._common import FLOAT_TORCH, byte_view, f32, scalar_f32
from .cache_quant import Numerics, write_per_block, write_per_token, write_static

__all__ = ["run_cache_write", "to_logical", "from_logical", "cache_dims"]

_QUANT_TARGETS = {torch.float8_e4m3fn: QuantTarget.FP8_E4M3FN,
                  torch.float8_e4m3fnuz: QuantTarget.FP8_E4M3FNUZ, torch.int8: QuantTarget.I8}


def cache_dims(cache_shape: tuple, layout: str) -> tuple:
    """``(NB, BS, H, D, X)`` of a physical cache shape (X is None for value / flash)."""
    s = tuple(cache_shape)
    layout = CacheLayout(layout)
    if len(s) != layout.rank:
        raise InputError(f"cache: a {layout} cache must be {layout.rank}-D, got shape {s}")
    if layout == CacheLayout.KEY:
        nb, h, dx, bs, x = s
        return nb, bs, h, dx * x, x
    if layout == CacheLayout.VALUE:
        nb, h, d, bs = s
        return nb, bs, h, d, None
    if layout == CacheLayout.VALUE_ASM:
        nb, h, bsx, d, x = s
        return nb, bsx * x, h, d, x
    if layout == CacheLayout.PRESHUFFLE:
        nb, bsx, h, dx, xb, x = s
        return nb, bsx * xb, h, dx * x, x
    nb, bs, h, d = s
    return nb, bs, h, d, None


def to_logical(cache: torch.Tensor, layout: str) -> torch.Tensor:
    """Physical cache -> a new ``[NB, BS, H, D]`` tensor (element ``[blk, off, h, d]``)."""
    nb, bs, h, d, _ = cache_dims(cache.shape, layout)
    if layout == CacheLayout.KEY:
        c = cache.permute(0, 3, 1, 2, 4)
    elif layout == CacheLayout.VALUE:
        c = cache.permute(0, 3, 1, 2)
    elif layout == CacheLayout.VALUE_ASM:
        c = cache.permute(0, 2, 4, 1, 3)
    elif layout == CacheLayout.PRESHUFFLE:
        c = cache.permute(0, 1, 4, 2, 3, 5)
    else:
        c = cache
    return c.reshape(nb, bs, h, d).clone(memory_format=torch.contiguous_format)


def from_logical(logical: torch.Tensor, layout: str, x: Optional[int]) -> torch.Tensor:
    """Inverse of :func:`to_logical` (``x`` = the layout's vector width X)."""
    nb, bs, h, d = logical.shape
    if layout == CacheLayout.KEY:
        return logical.reshape(nb, bs, h, d // x, x).permute(0, 2, 3, 1, 4).contiguous()
    if layout == CacheLayout.VALUE:
        return logical.permute(0, 2, 3, 1).contiguous()
    if layout == CacheLayout.VALUE_ASM:
        return logical.reshape(nb, bs // x, x, h, d).permute(0, 3, 1, 4, 2).contiguous()
    if layout == CacheLayout.PRESHUFFLE:
        return logical.reshape(nb, bs // x, x, h, d // x, x).permute(0, 1, 3, 4, 2, 5) \
            .contiguous()
    return logical.contiguous()


def _kept_tokens(slots: torch.Tensor, capacity: int) -> torch.Tensor:
    """Indices of tokens that are written: ``0 <= slot < capacity``, and for a repeated slot
    the later token."""
    t = torch.arange(slots.shape[0], device=slots.device)
    valid = (slots >= 0) & (slots < capacity)
    if not bool(valid.any()):
        return t[valid]
    uniq, inv = torch.unique(slots[valid], return_inverse=True)
    last = torch.full((uniq.shape[0],), -1, dtype=torch.int64, device=slots.device)
    last = last.scatter_reduce(0, inv, t[valid], reduce="amax")
    return last.sort().values


def run_cache_write(x: torch.Tensor, cache: torch.Tensor, slots: torch.Tensor,
                    scales: Optional[torch.Tensor] = None, *, layout: str = CacheLayout.KEY,
                    quant: str = CacheQuant.NONE, scale_layout: str = ScaleLayout.DEFAULT,
                    dtype_max: Optional[float] = None, mode: str = RoundMode.TRUNC,
                    vec_width: Optional[int] = None, zero: str = ZeroPolicy.ZERO,
                    floor: str = CacheFloor.FLOOR, recip: str = Recip.MUL_RCP,
                    requant: str = BlockRequant.GROW, scale_block: int = 0,
                    amax_floor: float = 0.0, pow2: bool = False) -> tuple:
    """Write ``x [T, H, D]`` into ``cache`` at ``slot = slots[t]``; ``blk = slot // BS``,
    ``off = slot % BS``. A slot outside ``[0, NB * BS)`` skips the token (a negative slot is
    padding; one past the cache is a caller's error that ``index_check`` can report), and a
    slot given twice keeps the later token: only written tokens count anywhere (scales and
    block amax included).
    ``vec_width`` is the catalog option ``vec`` (the X of the key layout), checked if given.
    ``s`` below divides as ``x * (1 / s)`` (``recip=mul_rcp``, the default) or ``x / s``
    (``recip=div``).

    * ``none``: copy (float x rounded RNE to a float cache dtype).
    * ``static``: ``q = round(x / scales[0])``.
    * ``per_token``: per ``(t, h)``: ``s = amax_d(x[t, h, :]) / dtype_max``, stored as is
      (a 0 stored as 1 with ``zero=one``); ``q = round(x / max(s, 1e-12))``
      (``KV_TOKEN_SCALE_FLOOR``; ``floor=none``: ``x / s``, 1 for a 0). Scales ``default``
      ``[H, S]`` at ``[h, slot]``, ``asm`` ``[NB, H, BS]`` at ``[blk, h, off]``, ``token``
      ``[NB, BS, H]`` at ``[blk, off, h]``. ``amax_floor``: ``s = max(amax, amax_floor) /
      dtype_max``; ``pow2``: ``s`` then rounded up to a power of two (ue8m0).
    * ``per_block``, one scale per ``SB = scale_block or BS`` slots (``sblk = slot // SB``,
      ``off = slot % SB``), per ``(sblk, h)`` touched: ``requant=grow``: ``new = max(1e-6,
      amax over its new tokens) / dtype_max`` (``KV_BLOCK_AMAX_FLOOR``; none with
      ``floor=none``); with ``off_first`` = the smallest offset written: if ``off_first >
      0`` and ``old < new``, entries ``[0, off_first)`` become ``round((f32(q_old) * old) /
      new)`` and the scale ``new``; if ``old >= new`` (or old is NaN) the scale stays
      ``old``; if ``off_first == 0`` it is ``new``. ``requant=always``: ``v = f32(q_old) *
      old`` over the whole super-block, the new tokens' x at their offsets, ``s =
      amax(v) / dtype_max`` (floored as above), every entry ``round(v / s)``. New tokens:
      ``q = round(x / scale)``. Scales ``default`` ``[H, NSB]`` at ``[h, sblk]``, ``asm``
      ``[NSB, H]`` at ``[sblk, h]``.

    ``round`` is fp8 RNE saturating at ``+-dtype_max`` or int8 by ``mode`` clamped to
    ``+-dtype_max``; constants are fp32. Inputs are not modified: returns ``(cache,)`` or
    ``(cache, scales)`` as new tensors.
    """
    if x.dim() != 3:
        raise InputError(f"x: cache_write takes x [T, H, D], got shape {tuple(x.shape)}")
    nb, bs, h, d, xw = cache_dims(cache.shape, layout)
    t_, hx, dx = x.shape
    if (hx, dx) != (h, d):
        raise InputError(f"cache: {layout} cache of shape {tuple(cache.shape)} holds H={h}, "
                         f"D={d}; x has H={hx}, D={dx}")
    if vec_width is not None and xw is not None and vec_width != xw:
        raise InputError(f"cache: {layout} cache vector width is {xw}, option vec={vec_width}")
    dev = cache.device
    s64 = slots.to(device=dev, dtype=torch.int64)
    if s64.shape != (t_,):
        raise InputError(f"slots: expected shape ({t_},), got {tuple(slots.shape)}")
    keep = _kept_tokens(s64, nb * bs)
    slot = s64[keep]
    blk, off = slot // bs, slot % bs
    xk = x.to(dev)[keep]
    logical = to_logical(byte_view(cache), layout)
    scales_out = None

    if quant == CacheQuant.NONE:
        if cache.dtype in FLOAT_TORCH and x.dtype in FLOAT_TORCH:
            vals = round_to_float(f32(xk), cache.dtype)
        elif cache.dtype == x.dtype:
            vals = xk
        else:
            raise InputError(f"cache: quant=none copies x ({x.dtype}) into a {cache.dtype} cache")
        logical[blk, off] = byte_view(vals)
    else:
        if cache.dtype not in _QUANT_TARGETS:
            raise InputError(f"cache: quant={quant} needs an fp8 or int8 cache, got {cache.dtype}")
        target = _QUANT_TARGETS[cache.dtype]
        dm = scalar_f32(target.dtype.max if not dtype_max else dtype_max, dev)
        if scales is None:
            raise InputError(f"scales: quant={quant} needs scales")

        def q(v):
            return byte_view(quantize(v, target, dtype_max=float(dm), mode=mode, sat=True))

        num = Numerics(q, dm, zero=zero, floor=floor, recip=recip, dev=dev)
        want = {ScaleLayout.ASM: (nb, h, bs), ScaleLayout.TOKEN: (nb, bs, h)}.get(scale_layout)
        if quant == CacheQuant.PER_TOKEN and want and tuple(scales.shape) != want:
            raise InputError(f"scales: per_token scales with scale_layout={scale_layout} must "
                             f"have shape {want}, got {tuple(scales.shape)}")
        if (quant, scale_layout) == (CacheQuant.PER_TOKEN, ScaleLayout.DEFAULT) and (
                scales.dim() != 2 or scales.shape[0] != h):
            raise InputError(f"scales: per_token scales must be [H={h}, S], got "
                             f"{tuple(scales.shape)}")
        x32 = f32(xk)
        if quant == CacheQuant.STATIC:
            write_static(logical, blk, off, x32, scales, num)
        elif quant == CacheQuant.PER_TOKEN:
            scales_out = write_per_token(logical, slot, blk, off, x32, scales, num,
                                         scale_layout=scale_layout, shape=(nb, bs, h),
                                         amax_floor=amax_floor, pow2=pow2)
        elif quant == CacheQuant.PER_BLOCK:
            scales_out = write_per_block(logical, slot, x32, scales, num,
                                         scale_layout=scale_layout, requant=requant,
                                         scale_block=scale_block, cache_dtype=cache.dtype)
        else:
            raise ValueError(f"unknown cache quant {quant!r}")

    out = from_logical(logical, layout, xw)
    if out.dtype != cache.dtype:
        out = out.view(cache.dtype)
    return (out,) if scales_out is None else (out, scales_out)
