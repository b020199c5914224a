"""Bit-exact numeric primitives of qfuse (``docs/semantics.md``), on torch tensors.

Everything here works on any device and never relies on a backend's own conversion
rules where those differ from the contract: fp8, E2M1 and E8M0 encodings are computed
from the fp32 bit pattern with integer arithmetic. (torch's ``.to(float8_*)`` is not
used: on torch >= 2.10 it saturates out-of-range values instead of giving NaN.)

Public functions:

* :func:`round_fp8` - fp32 -> fp8 e4m3fn / e4m3fnuz codes (RNE, subnormals, sat / NaN rules).
* :func:`round_int` - fp32 -> integer codes by ``trunc`` or ``rne``, clamped, NaN -> 0.
* :func:`encode_e2m1` / :func:`decode_e2m1` - E2M1 codes (uint8, bit 3 = sign).
* :func:`e8m0_byte` / :func:`e8m0_to_f32` - E8M0 block-scale bytes, five modes.
* :func:`round_to_float` - fp32 -> bf16 / f16, RNE.
* :func:`quantize` - "then, by target" of ``round``: one call for every quant target.
* :func:`shuffle_index`, :func:`pack_nibbles`, :func:`unpack_nibbles` - AITER's e8m0
  preshuffle index, nibble pack and its inverse.
* :func:`decode_fp8` / :func:`decode_codes` - codes of any target -> fp32 (``dequant``).
* :func:`pow2_ceil` - an fp32 scale rounded up to a power of two (``scale(pow2=true)``).
"""
from __future__ import annotations

import torch

from ...dialect.options import E8M0Mode, FloatDType, PackOrder, QuantTarget, RoundMode

__all__ = ["FP8_FORMATS", "round_fp8", "round_int", "encode_e2m1", "decode_e2m1", "e8m0_byte",
           "e8m0_to_f32", "round_to_float", "quantize", "shuffle_index", "pack_nibbles",
           "f32_bits", "bits_f32", "decode_fp8", "decode_codes", "pow2_ceil", "unpack_nibbles"]

# (exponent bias, mantissa bits, largest finite magnitude code, NaN code)
FP8_FORMATS = {
    QuantTarget.FP8_E4M3FN: (7, 3, 0x7E, 0x7F),     # 448 = 0x7E; 0x7F | sign is NaN; 0x80 is -0
    QuantTarget.FP8_E4M3FNUZ: (8, 3, 0x7F, 0x80),   # 240 = 0x7F; 0x80 is the only NaN; no -0
}
_E2M1 = (1, 1, 0x7)                        # bias 1, 1 mantissa bit, 6.0 = code 7
_E2M1_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


# ---------------------------------------------------------------------------- bits
def f32_bits(v: torch.Tensor) -> torch.Tensor:
    """The IEEE bit pattern of an fp32 tensor, as int64 in [0, 2^32)."""
    return v.to(torch.float32).contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF


