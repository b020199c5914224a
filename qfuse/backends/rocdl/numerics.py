"""The exact numerics of docs/semantics.md in ``arith``: one function per rule.

Each function writes ops through an :class:`~.emit.Emitter` and returns the SSA name of
its result. fp32 arithmetic is one ``arith`` op per step without fast-math flags, so it
lowers to correctly rounded instructions (``arith.divf``: ``divss`` on the CPU,
``div.rn.f32`` on NVIDIA, the ``v_div_scale / v_div_fmas / v_div_fixup`` sequence on
AMD; ``math.sqrt``: ``llvm.sqrt``, correctly rounded on all three) and nothing is
contracted into an fma. Code conversions follow the reference (``backends/reference/
numerics.py``) bit for bit, in integer arithmetic on the fp32 bit pattern; where a chip
has a native convert (fp8 on gfx942 / gfx950) only the magnitude comes from it, on a
value clamped into the format's range, and NaN, overflow and sign are set here (the
Triton backend's rule, ``backends/triton/numerics_codes.py``), so both give the same
bytes.
"""
from __future__ import annotations

from ...dialect.options import E8M0Mode, QuantTarget, RoundMode
from .emit import Emitter, f32_bits

__all__ = ["E8M0_MODES", "abs_f32", "bits_of", "f32_of", "round_bf16_bits", "round_f16_bits", "fp8_code",
           "int_code", "e2m1_code", "e8m0_byte", "e8m0_value", "magnitude_code",
           "pow2_ceil", "decode_code"]

_ABS = 0x7FFFFFFF
_INF = 0x7F800000


def bits_of(e: Emitter, v: str) -> str:
    return e.bitcast(v, "f32", "i32")


def f32_of(e: Emitter, b: str) -> str:
    return e.bitcast(b, "i32", "f32")


def abs_f32(e: Emitter, v: str) -> str:
    """``|v|`` by clearing the sign bit (exact; a NaN stays NaN)."""
    return f32_of(e, e.bin("andi", bits_of(e, v), e.i32(_ABS), "i32"))


def _umin(e: Emitter, a: str, b: str) -> str:
    return e.bin("minui", a, b, "i32")


def _clamp_i(e: Emitter, v: str, lo: int, hi: int) -> str:
    return e.bin("minsi", e.bin("maxsi", v, e.i32(lo), "i32"), e.i32(hi), "i32")


def _pick(e: Emitter, cond: str, a: str, b: str) -> str:
    return e.select(cond, a, b, "i32")


# ------------------------------------------------------------------ bf16 / f16
def round_bf16_bits(e: Emitter, v: str) -> str:
    """fp32 ``v`` -> the i16 bits of bf16 by RNE: ``(bits + 0x7FFF + (bits >> 16 & 1)) >> 16``
    (a carry rounds into the exponent, overflow to inf); any NaN -> 0x7FC0, the
    reference's canonical NaN. (LLVM's ``fptrunc`` to bf16 is a libcall on the CPU.)"""
    b = bits_of(e, v)
    lsb = e.bin("andi", e.bin("shrui", b, e.i32(16), "i32"), e.i32(1), "i32")
    r = e.bin("shrui", e.bin("addi", e.bin("addi", b, e.i32(0x7FFF), "i32"), lsb, "i32"),
              e.i32(16), "i32")
    nan = e.cmpf("uno", v, v)
    return e.cast("trunci", _pick(e, nan, e.i32(0x7FC0), r), "i32", "i16")


def round_f16_bits(e: Emitter, v: str) -> str:
    """fp32 ``v`` -> the i16 bits of f16: ``arith.truncf`` (IEEE RNE with subnormals,
    overflow to inf, on every target), any NaN -> 0x7E00 (canonical, as the reference)."""
    h = e.bitcast(e.cast("truncf", v, "f32", "f16"), "f16", "i16")
    return e.select(e.cmpf("uno", v, v), e.const(0x7E00, "i16"), h, "i16")


