"""Independent oracles for the reference-backend tests.

Everything here is written from the format definitions in plain Python / numpy float64
(enumeration of code tables, math.frexp), never from qfuse's implementation.
"""
from __future__ import annotations

import bisect
import math
import struct

import numpy as np

F32 = np.float32


def f32(x: float) -> float:
    """Round a Python float to fp32 (numpy's RNE cast) and back to a Python float."""
    return float(np.float32(x))


def bits(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def from_bits(b: int) -> float:
    return struct.unpack("<f", struct.pack("<I", b & 0xFFFFFFFF))[0]


def sign_bit(x: float) -> int:
    return bits(x) >> 31


# ----------------------------------------------------------------- small floats
def minifloat_value(code: int, ebits: int, mbits: int, bias: int) -> float:
    """Magnitude of a non-negative code: normal ``2^(e-bias) (1 + m/2^mbits)``,
    subnormal ``2^(1-bias) m/2^mbits``."""
    e, m = code >> mbits, code & ((1 << mbits) - 1)
    if e == 0:
        return math.ldexp(m, 1 - bias - mbits)
    return math.ldexp((1 << mbits) + m, e - bias - mbits)


FP8 = {  # fmt: (ebits, mbits, bias, max finite code, NaN code)
    "fp8_e4m3fn": (4, 3, 7, 0x7E, 0x7F),
    "fp8_e4m3fnuz": (4, 3, 8, 0x7F, 0x80),
}


def fp8_table(fmt: str) -> list:
    """[(code, value)] for every finite non-negative code, plus one virtual code above the
    max (the overflow candidate, marked by value of code max+1 with the same formula)."""
    eb, mb, bias, maxc, _ = FP8[fmt]
    return [(c, minifloat_value(c, eb, mb, bias)) for c in range(maxc + 2)]


def nearest_even(x: float, table: list, half_up: bool = False) -> int:
    """Code of ``|x|`` in ``table`` (sorted by value) by round-to-nearest, ties to the even
    code (or with ``half_up`` to the larger value); values beyond the last entry map to the
    last entry."""
    vals = [v for _, v in table]
    a = abs(x)
    i = bisect.bisect_left(vals, a)
    if i == len(vals):
        return table[-1][0]
    if vals[i] == a or i == 0:
        return table[i][0]
    lo, hi = table[i - 1], table[i]
    dlo, dhi = a - lo[1], hi[1] - a
    if dlo < dhi:
        return lo[0]
    if dhi < dlo or half_up:
        return hi[0]
    return lo[0] if lo[0] % 2 == 0 else hi[0]


def oracle_fp8(x: float, fmt: str, dtype_max: float, sat: bool) -> int:
    """Expected fp8 byte per docs/semantics.md, by enumeration of the code table."""
    _, _, _, maxc, nanc = FP8[fmt]
    s = sign_bit(x)
    if sat and not math.isnan(x):
        dm = f32(dtype_max)
        x = max(-dm, min(dm, x)) if not (x == 0) else x
    if math.isnan(x):
        return nanc                                  # a NaN's sign is ignored
    if math.isinf(x):
        return (nanc | (s << 7)) if fmt == "fp8_e4m3fn" else nanc
    code = nearest_even(x, fp8_table(fmt))
    if code > maxc:
        return (nanc | (s << 7)) if fmt == "fp8_e4m3fn" else nanc
    if fmt == "fp8_e4m3fnuz" and code == 0:
        return 0
    return code | (s << 7)


E2M1_VALUES = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]


def oracle_e2m1(x: float, half_up: bool = False) -> int:
    s = sign_bit(x)
    if math.isnan(x):
        return 7
    code = nearest_even(x, list(enumerate(E2M1_VALUES)), half_up)
    return code | (s << 3)


# ----------------------------------------------------------------- E8M0
E8M0_CONST = {"fp4_e2m1": (6.0, 2), "fp8_e4m3fn": (448.0, 8), "fp8_e4m3fnuz": (240.0, 7)}


def _clampb(e: int) -> int:
    return max(-127, min(127, e)) + 127


def floor_log2(a: float) -> int:
    m, e = math.frexp(a)          # a = m 2^e, m in [0.5, 1)
    return e - 1


def oracle_e8m0(a: float, mode: str, target: str) -> int:
    """E8M0 byte from a float64 / math.frexp reformulation of each mode."""
    max_pos, emax = E8M0_CONST[target]
    if math.isnan(a):
        return 255
    if mode in ("floor", "ceil", "even"):
        if a == 0:
            return 0
        if math.isinf(a):
            return 254
        e = floor_log2(a)
        if mode == "ceil" and a != math.ldexp(1.0, e):
            e += 1
        if mode == "even":
            if a < 2.0 ** -126:           # subnormal: R is 0 or 2^-126, both give byte 0
                return 0
            if a / math.ldexp(1.0, e) >= 1.75:
                e += 1                     # round up to the next power of two
            if e >= 128:                   # R overflows to inf
                return 254
        return _clampb(e - emax)
    if mode == "roundup":
        q = float(F32(a) / F32(max_pos))
        if math.isinf(q):
            return 255
        if q == 0:
            return 0
        if q < 2.0 ** -126:
            return 1                       # subnormal q: exponent field 0, mantissa != 0
        e = floor_log2(q)
        if q != math.ldexp(1.0, e):
            e += 1                         # ceil to a power of two
        return min(e + 127, 255)
    if mode == "rne_legacy":
        v = float(F32(a) * F32(2.0 ** -emax))
        if math.isinf(v):
            return 255
        if v == 0:
            return 0
        if v < 2.0 ** -126:                # subnormal: byte 1 iff v > 2^-127 (c10 rule)
            return 1 if v > 2.0 ** -127 else 0
        e = floor_log2(v)
        return min(e + 127 + (1 if v / math.ldexp(1.0, e) >= 1.5 else 0), 255)
    raise ValueError(mode)


def bf16_round(a: np.ndarray) -> np.ndarray:
    """fp32 -> bf16 RNE (finite values), returned as the fp32 array of the rounded values."""
    b = np.asarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    b = (b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000
    return b.astype(np.uint32).view(np.float32)
