"""``aiter.ops.quant`` on qfuse pipelines: AITER's torch references, its HIP quantisers and
the backend dispatch tables (``get_torch_quant`` / ``get_hip_quant`` / ``get_triton_quant``).

Every function keeps AITER's name, arguments, defaults, output shapes, dtypes and
layouts; the numerics of the AITER entry point it mirrors are named in its docstring and
in docs/aiter.md, with qfuse's defined result where AITER's is undefined (an all-zero
tensor, int8 overflow, NaN). Which backend runs: torch references on the ``reference``
backend, HIP kernels on ``triton`` (the ROCDL backend once it exists), see
``qfuse.aiter.backend_for``.
"""
from __future__ import annotations

import functools

import torch

from .. import _args as A
from .. import dtypes
from .._pipes import pipeline
from ..enum import QuantType
from . import _fp8_i8 as Q
from ._mx import as_e8m0, as_fp4x2, e8m0_mode, quantise_mxfp4, quantise_mxfp8
from ...dialect.options import E8M0Mode, Granularity, Recip, ZeroPolicy

__all__ = ["get_dtype_max", "pertoken_quant", "per_tensor_quant", "per_1x32_f4_quant",
           "per_1x32_i4_quant", "per_block_quant_wrapper", "per_tensor_quant_hip",
           "per_token_quant_hip", "per_group_quant_hip", "per_1x32_mx_quant_hip",
           "per_1x32_f4_quant_hip", "per_tensor_quant_triton", "per_token_quant_triton",
           "per_1x32_f4_quant_triton", "smooth_per_token_scaled_quant", "moe_smoothquant_fwd",
           "get_torch_quant", "get_hip_quant", "get_triton_quant", "QuantType"]


def get_dtype_max(dtype):
    """The largest finite value of ``dtype`` (``torch.finfo`` / ``torch.iinfo`` max)."""
    return A.dtype_max(dtype)


# ------------------------------------------------------------------ torch references
def pertoken_quant(x, scale=None, x_scale=None, scale_dtype=dtypes.fp32,
                   quant_dtype=dtypes.i8, dtypeMax=None):
    """Per-token (per-row) fp8 / int8 quantisation, AITER's torch reference.

    ``h = x * x_scale`` (SmoothQuant channel scale ``[N]`` / ``[1, N]``, optional);
    ``scale = amax(|h|, row) / dtypeMax``, an all-zero row gets scale 1; ``y = h / scale``
    (true division), fp8 RNE (non-saturating, as torch's cast), int8 toward zero. A given
    ``scale`` (one value, or one per row) is used instead and returned. Returns ``(y
    [x.shape], scale [..., 1] in scale_dtype)``. qfuse: int8 values past +-127 saturate
    (AITER's cast wraps). Backend: reference (``torch``).
    """
    y, s = Q.quantise_per_token("pertoken_quant", "torch", Q.TORCH_TOKEN, x, scale, x_scale,
                                quant_dtype, dtypeMax)
    return y, s.to(scale_dtype)


def per_tensor_quant(x, scale=None, scale_dtype=dtypes.fp32, quant_dtype=dtypes.i8,
                     dtypeMax=None):
    """Per-tensor fp8 / int8 quantisation, AITER's torch reference.

    ``scale = amax(|x|) / dtypeMax`` (or the given scale), ``y = x / scale`` (fp8 RNE
    non-saturating, int8 toward zero). Returns ``(y, scale [1] in scale_dtype)``.
    qfuse: an all-zero tensor gives scale 0 and codes 0 (AITER: NaN codes, issue #4288);
    int8 saturates at +-127. Backend: reference.
    """
    y, s = Q.quantise_per_tensor("per_tensor_quant", "torch", Q.TORCH_TENSOR, x, scale,
                                 quant_dtype, dtypeMax)
    out = s if scale is None else scale
    return y, out.reshape(1).to(scale_dtype)