# ------------------------------------------------------------------ small floats
def magnitude_code(e: Emitter, a: str, bias: int, mbits: int, ties_even: bool = True) -> str:
    """The code of a finite magnitude ``a`` (fp32 bits, sign clear) in a small float format
    with subnormals and unbounded exponent (the reference's ``_magnitude_code``):
    ``et = max(E, 1) - 127 + bias``; ``q = round(sig / 2^(23 - mbits + max(0, 1 - et)))``,
    a tie to the even ``q`` (``ties_even``) or up, away from zero (E2M1's half_up);
    ``code = (max(et, 1) - 1) * 2^mbits + q``. The shift is clamped to 30: ``sig < 2^24``,
    so any larger shift also gives 0 with no rounding up."""
    ex = e.bin("shrui", a, e.i32(23), "i32")
    m = e.bin("andi", a, e.i32(0x7FFFFF), "i32")
    normal = e.cmpi("ugt", ex, e.i32(0))
    sig = _pick(e, normal, e.bin("ori", m, e.i32(0x800000), "i32"), m)
    et = e.bin("addi", e.bin("maxsi", ex, e.i32(1), "i32"), e.i32(bias - 127), "i32")
    under = e.bin("maxsi", e.bin("subi", e.i32(1), et, "i32"), e.i32(0), "i32")
    shift = _clamp_i(e, e.bin("addi", under, e.i32(23 - mbits), "i32"), 1, 30)
    q = e.bin("shrui", sig, shift, "i32")
    one = e.i32(1)
    rem = e.bin("andi", sig, e.bin("subi", e.bin("shli", one, shift, "i32"), one, "i32"), "i32")
    half = e.bin("shli", one, e.bin("subi", shift, one, "i32"), "i32")
    odd = e.cmpi("ne", e.bin("andi", q, one, "i32"), e.i32(0))
    tie_up = e.bin("andi", e.cmpi("eq", rem, half), odd, "i1") if ties_even else \
        e.cmpi("eq", rem, half)
    up = e.bin("ori", e.cmpi("ugt", rem, half), tie_up, "i1")
    q = e.bin("addi", q, e.cast("extui", up, "i1", "i32"), "i32")
    base = e.bin("shli", e.bin("subi", e.bin("maxsi", et, one, "i32"), one, "i32"),
                 e.i32(mbits), "i32")
    return e.bin("addi", base, q, "i32")


# ------------------------------------------------------------------ fp8
_FP8 = {  # target: (max code, NaN code, format max, largest |v| bits rounding to <= max)
    QuantTarget.FP8_E4M3FN: (0x7E, 0x7F, 448.0, f32_bits(464.0)),
    QuantTarget.FP8_E4M3FNUZ: (0x7F, 0x80, 240.0, f32_bits(248.0) - 1),
}
_FP8_BIAS = {QuantTarget.FP8_E4M3FN: 7, QuantTarget.FP8_E4M3FNUZ: 8}
_FP8_MLIR = {QuantTarget.FP8_E4M3FN: "f8E4M3FN", QuantTarget.FP8_E4M3FNUZ: "f8E4M3FNUZ"}


