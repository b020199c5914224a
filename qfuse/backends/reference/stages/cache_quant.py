"""``cache_write``'s quantised writes (``static``, ``per_token``, ``per_block``) on the
logical cache ``[NB, BS, H, D]`` of ``cache.py``, with the numerics options that choose
between AITER's HIP kernels (the defaults) and AITER's torch reference:

* ``zero``: a scale that comes out 0 is stored as 0 (``zero``) or 1 (``one``); the codes of
  such a row / block are 0 either way (the quotient uses 1);
* ``floor``: ``floor`` quantises a token with ``max(s, KV_TOKEN_SCALE_FLOOR)`` and floors a
  block's amax at ``KV_BLOCK_AMAX_FLOOR``; ``none`` uses the scale as computed;
* ``recip``: ``x * (1 / s)`` (``mul_rcp``) or ``x / s`` (``div``);
* ``requant`` (per_block): ``grow`` or ``always`` (``BlockRequant``);
* ``scale_block`` (per_block): tokens per scale, ``SB`` (0: the cache block ``BS``).
"""
from __future__ import annotations

import torch

from ....dialect.options import (KV_BLOCK_AMAX_FLOOR, KV_TOKEN_SCALE_FLOOR, BlockRequant,
                                  CacheFloor, Recip, ScaleLayout, ZeroPolicy)
from ....errors import InputError
from ..numerics import pow2_ceil
from ._common import abs_amax, f32, scalar_f32

__all__ = ["Numerics", "write_static", "write_per_token", "write_per_block"]


