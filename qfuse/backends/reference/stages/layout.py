"""``pack`` (two 4-bit codes per byte) and ``shuffle`` (AITER ``e8m0_shuffle``)."""
from __future__ import annotations

import torch

from ....dialect.options import PackOrder, QuantTarget
from ..numerics import pack_nibbles, shuffle_index, unpack_nibbles

__all__ = ["run_pack", "run_unpack", "run_shuffle"]


def run_pack(x: torch.Tensor, *, order: str = PackOrder.LINEAR) -> tuple:
    """``byte[j] = nib(q[2j]) | nib(q[2j+1]) << 4`` over the last dim (even), ``nib(v) = v & 0xF``
    (the E2M1 code, or the int4 two's-complement nibble). Result ``u8[..., N/2]``.
    ``order=even_odd`` (last dim a multiple of 8): each word of 8 codes is first permuted
    to ``q0 q2 q4 q6 q1 q3 q5 q7``, so the little-endian 32-bit word holds the even codes
    in its low 16 bits (AITER's ``rearrange_4bit_elements`` of the linear packing)."""
    return (pack_nibbles(x, order),)


def run_unpack(x: torch.Tensor, *, dtype: str, order: str = PackOrder.LINEAR) -> tuple:
    """The inverse of ``pack``: bytes ``[..., B]`` -> 4-bit codes ``[..., 2B]``, code ``2j``
    from the low nibble of byte ``j``, code ``2j+1`` from the high one; ``order=even_odd``
    undoes pack's word permutation. ``dtype=int4``: two's-complement values ``-8..7``
    (int8); ``fp4_e2m1``: E2M1 codes ``0..15`` (uint8)."""
    return (unpack_nibbles(x, order, signed=QuantTarget(dtype) == QuantTarget.INT4),)


def run_shuffle(s: torch.Tensor, *, pad: int = 0) -> tuple:
    """E8M0 preshuffle of ``s [m, n]`` into ``[sm, sn] = [round_up(m, 256), round_up(n, 8)]``
    bytes: entry ``(r, c)`` goes to flat index ``(r//32)*32*sn + (c//8)*256 + (c%4)*64 +
    (r%16)*4 + ((c%8)//4)*2 + (r%32)//16``; every other byte is ``pad`` (0..255)."""
    if s.dim() != 2:
        raise ValueError(f"shuffle takes a 2-D scale, got shape {tuple(s.shape)}")
    if not 0 <= int(pad) <= 255:
        raise ValueError(f"shuffle pad must be a byte 0..255, got {pad}")
    m, n = s.shape
    sm, sn = -(-m // 256) * 256, -(-n // 8) * 8
    src = s.view(torch.uint8) if s.dtype != torch.uint8 and s.element_size() == 1 else s
    out = torch.full((sm * sn,), int(pad), dtype=torch.uint8, device=s.device)
    r = torch.arange(m, device=s.device).reshape(m, 1)
    c = torch.arange(n, device=s.device).reshape(1, n)
    out[shuffle_index(r, c, sn).reshape(-1)] = src.to(torch.uint8).reshape(-1)
    return (out.reshape(sm, sn),)
