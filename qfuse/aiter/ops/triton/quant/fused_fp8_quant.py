"""``aiter.ops.triton.quant.fused_fp8_quant`` on qfuse pipelines (``fused_fp8.qp``):
RMSNorm / split-K reduce / activation fused with FP8 quantisation, every optional input
and output of AITER's functions.

Numerics (AITER's Triton kernels): norms are RMSNorm in fp32 of the fp32 sum
``inp1 + res1`` (``out_res1`` is that sum rounded to the output dtype); group quant
``scale = max(amax, 1e-10) / dtype_max`` per ``1 x group_size`` group (the last one may be
partial), codes ``clamp(y * (1 / scale), +-dtype_max)`` in RNE; static per-tensor quant
``clamp(y * (1 / scale))``. qfuse's fp32 math is correctly rounded (``1 / sqrt``, ``exp``
where AITER uses ``rsqrt`` and fast exponentials), so a norm output may differ from
AITER's by a few ulp and a code on a rounding boundary by one step. group_size is 32, 64
or 128 (qfuse's group granularities). Backend: triton (the interpreter for CPU tensors).
"""
from __future__ import annotations

import torch

from qfuse.aiter import _args as A
from qfuse.aiter import dtypes
from qfuse.aiter.ops._fp8_i8 import GROUPS, target
from qfuse.aiter.ops._fused import Binding, into, scale_layout

__all__ = ["fused_rms_fp8_per_tensor_static_quant", "fused_rms_fp8_group_quant",
           "fused_reduce_act_mul_fp8_group_quant", "fused_reduce_rms_fp8_group_quant",
           "fused_silu_mul_fp8_per_tensor_static_quant", "fused_flatten_fp8_group_quant"]

fp8_dtype = dtypes.fp8


def _quant(b: Binding, dtype_quant, group_size=None) -> None:
    """The target (``dtype_quant``: fp8 or int8) and, for group quant, the granularity."""
    b.subs.update(target(b.func, dtype_quant))
    b.subs.pop("RMAX")
    if group_size is not None:
        gran = GROUPS.get(group_size)
        if gran is None:
            raise A.unsupported(b.func, f"group_size={group_size} is not supported (qfuse's "
                                f"group granularities: 32, 64, 128)")
        b.subs["GRAN"] = str(gran)


def _static_scale(b: Binding, scale) -> None:
    A.tensor(b.func, "the static scale", scale)
    A.need(scale.numel() == 1, b.func, f"the static scale must hold one value, got shape "
           f"{tuple(scale.shape)}")
    b.kw["s"] = scale.reshape(1).to(torch.float32)


def fused_rms_fp8_per_tensor_static_quant(inp1, inp1_weight, inp1_epsilon, inp1_scale,
                                          inp2=None, inp2_weight=None, inp2_epsilon=None,
                                          dtype_quant=fp8_dtype, res1=None,
                                          output_unquantized_inp1=False,
                                          rmsnorm_convert_to_inp1_type=False):
    """``[res1 +] inp1 -> RMSNorm -> fp8 with the static scale inp1_scale (1,)``; ``inp2``
    is RMS-normalised alone. ``rmsnorm_convert_to_inp1_type`` rounds the norm to inp1's
    dtype before quantising. Returns ``(out1_fp8 [M, N1], out1 [M, N1] or None, out2
    [M, N2] or None, out_res1 [M, N1] or None)`` (unquantised outputs in inp1's dtype)."""
    b = Binding("fused_rms_fp8_per_tensor_static_quant")
    m, n = b.norm_input(inp1, inp1_weight, inp1_epsilon)
    _static_scale(b, inp1_scale)
    _quant(b, dtype_quant)
    b.residual(res1, inp1, m, n)
    b.second_input(inp2, inp2_weight, inp2_epsilon, m)
    b.flag("out1", output_unquantized_inp1)
    b.flag("conv", rmsnorm_convert_to_inp1_type)
    out = b.run("fused_fp8", "rms_static", "triton")
    return out["q"], out.get("y1"), out.get("y2"), out.get("res_out")


def fused_rms_fp8_group_quant(inp1, inp1_weight, inp1_epsilon, inp2=None, inp2_weight=None,
                              inp2_epsilon=None, group_size=128, dtype_quant=fp8_dtype,
                              res1=None, output_unquantized_inp1=False, transpose_scale=False,
                              is_x_scale_strided: bool = False):
    """``[res1 +] inp1 -> RMSNorm -> fp8 per 1 x group_size group``; ``inp2`` is
    RMS-normalised alone. Returns ``((out1_fp8 [M, N1], out1_bs [M, cdiv(N1, g)] fp32),
    out1, out2, out_res1)``; ``transpose_scale`` stores the scale column-major
    (``is_x_scale_strided``: presented with strides ``(1, M)``)."""
    b = Binding("fused_rms_fp8_group_quant")
    m, n = b.norm_input(inp1, inp1_weight, inp1_epsilon)
    _quant(b, dtype_quant, group_size)
    b.residual(res1, inp1, m, n)
    b.second_input(inp2, inp2_weight, inp2_epsilon, m)
    b.flag("out1", output_unquantized_inp1)
    out = b.run("fused_fp8", "rms_group", "triton")
    s = scale_layout(out["s"], transpose_scale, is_x_scale_strided)
    return (out["q"], s), out.get("y1"), out.get("y2"), out.get("res_out")