def per_1x32_f4_quant(x, scale=None, quant_dtype=dtypes.fp4x2, shuffle=False, pack_dim=-1,
                      round_mode=1):
    """MXFP4 (E2M1 codes in 1x32 blocks, E8M0 scales), AITER's torch reference.

    ``round_mode`` (``MxScaleRoundMode``): 0 RoundDown (floor), 1 RoundUp (default),
    2 Even, 3 Ceil; E2M1 codes round to nearest even, saturating at 6. ``x`` is
    ``[..., N]`` with ``N % 32 == 0``; returns ``(y [..., N/2] fp4x2, scale [rows, N/32]
    fp8_e8m0)``, the scale ``e8m0_shuffle``'d with ``shuffle`` (padding bytes 0; AITER
    leaves them uninitialised). ``pack_dim=0`` (2-D ``x [K, N]``) packs along dim 0 for a
    ``tl.dot_scaled`` RHS: ``y [K/2, N]``, ``scale [K/32, N]``. NaN in a block gives scale
    255 and code 7 (AITER's encoder has no NaN rule). Backend: reference.
    """
    func = "per_1x32_f4_quant"
    if quant_dtype != dtypes.fp4x2:
        raise A.unsupported(func, f"quant_dtype must be dtypes.fp4x2, got {quant_dtype}")
    if scale is not None:
        raise A.unsupported(func, "a given scale is not supported (AITER's reference "
                            "ignores it and computes the MX scale from x)")
    mode = e8m0_mode(func, round_mode)
    A.tensor(func, "x", x)
    if pack_dim == 0:
        A.need(x.dim() == 2, func, f"pack_dim=0 needs a 2-D x (K, N), got shape "
               f"{tuple(x.shape)}")
        y, s = quantise_mxfp4(func, "torch", x.t().contiguous(), mode, shuffle)
        return as_fp4x2(y.t().contiguous()), as_e8m0(s.t().contiguous())
    A.need(pack_dim == -1, func, f"pack_dim must be -1 or 0, got {pack_dim}")
    y, s = quantise_mxfp4(func, "torch", x, mode, shuffle)
    return as_fp4x2(y.view(*x.shape[:-1], -1)), as_e8m0(s)


def per_1x32_i4_quant(weight, group_size=32):
    """Group-wise symmetric int4 in [-7, 7] along the last dim, AITER's torch reference.

    ``scale = max(amax(group), 1e-6) / 7``, ``q = round(w / scale)`` (nearest even),
    clamped to +-7. Returns ``(q [..., N, K] int8, scale [..., K/group_size, N] bf16)``.
    qfuse computes in fp32 (the scale is rounded to bf16 only on output); AITER's
    reference computes a bf16 weight's quotient in bf16, so a bf16 code on a rounding
    boundary can differ by one. Backend: reference.
    """
    func = "per_1x32_i4_quant"
    A.tensor(func, "weight", weight, dims=(2, 3, 4, 5, 6))
    gran = Q.GROUPS.get(group_size)
    A.need(gran is not None and weight.shape[-1] % group_size == 0, func,
           f"group_size must be 32, 64 or 128 and divide K={weight.shape[-1]}, got "
           f"{group_size}")
    X = A.float_dsl(func, "weight", weight)
    w2 = A.rows2d(weight)
    q, s = pipeline("int4", "int4_groups", "torch", X=X, GRAN=str(gran))(w2)
    scale = s.view(*weight.shape[:-1], -1).transpose(-1, -2).contiguous().to(dtypes.bf16)
    return q.view(weight.shape), scale