def fp8_code(e: Emitter, v: str, target: QuantTarget, dtype_max: float, sat: bool,
             native: bool) -> str:
    """fp32 ``v`` -> the fp8 byte (i32 0..255) of ``round`` (docs/semantics.md, fp8).

    ``sat``: ``|v| := min(|v|, dtype_max)`` on the bits (inf too; NaN is kept aside);
    otherwise ``|v|`` above the largest value that rounds to the format max overflows.
    Magnitude: the reference's RNE code with subnormals (emulated), or the chip's convert
    of ``sign | min(|v|, format max)`` (``native``: ``arith.truncf``, which
    ``convert-arith-to-amdgpu`` turns into ``v_cvt_pk_fp8_f32``), masked to 7 bits.
    NaN and overflow give 0x7F (e4m3fn, whatever the sign) / 0x80 (e4m3fnuz); e4m3fn keeps
    the sign of zero, e4m3fnuz has no -0."""
    max_code, nan_code, fmt_max, ovf_bits = _FP8[target]
    b = bits_of(e, v)
    sign = e.bin("shrui", b, e.i32(31), "i32")
    a = e.bin("andi", b, e.i32(_ABS), "i32")
    is_nan = e.cmpi("ugt", a, e.i32(_INF))
    finite_or_inf = e.cmpi("ule", a, e.i32(_INF))
    if sat:
        a = _umin(e, a, e.i32(f32_bits(dtype_max)))
        ovf = None
    else:
        ovf = e.bin("andi", e.cmpi("ugt", a, e.i32(ovf_bits)), finite_or_inf, "i1")
    if native:
        clamped = e.bin("ori", _umin(e, a, e.i32(f32_bits(fmt_max))),
                        e.bin("shli", sign, e.i32(31), "i32"), "i32")
        hw = e.cast("truncf", f32_of(e, clamped), "f32", _FP8_MLIR[target])
        byte = e.bitcast(hw, _FP8_MLIR[target], "i8")
        mag = e.bin("andi", e.cast("extui", byte, "i8", "i32"), e.i32(0x7F), "i32")
    else:
        mag = magnitude_code(e, _umin(e, a, e.i32(_INF - 1)), _FP8_BIAS[target], 3)
        big = e.bin("andi", e.cmpi("ugt", mag, e.i32(max_code)), finite_or_inf, "i1")
        ovf = big if ovf is None else e.bin("ori", ovf, big, "i1")
    signed = e.bin("ori", mag, e.bin("shli", sign, e.i32(7), "i32"), "i32")
    if target is QuantTarget.FP8_E4M3FNUZ:
        code = _pick(e, e.cmpi("eq", mag, e.i32(0)), e.i32(0), signed)
        bad = is_nan if ovf is None else e.bin("ori", is_nan, ovf, "i1")
        return _pick(e, bad, e.i32(nan_code), code)
    if ovf is not None:
        signed = e.bin("ori", _pick(e, ovf, e.i32(nan_code), mag),
                       e.bin("shli", sign, e.i32(7), "i32"), "i32")
    return _pick(e, is_nan, e.i32(nan_code), signed)


# ------------------------------------------------------------------ integers
def int_code(e: Emitter, v: str, mode: RoundMode, lo: int, hi: int, math=None) -> str:
    """fp32 ``v`` -> an integer code (i32): ``trunc`` toward zero or ``rne`` to nearest even
    (``math.trunc`` / ``math.roundeven``, exact; ``math(name, v)`` writes them where the
    target needs another spelling), clamped to ``[lo, hi]`` in fp32 (the bounds are exact;
    +-inf clamp too), NaN -> 0."""
    name = "trunc" if mode is RoundMode.TRUNC else "roundeven"
    r = math(name, v) if math else e.op(f"math.{name} {v} : f32")
    c = e.bin("minimumf", e.bin("maximumf", r, e.f32(lo), "f32"), e.f32(hi), "f32")
    c = e.select(e.cmpf("uno", v, v), e.f32(0.0), c, "f32")
    return e.cast("fptosi", c, "f32", "i32")


# ------------------------------------------------------------------ E2M1
def e2m1_code(e: Emitter, v: str, native: bool = False,
              mode: RoundMode = RoundMode.RNE) -> str:
    """fp32 ``v`` -> E2M1 code (i32 0..15): the nearest of {0, .5, 1, 1.5, 2, 3, 4, 6} (bias
    1, one mantissa bit), a tie to the even code (``rne``: 0.25 -> 0, 2.5 -> 2, 5 -> 4) or
    away from zero (``half_up``: 0.25 -> 0.5, 2.5 -> 3, 5 -> 6), saturating at code 7 (inf
    too); bit 3 is v's sign; NaN -> 0x7 (the reference's ``encode_e2m1``).

    ``native`` (gfx950, rne only): the magnitude is the chip's scaled convert
    (``arith.scaling_truncf`` -> ``v_cvt_scalef32_pk_fp4_f32``) of ``min(|v|, 6)`` with the
    scale 1.0, so it only rounds; NaN and sign are set here as in the emulation. The chip
    rounds ties to even, so ``half_up`` always takes the integer sequence."""
    b = bits_of(e, v)
    a = e.bin("andi", b, e.i32(_ABS), "i32")
    if native and mode is RoundMode.RNE:
        clamped = f32_of(e, _umin(e, a, e.i32(f32_bits(6.0))))
        one = e.op("arith.constant 1.000000e+00 : f8E8M0FNU")
        f4 = e.op(f"arith.scaling_truncf {clamped}, {one} : f32, f8E8M0FNU to f4E2M1FN")
        nib = e.cast("extui", e.bitcast(f4, "f4E2M1FN", "i4"), "i4", "i32")
        mag = e.bin("andi", nib, e.i32(7), "i32")
    else:
        finite = e.cmpi("ult", a, e.i32(_INF))
        mag = magnitude_code(e, _umin(e, a, e.i32(_INF - 1)), 1, 1,
                             ties_even=mode is RoundMode.RNE)
        mag = _pick(e, finite, e.bin("minui", mag, e.i32(7), "i32"), e.i32(7))
    sign3 = e.bin("shli", e.bin("shrui", b, e.i32(31), "i32"), e.i32(3), "i32")
    is_nan = e.cmpi("ugt", a, e.i32(_INF))
    return _pick(e, is_nan, mag, e.bin("ori", mag, sign3, "i32"))


