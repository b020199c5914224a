"""``aiter.utility.fp4_utils`` on qfuse pipelines: MXFP4 helpers.

``dynamic_mxfp4_quant`` is AITER's "asm layout" Triton quantiser (the one behind
``get_triton_quant(QuantType.per_1x32)``): E8M0 ``even`` scales, E2M1 codes to nearest
even. Backend: triton.
"""
from __future__ import annotations

import torch

from .. import _args as A
from ..ops._mx import as_e8m0, as_fp4x2, quantise_mxfp4
from ..ops._mx import scaling_mode as scaling_mode_of

__all__ = ["dynamic_mxfp4_quant"]


def dynamic_mxfp4_quant(x: torch.Tensor, scaling_mode: str = "even", shuffle: bool = False):
    """MXFP4 of a 2-D ``x [M, N]``: ``(x_fp4 [M, N/2] fp4x2, scale fp8_e8m0)``; the scale is
    ``[M, N/32]`` (contiguous), or with ``shuffle`` the ``e8m0_shuffle`` layout padded to
    ``[ceil(M/256)*256, ceil(N/32/8)*8]`` with zero padding bytes, as AITER's kernel
    writes them."""
    func = "dynamic_mxfp4_quant"
    A.tensor(func, "x", x, dims=(2,))
    mode = scaling_mode_of(func, scaling_mode)
    y, s = quantise_mxfp4(func, "triton", x, mode, shuffle=bool(shuffle), pad=0)
    return as_fp4x2(y), as_e8m0(s)
