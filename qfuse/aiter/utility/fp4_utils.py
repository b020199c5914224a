"""``aiter.utility.fp4_utils`` on qfuse: MXFP4 helpers.

* ``dynamic_mxfp4_quant``: AITER's "asm layout" Triton quantiser (the one behind
  ``get_triton_quant(QuantType.per_1x32)``): E8M0 ``even`` scales, E2M1 codes to nearest
  even; a pipeline (``mx.qp``), backend triton.
* ``e8m0_shuffle``: AITER's ``shuffle_scale`` of a stored E8M0 scale; the DSL's ``shuffle``
  of a parameter (``utils.qp``: a layout kernel), backend triton.
* ``f32_to_mxfp4``, ``mxfp4_to_f32``, ``f32_to_e8m0``, ``f32_to_mx_e8m0_scale``,
  ``e8m0_to_f32``: AITER's are plain torch host code (bit manipulation on tensors), and so
  are these, on qfuse's bit-exact numerics (``qfuse.backends.reference.numerics``), with
  qfuse's defined result where AITER's is undefined (NaN input to the E2M1 encoder).
"""
from __future__ import annotations

import torch

from .. import _args as A
from .. import dtypes
from .._pipes import pipeline
from ..ops._mx import as_e8m0, as_fp4x2, quantise_mxfp4
from ..ops._mx import scaling_mode as scaling_mode_of
from ...backends.reference.numerics import (bits_f32, decode_e2m1, encode_e2m1, f32_bits,
                                            pack_nibbles)
from .mx_types import MxDtype, MxScaleRoundMode

__all__ = ["dynamic_mxfp4_quant", "f32_to_mxfp4", "mxfp4_to_f32", "f32_to_e8m0",
           "f32_to_e8m0_ceil", "f32_to_mx_e8m0_scale", "e8m0_to_f32", "e8m0_shuffle",
           "MxScaleRoundMode", "MxDtype"]

#: MxDtype -> (target_max_pow2, max_pos, mbits), AITER's _DTYPE_CFG
_DTYPE_CFG = {int(MxDtype.FP4_E2M1): (2, 6.0, 1), int(MxDtype.FP8_E4M3): (8, 448.0, 3),
              int(MxDtype.FP8_E4M3_FNUZ): (7, 240.0, 3)}


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


# ------------------------------------------------------------------ E2M1 values
def f32_to_mxfp4(x: torch.Tensor) -> torch.Tensor:
    """``x`` (any float dtype, last dim even) as packed E2M1 codes ``[..., N/2]`` fp4x2, no
    scale: the nearest of ``0, 0.5, 1, 1.5, 2, 3, 4, 6`` (ties to even, saturating at 6),
    bit 3 the sign, element ``2j`` in the low nibble. NaN gives code 7 (AITER's torchao
    encoder has no NaN rule). Plain torch, as AITER's."""
    func = "f32_to_mxfp4"
    A.tensor(func, "x", x)
    A.need(x.dim() >= 1 and x.shape[-1] % 2 == 0, func,
           f"the last dim of x must be even (two codes per byte), got shape {tuple(x.shape)}")
    return pack_nibbles(encode_e2m1(x.float())).view(dtypes.fp4x2)


def mxfp4_to_f32(x: torch.Tensor) -> torch.Tensor:
    """Packed E2M1 bytes ``[..., B]`` (fp4x2 or uint8) -> fp32 ``[..., 2B]``: the low nibble
    first, code 8 is -0.0. Plain torch, as AITER's."""
    func = "mxfp4_to_f32"
    A.tensor(func, "x", x)
    A.need(x.element_size() == 1, func, f"x must hold packed bytes (fp4x2 or uint8), got "
           f"{x.dtype}")
    b = x.view(torch.uint8).to(torch.int64)
    codes = torch.stack((b & 0xF, b >> 4), dim=-1).reshape(*x.shape[:-1], 2 * x.shape[-1])
    return decode_e2m1(codes)


# ------------------------------------------------------------------ E8M0 scales
def _exponent_byte(x: torch.Tensor, ceil: bool) -> torch.Tensor:
    """The fp32 exponent field of ``x`` as E8M0 (the sign ignored), plus one when ``ceil``
    and a mantissa bit is set; exponent 255 (inf, NaN) gives 0xFF."""
    b = f32_bits(x.float())
    e = (b >> 23) & 0xFF
    if ceil:
        e = torch.where(((b & 0x7FFFFF) != 0) & (e < 255), e + 1, e)
    return e.to(torch.uint8).view(dtypes.fp8_e8m0)


def f32_to_e8m0(x: torch.Tensor) -> torch.Tensor:
    """``floor_pow2(x)`` as E8M0 (AITER HEAD: the exponent field of fp32 ``x``; a subnormal
    gives 0, inf and NaN 0xFF); the caller passes ``amax / divisor``. Plain torch."""
    return _exponent_byte(A.tensor("f32_to_e8m0", "x", x), ceil=False)


