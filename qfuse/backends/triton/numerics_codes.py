"""Triton code conversions (docs/semantics.md, `round`, `scale(mx)`, `pack`), bit exact on
NVIDIA, AMD and in the interpreter: fp8 e4m3fn / e4m3fnuz bytes, int8 / int4 codes, E2M1
codes and nibble packing, E8M0 scale bytes. Re-exported by numerics.py, which generated
kernels import; the rules of numerics.py's docstring apply.
"""
import triton
import triton.language as tl

from .numerics_trace import _amd_target, _f32_bits, _fp8_native, _nv_satfinite, _pow2, _rank

# E8M0 scale modes (the MODE constexpr of qf_e8m0_bytes).
QF_E8M0_ROUNDUP = 0
QF_E8M0_EVEN = 1
QF_E8M0_RNE_LEGACY = 2
QF_E8M0_FLOOR = 3
QF_E8M0_CEIL = 4


# ---------------------------------------------------------------- fp8 e4m3fn / e4m3fnuz
@triton.jit
def _qf_fp8_emulated(a, IS_FNUZ: tl.constexpr):
    """Magnitude code of a (|v| bits, NaN-free part used) by RNE to e4m3 with subnormals.

    normal (|v| >= 2^MINE): r = (a + 0x7FFFF + (a>>20 & 1)) & 0xFFF00000,
        code = (r >> 20) - ((127 - BIAS) << 3)  (carry into the exponent kept);
    subnormal: code = bits(|v| + 2^(MINE-3+23)) - bits(2^(MINE-3+23))
        (the fp32 add rounds |v| to a multiple of the quantum 2^(MINE-3), RNE).
    e4m3fn: BIAS 7, MINE -6; e4m3fnuz: BIAS 8, MINE -7. Codes > max mean overflow.
    """
    BIAS: tl.constexpr = 8 if IS_FNUZ else 7
    MAGIC: tl.constexpr = 8192.0 if IS_FNUZ else 16384.0
    MAGIC_BITS: tl.constexpr = _f32_bits(MAGIC)
    MIN_NORMAL_BITS: tl.constexpr = (120 if IS_FNUZ else 121) << 23  # 2^-7 / 2^-6
    r = (a + 0x7FFFF + ((a >> 20) & 1)) & 0xFFF00000
    norm = (r >> 20) - ((127 - BIAS) << 3)
    sub = (a.to(tl.float32, bitcast=True) + MAGIC).to(tl.uint32, bitcast=True) - MAGIC_BITS
    return tl.where(a < MIN_NORMAL_BITS, sub, norm)


