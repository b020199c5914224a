"""``aiter.ops.triton.quant.quant`` on qfuse pipelines: AITER's Triton per-tensor,
per-token and MXFP4 quantisers, with their caller-allocated outputs.

Numerics (the AITER kernels'): ``scale = amax / dtype_max``, codes ``x * (1 / scale)``
(fp8 RNE, int8 toward zero); qfuse saturates at +-dtype_max and gives an all-zero input
scale 0 and codes 0 where AITER's kernels produce NaN (issue #4288), and its masked lanes
never enter the amax. MXFP4: E8M0 ``even`` scales (AITER's only mode), E2M1 codes round
to nearest even. Backend: triton (the interpreter for CPU tensors).
"""
from __future__ import annotations

import torch

from qfuse.aiter import _args as A
from qfuse.aiter.ops import _fp8_i8 as Q
from qfuse.aiter.ops._mx import quantise_mxfp4
from qfuse.aiter.ops._mx import scaling_mode as scaling_mode_of

__all__ = ["static_per_tensor_quant_fp8_i8", "dynamic_per_tensor_quant_fp8_i8",
           "dynamic_per_token_quant_fp8_i8", "dynamic_mxfp4_quant"]


def _outputs(func: str, qx, x_in, scale, scale_numel: int) -> None:
    A.tensor(func, "x_in", x_in, dims=(2,))
    A.tensor(func, "qx", qx)
    A.need(qx.shape == x_in.shape, func, f"qx must have x_in's shape {tuple(x_in.shape)}, "
           f"got {tuple(qx.shape)}")
    A.tensor(func, "scale", scale)
    A.need(scale.numel() == scale_numel, func, f"the scale must hold {scale_numel} value(s), "
           f"got shape {tuple(scale.shape)}")


def static_per_tensor_quant_fp8_i8(qx: torch.Tensor, x_in: torch.Tensor,
                                   scale_in: torch.Tensor):
    """Quantise ``x_in [M, N]`` into ``qx`` (fp8 or int8, caller-allocated) with the given
    ``scale_in (1,)`` fp32: ``qx = x * (1 / scale)``, saturating. Returns ``qx``."""
    func = "static_per_tensor_quant_fp8_i8"
    _outputs(func, qx, x_in, scale_in, 1)
    y, _ = Q.quantise_per_tensor(func, "triton", Q.TRITON, x_in, scale_in, qx.dtype)
    qx.copy_(y)
    return qx


def dynamic_per_tensor_quant_fp8_i8(qx: torch.Tensor, x_in: torch.Tensor,
                                    scale_out: torch.Tensor):
    """Per-tensor scale ``amax(x) / dtype_max`` into ``scale_out (1,)`` and ``x`` quantised
    with it into ``qx``. Returns ``(qx, scale_out)``."""
    func = "dynamic_per_tensor_quant_fp8_i8"
    _outputs(func, qx, x_in, scale_out, 1)
    y, s = Q.quantise_per_tensor(func, "triton", Q.TRITON, x_in, None, qx.dtype)
    qx.copy_(y)
    scale_out.copy_(s.view(scale_out.shape))
    return qx, scale_out


def dynamic_per_token_quant_fp8_i8(qx: torch.Tensor, x_in: torch.Tensor,
                                   scale_out: torch.Tensor):
    """Per-row scales ``amax(row) / dtype_max`` into ``scale_out`` (``(M,)`` or ``(M, 1)``)
    and the rows quantised with them into ``qx``. Returns ``(qx, scale_out)``."""
    func = "dynamic_per_token_quant_fp8_i8"
    _outputs(func, qx, x_in, scale_out, x_in.shape[0] if x_in.dim() == 2 else -1)
    y, s = Q.quantise_per_token(func, "triton", Q.TRITON, x_in, None, None, qx.dtype)
    qx.copy_(y)
    scale_out.copy_(s.view(scale_out.shape))
    return qx, scale_out


def dynamic_mxfp4_quant(x: torch.Tensor, scaling_mode: str = "even"):
    """MXFP4 of a 2-D ``x``: ``(x_fp4 [M, N/2] uint8, blockscale [M, ceil(N/32)] uint8)``,
    the scale in AITER's layout (a transposed buffer: strides ``(1, M)``). ``N`` a multiple
    of 4 (AITER's assertion); a partial last 1x32 block is scaled by its real elements.
    ``scaling_mode``: AITER has only ``"even"``; qfuse also takes the other E8M0 modes
    (``roundup``, ``floor``, ``ceil``, ``rne_legacy``)."""
    func = "dynamic_mxfp4_quant"
    A.tensor(func, "x", x, dims=(2,))
    y, s = quantise_mxfp4(func, "triton", x, scaling_mode_of(func, scaling_mode),
                          multiple=4)
    return y, A.column_major(s)