def per_block_quant_wrapper(block_shape=(1, 128)):
    """AITER's decorator: run a per-token quantiser on 1 x blk_n blocks of a 2-D ``x``
    (``x.view(-1, blk_n)``), returning ``(y [M, N], scale [M, N / blk_n])``."""
    def decorator(per_token_quant_func):
        def wrapper(x, scale=None, quant_dtype=dtypes.i8):
            blk_m, blk_n = block_shape
            func = f"per_block_quant_wrapper({block_shape})"
            A.tensor(func, "x", x, dims=(2,))
            A.need(x.shape[-1] % blk_n == 0, func, f"block size {blk_n} does not divide the "
                   f"last dim {x.shape[-1]}")
            if blk_m != 1:
                raise A.unsupported(func, f"only 1xN blocks are supported (as in AITER), got "
                                    f"{block_shape}; per_128x128 is get_torch_quant("
                                    f"QuantType.per_128x128)")
            m, n = x.shape
            y, s = per_token_quant_func(x.reshape(-1, blk_n), scale=scale,
                                        quant_dtype=quant_dtype)
            return y.view(m, n), s.view(m, n // blk_n)
        return wrapper
    return decorator


def _per_128x128_torch(x, scale=None, quant_dtype=dtypes.i8):
    """128x128 tiles of a 2-D ``x``, quantised like ``pertoken_quant`` per tile (zero tile:
    scale 1; ``x / scale``): ``(y [M, N], scale [ceil(M/128), ceil(N/128)])``."""
    func = "get_torch_quant(QuantType.per_128x128)"
    if scale is not None:
        raise A.unsupported(func, "static 128x128 scales are not supported")
    A.tensor(func, "x", x, dims=(2,))
    return pipeline("quant", "per_group", "torch", X=A.float_dsl(func, "x", x),
                    GRAN=str(Granularity.PER_128X128), **Q.TORCH_TOKEN.subs(),
                    **Q.target(func, quant_dtype))(A.rows2d(x))


# ------------------------------------------------------------------ HIP kernels
def per_tensor_quant_hip(x, scale=None, quant_dtype=dtypes.i8, num_rows=None,
                         num_rows_factor=1):
    """Per-tensor fp8 / int8, AITER's HIP kernel (``dynamic_per_tensor_quant`` /
    ``static_per_tensor_quant``): ``scale = amax / dtype_max``, ``y = x * (1 / scale)``,
    fp8 clamped to +-max then RNE, int8 toward zero. Returns ``(y, scale [1])``.
    qfuse: all-zero input gives scale 0 and codes 0 (AITER: 0 * inf); int8 saturates;
    ``1 / scale`` is correctly rounded (HIP: ``v_rcp_f32``, 1 ulp). Backend: hip."""
    func = "per_tensor_quant_hip"
    A.need(num_rows is None, func, "num_rows is not supported for per_tensor_quant_hip")
    y, s = Q.quantise_per_tensor(func, "hip", Q.HIP, x, scale, quant_dtype)
    return y, (s if scale is None else scale).view(1)


def per_token_quant_hip(x, scale=None, quant_dtype=dtypes.i8, num_rows=None,
                        num_rows_factor=1):
    """Per-token fp8 / int8, AITER's HIP ``dynamic_per_token_scaled_quant``:
    ``scale = amax(row) / dtype_max`` (``[..., 1]`` fp32), ``y = x * (1 / scale)``, fp8
    clamped then RNE, int8 toward zero. Like AITER's host code, a row of 32, 64 or 128
    columns takes the group kernel's amax floor 1e-10. qfuse: an all-zero row gets scale 0
    and codes 0 (AITER: 0 * inf); int8 saturates. ``num_rows`` (CUDA-graph padding) is
    accepted; qfuse quantises every row, those past it included. Backend: hip."""
    func = "per_token_quant_hip"
    if scale is not None:
        raise A.AiterArgumentError(f"{func}: unsupported: static per token quant (scale "
                                   f"must be None)")
    A.tensor(func, "x", x)
    num = Q.HIP_GROUP if x.shape[-1] in (32, 64, 128) else Q.HIP
    return Q.quantise_per_token(func, "hip", num, x, None, None, quant_dtype)


def per_group_quant_hip(x, scale=None, quant_dtype=dtypes.i8, group_size=128,
                        transpose_scale=False, num_rows=None, num_rows_factor=1,
                        scale_type=dtypes.fp32, scale_layout_m32k4=False):
    """1 x group_size fp8 / int8 groups, AITER's HIP per-group kernel: ``scale =
    max(amax, 1e-10) / dtype_max``, ``y = x * (1 / scale)``. ``scale [..., N/group]`` fp32;
    ``transpose_scale`` stores it column-major in that buffer (AITER's layout: the bytes of
    ``scale.t()``). ``scale_type=dtypes.fp8_e8m0`` with ``group_size=32`` is MXFP8 (E8M0
    RoundUp); with 64 or 128 (AITER's ``dynamic_per_group_scaled_quant`` e8m0 branch: a
    power-of-two group scale, ``ceil_pow2(max(amax, 1e-10) / dtype_max)``) it is the
    ``scale(pow2=true)`` ue8m0 scale, returned as its E8M0 bytes. Backend: hip."""
    func = "per_group_quant_hip"
    if scale is not None:
        raise A.AiterArgumentError(f"{func}: unsupported: static per token quant (scale "
                                   f"must be None)")
    if scale_layout_m32k4:
        raise A.unsupported(func, "scale_layout_m32k4 (the gfx1250 ASM GEMM scale layout) "
                            "is not supported")
    if scale_type == dtypes.fp8_e8m0 and group_size != 32:
        A.need(group_size in (64, 128), func, f"an e8m0 scale needs group_size 32, 64 or "
               f"128, got {group_size}")
        A.need(not transpose_scale, func, "transpose_scale with an e8m0 scale of 1x64 / "
               "1x128 groups is not supported")
        y, s = Q.quantise_groups(func, "hip", Q.HIP_GROUP, x, group_size, quant_dtype,
                                 pow2=True)
        return y, as_e8m0(_pow2_byte(s))
    if scale_type == dtypes.fp8_e8m0:
        y, s = quantise_mxfp8(func, "hip", x, quant_dtype, E8M0Mode.ROUNDUP, transpose_scale)
        return y.view(x.shape), as_e8m0(s)
    A.need(scale_type == dtypes.fp32, func, f"scale_type must be dtypes.fp32 or "
           f"dtypes.fp8_e8m0, got {scale_type}")
    y, s = Q.quantise_groups(func, "hip", Q.HIP_GROUP, x, group_size, quant_dtype)
    if transpose_scale:
        s = s.reshape(-1, s.shape[-1]).t().contiguous().view(s.shape)
    return y, s


def per_1x32_mx_quant_hip(x, scale=None, quant_dtype=dtypes.fp4x2, shuffle=False,
                          num_rows=None, num_rows_factor=1, scale_type=None):
    """1x32 MX quantisation, AITER's HIP kernel (E8M0 RoundUp). ``quant_dtype=fp4x2``:
    ``(y [m, n/2] fp4x2, scale [m, n/32] fp8_e8m0)``; ``dtypes.fp8``: MXFP8 with an e8m0
    (``scale_type=dtypes.fp8_e8m0``) or fp32 (default) scale. ``shuffle`` lays the e8m0
    scale out for the MFMA scale loads (padding 0; AITER leaves it uninitialised).
    Backend: hip."""
    func = "per_1x32_mx_quant_hip"
    if scale is not None:
        raise A.AiterArgumentError(f"{func}: unsupported: static per token quant (scale "
                                   f"must be None)")
    A.tensor(func, "x", x, dims=(2,))
    if quant_dtype == dtypes.fp4x2:
        A.need(scale_type in (None, dtypes.fp8_e8m0), func, f"fp4x2 output requires an e8m0 "
               f"scale; got scale_type={scale_type}")
        y, s = quantise_mxfp4(func, "hip", x, E8M0Mode.ROUNDUP, shuffle)
        return as_fp4x2(y), as_e8m0(s)
    if scale_type in (None, dtypes.fp32):
        if shuffle:
            raise A.unsupported(func, "quant_dtype=fp8 with scale_type=fp32 and shuffle=True "
                                "is not supported (as in AITER): pass scale_type="
                                "dtypes.fp8_e8m0")
        # the fp32 branch is the plain group kernel: max(amax, 1e-10) / dtype_max
        return Q.quantise_groups(func, "hip", Q.HIP_GROUP, x, 32, quant_dtype)
    A.need(scale_type == dtypes.fp8_e8m0, func, f"scale_type must be dtypes.fp32 or "
           f"dtypes.fp8_e8m0, got {scale_type}")
    y, s = quantise_mxfp8(func, "hip", x, quant_dtype, E8M0Mode.ROUNDUP, shuffle)
    return y, as_e8m0(s)


def per_1x32_f4_quant_hip(x, scale=None, quant_dtype=dtypes.fp4x2, shuffle=False,
                          num_rows=None, num_rows_factor=1):
    """The fp4-only form of :func:`per_1x32_mx_quant_hip`."""
    if quant_dtype != dtypes.fp4x2:
        raise A.unsupported("per_1x32_f4_quant_hip", "per_1x32_f4_quant_hip is fp4-only; use "
                            "per_1x32_mx_quant_hip for fp8")
    return per_1x32_mx_quant_hip(x, scale, quant_dtype, shuffle, num_rows, num_rows_factor)


def smooth_per_token_scaled_quant(out, input, scales, smooth_scale, smooth_scale_map=None,
                                  shuffle_scale=False, num_rows=None, num_rows_factor=1,
                                  smooth_scale_map_hash=None, enable_ps=True):
    """SmoothQuant + per-token fp8 / int8 into ``out`` / ``scales``, AITER's HIP kernel.

    ``h = x * smooth_scale[e]`` with ``e = smooth_scale_map[token]`` (``[E, N]`` scale; no
    map: its single row ``[1, N]`` / ``[N]``), ``scale = max(amax(h), 1e-10) / dtype_max``,
    ``out = h * (1 / scale)`` (fp8 clamped then RNE, int8 toward zero, saturating).
    ``input`` is ``[M, N]``, or ``[M, topk, N]`` (any strides, e.g. an ``expand``) with a
    ``[M, topk]`` map; ``out`` has ``input``'s shape (any strides), ``scales`` one value per
    row. A token whose map entry is negative is skipped (its ``out`` and ``scales`` keep
    their contents), as in AITER. Backend: hip."""
    func = "smooth_per_token_scaled_quant"
    if shuffle_scale:
        raise A.unsupported(func, "shuffle_scale=True is not supported")
    if smooth_scale_map_hash is not None:
        raise A.unsupported(func, "smooth_scale_map_hash (a local expert remapping) is not "
                            "supported: map the ids before the call")
    A.tensor(func, "input", input, dims=(2, 3))
    A.tensor(func, "out", out)
    A.tensor(func, "scales", scales)
    A.tensor(func, "smooth_scale", smooth_scale, dims=(1, 2))
    A.need(out.shape == input.shape, func, f"out must have input's shape {tuple(input.shape)}, "
           f"got {tuple(out.shape)}")
    n = input.shape[-1]
    xs = smooth_scale if smooth_scale.dim() == 2 else smooth_scale.view(1, -1)
    A.need(xs.shape[-1] == n, func, f"smooth_scale must be [E, {n}], got shape "
           f"{tuple(smooth_scale.shape)}")
    lead = tuple(input.shape[:-1])
    rows = input.numel() // max(n, 1)
    A.need(scales.numel() == rows, func, f"scales must hold one value per row ({rows}), got "
           f"shape {tuple(scales.shape)}")
    if smooth_scale_map is None:
        A.need(xs.shape[0] == 1, func, f"without smooth_scale_map the smooth scale must be one "
               f"row [1, {n}], got shape {tuple(smooth_scale.shape)}")
        ids = torch.zeros(lead, dtype=torch.int32, device=input.device)
    else:
        A.tensor(func, "smooth_scale_map", smooth_scale_map)
        A.need(tuple(smooth_scale_map.shape) == lead or smooth_scale_map.numel() == rows, func,
               f"smooth_scale_map must be {list(lead)} (one expert per row), got shape "
               f"{tuple(smooth_scale_map.shape)}")
        ids = smooth_scale_map.reshape(lead)
    y, s = _moe_smooth(func, "hip", Q.HIP_GROUP, input, xs, ids, out.dtype)
    keep = (ids >= 0).reshape(lead)
    out.copy_(torch.where(keep[..., None], y.view(input.shape), out))
    flat = scales.view(-1) if scales.is_contiguous() else scales.reshape(-1)
    new = torch.where(keep.reshape(-1), s.reshape(-1), flat.to(s.dtype))
    scales.copy_(new.view(scales.shape))


def _moe_smooth(func: str, kind: str, num, x, xs, ids, out_dtype) -> tuple:
    """``(q, scale)`` of ``smooth(x, xs[ids])`` quantised per token: ``x [M, N]`` with ids
    ``[M, K]`` gives ``[M, K, N]``; ``x [M, K, N]`` with ids ``[M, K]`` gives the same
    shape, each (token, slot) row smoothed by its own expert's row (the DSL's 3-D
    expert-indexed smooth; an expanded ``[M, 1, N]`` is read once as ``[M, N]``)."""
    X = A.float_dsl(func, "input", x)
    S = A.float_dsl(func, "smooth_scale", xs)
    idt = {torch.int32: "i32", torch.int64: "i64"}.get(ids.dtype)
    A.need(idt is not None, func, f"expert ids must be int32 or int64, got {ids.dtype}")
    A.same_device(func, input=x, smooth_scale=xs, ids=ids)
    if ids.dim() == 1:
        ids = ids.view(-1, 1)
    name = "moe_smooth"
    if x.dim() == 3 and x.stride(1) != 0:     # each (token, slot) row its own
        name = "moe_smooth_3d"
        x = x if x.stride(-1) == 1 else x.contiguous()
    elif x.dim() == 3:                        # input.expand(-1, topk, -1): one row per token
        x = A.rows2d(x[:, 0, :])
    else:
        x = A.rows2d(x)
    run = pipeline("quant", name, kind, X=X, S=S, I=idt, **num.subs(),
                   **Q.target(func, out_dtype))
    return run(x, A.rows2d(xs), ids.contiguous())


#: CK's smoothquant: scale = amax / 127 (no zero guard), y / scale (true division),
#: saturating cast toward zero; qfuse gives a zero row scale 0 and codes 0
CK_SMOOTH = Q.Numerics(ZeroPolicy.ZERO, Recip.DIV)


def moe_smoothquant_fwd(out, input, x_scale, topk_ids, y_scale):
    """MoE SmoothQuant, AITER's CK kernel: ``out[m, k] = quant(input[m] * x_scale[
    topk_ids[m, k]])`` per token, ``y_scale[m, k] = amax / dtype_max``, ``out = h / scale``
    (saturating, int8 toward zero). ``input [M, N]``, ``x_scale [E, N]`` fp32,
    ``topk_ids [M, topk]`` int32, ``out [M, topk, N]`` int8 or fp8, ``y_scale`` one value
    per (token, slot). An id outside ``[0, E)`` gives a zero row. qfuse: an all-zero row
    gets scale 0 and codes 0 (CK: NaN). Backend: hip."""
    func = "moe_smoothquant_fwd"
    A.tensor(func, "input", input, dims=(2,))
    A.tensor(func, "x_scale", x_scale, dims=(2,))
    A.tensor(func, "topk_ids", topk_ids, dims=(2,))
    A.tensor(func, "out", out)
    A.tensor(func, "y_scale", y_scale)
    m, n = input.shape
    k = topk_ids.shape[1]
    A.need(topk_ids.shape[0] == m, func, f"topk_ids must be [{m}, topk], got shape "
           f"{tuple(topk_ids.shape)}")
    A.need(x_scale.shape[1] == n, func, f"x_scale must be [E, {n}], got shape "
           f"{tuple(x_scale.shape)}")
    A.need(out.numel() == m * k * n, func, f"out must be [{m}, {k}, {n}], got shape "
           f"{tuple(out.shape)}")
    A.need(y_scale.numel() == m * k, func, f"y_scale must hold {m * k} values ([{m}, {k}, "
           f"1]), got shape {tuple(y_scale.shape)}")
    y, s = _moe_smooth(func, "hip", CK_SMOOTH, input, x_scale, topk_ids, out.dtype)
    out.copy_(y.view(out.shape))
    y_scale.copy_(s.view(y_scale.shape))


# ------------------------------------------------------------------ Triton wrappers
def per_tensor_quant_triton(x, scale=None, quant_dtype=dtypes.i8):
    """Per-tensor fp8 / int8 through AITER's Triton kernels (see
    ``ops.triton.quant.dynamic_per_tensor_quant_fp8_i8``). Returns ``(y, scale [1])``."""
    y, s = Q.quantise_per_tensor("per_tensor_quant_triton", "triton", Q.TRITON, x, scale,
                                 quant_dtype)
    return y, (s if scale is None else scale)


def per_token_quant_triton(x, scale=None, quant_dtype=dtypes.i8):
    """Per-token fp8 / int8 through AITER's Triton kernel; ``(y, scale [..., 1])``."""
    func = "per_token_quant_triton"
    if scale is not None:
        raise A.AiterArgumentError(f"{func}: unsupported: static per token quant (scale "
                                   f"must be None)")
    return Q.quantise_per_token(func, "triton", Q.TRITON, x, None, None, quant_dtype)


def per_1x32_f4_quant_triton(x, scale=None, quant_dtype=dtypes.fp4x2, shuffle=False):
    """MXFP4 through AITER's asm-layout Triton kernel (``fp4_utils.dynamic_mxfp4_quant``:
    E8M0 Even)."""
    if quant_dtype != dtypes.fp4x2:
        raise A.unsupported("per_1x32_f4_quant_triton", f"quant_dtype must be dtypes.fp4x2, "
                            f"got {quant_dtype}")
    from ..utility.fp4_utils import dynamic_mxfp4_quant
    y, s = dynamic_mxfp4_quant(x, shuffle=shuffle)
    return y.view(quant_dtype), s


# ------------------------------------------------------------------ dispatch
def _pow2_byte(s: torch.Tensor) -> torch.Tensor:
    """A power-of-two fp32 scale (normal) as its E8M0 byte: the exponent field."""
    return ((s.contiguous().view(torch.int32) >> 23) & 0xFF).to(torch.uint8)


def _identity(*a, **k):
    return a[0], None


def _unsupported_quant(qType, backend):
    def fail(*a, **k):
        raise A.unsupported(f"get_{backend}_quant", f"unsupported quant type {qType!r} on the "
                            f"{backend} path (as in AITER)")
    return fail


@functools.lru_cache(maxsize=None)
def get_torch_quant(qType):
    """The torch-reference quantiser of a QuantType (qfuse runs it on the reference
    backend). per_128x128 is the guide's "wrapped" 128x128 tile quantiser (AITER's code
    raises NotImplementedError there); per_256x128 / per_1024x128 raise, as AITER's
    assertion does."""
    table = {QuantType.No: _identity, QuantType.per_Tensor: per_tensor_quant,
             QuantType.per_Token: pertoken_quant, QuantType.per_1x32: per_1x32_f4_quant,
             QuantType.per_1x128: per_block_quant_wrapper((1, 128))(pertoken_quant),
             QuantType.per_128x128: _per_128x128_torch}
    return table.get(qType, _unsupported_quant(qType, "torch"))


@functools.lru_cache(maxsize=None)
def get_hip_quant(qType):
    """The HIP quantiser of a QuantType (qfuse: ROCDL on AMD once it exists, until then
    and on NVIDIA Triton)."""
    table = {QuantType.No.value: _identity, QuantType.per_Tensor.value: per_tensor_quant_hip,
             QuantType.per_Token.value: per_token_quant_hip,
             QuantType.per_1x32.value: per_1x32_mx_quant_hip,
             QuantType.per_1x128.value: functools.partial(per_group_quant_hip, group_size=128)}
    return table.get(int(qType), _unsupported_quant(qType, "hip"))


@functools.lru_cache(maxsize=None)
def get_triton_quant(qType):
    """The Triton quantiser of a QuantType."""
    table = {QuantType.No: _identity, QuantType.per_Tensor: per_tensor_quant_triton,
             QuantType.per_Token: per_token_quant_triton,
             QuantType.per_1x32: per_1x32_f4_quant_triton,
             QuantType.per_1x128: per_block_quant_wrapper((1, 128))(per_token_quant_triton)}
    return table.get(qType, _unsupported_quant(qType, "triton"))