@triton.jit
def qf_fp8_bits(v, IS_FNUZ: tl.constexpr, DTYPE_MAX: tl.constexpr, SAT: tl.constexpr,
                NATIVE: tl.constexpr):
    """fp32 v -> fp8 e4m3fn (IS_FNUZ=False) or e4m3fnuz byte, as uint8.

    SAT: |v| := min(|v|, DTYPE_MAX) (inf too; NaN stays NaN), then RNE with subnormals.
    NaN -> 0x7F (e4m3fn, whatever its sign) or 0x80 (e4m3fnuz). Without SAT, inf and
    |v| > 464 (e4m3fn; 464 ties to 448) or |v| >= 248 (e4m3fnuz) -> 0x7F | sign / 0x80.
    Zero: e4m3fn keeps the sign (-tiny -> 0x80); e4m3fnuz has no -0 (-tiny -> 0x00).
    NATIVE=False: integer emulation (r = RNE by the carry add, see _qf_fp8_emulated).
    NATIVE=True: where the target has a hardware convert (`.to(tl.float8e4nv|float8e4b8)`:
    sm_89+ cvt.rn.satfinite.e4m3x2.f32, gfx94x v_cvt_pk_fp8_f32 (fnuz), gfx950
    v_cvt_scalef32_pk_fp8_f32 (OCP, triton >= 3.7)) it converts the clamped value and keeps
    only the magnitude bits; NaN, overflow and sign are set here. Elsewhere (interpreter,
    whose fp8 cast is wrong; fnuz on NVIDIA, OCP on gfx942, Triton's software casts) it
    falls back to the emulation, so NATIVE=True is always exact.
    """
    tl.static_assert(DTYPE_MAX <= (240.0 if IS_FNUZ else 448.0), "DTYPE_MAX above the format max")
    FMT_MAX_BITS: tl.constexpr = _f32_bits(240.0 if IS_FNUZ else 448.0)
    # largest |v| bits that round to <= the format max: 464 ties to 448 (even), 248 to 256
    OVF_BITS: tl.constexpr = (_f32_bits(248.0) - 1) if IS_FNUZ else _f32_bits(464.0)
    MAX_CODE: tl.constexpr = 0x7F if IS_FNUZ else 0x7E
    bits = v.to(tl.uint32, bitcast=True)
    sign = bits >> 31
    a = bits & 0x7FFFFFFF
    is_nan = a > 0x7F800000
    if SAT:
        a = tl.minimum(a, _f32_bits(DTYPE_MAX))
        ovf = a != a  # all False: DTYPE_MAX <= the format max
    else:
        ovf = (a > OVF_BITS) & (a <= 0x7F800000)
    if NATIVE and SAT and not IS_FNUZ and _nv_satfinite():
        # the convert saturates (inf too) and rounds to nearest even; NaN -> +NaN -> 0x7F
        return _qf_fp8_satfinite(qf_fp8_prepare(v), DTYPE_MAX)
    if NATIVE and SAT and _amd_target() and _fp8_native(IS_FNUZ):
        return _qf_fp8_amd_sat(v, IS_FNUZ, DTYPE_MAX)
    if NATIVE and _fp8_native(IS_FNUZ):
        x = (tl.minimum(a, FMT_MAX_BITS) | (sign << 31)).to(tl.float32, bitcast=True)
        if IS_FNUZ:
            hw = x.to(tl.float8e4b8)
        else:
            hw = x.to(tl.float8e4nv)
        mag = hw.to(tl.uint8, bitcast=True).to(tl.uint32) & 0x7F
    else:
        mag = _qf_fp8_emulated(a, IS_FNUZ)
        ovf = ovf | ((mag > MAX_CODE) & (a <= 0x7F800000))
    if IS_FNUZ:
        code = tl.where(is_nan | ovf, 0x80, tl.where(mag == 0, 0, mag | (sign << 7)))
    else:
        code = tl.where(is_nan, 0x7F, tl.where(ovf, 0x7F, mag) | (sign << 7))
    return code.to(tl.uint8)


@triton.jit
def qf_fp8_bits_finite(v, IS_FNUZ: tl.constexpr, DTYPE_MAX: tl.constexpr, SAT: tl.constexpr,
                       NATIVE: tl.constexpr):
    """qf_fp8_bits for a v without negative NaNs (a quotient of qf_div_bounded, x * RN(1/s)
    with s a scale of x under qf_scale_fast_ok, or anything through qf_fp8_prepare): the
    hardware-convert path drops the NaN sign fix (two instructions per element); every
    other path is qf_fp8_bits."""
    if NATIVE and SAT and not IS_FNUZ and _nv_satfinite():
        return _qf_fp8_satfinite(v, DTYPE_MAX)
    return qf_fp8_bits(v, IS_FNUZ, DTYPE_MAX, SAT, NATIVE)


@triton.jit
def _qf_fp8_satfinite(x, DTYPE_MAX: tl.constexpr):
    """x (no negative NaN) clamped to +-DTYPE_MAX (below the format max), then NVIDIA's
    `cvt.rn.satfinite.e4m3x2.f32` (RNE, inf -> +-448, NaN -> 0x7F), as the byte."""
    if DTYPE_MAX < 448.0:
        x = tl.where(x > DTYPE_MAX, DTYPE_MAX, tl.where(x < 0.0 - DTYPE_MAX, 0.0 - DTYPE_MAX, x))
    return x.to(tl.float8e4nv).to(tl.uint8, bitcast=True)