# ------------------------------------------------------------------ E8M0
#: the E8M0 modes :func:`e8m0_byte` writes (a mode added to the catalog is refused until
#: it is written here)
E8M0_MODES = (E8M0Mode.FLOOR, E8M0Mode.CEIL, E8M0Mode.EVEN, E8M0Mode.ROUNDUP,
              E8M0Mode.RNE_LEGACY)


def _floor_log2(e: Emitter, a: str) -> str:
    """``floor(log2 a)`` of a finite positive fp32 given by its bits (subnormals: the
    mantissa converted to fp32 exactly gives its own exponent)."""
    ex = e.bin("shrui", a, e.i32(23), "i32")
    m = e.bin("andi", a, e.i32(0x7FFFFF), "i32")
    mf = e.cast("uitofp", m, "i32", "f32")
    m_log2 = e.bin("subi", e.bin("shrui", bits_of(e, mf), e.i32(23), "i32"), e.i32(127 + 149),
                   "i32")
    return _pick(e, e.cmpi("ugt", ex, e.i32(0)), e.bin("subi", ex, e.i32(127), "i32"), m_log2)


def _clampb(e: Emitter, ex: str) -> str:
    return e.bin("addi", _clamp_i(e, ex, -127, 127), e.i32(127), "i32")


def e8m0_byte(e: Emitter, amax: str, mode: E8M0Mode, target: QuantTarget) -> str:
    """The E8M0 byte (i32 0..255) of a block whose amax is ``amax`` (fp32 >= 0 or NaN),
    each mode as the reference's ``e8m0_byte`` (``max_pos, emax = target.e8m0``):

    * floor / ceil: ``clamp(floor|ceil(log2 a) - emax, -127, 127) + 127``; 0 -> 0, inf -> 254;
    * even: ``R = (bits(a) + 0x200000) & 0xFF800000``, ``clampb(expfield(R) - 127 - emax)``;
      R = 0 -> 0, inf -> 254;
    * roundup: ``q = a / max_pos``; ``expfield(q) + (mantissa(q) != 0 and expfield(q) < 255)``;
    * rne_legacy: ``v = a * 2^-emax``; ``expfield(v) + (bit 22 and (bits 21..0 or e > 0))``;
    * NaN -> 255 in every mode."""
    max_pos, emax = target.e8m0
    bits = e.bin("andi", bits_of(e, amax), e.i32(_ABS), "i32")
    is_nan = e.cmpi("ugt", bits, e.i32(_INF))
    if mode in (E8M0Mode.FLOOR, E8M0Mode.CEIL):
        is_inf = e.cmpi("eq", bits, e.i32(_INF))
        zero = e.cmpi("eq", bits, e.i32(0))
        special = e.bin("ori", e.bin("ori", is_inf, is_nan, "i1"), zero, "i1")
        safe = _pick(e, special, e.i32(1), bits)
        ex = _floor_log2(e, safe)
        if mode is E8M0Mode.CEIL:
            m = e.bin("andi", safe, e.i32(0x7FFFFF), "i32")
            sub = e.cmpi("eq", e.bin("shrui", safe, e.i32(23), "i32"), e.i32(0))
            m_pow2 = e.cmpi("eq", e.bin("andi", m, e.bin("subi", m, e.i32(1), "i32"), "i32"),
                            e.i32(0))
            pow2 = e.select(sub, m_pow2, e.cmpi("eq", m, e.i32(0)), "i1")
            not_pow2 = e.bin("xori", pow2, e.const(1, "i1"), "i1")
            ex = e.bin("addi", ex, e.cast("extui", not_pow2, "i1", "i32"), "i32")
        b = _clampb(e, e.bin("subi", ex, e.i32(emax), "i32"))
        b = _pick(e, zero, e.i32(0), b)
        b = _pick(e, is_inf, e.i32(254), b)
    elif mode is E8M0Mode.EVEN:
        r = e.bin("andi", e.bin("addi", bits, e.i32(0x200000), "i32"), e.i32(0xFF800000), "i32")
        er = e.bin("shrui", r, e.i32(23), "i32")
        b = _clampb(e, e.bin("subi", er, e.i32(127 + emax), "i32"))
        b = _pick(e, e.cmpi("eq", er, e.i32(0)), e.i32(0), b)
        b = _pick(e, e.cmpi("eq", er, e.i32(255)), e.i32(254), b)
    elif mode is E8M0Mode.ROUNDUP:
        q = e.bin("divf", amax, e.f32(max_pos), "f32")
        qb = e.bin("andi", bits_of(e, q), e.i32(_ABS), "i32")
        ex = e.bin("shrui", qb, e.i32(23), "i32")
        m = e.bin("andi", qb, e.i32(0x7FFFFF), "i32")
        up = e.bin("andi", e.cmpi("ne", m, e.i32(0)), e.cmpi("ult", ex, e.i32(255)), "i1")
        b = e.bin("addi", ex, e.cast("extui", up, "i1", "i32"), "i32")
        b = _pick(e, e.cmpi("eq", ex, e.i32(255)), e.i32(255), b)
    elif mode is E8M0Mode.RNE_LEGACY:
        v = e.bin("mulf", amax, e.f32(2.0 ** -emax), "f32")
        vb = e.bin("andi", bits_of(e, v), e.i32(_ABS), "i32")
        ex = e.bin("shrui", vb, e.i32(23), "i32")
        g = e.cmpi("ne", e.bin("andi", vb, e.i32(0x400000), "i32"), e.i32(0))
        rs = e.cmpi("ne", e.bin("andi", vb, e.i32(0x3FFFFF), "i32"), e.i32(0))
        up = e.bin("andi", g, e.bin("ori", rs, e.cmpi("ugt", ex, e.i32(0)), "i1"), "i1")
        b = e.bin("addi", ex, e.cast("extui", up, "i1", "i32"), "i32")
        b = _pick(e, e.cmpi("eq", ex, e.i32(255)), e.i32(255), b)
    else:
        raise AssertionError(mode)
    return _pick(e, is_nan, e.i32(255), b)


