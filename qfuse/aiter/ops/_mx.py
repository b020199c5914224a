"""The MX quantisers behind ``per_1x32_f4_quant``, ``per_1x32_mx_quant_hip`` and the
Triton ``dynamic_mxfp4_quant`` functions: bind AITER's arguments to ``mx.qp``."""
from __future__ import annotations

import torch

from ...dialect.options import E8M0Mode
from .. import _args as A
from .. import dtypes
from .._errors import AiterArgumentError
from .._pipes import pipeline

__all__ = ["ROUND_MODES", "e8m0_mode", "scaling_mode", "quantise_mxfp4", "quantise_mxfp8"]

#: AITER's ``MxScaleRoundMode`` integers (aiter/utility/mx_types.py) -> qfuse's E8M0 modes
ROUND_MODES = {0: E8M0Mode.FLOOR, 1: E8M0Mode.ROUNDUP, 2: E8M0Mode.EVEN, 3: E8M0Mode.CEIL}


def e8m0_mode(func: str, round_mode) -> E8M0Mode:
    """An ``MxScaleRoundMode`` (or its int) as qfuse's E8M0 mode."""
    try:
        mode = ROUND_MODES.get(int(round_mode))
    except (TypeError, ValueError):
        mode = None
    if mode is None:
        raise AiterArgumentError(
            f"{func}: invalid round_mode={round_mode!r}; expected 0 (RoundDown/FLOOR), "
            f"1 (RoundUp/RCEIL), 2 (Even) or 3 (Ceil), or an MxScaleRoundMode")
    return mode


def scaling_mode(func: str, name) -> E8M0Mode:
    """The E8M0 mode a Triton ``scaling_mode`` string names (AITER has only ``"even"``)."""
    try:
        return E8M0Mode(name)
    except ValueError:
        raise AiterArgumentError(f"{func}: scaling_mode must be one of "
                                 f"{', '.join(E8M0Mode)}, got {name!r}") from None


def _rows(func: str, x: torch.Tensor) -> torch.Tensor:
    A.float_dsl(func, "x", x)
    A.need(x.dim() >= 1 and x.shape[-1] % 32 == 0, func,
           f"the last dim of x must be a multiple of 32 (1x32 MX blocks), got shape "
           f"{tuple(x.shape)}")
    return A.rows2d(x)


def quantise_mxfp4(func: str, kind: str, x, mode: E8M0Mode, shuffle: bool = False,
                   pad: int = 0) -> tuple:
    """``(packed codes [rows, N/2] u8, E8M0 scale [rows, N/32] u8)``; with ``shuffle`` the
    scale is ``e8m0_shuffle``'d (padded to (256, 8) multiples with ``pad``)."""
    x2 = _rows(func, x)
    name = "mxfp4_shuffle" if shuffle else "mxfp4"
    return pipeline("mx", name, kind, X=A.FLOAT_DSL[x.dtype], MODE=str(mode), PAD=str(pad))(x2)


def quantise_mxfp8(func: str, kind: str, x, quant_dtype, mode: E8M0Mode,
                   shuffle: bool = False) -> tuple:
    """``(fp8 codes [rows, N], E8M0 scale [rows, N/32] u8)`` (MXFP8)."""
    x2 = _rows(func, x)
    q = A.quant_dsl(func, "quant_dtype", quant_dtype,
                    {k: v for k, v in A.QUANT_DSL.items() if k != torch.int8})
    name = "mxfp8_shuffle" if shuffle else "mxfp8"
    return pipeline("mx", name, kind, X=A.FLOAT_DSL[x.dtype], Q=q, MODE=str(mode))(x2)


def as_fp4x2(t: torch.Tensor) -> torch.Tensor:
    return t.view(dtypes.fp4x2)


def as_e8m0(t: torch.Tensor) -> torch.Tensor:
    return t.view(dtypes.fp8_e8m0)