@triton.jit
def _qf_fp8_amd_sat(v, IS_FNUZ: tl.constexpr, DTYPE_MAX: tl.constexpr):
    """qf_fp8_bits(v, SAT=True) on AMD's hardware converts (gfx94x v_cvt_pk_fp8_f32 to
    e4m3fnuz, gfx950 v_cvt_scalef32_pk_fp8_f32 to e4m3fn), as the byte:

        x = NaN ? (fnuz: v; e4m3fn: |v|) : clamp(v, -DTYPE_MAX, DTYPE_MAX);  byte = cvt(x)

    The convert's own result is the code (no byte fix-ups): it rounds to nearest even
    with subnormals (Triton's exhaustive downcast tests of every in-range fp32 on CDNA3 /
    CDNA4), and HIP's headers define the rest, their device path being this convert and
    their host path the reference of the same function (amd_hip_fp8.h: a NaN gives
    0x80 and a zero or a value rounding to zero 0x00 on fnuz; amd_hip_ocp_host.hpp: a NaN
    gives sign | 0x7F, hence |v|, and a zero keeps its sign on e4m3fn). Only finite
    values within the format max, zeros and NaN reach it. A CPU model of this sequence is
    checked against the reference encoder on every edge pattern
    (tests/backends/triton/test_fp8_amd.py); not run on an AMD GPU here."""
    c = tl.clamp(v, 0.0 - DTYPE_MAX, DTYPE_MAX)
    if IS_FNUZ:
        hw = tl.where(v != v, v, c).to(tl.float8e4b8)
    else:
        hw = tl.where(v != v, tl.abs(v), c).to(tl.float8e4nv)
    return hw.to(tl.uint8, bitcast=True)


@triton.jit
def qf_fp8_prepare(v):
    """NaN lanes made positive (every fp8 format has one NaN code, whatever the sign), so
    that qf_fp8_bits_finite(qf_fp8_prepare(v)) == qf_fp8_bits(v)."""
    return tl.where(v != v, tl.abs(v), v)


# ---------------------------------------------------------------- integer / fp4 codes
@triton.jit
def qf_int_codes(v, RNE: tl.constexpr, LO: tl.constexpr, HI: tl.constexpr):
    """fp32 v -> int8 code: NaN -> 0; c = min(max(v, LO), HI) (LO, HI integers, so
    clamping before rounding is the same as after); RNE: c = (c + 1.5*2^23) - 1.5*2^23,
    else truncation toward zero (the int conversion)."""
    return qf_int_codes_bounded(qf_int_prepare(v, LO, HI), RNE)


@triton.jit
def qf_int_prepare(v, LO: tl.constexpr, HI: tl.constexpr):
    """NaN -> 0, then clamped to [LO, HI]: the part of qf_int_codes that a bounded
    quotient (qf_int_codes_bounded) does not need."""
    x = tl.where(v == v, v, 0.0)
    return tl.minimum(tl.maximum(x, LO * 1.0), HI * 1.0)


@triton.jit
def qf_int_codes_bounded(v, RNE: tl.constexpr):
    """qf_int_codes for a v that is not NaN and whose rounding lies in the code range (a
    quotient by a scale of these values whose dtype_max fits the range, under
    qf_scale_fast_ok: |v| <= D (1 + 2^-22) rounds or truncates to at most D, or anything
    through qf_int_prepare): no NaN select and no clamp."""
    x = v
    if RNE:
        x = (x + 12582912.0) - 12582912.0
    # via int32: a direct .to(tl.int8) made the smooth + int8 pipeline 5 % slower on the
    # H200
    return x.to(tl.int32).to(tl.int8)