def decode_code(e: Emitter, c: str, target: QuantTarget) -> str:
    """A code (i32 as loaded: fp8 / E2M1 bytes unsigned, i8 / int4 sign-extended) -> its
    fp32 value, exact (the reference's ``decode_codes``): fp8 ``2^(e - bias) (1 + m/8)``,
    subnormals ``m 2^(1 - bias - 3)``, e4m3fn ``0x7F | sign`` NaN and ``0x80`` -0,
    e4m3fnuz ``0x80`` the only NaN; E2M1 of the low nibble (code 8 is -0); i8 the integer;
    int4 the two's-complement low nibble ``((v & 0xF) ^ 8) - 8``."""
    if target.is_int:
        if target is QuantTarget.INT4:
            c = e.bin("subi", e.bin("xori", e.bin("andi", c, e.i32(0xF), "i32"), e.i32(8),
                                    "i32"), e.i32(8), "i32")
        return e.cast("sitofp", c, "i32", "f32")
    fp8 = target.is_fp8
    b = e.bin("andi", c, e.i32(0xFF if fp8 else 0xF), "i32")
    mbits, bias = (3, _FP8_BIAS[target]) if fp8 else (1, 1)
    ex = e.bin("andi", e.bin("shrui", b, e.i32(mbits), "i32"), e.i32(0xF if fp8 else 0x3),
               "i32")
    m = e.bin("andi", b, e.i32((1 << mbits) - 1), "i32")
    normal = e.bin("ori", e.bin("shli", e.bin("addi", ex, e.i32(127 - bias), "i32"), e.i32(23),
                                "i32"), e.bin("shli", m, e.i32(23 - mbits), "i32"), "i32")
    sub = bits_of(e, e.bin("mulf", e.cast("uitofp", m, "i32", "f32"),
                           e.f32(2.0 ** (1 - bias - mbits)), "f32"))
    mag = _pick(e, e.cmpi("eq", ex, e.i32(0)), sub, normal)
    sign_bit = 7 if fp8 else 3
    neg = e.bin("shli", e.bin("andi", e.bin("shrui", b, e.i32(sign_bit), "i32"), e.i32(1), "i32"),
                e.i32(31), "i32")
    val = f32_of(e, e.bin("ori", mag, neg, "i32"))
    if not fp8:
        return val
    nan = e.cmpi("eq", e.bin("andi", b, e.i32(0x7F), "i32"), e.i32(0x7F)) \
        if target is QuantTarget.FP8_E4M3FN else e.cmpi("eq", b, e.i32(0x80))
    return e.select(nan, e.f32(float("nan")), val, "f32")


