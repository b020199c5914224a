"""``aiter.int4_utils`` on qfuse: int4 weight packing for AITER's int4 GEMMs.

* ``convert_int8_to_uint32_int4``: int4 values held one per int8 -> one uint32 per 8
  values, value ``j`` of a word in bits ``4j .. 4j+3`` (the two's-complement nibble): the
  DSL's ``pack`` (``utils.qp``), whose little-endian bytes are those words; backend
  triton.
* ``rearrange_4bit_elements``: AITER's is plain torch host code (bit operations on int32
  words), and so is this; on words packed from codes it equals
  ``pack(q, order=even_odd)`` (the DSL's nibble permutation, which a quantising pipeline
  writes directly: ``tests/aiter/test_aiter_utils.py`` checks the identity).
"""
from __future__ import annotations

import torch

from . import _args as A
from ._pipes import pipeline

__all__ = ["convert_int8_to_uint32_int4", "rearrange_4bit_elements"]

#: rearrange_4bit_elements: output nibble p (bits 4p..4p+3) takes input nibble _SRC[p]
_SRC = (0, 2, 4, 6, 1, 3, 5, 7)


def convert_int8_to_uint32_int4(tensor: torch.Tensor) -> torch.Tensor:
    """int4 values in an int8 tensor ``[..., K]`` (``K % 8 == 0``) -> ``[..., K/8]`` uint32:
    ``word = sum_j (v[8w + j] & 0xF) << 4j``. Values outside [-8, 7] keep their low nibble
    (as AITER's ``& 0x0F``). AITER's code indexes a 3-D input; any rank >= 1 works here."""
    func = "convert_int8_to_uint32_int4"
    A.tensor(func, "tensor", tensor)
    if tensor.dtype != torch.int8:
        raise A.AiterArgumentError(f"{func}: tensor must be torch.int8 (int4 values), got "
                                   f"{tensor.dtype}")
    A.need(tensor.dim() >= 1 and tensor.shape[-1] % 8 == 0, func,
           f"the last dim (k) must be a multiple of 8 (k % 8 should be zero), got shape "
           f"{tuple(tensor.shape)}")
    k = tensor.shape[-1]
    if tensor.numel() == 0:
        return torch.empty(*tensor.shape[:-1], k // 8, dtype=torch.uint32, device=tensor.device)
    packed = pipeline("utils", "int4_words", "triton")(A.rows2d(tensor))
    return packed.contiguous().view(torch.uint32).reshape(*tensor.shape[:-1], k // 8)


def rearrange_4bit_elements(tensor: torch.Tensor) -> torch.Tensor:
    """The nibbles of each 32-bit word (little-endian, nibble ``p`` in bits ``4p..4p+3``)
    reordered ``[e0 .. e7] -> [e0, e2, e4, e6, e1, e3, e5, e7]`` (output nibble ``p`` is
    input nibble ``(0, 2, 4, 6, 1, 3, 5, 7)[p]``), as uint32. ``tensor`` is any tensor
    whose last dim views as int32 words (uint32 / int32, or bytes in fours). Plain torch,
    as AITER's."""
    func = "rearrange_4bit_elements"
    A.tensor(func, "tensor", tensor)
    try:
        words = tensor.view(torch.int32)
    except RuntimeError as e:
        raise A.AiterArgumentError(f"{func}: tensor must view as int32 words (uint32, or a "
                                   f"last dim of bytes that is a multiple of 4): {e}") from None
    w = words.to(torch.int64) & 0xFFFFFFFF
    out = torch.zeros_like(w)
    for p, src in enumerate(_SRC):
        out |= ((w >> (4 * src)) & 0xF) << (4 * p)
    out = torch.where(out >= 2 ** 31, out - 2 ** 32, out)
    return out.to(torch.int32).view(torch.uint32)