@triton.jit
def qf_e2m1_codes(v):
    """fp32 v -> E2M1 code (uint8, 0..15): sign bit 3 (from the bits: -0.1 -> 0x8) |
    index of RNE(|v|) on {0, .5, 1, 1.5, 2, 3, 4, 6}, saturating at 6; NaN -> 0x7.

    a = min(bits(|v|), bits(6.0)).
    |v| >= 1: r = (a + 0x1FFFFF + (a>>22 & 1)) & 0xFFC00000, code = (r >> 22) - 252.
    |v| < 1:  code = bits(|v| + 2^22) - bits(2^22)  (fp32 add: RNE to multiples of 0.5).
    """
    bits = v.to(tl.uint32, bitcast=True)
    a = tl.minimum(bits & 0x7FFFFFFF, 0x40C00000)
    r = (a + 0x1FFFFF + ((a >> 22) & 1)) & 0xFFC00000
    norm = (r >> 22) - 252
    sub = (a.to(tl.float32, bitcast=True) + 4194304.0).to(tl.uint32, bitcast=True) - 0x4A800000
    code = tl.where(a < 0x3F800000, sub, norm) | ((bits >> 31) << 3)
    code = tl.where((bits & 0x7FFFFFFF) > 0x7F800000, 7, code)
    return code.to(tl.uint8)


@triton.jit
def qf_e2m1_codes_half_up(v):
    """qf_e2m1_codes with ties away from zero (AITER's MoE-sort MXFP4 rounding): the
    nearest E2M1 magnitude, a tie to the larger one, saturating at 6; NaN -> 0x7.

    a = min(bits(|v|), bits(6.0)).
    |v| >= 1: r = (a + 0x200000) & 0xFFC00000 (half the quantum of the one mantissa bit,
              carried up), code = (r >> 22) - 252.
    |v| < 1:  code = (a >= bits(0.25)) + (a >= bits(0.75)) (the two midpoints, exactly).
    """
    bits = v.to(tl.uint32, bitcast=True)
    a = tl.minimum(bits & 0x7FFFFFFF, 0x40C00000)
    norm = (((a + 0x200000) & 0xFFC00000) >> 22) - 252
    sub = (a >= 0x3E800000).to(tl.uint32) + (a >= 0x3F400000).to(tl.uint32)
    code = tl.where(a < 0x3F800000, sub, norm) | ((bits >> 31) << 3)
    code = tl.where((bits & 0x7FFFFFFF) > 0x7F800000, 7, code)
    return code.to(tl.uint8)


@triton.jit
def qf_e8m0_pow2_ok(b, amax):
    """1 (a program-wide scalar) when every group's E8M0 byte b lies in [27, 230] (scales
    2^-100 .. 2^103) or its amax is 0 (an all-zero group, or masked padding: b = 0 there),
    the cases qf_e2m1_codes_pow2 handles; else 0 (a NaN or inf group amax gives 255 / 254,
    an all-tiny group a byte below 27)."""
    u = b.to(tl.int32)
    ok = (((u >= 27) & (u <= 230)) | (amax == 0.0)).to(tl.int32)
    if _rank(ok) > 0:
        ok = tl.min(ok, axis=None)
    return ok


