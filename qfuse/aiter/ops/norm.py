"""``aiter.ops.norm`` / ``aiter.ops.rmsnorm`` on qfuse pipelines (``norm.qp``): LayerNorm and
RMSNorm fused with a residual add, SmoothQuant and dynamic per-token / per-group
quantisation, writing into the caller's ``out`` / ``yscale`` / ``residual_out`` as AITER's
kernels do.

Numerics, by the kernel mirrored (aiter-semantics.md 8): the norm of the fp32 sum
``input + residual_in`` (``residual_out`` is that sum rounded to the input dtype), fp32
statistics; then, for RMSNorm (AITER's opus kernels) ``yscale = amax / dtype_max``,
``out = y * (1 / yscale)`` with int8 rounded to nearest even, an all-zero row scale 0 and
codes 0; for per-group RMSNorm quant (the HIP ``rmsnorm_quant`` kernel) the amax floor
1e-10 and int8 toward zero; for LayerNorm + SmoothQuant (CK) ``out = y / yscale`` with
int8 toward zero (CK divides by a zero scale; qfuse gives scale 0 and codes 0). Codes
saturate. Backend: hip (Triton until the ROCDL backend runs them).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...dialect.options import Granularity, NormKind, Recip, RoundMode, ZeroPolicy
from . import _fp8_i8 as Q
from .. import _args as A
from ._fused import Binding

__all__ = ["layernorm2d_fwd_with_smoothquant", "layernorm2d_fwd_with_add_smoothquant",
           "rmsnorm2d_fwd", "rmsnorm2d_fwd_with_add", "rmsnorm2d_fwd_with_smoothquant",
           "rmsnorm2d_fwd_with_add_smoothquant", "rmsnorm2d_fwd_with_dynamicquant",
           "rmsnorm2d_fwd_with_add_dynamicquant"]


@dataclass(frozen=True)
class _Kernel:
    """The numerics of the AITER kernel a function mirrors (see the module docstring)."""
    kind: NormKind
    zero: ZeroPolicy
    recip: Recip
    int_mode: RoundMode


OPUS = _Kernel(NormKind.RMS, ZeroPolicy.ZERO, Recip.MUL_RCP, RoundMode.RNE)
HIP_GROUP = _Kernel(NormKind.RMS, ZeroPolicy.FLOOR, Recip.MUL_RCP, RoundMode.TRUNC)
CK_LAYER = _Kernel(NormKind.LAYER, ZeroPolicy.ZERO, Recip.DIV, RoundMode.TRUNC)


def _model_sensitive(func: str, flag) -> None:
    if flag:
        raise A.unsupported(func, "use_model_sensitive_rmsnorm=1 (the T5-style norm that "
                            "rounds x * inv to the input dtype before the weight) is not "
                            "supported: the DSL's norm has no such option yet")


def _bind(func, out, input, yscale, weight, epsilon, kernel: _Kernel, *, gran=None,
          residual_in=None, residual_out=None, xscale=None, bias=None, x_bias=None,
          out_before_quant=None, rms_bias=None):
    """Check AITER's arguments and run ``norm_quant``; the outputs by name and the
    row count."""
    b = Binding(func)
    A.tensor(func, "input", input)
    x2 = A.rows2d(input)
    m, n = x2.shape
    b.subs["X"] = A.float_dsl(func, "input", input)
    b.kw["x"] = x2
    b.vector("weight", weight, n, "W", "w")
    b.scalar("epsilon", epsilon, "eps")
    A.tensor(func, "out", out)
    A.need(out.numel() == input.numel(), func, f"out must have input's shape "
           f"{tuple(input.shape)}, got {tuple(out.shape)}")
    b.subs["Q"] = Q.target(func, out.dtype)["Q"]
    b.subs.update(KIND=str(kernel.kind), ZERO=str(kernel.zero), RECIP=str(kernel.recip),
                  MODE=str(kernel.int_mode if out.dtype == torch.int8 else RoundMode.RNE))
    if gran is not None:
        b.subs["GRAN"] = str(gran)
    A.tensor(func, "yscale", yscale)
    if x_bias is not None:
        A.tensor(func, "x_bias", x_bias)
        A.need(x_bias.dtype == input.dtype, func, f"x_bias must have input's dtype "
               f"{input.dtype}, got {x_bias.dtype}")
        b.vector("x_bias", x_bias, n, "X", "xb")
    for name, t in (("residual_in", residual_in), ("residual_out", residual_out)):
        if t is not None:
            A.tensor(func, name, t)
            A.need(t.numel() == input.numel() and t.dtype == input.dtype, func,
                   f"{name} must be {tuple(input.shape)} {input.dtype}, got "
                   f"{tuple(t.shape)} {t.dtype}")
    if residual_in is not None:
        b.rows("residual_in", residual_in.reshape(m, n), "X", "res")
    if bias is not None:
        b.vector("bias", bias, n, "W", "b")
    if rms_bias is not None:
        b.vector("bias", rms_bias, n, "W", "rb")
    if xscale is not None:
        b.vector("xscale", xscale, n, "S", "xs")
    if out_before_quant is not None:
        A.tensor(func, "out_before_quant", out_before_quant)
        A.need(out_before_quant.numel() == input.numel(), func, "out_before_quant must have "
               f"input's shape {tuple(input.shape)}, got {tuple(out_before_quant.shape)}")
        b.flag("unq")
    return b.run("norm", "norm_quant", "hip"), m


def _deliver(func, outs, out, yscale, residual_out=None, out_before_quant=None) -> None:
    """Write the pipeline's results into AITER's caller-allocated tensors."""
    s = outs["s"]
    A.need(yscale.numel() == s.numel(), func, f"yscale must hold {s.numel()} values "
           f"({list(s.shape)}), got shape {tuple(yscale.shape)}")
    out.copy_(outs["q"].view(out.shape))
    yscale.copy_(s.view(yscale.shape).to(yscale.dtype))
    if residual_out is not None:
        residual_out.copy_(outs["res_out"].view(residual_out.shape))
    if out_before_quant is not None:
        out_before_quant.copy_(outs["yu"].view(out_before_quant.shape))


# ------------------------------------------------------------------ LayerNorm (CK)
def layernorm2d_fwd_with_smoothquant(out, input, xscale, yscale, weight, bias, epsilon,
                                     x_bias=None):
    """``LayerNorm(input [+ x_bias]) * weight + bias``, times ``xscale [N]``, per-token
    int8 (or fp8) into ``out``; ``yscale [M, 1] = amax / dtype_max``; ``out = y / yscale``
    (CK)."""
    func = "layernorm2d_fwd_with_smoothquant"
    outs, _ = _bind(func, out, input, yscale, weight, epsilon, CK_LAYER, xscale=xscale,
                    bias=bias, x_bias=x_bias)
    _deliver(func, outs, out, yscale)


def layernorm2d_fwd_with_add_smoothquant(out, input, residual_in, residual_out, xscale, yscale,
                                         weight, bias, epsilon, x_bias=None):
    """As :func:`layernorm2d_fwd_with_smoothquant` on ``input [+ x_bias] + residual_in``
    (fp32), with that sum rounded into ``residual_out``."""
    func = "layernorm2d_fwd_with_add_smoothquant"
    outs, _ = _bind(func, out, input, yscale, weight, epsilon, CK_LAYER, xscale=xscale,
                    bias=bias, x_bias=x_bias, residual_in=residual_in,
                    residual_out=residual_out)
    _deliver(func, outs, out, yscale, residual_out)


# ------------------------------------------------------------------ RMSNorm (opus, HIP)
def _rms_plain(func, input, weight, epsilon, residual_in=None, gemma_norm=False):
    b = Binding(func)
    A.tensor(func, "input", input)
    x2 = A.rows2d(input)
    b.subs["X"] = A.float_dsl(func, "input", input)
    b.kw["x"] = x2
    b.vector("weight", weight, x2.shape[1], "W", "w")
    b.scalar("epsilon", epsilon, "eps")
    b.flag("gemma", gemma_norm)
    if residual_in is not None:
        A.tensor(func, "residual_in", residual_in)
        A.need(residual_in.shape == input.shape and residual_in.dtype == input.dtype, func,
               f"residual_in must be {tuple(input.shape)} {input.dtype}, got "
               f"{tuple(residual_in.shape)} {residual_in.dtype}")
        b.rows("residual_in", residual_in.reshape(x2.shape), "X", "res")
    return b.run("norm", "rms", "hip")


def rmsnorm2d_fwd(input, weight, epsilon, use_model_sensitive_rmsnorm=0):
    """``RMSNorm(input) * weight`` in the input dtype (a new tensor)."""
    _model_sensitive("rmsnorm2d_fwd", use_model_sensitive_rmsnorm)
    return _rms_plain("rmsnorm2d_fwd", input, weight, epsilon)["out"].view(input.shape)


def rmsnorm2d_fwd_with_add(out, input, residual_in, residual_out, weight, epsilon,
                           gemma_norm=False, use_model_sensitive_rmsnorm=0):
    """``residual_out = input + residual_in`` (rounded), ``out = RMSNorm(the fp32 sum) *
    weight`` (``1 + weight`` with ``gemma_norm``)."""
    func = "rmsnorm2d_fwd_with_add"
    _model_sensitive(func, use_model_sensitive_rmsnorm)
    got = _rms_plain(func, input, weight, epsilon, residual_in, gemma_norm)
    A.tensor(func, "out", out)
    A.tensor(func, "residual_out", residual_out)
    out.copy_(got["out"].view(out.shape))
    residual_out.copy_(got["res_out"].view(residual_out.shape))


def rmsnorm2d_fwd_with_smoothquant(out, input, xscale, yscale, weight, epsilon,
                                   use_model_sensitive_rmsnorm=0):
    """``RMSNorm(input) * weight * xscale`` -> per-token int8 / fp8 into ``out``,
    ``yscale [M, 1]`` (opus)."""
    func = "rmsnorm2d_fwd_with_smoothquant"
    _model_sensitive(func, use_model_sensitive_rmsnorm)
    outs, _ = _bind(func, out, input, yscale, weight, epsilon, OPUS, xscale=xscale)
    _deliver(func, outs, out, yscale)


def rmsnorm2d_fwd_with_add_smoothquant(out, input, residual_in, residual_out, xscale, yscale,
                                       weight, epsilon, out_before_quant=None,
                                       use_model_sensitive_rmsnorm=0):
    """As :func:`rmsnorm2d_fwd_with_smoothquant` on ``input + residual_in`` (fp32; rounded
    into ``residual_out``); ``out_before_quant`` gets the smoothed value in the input
    dtype."""
    func = "rmsnorm2d_fwd_with_add_smoothquant"
    _model_sensitive(func, use_model_sensitive_rmsnorm)
    outs, _ = _bind(func, out, input, yscale, weight, epsilon, OPUS, xscale=xscale,
                    residual_in=residual_in, residual_out=residual_out,
                    out_before_quant=out_before_quant)
    _deliver(func, outs, out, yscale, residual_out, out_before_quant)


def _group(func: str, group_size: int, shuffle_scale: bool, out):
    """``(kernel, granularity)`` of a dynamicquant call's ``group_size``."""
    if out.dtype == getattr(torch, "float4_e2m1fn_x2", None) or out.dtype == torch.uint8:
        raise A.unsupported(func, "fp4 output (E8M0 bytes in an fp32 yscale) is not "
                            "supported")
    if group_size == 0:
        if shuffle_scale:
            raise A.unsupported(func, "shuffle_scale with per-token scales (group_size=0) "
                                "is not supported")
        return OPUS, Granularity.PER_TOKEN
    gran = Q.GROUPS.get(group_size)
    A.need(gran is not None, func, f"group_size must be 0, 32, 64 or 128, got {group_size}")
    if shuffle_scale and group_size == 32:
        raise A.unsupported(func, "shuffle_scale with group_size=32 (the MX preshuffle of an "
                            "fp32 scale) is not supported")
    return HIP_GROUP, gran