def fused_reduce_act_mul_fp8_group_quant(x: torch.Tensor, activation: str = "silu",
                                         x2: torch.Tensor | None = None, group_size=128,
                                         dtype_quant=fp8_dtype,
                                         dtype: float | None = torch.bfloat16):
    """``act(x[..., :N]) * x[..., N:]`` -> fp8 groups, after a split-K sum when ``x`` is
    ``[SPK, M, 2N]`` (``SPK > 1``; ``x2 [SPK, M, N2]``, if given, is only summed, into
    ``y2`` of ``dtype``). ``x [M, 2N]`` takes no ``x2``. Returns ``((y [M, N],
    y_scale [M, cdiv(N, g)]), y2)``."""
    func = "fused_reduce_act_mul_fp8_group_quant"
    b = Binding(func)
    split = b.split_k("x", x)
    A.need(split or x2 is None, func, "x2 must be None when x is 2-D")
    t = b.rows("x", x, "X", "x", split=split, as_splits=True)
    A.need(t.shape[-1] % 2 == 0, func, f"the last dim of x must be even (gate and up halves), "
           f"got {t.shape[-1]}")
    if x2 is not None:
        A.tensor(func, "x2", x2, dims=(3,))
        A.need(x2.shape[:2] == x.shape[:2], func, f"x2 must be [{x.shape[0]}, {x.shape[1]}, "
               f"N2] like x, got shape {tuple(x2.shape)}")
        b.rows("x2", x2, "X2", "x2", split=True)
        b.out_dtype("dtype", dtype)
    b.activation(activation)
    _quant(b, dtype_quant, group_size)
    out = b.run("fused_fp8", "reduce_act_mul_group", "triton")
    return (out["q"], out["s"]), out.get("y2")


def fused_reduce_rms_fp8_group_quant(inp1, inp1_weight, inp1_epsilon, inp2=None,
                                     inp2_weight=None, inp2_epsilon=None, inp3=None,
                                     group_size=128, dtype_quant=fp8_dtype, dtype=None,
                                     res1=None, output_unquantized_inp1=False, out3=None,
                                     transpose_scale=False, is_x_scale_strided: bool = False):
    """Split-K sum (``inp1 [SPK, M, N1]``, ``SPK > 1``; or ``inp1 [M, N1]``) -> ``[+ res1]``
    -> RMSNorm -> fp8 groups; ``inp2`` (summed the same way) is RMS-normalised alone;
    ``inp3 [SPK, M, N3]`` is only summed, into ``out3`` (given or new). Unquantised
    outputs have ``dtype`` (default inp1's). Returns ``((out1_fp8, out1_bs), out1, out2,
    out_res1, out3)``."""
    func = "fused_reduce_rms_fp8_group_quant"
    b = Binding(func)
    split = b.split_k("inp1", inp1)
    m, n = b.norm_input(inp1, inp1_weight, inp1_epsilon, split=split, as_splits=True)
    b.out_dtype("dtype", inp1.dtype if dtype is None else dtype)
    _quant(b, dtype_quant, group_size)
    b.residual(res1, inp1, m, n)
    spk = inp1.shape[0] if split else 1
    b.second_input(inp2, inp2_weight, inp2_epsilon, m, split=split, spk=spk, as_splits=True)
    b.summed_input("inp3", inp3, spk, m)
    b.flag("out1", output_unquantized_inp1)
    out = b.run("fused_fp8", "reduce_rms_group", "triton")
    y3 = into(b.func, out.get("y3"), out3)
    s = scale_layout(out["s"], transpose_scale, is_x_scale_strided)
    return (out["q"], s), out.get("y1"), out.get("y2"), out.get("res_out"), y3


def fused_silu_mul_fp8_per_tensor_static_quant(inp, inp_scale, dtype_quant=fp8_dtype,
                                               silu_convert_to_inp_type=False):
    """``silu(inp[:, :N]) * inp[:, N:]`` -> fp8 with the static scale ``inp_scale (1,)``
    (rounded to inp's dtype first with ``silu_convert_to_inp_type``). Returns
    ``out_fp8 [M, N]``."""
    b = Binding("fused_silu_mul_fp8_per_tensor_static_quant")
    t = b.rows("inp", inp, "X", "x")
    A.need(t.shape[-1] % 2 == 0, b.func, f"the last dim of inp must be even, got "
           f"{t.shape[-1]}")
    _static_scale(b, inp_scale)
    _quant(b, dtype_quant)
    b.flag("conv", silu_convert_to_inp_type)
    return b.run("fused_fp8", "silu_mul_static", "triton")["q"]


def fused_flatten_fp8_group_quant(x: torch.Tensor, group_size, dtype_quant=fp8_dtype,
                                  transpose_scale: bool = False):
    """``x [M, N1, N2]`` (any strides) flattened to ``[M, N1 * N2]`` -> fp8 groups.
    Returns ``(out [M, N1*N2], out_block_scales [M, cdiv(N1*N2, g)])``, the scales with
    strides ``(1, M)`` under ``transpose_scale``. Groups run over the flattened row; AITER
    restarts them at every N2 segment and writes past its scale buffer when
    ``N2 % group_size != 0``."""
    func = "fused_flatten_fp8_group_quant"
    b = Binding(func)
    A.tensor(func, "x", x, dims=(3,))
    b.subs["X"] = A.float_dsl(func, "x", x)
    b.kw["x"] = x if x.stride(-1) == 1 or x.shape[-1] <= 1 else x.contiguous()
    _quant(b, dtype_quant, group_size)
    out = b.run("fused_fp8", "flatten_group", "triton")
    s = out["s"]
    return out["q"], (A.column_major(s) if transpose_scale else s)