@triton.jit
def qf_e2m1_codes_pow2(x, b):
    """qf_e2m1_codes(x * qf_e8m0_inv_scale(b)) as int32, without the multiply, the
    subnormal branch or the NaN select, for finite x and 27 <= b <= 230, or x = +-0 and any
    b (qf_e8m0_pow2_ok; b the E8M0 scale of x's own group, so a NaN or inf x cannot reach
    it). Bytes below 27 are taken as 27 (all-zero groups: code 0 | sign either way). With
    k = b - 127 and everything scaled by 2^k (exact, so RNE commutes with it):

        a = min(|x|, 6 * 2^k)                     (saturation; bits: ((b + 2) << 23) | 0x400000)
        C = 2^22 * max(2^floor(log2 a), 2^k)      (ulp(C) = the E2M1 quantum at a: 2^k / 2,
                                                   2^k, 2 * 2^k below 2, 4, 8 * 2^k)
        t = RN(a + C) = C + r                     (one fma, C * 2^22 exact; r on the E2M1 grid)
        d = bits(t) - bits(2^(22 + k)) = j << 23 | m    (j = log2(C / 2^(22+k)) in 0..2,
                                                   m = r / ulp(C) <= 4)
        code = m + 2 j | sign(x) << 3

    (m = r * 2 codes 0, .5, 1, 1.5, 2 for j = 0; m + 2 codes 2, 3, 4 for j = 1; m + 4 codes
    4, 6 for j = 2.) |x| below 2^k * 2^-26 gives code 0 whether or not the fma flushes a
    subnormal a. Tested against a numpy oracle on every bf16 pattern
    (tests/backends/triton/test_e2m1_pow2.py)."""
    u = tl.maximum(b.to(tl.int32), 27)
    bits = x.to(tl.int32, bitcast=True)
    # a float min of |x| (the abs is an operand modifier on the GPU), not an integer one:
    # an integer abs would be shared with the amax's and kept in registers
    a = tl.minimum(tl.abs(x), ((((u + 2) << 23) | 0x400000)).to(tl.float32, bitcast=True))
    c = tl.maximum(a.to(tl.int32, bitcast=True) & 0x7F800000, u << 23)
    t = tl.fma(c.to(tl.float32, bitcast=True), 4194304.0, a)
    d = t.to(tl.int32, bitcast=True) - ((u + 22) << 23)
    return ((d & 0xFF) + (d >> 22)) | ((bits >> 28) & 8)