def _group_scale(outs: dict, m: int, shuffle_scale: bool) -> None:
    """AITER's shuffled group scale (group 64 / 128): stored column-major."""
    if shuffle_scale:
        s = outs["s"].view(m, -1)
        outs["s"] = s.t().contiguous().view(s.shape)


def rmsnorm2d_fwd_with_dynamicquant(out, input, yscale, weight, epsilon,
                                    use_model_sensitive_rmsnorm=0, group_size=0,
                                    shuffle_scale=False):
    """``RMSNorm(input) * weight`` -> int8 / fp8 into ``out``: per token (``group_size=0``,
    opus: ``yscale [M, 1]``) or per ``1 x group_size`` group (HIP ``rmsnorm_quant``:
    ``yscale [M, N/group]``, column-major with ``shuffle_scale``)."""
    func = "rmsnorm2d_fwd_with_dynamicquant"
    _model_sensitive(func, use_model_sensitive_rmsnorm)
    kernel, gran = _group(func, group_size, shuffle_scale, out)
    outs, m = _bind(func, out, input, yscale, weight, epsilon, kernel, gran=gran)
    _group_scale(outs, m, shuffle_scale)
    _deliver(func, outs, out, yscale)


def rmsnorm2d_fwd_with_add_dynamicquant(out, input, residual_in, residual_out, yscale, weight,
                                        epsilon, use_model_sensitive_rmsnorm=0, group_size=0,
                                        shuffle_scale=False):
    """As :func:`rmsnorm2d_fwd_with_dynamicquant` on ``input + residual_in`` (fp32;
    rounded into ``residual_out``)."""
    func = "rmsnorm2d_fwd_with_add_dynamicquant"
    _model_sensitive(func, use_model_sensitive_rmsnorm)
    kernel, gran = _group(func, group_size, shuffle_scale, out)
    outs, m = _bind(func, out, input, yscale, weight, epsilon, kernel, gran=gran,
                    residual_in=residual_in, residual_out=residual_out)
    _group_scale(outs, m, shuffle_scale)
    _deliver(func, outs, out, yscale, residual_out)