class Numerics:
    """One call's quantiser: ``q(v)`` rounds fp32 quotients to the cache's codes (bytes),
    ``dm`` is dtype_max as a 0-d fp32 tensor, and the options above."""

    def __init__(self, q, dm, *, zero, floor, recip, dev):
        self.q, self.dm, self.dev = q, dm, dev
        self.zero, self.floor, self.recip = ZeroPolicy(zero), CacheFloor(floor), Recip(recip)
        self.one = torch.ones((), dtype=torch.float32, device=dev)

    def divide(self, v: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """``v / s`` (recip=div) or ``v * (1 / s)`` (mul_rcp)."""
        return v / s if self.recip == Recip.DIV else v * (self.one / s)

    def stored(self, s: torch.Tensor) -> torch.Tensor:
        """The scale as stored: a 0 becomes 1 with zero=one."""
        if self.zero == ZeroPolicy.ONE:
            return torch.where(s == 0, self.one, s)
        return s

    def quotient_scale(self, s: torch.Tensor, floor: float) -> torch.Tensor:
        """The scale that divides: ``max(s, floor)`` (floor=floor), else ``s`` with a 0
        replaced by 1 (the row is all zero: codes 0)."""
        if self.floor == CacheFloor.FLOOR and floor:
            return torch.maximum(s, scalar_f32(floor, self.dev))
        return torch.where(s == 0, self.one, s)

    def block_scale(self, amax: torch.Tensor) -> torch.Tensor:
        """A block's scale from its amax: ``max(KV_BLOCK_AMAX_FLOOR, amax) / dtype_max``
        (floor) or ``amax / dtype_max`` (none), stored per ``zero``."""
        if self.floor == CacheFloor.FLOOR:
            amax = torch.maximum(amax, scalar_f32(KV_BLOCK_AMAX_FLOOR, self.dev))
        return self.stored(amax / self.dm)


def write_static(logical, blk, off, x32, scales, num: Numerics) -> None:
    """``q = round(x (/ or * 1/) scales[0])`` at every written token."""
    logical[blk, off] = num.q(num.divide(x32, f32(scales.to(num.dev)).reshape(-1)[0]))


def write_per_token(logical, slot, blk, off, x32, scales, num: Numerics, *, scale_layout,
                    shape, amax_floor: float = 0.0, pow2: bool = False) -> torch.Tensor:
    """Per ``(t, h)``: ``s = max(amax_d, amax_floor) / dtype_max`` (rounded up to a power of
    two with ``pow2``) stored (``zero``), codes with the quotient scale (``floor``).
    Returns the updated scales."""
    nb, bs, h = shape
    sc = f32(scales.to(num.dev)).clone()
    if scale_layout == ScaleLayout.ASM:
        sc = sc.permute(1, 0, 2).reshape(h, -1)
    elif scale_layout == ScaleLayout.TOKEN:                  # [NB, BS, H] -> [H, S]
        sc = sc.permute(2, 0, 1).reshape(h, -1)
    if slot.numel() and int(slot.max()) >= sc.shape[1]:
        raise InputError(f"scales: slot {int(slot.max())} is outside the per-token "
                         f"scales of shape {tuple(scales.shape)}")
    amax = abs_amax(x32, -1)                               # [Tk, H]
    if amax_floor:
        amax = torch.maximum(amax, scalar_f32(amax_floor, num.dev))
    s = amax / num.dm
    if pow2:
        s = pow2_ceil(s)
    qs = num.quotient_scale(s, KV_TOKEN_SCALE_FLOOR)
    logical[blk, off] = num.q(num.divide(x32, qs[..., None]))
    sc[:, slot] = num.stored(s).transpose(0, 1)
    if scale_layout == ScaleLayout.ASM:
        return sc.reshape(h, nb, bs).permute(1, 0, 2).contiguous()
    if scale_layout == ScaleLayout.TOKEN:
        return sc.reshape(h, nb, bs).permute(1, 2, 0).contiguous()
    return sc


def write_per_block(logical, slot, x32, scales, num: Numerics, *, scale_layout, requant,
                    scale_block: int, cache_dtype) -> torch.Tensor:
    """Per ``(super-block, h)`` touched, ``SB = scale_block or BS`` slots per scale:
    ``requant=grow`` (HIP) or ``always`` (torch reference); see docs/semantics.md.
    Returns the updated scales ``[H, NSB]`` (asm ``[NSB, H]``)."""
    nb, bs, h, d = logical.shape
    sb = scale_block or bs
    if sb % bs or (nb * bs) % sb:
        raise InputError(f"cache: scale_block={sb} must be a multiple of the block size {bs} "
                         f"dividing the cache's {nb * bs} slots")
    nsb = nb * bs // sb
    want = (nsb, h) if scale_layout == ScaleLayout.ASM else (h, nsb)
    if tuple(scales.shape) != want:
        raise InputError(f"scales: per_block scales with scale_layout={scale_layout} must "
                         f"have shape {want}, got {tuple(scales.shape)}")
    flat = logical.view(nb * bs, h, d)                      # slot-major view of the codes
    sc = f32(scales.to(num.dev)).clone()
    sc = sc.transpose(0, 1).clone() if scale_layout == ScaleLayout.ASM else sc   # [H, NSB]
    sblk, soff = slot // sb, slot % sb
    for b in torch.unique(sblk).tolist():
        sel = sblk == b
        rows = flat[b * sb:(b + 1) * sb]                    # [SB, H, D] codes (bytes)
        if BlockRequant(requant) == BlockRequant.ALWAYS:
            sc[:, b] = _always(rows, soff[sel], x32[sel], sc[:, b], num, cache_dtype)
        else:
            sc[:, b] = _grow(rows, soff[sel], x32[sel], sc[:, b], num, cache_dtype)
    return sc.transpose(0, 1).contiguous() if scale_layout == ScaleLayout.ASM else sc


def _grow(rows, offs, xb, old, num: Numerics, cache_dtype) -> torch.Tensor:
    """HIP: ``new`` from the new tokens' amax; a grown scale re-quantises ``[0, off_first)``
    as ``round((f32(q_old) * old) / new)`` (the HIP kernel's order); returns the scale
    used."""
    new = num.block_scale(abs_amax(xb, (0, 2)))
    first = int(offs.min())
    if first > 0:
        grow = old < new
        if bool(grow.any()):
            region = rows[:first].view(cache_dtype).to(torch.float32)      # [o, H, D]
            requant = num.q((region * old[None, :, None]) / new[None, :, None])
            rows[:first] = torch.where(grow[None, :, None], requant, rows[:first])
        scale = torch.where(grow, new, old)
    else:
        scale = new
    rows[offs] = num.q(num.divide(xb, num.quotient_scale(scale, 0.0)[None, :, None]))
    return scale


def _always(rows, offs, xb, old, num: Numerics, cache_dtype) -> torch.Tensor:
    """torch reference: ``v = f32(q) * old`` over the whole block, the new tokens' x put
    at their offsets, ``s`` from ``amax(v)``, every entry ``round(v / s)``."""
    v = rows.view(cache_dtype).to(torch.float32) * old[None, :, None]     # [SB, H, D]
    v[offs] = xb
    scale = num.block_scale(abs_amax(v, (0, 2)))
    rows[:] = num.q(num.divide(v, num.quotient_scale(scale, 0.0)[None, :, None]))
    return scale