@triton.jit
def qf_pack_nibbles(codes, R: tl.constexpr, N: tl.constexpr, MASK: tl.constexpr = True):
    """[R, N] 4-bit codes -> [R, N/2] uint8: byte[j] = nib(q[2j]) | nib(q[2j+1]) << 4,
    nib(q) = q & 0xF (E2M1 code, or the int4 two's-complement nibble). MASK=False: the
    codes are already 0..15 (E2M1), so lo + (hi << 4) needs no mask."""
    tl.static_assert(N % 2 == 0, "qf_pack_nibbles needs an even last dim")
    c = codes.to(tl.int32)
    if MASK:
        lo, hi = tl.split(tl.reshape(c & 0xF, (R, N // 2, 2)))
        b = lo | (hi << 4)
    else:                       # disjoint bits: an add, one LEA / IMAD per byte
        lo, hi = tl.split(tl.reshape(c, (R, N // 2, 2)))
        b = lo + hi * 16
    return b.to(tl.uint8)


@triton.jit
def qf_even_odd(codes, R: tl.constexpr, N: tl.constexpr):
    """[R, N] codes (N % 8 == 0) with each word of 8 permuted to q0 q2 q4 q6 q1 q3 q5 q7
    (pack(order=even_odd): AITER's rearrange_4bit_elements of the linear packing)."""
    tl.static_assert(N % 8 == 0, "qf_even_odd needs a multiple of 8 codes")
    w = tl.permute(tl.reshape(codes, (R, N // 8, 4, 2)), (0, 1, 3, 2))
    return tl.reshape(w, (R, N))


@triton.jit
def qf_unpack_nibbles(b, R: tl.constexpr, NB: tl.constexpr, SIGNED: tl.constexpr,
                      EVEN_ODD: tl.constexpr):
    """[R, NB] bytes -> [R, 2 NB] 4-bit codes (unpack): code 2j the low nibble of byte j,
    2j+1 the high one; EVEN_ODD undoes pack(order=even_odd)'s word permutation (NB % 4 ==
    0); SIGNED: int4 values (c ^ 8) - 8 as int8, else E2M1 codes as uint8."""
    u = b.to(tl.int32) & 0xFF
    c = tl.reshape(tl.join(u & 0xF, u >> 4), (R, NB * 2))
    if EVEN_ODD:
        tl.static_assert(NB % 4 == 0, "qf_unpack_nibbles(EVEN_ODD) needs whole words")
        c = tl.reshape(tl.permute(tl.reshape(c, (R, NB // 4, 2, 4)), (0, 1, 3, 2)), (R, NB * 2))
    if SIGNED:
        return ((c ^ 8) - 8).to(tl.int8)
    return c.to(tl.uint8)


# ---------------------------------------------------------------- decoding (dequant)
@triton.jit
def qf_fp8_value(b, IS_FNUZ: tl.constexpr):
    """fp8 byte -> fp32, exact (integer arithmetic: the interpreter's fp8 casts are wrong).
    e4m3fn: bias 7, 0x7F | sign NaN, 0x80 -0; e4m3fnuz: bias 8, 0x80 the only NaN."""
    u = b.to(tl.int32) & 0xFF
    e = (u >> 3) & 0xF
    m = u & 0x7
    # normal 2^(e - bias) (1 + m/8); subnormal m * 2^(-bias - 2) (exact products)
    if IS_FNUZ:
        normal = ((e + 119) << 23) | (m << 20)
        sub = (m.to(tl.float32) * _pow2(-10)).to(tl.int32, bitcast=True)
        nan = u == 0x80
    else:
        normal = ((e + 120) << 23) | (m << 20)
        sub = (m.to(tl.float32) * _pow2(-9)).to(tl.int32, bitcast=True)
        nan = (u & 0x7F) == 0x7F
    mag = tl.where(e == 0, sub, normal)
    v = (mag | ((u & 0x80) << 24)).to(tl.float32, bitcast=True)
    return tl.where(nan, float("nan"), v)


@triton.jit
def qf_e2m1_value(c):
    """E2M1 code (low nibble) -> fp32: 0, 0.5, 1, 1.5, 2, 3, 4, 6; bit 3 the sign (8: -0)."""
    u = c.to(tl.int32) & 0xF
    e = (u >> 1) & 0x3
    m = u & 0x1
    mag = tl.where(e == 0, m * 0x3F000000, ((e + 126) << 23) | (m << 22))
    return (mag | ((u & 0x8) << 28)).to(tl.float32, bitcast=True)


@triton.jit
def qf_int4_value(c):
    """int4 code -> fp32: the two's-complement value of the low nibble."""
    return (((c.to(tl.int32) & 0xF) ^ 8) - 8).to(tl.float32)


@triton.jit
def qf_pow2_ceil(s):
    """The smallest power of two >= s (fp32 s >= 0, exact, subnormals too); 0, inf and
    NaN unchanged; above 2^127 inf (scale(pow2=true))."""
    bits = s.to(tl.int32, bitcast=True)
    e = (bits >> 23) & 0xFF
    m = bits & 0x7FFFFF
    up = e + (m != 0).to(tl.int32)
    normal = tl.where(up >= 255, 0x7F800000, up << 23)
    # subnormal: m as an fp32 integer; its own ceiling power of two, as bits of 2^-149 * that
    f = m.to(tl.float32).to(tl.int32, bitcast=True)
    p = ((f >> 23) & 0xFF) - 127 + ((f & 0x7FFFFF) != 0).to(tl.int32)
    sub = tl.where(p >= 23, 0x800000, 1 << tl.minimum(tl.maximum(p, 0), 22))
    out = tl.where(e == 0, sub, normal)
    keep = (e == 255) | (m == 0) & (e == 0)
    return tl.where(keep, s, out.to(tl.float32, bitcast=True))


# ---------------------------------------------------------------- E8M0 (MX scales)
@triton.jit
def qf_e8m0_bytes(amax, MODE: tl.constexpr, MAX_POS: tl.constexpr, EMAX: tl.constexpr):
    """amax (fp32, >= 0 or NaN) -> E8M0 byte b (uint8); NaN -> 255 in every mode.

    clampb(e) = clamp(e, -127, 127) + 127, computed as clamp(E - EMAX, 0, 254) with
    E = log2 term + 127 on int32 (inf -> 254).
    0 roundup: q = a / MAX_POS (correctly rounded); b = expfield(q) + (mant(q) != 0 and
        expfield(q) < 255)  (q inf/NaN -> 255).
    1 even: R = (bits(a) + 0x200000) & 0xFF800000; b = clampb(floor(log2 R) - EMAX).
    2 rne_legacy: v = a * 2^-EMAX (fp32 multiply); b = expfield(v) + 1 if bit22 and
        (bit21 or bits20..0 or expfield > 0); expfield 255 (inf/NaN) -> 255.
    3 floor: b = clampb(floor(log2 a) - EMAX); 4 ceil: clampb(ceil(log2 a) - EMAX).
    a = 0 gives 0 (and a subnormal a gives 0 in floor/ceil/even since EMAX >= 1).
    """
    tl.static_assert(EMAX >= 1, "EMAX must be >= 1")
    bits = amax.to(tl.uint32, bitcast=True) & 0x7FFFFFFF
    is_nan = bits > 0x7F800000
    if MODE == 0:
        # div.rn: correctly rounded (numerics.qf_div)
        q = tl.math.div_rn(bits.to(tl.float32, bitcast=True), MAX_POS * 1.0).to(tl.uint32, bitcast=True)
        qe = (q >> 23).to(tl.int32)
        up = ((q & 0x7FFFFF) != 0) & (qe < 255)
        b = qe + up.to(tl.int32)
    elif MODE == 2:
        w = (bits.to(tl.float32, bitcast=True) * _pow2(0 - EMAX)).to(tl.uint32, bitcast=True)
        e = (w >> 23).to(tl.int32)
        g = (w & 0x400000) != 0
        up = g & (((w & 0x3FFFFF) != 0) | (e > 0)) & (e < 255)
        b = e + up.to(tl.int32)
    else:
        f = bits
        if MODE == 1:
            f = (bits + 0x200000) & 0xFF800000
        E = (f >> 23).to(tl.int32)
        if MODE == 4:
            E = E + ((f & 0x7FFFFF) != 0).to(tl.int32)
        E = tl.where((f >> 23) >= 255, 1000, E)  # log2(inf) = inf (NaN is fixed below)
        b = tl.minimum(tl.maximum(E - EMAX, 0), 254)
    b = tl.where(is_nan, 255, b)
    return b.to(tl.uint8)


@triton.jit
def qf_e8m0_scale(b):
    """E8M0 byte -> fp32 2^(b-127): bits b << 23 for 1 <= b <= 254; b = 0 is the
    subnormal 2^-127 (0x00400000); b = 255 is NaN (0x7FC00000)."""
    u = b.to(tl.uint32)
    s = tl.where(u == 0, 0x400000, tl.where(u == 255, 0x7FC00000, u << 23))
    return s.to(tl.float32, bitcast=True)


@triton.jit
def qf_e8m0_inv_scale(b):
    """E8M0 byte -> fp32 2^(127-b), the exact inverse of qf_e8m0_scale: bits (254-b) << 23
    for b <= 253; b = 254 is 2^-127 (0x00400000); b = 255 is NaN. x * it == x / scale
    bit for bit (both are the correctly rounded x * 2^(127-b))."""
    u = b.to(tl.uint32)
    s = tl.where(u == 254, 0x400000, tl.where(u == 255, 0x7FC00000, (254 - tl.minimum(u, 254)) << 23))
    return s.to(tl.float32, bitcast=True)