def pow2_ceil(e: Emitter, s: str) -> str:
    """The smallest power of two ``>= s`` (the reference's ``pow2_ceil``): a normal ``s``
    takes its exponent field plus one when a mantissa bit is set (2^128 and above: inf),
    a subnormal the power of two of its top bit, or the next one up; 0, inf and NaN are
    unchanged; the sign is kept."""
    b = bits_of(e, s)
    ex = e.bin("andi", e.bin("shrui", b, e.i32(23), "i32"), e.i32(0xFF), "i32")
    m = e.bin("andi", b, e.i32(0x7FFFFF), "i32")
    sign = e.bin("andi", b, e.i32(0x80000000), "i32")
    has_m = e.cmpi("ne", m, e.i32(0))
    up = e.bin("addi", ex, e.cast("extui", has_m, "i1", "i32"), "i32")
    normal = _pick(e, e.cmpi("sge", up, e.i32(255)), e.i32(_INF),
                   e.bin("shli", up, e.i32(23), "i32"))
    # a subnormal m < 2^23 is exact in fp32: its exponent field is floor(log2 m) + 127
    p = e.bin("subi", e.bin("shrui", bits_of(e, e.cast("uitofp", m, "i32", "f32")), e.i32(23),
                            "i32"), e.i32(127), "i32")
    not_pow2 = e.cmpi("ne", e.bin("andi", m, e.bin("subi", m, e.i32(1), "i32"), "i32"),
                      e.i32(0))
    p = e.bin("addi", p, e.cast("extui", not_pow2, "i1", "i32"), "i32")
    sub = e.bin("shli", e.i32(1), e.bin("minsi", p, e.i32(23), "i32"), "i32")
    bits = _pick(e, e.cmpi("eq", ex, e.i32(0)), sub, normal)
    keep = e.bin("ori", e.cmpi("eq", ex, e.i32(255)), e.cmpf("oeq", s, e.f32(0.0)), "i1")
    return e.select(keep, s, f32_of(e, e.bin("ori", bits, sign, "i32")), "f32")


def e8m0_value(e: Emitter, byte: str) -> str:
    """E8M0 byte (i32) -> fp32 ``2^(b-127)``: ``b = 0`` is the subnormal 2^-127 (bits
    0x00400000), 255 is NaN."""
    bits = _pick(e, e.cmpi("eq", byte, e.i32(0)), e.i32(0x00400000),
                 e.bin("shli", byte, e.i32(23), "i32"))
    bits = _pick(e, e.cmpi("eq", byte, e.i32(255)), e.i32(0x7FC00000), bits)
    return f32_of(e, bits)