def f32_to_e8m0_ceil(x: torch.Tensor) -> torch.Tensor:
    """``ceil_pow2(x)`` as E8M0: the exponent field plus one when any mantissa bit is set
    (never past 0xFF; inf and NaN 0xFF). Plain torch."""
    return _exponent_byte(A.tensor("f32_to_e8m0_ceil", "x", x), ceil=True)


def f32_to_mx_e8m0_scale(amax: torch.Tensor, *, mode=MxScaleRoundMode.RoundUp,
                         dtype=MxDtype.FP4_E2M1) -> torch.Tensor:
    """The E8M0 scale of per-block amaxes for an MX format, AITER's CPU torch reference
    (``(target_max_pow2, max_pos, mbits)``: fp4 (2, 6, 1), fp8 e4m3 (8, 448, 3), e4m3fnuz
    (7, 240, 3)):

    * RoundUp (1): ``ceil_pow2(amax / max_pos)``; RoundDown (0): the exponent field of
      ``amax / 2^target_max_pow2``; Ceil (3): ``ceil_pow2(amax / 2^target_max_pow2)``;
    * Even (2): ``R = bits(amax) + 2^(22 - mbits) & 0xFF800000``, then the exponent field
      of ``R / 2^target_max_pow2``.

    Each division is one fp32 division; NaN and inf give 0xFF. Note: qfuse's
    ``scale(..., mx)`` follows AITER's kernels (an inf amax gives 254 in floor / ceil /
    even, the even bump is 0x200000 for every target), this function AITER's reference.
    Plain torch, as AITER's."""
    func = "f32_to_mx_e8m0_scale"
    A.tensor(func, "amax", amax)
    try:
        mode_i, dtype_i = int(mode), int(dtype)
    except (TypeError, ValueError):
        mode_i = dtype_i = -1
    cfg = _DTYPE_CFG.get(dtype_i)
    if cfg is None:
        raise A.AiterArgumentError(f"{func}: unsupported dtype {dtype!r}; supported: "
                                   f"{[MxDtype(k) for k in _DTYPE_CFG]}")
    pow2, max_pos, mbits = cfg
    a = amax.float()
    div = torch.tensor(float(1 << pow2), dtype=torch.float32, device=a.device)
    if mode_i == MxScaleRoundMode.RoundUp:
        return _exponent_byte(a / torch.tensor(max_pos, device=a.device), ceil=True)
    if mode_i == MxScaleRoundMode.RoundDown:
        return _exponent_byte(a / div, ceil=False)
    if mode_i == MxScaleRoundMode.Ceil:
        return _exponent_byte(a / div, ceil=True)
    if mode_i == MxScaleRoundMode.Even:
        rounded = bits_f32((f32_bits(a) + (1 << (23 - mbits - 1))) & 0xFF800000)
        return _exponent_byte(rounded / div, ceil=False)
    raise A.AiterArgumentError(f"{func}: unknown mode {mode!r} (expected one of "
                               f"{list(MxScaleRoundMode)})")


def e8m0_to_f32(scale_e8m0_biased: torch.Tensor) -> torch.Tensor:
    """E8M0 bytes (fp8_e8m0 or uint8) -> fp32 ``2^(b-127)``: ``b = 0`` is the subnormal
    ``2^-127`` (0x00400000), ``b = 255`` NaN (AITER's pattern 0x7F800001). Plain torch."""
    func = "e8m0_to_f32"
    A.tensor(func, "scale_e8m0_biased", scale_e8m0_biased)
    A.need(scale_e8m0_biased.element_size() == 1, func, f"scale_e8m0_biased must hold E8M0 "
           f"bytes (fp8_e8m0 or uint8), got {scale_e8m0_biased.dtype}")
    b = scale_e8m0_biased.view(torch.uint8).to(torch.int64)
    bits = torch.where(b == 0, torch.full_like(b, 0x00400000), b << 23)
    return bits_f32(torch.where(b == 255, torch.full_like(b, 0x7F800001), bits))


def e8m0_shuffle(scale):
    """AITER's ``e8m0_shuffle`` (``shuffle_scale``): a 2-D E8M0 scale ``[m, n]`` (fp8_e8m0
    or uint8) laid out for the MFMA scale loads, ``[round_up(m, 256), round_up(n, 8)]`` in
    the input's dtype (entry ``(r, c)`` at ``(r//32)*32*sn + (c//8)*256 + (c%4)*64 +
    (r%16)*4 + ((c%8)//4)*2 + (r%32)//16``). Padding bytes are 0 (AITER leaves them
    uninitialised). ``None`` and fp32 scales are returned unchanged, as in AITER. The
    DSL's ``shuffle`` of a parameter; backend triton."""
    func = "e8m0_shuffle"
    if scale is None or (isinstance(scale, torch.Tensor) and scale.dtype == torch.float32):
        return scale
    A.tensor(func, "scale", scale, dims=(2,))
    A.need(scale.element_size() == 1, func, f"scale must be E8M0 bytes (fp8_e8m0 or uint8), "
           f"got {scale.dtype}")
    out = pipeline("utils", "shuffle_scale", "triton")(scale.view(torch.uint8).contiguous())
    return out.view(scale.dtype)
