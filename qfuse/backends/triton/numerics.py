"""Triton device helpers: the numerics of docs/semantics.md, bit exact.

Generated kernels do `from qfuse.backends.triton.numerics import *`; every exported name
starts with `qf_` / `QF_`. (That import path is part of the generated text, so this module
and lib.py stay at the package root: see the package docstring.) Each helper gives the
same bits on NVIDIA (sm_90), AMD (gfx942, gfx950) and in the CPU interpreter
(`TRITON_INTERPRET=1` or `InterpretedFunction`), on triton 3.6 .. 3.9. Rules followed
(shared/spec/probe-triton.md):

* rounding that the interpreter gets wrong (fp32 -> fp8 casts: half-away ties, lost carry,
  truncated subnormals; fp32 -> bf16: truncation) is done with integer/bit arithmetic;
* no float unary minus (`-x` is `0 - x` in 3.7: the sign of zero is lost): signs are OR-ed
  in as bits;
* no uint32 op with a negative Python int (the interpreter raises);
* exponents are computed on int32, never through a float -> uint8 wrap-around.

Trace-time Python helpers (`_f32_bits`, `_interpreting`, ...) are `constexpr_function`s
(triton.runtime.jit, present in 3.6 .. 3.9), callable from jit code and the interpreter;
they live in numerics_trace.py. This module has the arithmetic (division, sqrt, amax,
bf16/f16 rounding); the code conversions (fp8, int, E2M1, E8M0, packing) are in
numerics_codes.py and re-exported here.
"""
import triton
import triton.language as tl

__all__ = [
    "QF_E8M0_ROUNDUP", "QF_E8M0_EVEN", "QF_E8M0_RNE_LEGACY", "QF_E8M0_FLOOR", "QF_E8M0_CEIL",
    "qf_div", "qf_div_codes", "qf_silu", "qf_div_bounded", "qf_scale_fast_ok", "qf_sqrt", "qf_amax",
    "qf_fp8_bits", "qf_fp8_bits_finite", "qf_fp8_prepare", "qf_int_codes", "qf_int_prepare",
    "qf_int_codes_bounded",
    "qf_e2m1_codes", "qf_e2m1_codes_half_up", "qf_e8m0_bytes", "qf_e8m0_scale", "qf_e8m0_inv_scale", "qf_round_bf16",
    "qf_to_bf16", "qf_round_f16", "qf_pack_nibbles", "qf_e2m1_codes_pow2", "qf_e8m0_pow2_ok",
    "qf_even_odd", "qf_fp8_value", "qf_e2m1_value", "qf_int4_value", "qf_pow2_ceil",
    "qf_unpack_nibbles",
]

from .numerics_codes import (QF_E8M0_CEIL, QF_E8M0_EVEN, QF_E8M0_FLOOR,  # noqa: F401
                             QF_E8M0_RNE_LEGACY, QF_E8M0_ROUNDUP, qf_e2m1_codes,
                             qf_e2m1_codes_half_up, qf_e2m1_codes_pow2, qf_e8m0_bytes, qf_e8m0_pow2_ok,
                             qf_e8m0_inv_scale, qf_e8m0_scale, qf_fp8_bits, qf_fp8_bits_finite,
                             qf_fp8_prepare, qf_int_codes, qf_int_codes_bounded, qf_int_prepare,
                             qf_pack_nibbles)
from .numerics_codes import (qf_e2m1_value, qf_even_odd, qf_fp8_value,  # noqa: F401
                             qf_int4_value, qf_pow2_ceil, qf_unpack_nibbles)
from .numerics_trace import _amd_target, _fma_is_exact, _interpreting, _nv_target, _rank  # noqa: F401


# ---------------------------------------------------------------- arithmetic
@triton.jit
def qf_div(a, b):
    """a / b, one correctly rounded fp32 division (`div.rn.f32`, not `/`'s `div.full.f32`)."""
    return tl.math.div_rn(a, b)