def bits_f32(b: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`f32_bits`: int tensor of bit patterns -> fp32 tensor."""
    b = b.to(torch.int64) & 0xFFFFFFFF
    b = torch.where(b >= 2 ** 31, b - 2 ** 32, b)
    return b.to(torch.int32).contiguous().view(torch.float32)


def _shr_round(sig: torch.Tensor, shift: torch.Tensor, ties_even: bool = True) -> torch.Tensor:
    """``sig / 2^shift`` rounded to nearest (int64, shift >= 1), ties to even, or with
    ``ties_even=False`` away from zero (``sig`` is a magnitude: a tie rounds up)."""
    shift = shift.clamp(1, 40)
    q = torch.bitwise_right_shift(sig, shift)
    one = torch.ones_like(sig)
    rem = sig & (torch.bitwise_left_shift(one, shift) - 1)
    half = torch.bitwise_left_shift(one, shift - 1)
    tie_up = ((q & 1) == 1) if ties_even else torch.ones_like(rem, dtype=torch.bool)
    up = (rem > half) | ((rem == half) & tie_up)
    return q + up.to(torch.int64)


def _magnitude_code(v: torch.Tensor, bias: int, mbits: int, ties_even: bool = True) -> torch.Tensor:
    """Nearest code of ``|v|`` in a small float format with subnormals and unbounded
    exponent: ties to even, or away from zero with ``ties_even=False``.

    The code is ``(e << mbits) | mantissa`` as for IEEE, so it is monotone in ``|v|``;
    callers compare it with the largest finite code to detect overflow. ``v`` must be
    finite fp32. Formula: with ``E`` = unbiased fp32 exponent and ``sig`` the 24-bit
    significand, ``et = E + bias``; ``q = RNE(sig / 2^(23 - mbits + max(0, 1 - et)))``;
    ``code = (max(et, 1) - 1) * 2^mbits + q`` (a mantissa carry moves into the exponent).
    """
    a = f32_bits(v) & 0x7FFFFFFF
    e = a >> 23
    m = a & 0x7FFFFF
    sig = torch.where(e > 0, m | 0x800000, m)
    et = torch.where(e > 0, e, torch.ones_like(e)) - 127 + bias
    shift = (23 - mbits) + torch.clamp(1 - et, min=0)
    q = _shr_round(sig, shift, ties_even)
    return (torch.clamp(et, min=1) - 1) * (1 << mbits) + q


def _sign(v: torch.Tensor) -> torch.Tensor:
    return (f32_bits(v) >> 31) & 1


# ---------------------------------------------------------------------------- fp8
def round_fp8(v: torch.Tensor, fmt: str, dtype_max: float, sat: bool = True) -> torch.Tensor:
    """fp32 -> fp8 codes (``torch.float8_e4m3fn`` / ``torch.float8_e4m3fnuz`` tensor).

    * ``sat``: ``v = clamp(v, -dtype_max, dtype_max)`` (``dtype_max`` as fp32; NaN stays NaN).
    * RNE to the format, subnormals kept.
    * Overflow (the RNE result, computed with unbounded exponent, lies above the largest
      finite code: ``|v| > 464`` for e4m3fn, ``|v| >= 248`` for e4m3fnuz) and inf give the
      NaN code ``0x7F | sign`` (e4m3fn) or ``0x80`` (e4m3fnuz); NaN gives ``0x7F`` / ``0x80``
      (the sign of a NaN is not defined by IEEE arithmetic, so it is ignored).
    * A negative value that rounds to zero gives ``0x80`` (-0) in e4m3fn, ``0x00`` in e4m3fnuz.
    """
    bias, mbits, max_code, nan_code = FP8_FORMATS[fmt]
    v = v.to(torch.float32)
    if sat:
        dm = torch.tensor(float(dtype_max), dtype=torch.float32, device=v.device)
        v = torch.where(v > dm, dm, torch.where(v < -dm, -dm, v))
    sign = _sign(v)
    finite = torch.isfinite(v)
    code = _magnitude_code(torch.where(finite, v, torch.zeros_like(v)), bias, mbits)
    bad = ~finite | (code > max_code)
    if fmt == QuantTarget.FP8_E4M3FN:
        out = torch.where(bad, torch.full_like(code, nan_code), code) | (sign << 7)
        out = torch.where(torch.isnan(v), torch.full_like(code, nan_code), out)
    else:
        out = torch.where(code == 0, code, code | (sign << 7))
        out = torch.where(bad, torch.full_like(code, nan_code), out)
    dt = torch.float8_e4m3fn if fmt == QuantTarget.FP8_E4M3FN else torch.float8_e4m3fnuz
    return out.to(torch.uint8).view(dt)


# ---------------------------------------------------------------------------- int
def round_int(v: torch.Tensor, mode: str, lo: int, hi: int) -> torch.Tensor:
    """fp32 -> integer codes in an ``int8`` tensor.

    ``trunc``: toward zero; ``rne``: nearest, ties to even; then ``clamp(., lo, hi)``
    (so +-inf give ``hi``/``lo``); NaN gives 0.
    """
    v = v.to(torch.float32)
    if mode == RoundMode.TRUNC:
        r = torch.trunc(v)
    elif mode == RoundMode.RNE:
        r = torch.round(v)      # torch.round is round-half-to-even
    else:
        raise ValueError(f"unknown integer rounding mode {mode!r}")
    r = torch.where(torch.isnan(r), torch.zeros_like(r), r)
    return r.clamp(lo, hi).to(torch.int8)


# ---------------------------------------------------------------------------- E2M1
def encode_e2m1(v: torch.Tensor, mode: str = RoundMode.RNE) -> torch.Tensor:
    """fp32 -> E2M1 codes (uint8 0..15): nearest of {0, .5, 1, 1.5, 2, 3, 4, 6} to ``|v|``,
    saturating at 6; a tie goes to the even code (``rne``: 0.25 -> 0, 0.75 -> 1, 2.5 -> 2,
    5 -> 4) or to the larger magnitude (``half_up``: 0.25 -> 0.5, 0.75 -> 1, 1.25 -> 1.5,
    2.5 -> 3, 5 -> 6).

    Bit 3 is the sign bit of ``v`` (so -0.0 and -0.1 give 0x8); inf saturates; NaN
    gives ``0x7`` (a NaN's sign is ignored).
    """
    if mode not in (RoundMode.RNE, RoundMode.HALF_UP):
        raise ValueError(f"E2M1 rounds by rne or half_up, not {mode!r}")
    bias, mbits, max_code = _E2M1
    v = v.to(torch.float32)
    sign = _sign(v)
    finite = torch.isfinite(v)
    code = _magnitude_code(torch.where(finite, v, torch.zeros_like(v)), bias, mbits,
                           ties_even=mode == RoundMode.RNE)
    code = torch.where(finite, code.clamp(max=max_code), torch.full_like(code, max_code))
    code = torch.where(torch.isnan(v), code, code | (sign << 3))
    return code.to(torch.uint8)


def decode_e2m1(codes: torch.Tensor) -> torch.Tensor:
    """E2M1 codes (any int dtype, low 4 bits used) -> fp32 values (code 8 is -0.0)."""
    c = codes.to(torch.int64) & 0xF
    table = torch.tensor(_E2M1_VALUES, dtype=torch.float32, device=codes.device)
    mag = table[c & 0x7]
    return torch.where((c & 0x8) != 0, -mag, mag)


def decode_fp8(codes: torch.Tensor, fmt: str) -> torch.Tensor:
    """fp8 bytes -> fp32, exact: e4m3fn ``0x7F | sign`` is NaN, ``0x80`` is -0; e4m3fnuz
    ``0x80`` is the only NaN (bias 8). Subnormals: ``m * 2^(1 - bias - 3)``."""
    bias, mbits, _, _ = FP8_FORMATS[QuantTarget(fmt)]
    b = codes.to(torch.int64) & 0xFF
    e, m, neg = (b >> mbits) & 0xF, b & 0x7, (b & 0x80) != 0
    # normal: bits of 2^(e - bias) * (1 + m/8); subnormal: m * 2^(1 - bias - 3) exactly
    normal = bits_f32(((e - bias + 127) << 23) | (m << 20))
    sub = m.to(torch.float32) * 2.0 ** (1 - bias - mbits)
    mag = torch.where(e == 0, sub, normal)
    val = torch.where(neg, -mag, mag)
    nan = (b & 0x7F) == 0x7F if fmt == QuantTarget.FP8_E4M3FN else b == 0x80
    return torch.where(nan, torch.full_like(val, float("nan")), val)


def decode_codes(q: torch.Tensor, target: str) -> torch.Tensor:
    """Codes of ``target`` (storage per qfuse/dialect/types.py) -> their fp32 values: fp8 by
    :func:`decode_fp8`; i8 the integer; int4 the two's-complement value of the low nibble
    (``((v & 0xF) ^ 8) - 8``); fp4_e2m1 :func:`decode_e2m1` of the low nibble."""
    target = QuantTarget(target)
    if target.is_fp8:
        return decode_fp8(q.view(torch.uint8) if q.element_size() == 1 else q, target)
    if target == QuantTarget.I8:
        return q.to(torch.float32)
    if target == QuantTarget.INT4:
        return (((q.to(torch.int64) & 0xF) ^ 8) - 8).to(torch.float32)
    return decode_e2m1(q)


def pow2_ceil(s: torch.Tensor) -> torch.Tensor:
    """The smallest power of two ``>= s`` for a finite positive fp32 ``s`` (normal or
    subnormal, exact: the exponent field plus one when any mantissa bit is set; a subnormal
    is rounded to the power of two of its top bit, or above); 0, inf and NaN unchanged.
    A value above 2^127 rounds to inf."""
    b = f32_bits(s)
    e, m = (b >> 23) & 0xFF, b & 0x7FFFFF
    sign = b & 0x80000000
    up = torch.where(m != 0, e + 1, e)
    normal = torch.where(up >= 255, torch.full_like(b, 0x7F800000), up << 23)
    # subnormal (e == 0, m != 0): 2^(p - 149) with p = bit length of m - 1, rounded up
    p = torch.floor(torch.log2(m.clamp(min=1).to(torch.float64))).to(torch.int64)
    p = torch.where((m & (m - 1)) != 0, p + 1, p)
    sub = torch.where(p >= 23, torch.full_like(b, 1 << 23), torch.ones_like(b) << p.clamp(0, 22))
    bits = torch.where(e == 0, torch.where(m == 0, b & 0, sub), normal)
    keep = (e == 255) | (s == 0)
    return torch.where(keep, s.to(torch.float32), bits_f32(bits | sign))


# ---------------------------------------------------------------------------- E8M0
def _floor_log2(a_bits: torch.Tensor) -> torch.Tensor:
    """``floor(log2 a)`` of finite positive fp32 ``a`` given by its bits (subnormals too)."""
    e = a_bits >> 23
    m = a_bits & 0x7FFFFF
    # a subnormal mantissa m < 2^23 is exact in fp32; its exponent field is floor(log2 m) + 127
    m_log2 = (f32_bits(m.to(torch.float32)) >> 23) - 127
    return torch.where(e > 0, e - 127, m_log2 - 149)


def _clampb(e: torch.Tensor) -> torch.Tensor:
    return e.clamp(-127, 127) + 127


def e8m0_byte(amax: torch.Tensor, mode: str, target: str) -> torch.Tensor:
    """E8M0 scale byte (uint8) of a block with maximum magnitude ``amax`` (fp32, >= 0 or NaN).

    Constants ``(max_pos, emax)`` (``QuantTarget.e8m0``): fp4_e2m1 (6, 2), fp8_e4m3fn
    (448, 8), fp8_e4m3fnuz (240, 7); ``clampb(e) = clamp(e, -127, 127) + 127``. NaN gives
    255 in every mode.

    * ``floor``: ``clampb(floor(log2 a) - emax)``; 0 -> 0; inf -> 254.
    * ``ceil``: ``clampb(ceil(log2 a) - emax)``; 0 -> 0; inf -> 254.
    * ``even``: ``R = f32((bits(a) + 0x200000) & 0xFF800000)``; ``clampb(floor(log2 R) - emax)``;
      ``R = 0`` -> 0; inf -> 254.
    * ``roundup``: ``q = a / max_pos`` (fp32); ``expfield(q) + (mantissa(q) != 0)``; q inf/NaN -> 255.
    * ``rne_legacy``: ``v = a * 2^-emax`` (fp32 multiply); c10's RNE cast to e8m0:
      ``e = expfield(v)``, ``+1`` when bit 22 is set and (bit 21, bits 20..0, or ``e > 0``).
    """
    consts = QuantTarget(target).e8m0
    if consts is None:
        raise ValueError(f"mx does not quantise to {target}")
    max_pos, emax = consts
    a = amax.to(torch.float32)
    nan = torch.isnan(a)
    inf = torch.isinf(a)
    bits = f32_bits(a) & 0x7FFFFFFF
    if mode in (E8M0Mode.FLOOR, E8M0Mode.CEIL):
        safe = torch.where(inf | nan | (bits == 0), torch.ones_like(bits), bits)
        e = _floor_log2(safe)
        if mode == E8M0Mode.CEIL:
            # a is a power of two iff its value's significand is exactly 1 (after normalising)
            sub = (safe >> 23) == 0
            m = safe & 0x7FFFFF
            pow2 = torch.where(sub, (m & (m - 1)) == 0, m == 0)
            e = e + (~pow2).to(torch.int64)
        b = _clampb(e - emax)
        b = torch.where(bits == 0, torch.zeros_like(b), b)
        b = torch.where(inf, torch.full_like(b, 254), b)
    elif mode == E8M0Mode.EVEN:
        r = (bits + 0x200000) & 0xFF800000
        er = r >> 23
        b = _clampb(er - 127 - emax)
        b = torch.where(er == 0, torch.zeros_like(b), b)
        b = torch.where(er == 255, torch.full_like(b, 254), b)
    elif mode == E8M0Mode.ROUNDUP:
        q = a / torch.tensor(max_pos, dtype=torch.float32, device=a.device)
        qb = f32_bits(q) & 0x7FFFFFFF
        e = qb >> 23
        m = qb & 0x7FFFFF
        b = e + ((m != 0) & (e < 255)).to(torch.int64)
        b = torch.where(e == 255, torch.full_like(b, 255), b)
    elif mode == E8M0Mode.RNE_LEGACY:
        v = a * torch.tensor(2.0 ** -emax, dtype=torch.float32, device=a.device)
        vb = f32_bits(v) & 0x7FFFFFFF
        e = vb >> 23
        g = (vb & 0x400000) != 0
        rs = (vb & 0x3FFFFF) != 0
        b = e + (g & (rs | (e > 0))).to(torch.int64)
        b = torch.where(e == 255, torch.full_like(b, 255), b)
    else:
        raise ValueError(f"unknown e8m0 mode {mode!r}")
    b = torch.where(nan, torch.full_like(b, 255), b)
    return b.to(torch.uint8)


def e8m0_to_f32(b: torch.Tensor) -> torch.Tensor:
    """E8M0 byte -> fp32 ``2^(b-127)``; ``b = 0`` is the subnormal ``2^-127``, 255 is NaN."""
    b = b.to(torch.int64) & 0xFF
    bits = torch.where(b == 0, torch.full_like(b, 0x00400000), b << 23)
    bits = torch.where(b == 255, torch.full_like(b, 0x7FC00000), bits)
    return bits_f32(bits)


# ---------------------------------------------------------------------------- floats
_FLOAT_DTYPES = {FloatDType.BF16: torch.bfloat16, FloatDType.F16: torch.float16,
                 FloatDType.F32: torch.float32}


def round_to_float(v: torch.Tensor, dtype) -> torch.Tensor:
    """fp32 -> bf16 / f16 by RNE (overflow to inf, subnormals kept; any NaN becomes the
    canonical quiet NaN 0x7FC0 / 0x7E00), or f32 (identity).

    ``dtype`` is a qfuse name (``bf16``, ``f16``, ``f32``) or a torch dtype. torch's
    float-to-float casts are IEEE RNE on every device, so they are the definition here.
    """
    dt = _FLOAT_DTYPES.get(dtype, dtype) if isinstance(dtype, str) else dtype
    v = v.to(torch.float32)
    out = v.to(dt)
    if dt == torch.float32:
        return out
    # NaN payload/sign differ between devices' casts: make every NaN the canonical quiet NaN
    nan = torch.full((), float("nan"), dtype=dt, device=v.device)     # 0x7FC0 / 0x7E00
    return torch.where(torch.isnan(v), nan, out)


# ---------------------------------------------------------------------------- targets
def quantize(v: torch.Tensor, target: str, *, dtype_max: float, mode: str = RoundMode.RNE,
             sat: bool = True) -> torch.Tensor:
    """The "then, by target" step of ``round``: fp32 ``v`` -> codes in the storage dtype.

    fp8: :func:`round_fp8`; i8 / int4: :func:`round_int` within
    :meth:`~qfuse.dialect.options.QuantTarget.int_bounds`; fp4_e2m1: :func:`encode_e2m1`
    by ``mode`` (rne or half_up; always saturating, ``sat``/``dtype_max`` unused).
    """
    try:
        target = QuantTarget(target)
    except ValueError:
        raise ValueError(f"unknown quant target {target!r}") from None
    if target.is_fp8:
        return round_fp8(v, target, dtype_max, sat)
    if target.is_int:
        lo, hi = target.int_bounds(dtype_max, sat)
        return round_int(v, mode, lo, hi)
    return encode_e2m1(v, mode)


# ---------------------------------------------------------------------------- layout
def shuffle_index(r, c, sn: int):
    """AITER ``e8m0_shuffle`` flat index of entry ``(r, c)`` in a ``[sm, sn]`` padded buffer:
    ``(r//32)*32*sn + (c//8)*256 + (c%4)*64 + (r%16)*4 + ((c%8)//4)*2 + (r%32)//16``.
    Works on Python ints and integer tensors."""
    return ((r // 32) * 32 * sn + (c // 8) * 256 + (c % 4) * 64 + (r % 16) * 4
            + ((c % 8) // 4) * 2 + (r % 32) // 16)


def pack_nibbles(codes: torch.Tensor, order: str = PackOrder.LINEAR) -> torch.Tensor:
    """Two 4-bit codes per byte: ``byte[j] = (q[2j] & 0xF) | (q[2j+1] & 0xF) << 4`` (uint8).

    ``codes`` holds E2M1 codes (uint8) or int4 values (int8, two's-complement nibble).
    ``order=even_odd`` first permutes each word of 8 codes to ``q0 q2 q4 q6 q1 q3 q5 q7``
    (AITER's ``rearrange_4bit_elements`` of the linear packing)."""
    n = codes.shape[-1]
    word = PackOrder(order).word
    if n % 2 or n % word:
        raise ValueError(f"pack(order={order}) needs a last dim that is a multiple of "
                         f"{max(2, word)}, got {n}")
    c = codes.to(torch.int64) & 0xF
    if word > 1:
        lead = c.shape[:-1]
        c = c.reshape(lead + (n // 8, 4, 2)).transpose(-1, -2).reshape(lead + (n,))
    return (c[..., 0::2] | (c[..., 1::2] << 4)).to(torch.uint8)


def unpack_nibbles(b: torch.Tensor, order: str = PackOrder.LINEAR,
                   signed: bool = False) -> torch.Tensor:
    """The inverse of :func:`pack_nibbles`: bytes ``[..., B]`` -> codes ``[..., 2B]``, code
    ``2j`` from the low nibble of byte ``j``; ``order=even_odd`` undoes the word
    permutation (B a multiple of 4). ``signed``: int4 values ``((c ^ 8) - 8)`` as int8,
    else E2M1 codes 0..15 as uint8."""
    v = b.to(torch.int64) & 0xFF
    lead, n = tuple(v.shape[:-1]), v.shape[-1]
    c = torch.stack((v & 0xF, v >> 4), dim=-1).reshape(lead + (2 * n,))
    if PackOrder(order).word > 1:
        if n % 4:
            raise ValueError(f"unpack(order={order}) needs a multiple of 4 bytes, got {n}")
        c = c.reshape(lead + (n // 4, 2, 4)).transpose(-1, -2).reshape(lead + (2 * n,))
    return ((c ^ 8) - 8).to(torch.int8) if signed else c.to(torch.uint8)