@triton.jit
def qf_div_codes(a, b):
    """a / b for a quotient that only feeds a code conversion (fp8, int, E2M1), with b the
    same for many lanes (a per-tensor, per-row or per-group scale). Correctly rounded, like
    qf_div, where it matters, without a `div.rn.f32` per element (on an H200 that halves
    the speed of a per-token fp8 kernel):

        y = RN(1 / b);  q0 = RN(a * y);  r = fma(q0, -b, a) (exact);  q = RN(q0 + r * y)

    Markstein's theorem: y within half an ulp of 1/b and q0 within one ulp of a/b give
    q = RN(a/b), barring underflow and overflow. Guards: a program whose b are not all in
    [2^-64, 2^126] (qf_scale_fast_ok) takes `div.rn` instead (so y is normal, and an r that underflows, which
    needs |a| < 2^-100, belongs to a quotient below 2^-36: every code format rounds it to
    a signed zero, and q keeps q0's sign); lanes where q is NaN (a = +-inf or NaN, or q0
    overflowed) or q0 is zero keep q0 (= a/b there, the sign of zero included; an
    overflow in q0 alone is saturated or overflowed the same way by every format). An
    interpreter without a one-rounding fma (triton 3.6) divides instead. Tested against
    numpy's division (tests/backends/triton/test_triton_numerics.py).
    """
    if qf_scale_fast_ok(b, True) == 0:
        q = tl.math.div_rn(a, b)
    else:
        y = tl.math.div_rn(1.0, b)
        nb = 0.0 - b
        q0 = a * y
        q1 = tl.fma(tl.fma(q0, nb, a), y, q0)
        q = tl.where((q1 != q1) | (q0 == 0.0), q0, q1)
    return q


@triton.jit
def qf_scale_fast_ok(s, NEED_FMA: tl.constexpr):
    """1 (a program-wide scalar) when every |s| lies in [2^-64, 2^126], else 0: no zero,
    subnormal, huge, inf or NaN scale, so 1/s is a normal number and Markstein's step
    cannot underflow. With NEED_FMA, also 0 in an interpreter whose fma rounds twice.
    The generated ``round`` takes its fast path (qf_div_bounded, qf_*_finite, no zero
    select) under this condition and the general formulas otherwise; both give the same
    bits where the condition holds."""
    a = tl.abs(s)
    ok = ((a >= 5.421010862427522e-20) & (a <= 8.507059173023462e37)).to(tl.int32)
    if _rank(ok) > 0:
        ok = tl.min(ok, axis=None)
    if NEED_FMA and not _fma_is_exact(s):
        ok = ok * 0
    return ok


@triton.jit
def qf_div_bounded(a, b):
    """RN(a / b) where b is a scale of these very values (b = RN(amax / D) with every
    |a| <= amax, as ``round(x, scale(x))``) and qf_scale_fast_ok(b, True) holds: then a is
    finite (amax is, since b is) and |a / b| <= D (1 + 2^-24), so Markstein's step

        y = RN(1 / b);  q0 = RN(a * y);  u = fma(q0, b, -a) (= -r, exact);  q = fma(u, -y, q0)

    is never NaN and needs none of qf_div_codes' lane fixes. Written with u = -r (not
    r = fma(q0, -b, a), q = fma(r, y, q0), whose sum +0 + -0 turns a -0 quotient into +0),
    a zero quotient keeps q0's sign: a = -0 gives u = +0 and q = -0 + -0. Both negations
    are operand modifiers of the two FFMAs on the GPU."""
    y = tl.math.div_rn(1.0, b)
    q0 = a * y
    u = tl.fma(q0, b, a * -1.0)
    return tl.fma(u, y * -1.0, q0)


@triton.jit
def qf_silu(x):
    """silu(x) = x / (1 + exp(-x)) to a few ulp (docs/semantics.md), in sigmoid's stable
    form: t = exp(-|x|) in [0, 1], d = 1 + t in [1, 2], silu = (x < 0 ? x * t : x) / d.
    With d bounded, NVIDIA needs no range scaling: `ex2.approx.ftz` and `rcp.approx.ftz`
    (<= 2 ulp each; an exp below 2^-126 flushes to 0, so |silu(x)| < 2^-126, i.e. x below
    about -87, gives -0 there); AMD the same with v_exp_f32 and v_rcp_f32 (1 ulp each);
    the interpreter tl.exp and an approximate division.
    x = +-inf gives +inf / NaN, as the formula; NaN stays NaN."""
    if _nv_target() or _amd_target():
        # AMD: v_exp_f32 and v_rcp_f32, as AITER's silu (its correctly rounded fdiv and
        # denormal-safe exp cost about 20 instructions per element)
        nv: tl.constexpr = _nv_target()
        t = tl.inline_asm_elementwise("ex2.approx.ftz.f32 $0, $1;" if nv else "v_exp_f32 $0, $1",
                                      "=r,r" if nv else "=v,v",
                                      [tl.abs(x) * -1.4426950408889634], dtype=tl.float32,
                                      is_pure=True, pack=1)
        r = tl.inline_asm_elementwise("rcp.approx.ftz.f32 $0, $1;" if nv else "v_rcp_f32 $0, $1",
                                      "=r,r" if nv else "=v,v", [1.0 + t],
                                      dtype=tl.float32, is_pure=True, pack=1)
        return tl.where(x < 0.0, x * t, x) * r
    else:
        t = tl.exp(0.0 - tl.abs(x))
        return tl.fdiv(tl.where(x < 0.0, x * t, x), 1.0 + t)


@triton.jit
def qf_sqrt(x):
    """sqrt(x), correctly rounded fp32 (`sqrt.rn.f32`), not the approximate `tl.sqrt`."""
    return tl.math.sqrt_rn(x)


@triton.jit
def _qf_max_nan(a, b):
    return tl.maximum(a, b, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def qf_amax(v, axis):
    """amax = max_i |v_i| along `axis`; NaN if any v_i is NaN (GPU max ignores NaN).
    GPUs: one reduction with maximum(propagate_nan=ALL) (sm_90 max.NaN.f32). Interpreter:
    tl.max (numpy fast path; a custom combine runs a Python loop) and a NaN flag OR-ed in
    as bits (any pattern | 0x7FC00000 is a NaN)."""
    if _interpreting(v):
        m = tl.max(tl.abs(v), axis).to(tl.uint32, bitcast=True)
        nan = tl.max((v != v).to(tl.uint32), axis)
        return (m | (nan * 0x7FC00000)).to(tl.float32, bitcast=True)
    else:
        return tl.reduce(tl.abs(v), axis, _qf_max_nan)


# ---------------------------------------------------------------- bf16 / f16
@triton.jit
def qf_round_bf16(v):
    """fp32 v -> fp32 on the bf16 grid, RNE: (bits + 0x7FFF + (bits>>16 & 1)) & 0xFFFF0000
    (overflow carries to inf); NaN -> quiet NaN (bits | 0x400000, low half cleared).
    Its `.to(tl.bfloat16)` is exact on GPUs, and in the interpreter (whose cast truncates)
    except for bf16 subnormals (|v| < 2^-126), which the interpreter flushes: use qf_to_bf16."""
    bits = v.to(tl.uint32, bitcast=True)
    r = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    r = tl.where((bits & 0x7FFFFFFF) > 0x7F800000, (bits | 0x400000) & 0xFFFF0000, r)
    return r.to(tl.float32, bitcast=True)


@triton.jit
def qf_to_bf16(v):
    """fp32 v -> bfloat16, RNE (NaN stays NaN). GPUs: the native convert; interpreter: the
    high half of qf_round_bf16's bits, bitcast (its own cast truncates and flushes)."""
    if _interpreting(v):
        r = qf_round_bf16(v).to(tl.uint32, bitcast=True) >> 16
        return r.to(tl.uint16).to(tl.bfloat16, bitcast=True)
    else:
        return v.to(tl.bfloat16)


@triton.jit
def qf_round_f16(v):
    """fp32 v -> fp32 on the f16 grid, RNE with subnormals, overflow -> inf:
    f32(f16(v)). The fp32 -> f16 cast is RNE on every target and in the interpreter
    (numpy), so this is a plain round trip; its `.to(tl.float16)` is exact."""
    return v.to(tl.float16).to(tl.float32)
