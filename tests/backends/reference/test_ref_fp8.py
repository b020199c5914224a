"""fp8 e4m3fn / e4m3fnuz rounding against enumeration of the code tables."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from qfuse.backends.reference.numerics import round_fp8
from ref_oracle import FP8, f32, fp8_table, oracle_fp8

FMTS = ["fp8_e4m3fn", "fp8_e4m3fnuz"]
MAXV = {"fp8_e4m3fn": 448.0, "fp8_e4m3fnuz": 240.0}


def codes(vals, fmt, dtype_max=None, sat=True):
    t = torch.tensor(vals, dtype=torch.float32)
    out = round_fp8(t, fmt, MAXV[fmt] if dtype_max is None else dtype_max, sat)
    assert out.dtype == (torch.float8_e4m3fn if fmt == "fp8_e4m3fn" else torch.float8_e4m3fnuz)
    return out.view(torch.uint8).tolist()


def nextafter32(x, toward):
    return float(np.nextafter(np.float32(x), np.float32(toward)))


@pytest.mark.parametrize("fmt", FMTS)
def test_every_code_roundtrips(fmt):
    table = fp8_table(fmt)[:-1]                     # finite codes only
    vals = [v for _, v in table]
    assert codes(vals, fmt) == [c for c, _ in table]
    neg = codes([-v for v in vals[1:]], fmt)
    assert neg == [c | 0x80 for c, _ in table[1:]]


@pytest.mark.parametrize("fmt", FMTS)
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_every_tie_rounds_to_even_code(fmt, sign):
    table = fp8_table(fmt)[:-1]
    mids, below, above, want_mid, want_below, want_above = [], [], [], [], [], []
    for (c0, v0), (c1, v1) in zip(table, table[1:]):
        mid = (v0 + v1) / 2
        assert f32(mid) == mid                       # ties are exact in fp32
        mids.append(sign * mid)
        below.append(sign * nextafter32(mid, 0.0))
        above.append(sign * nextafter32(mid, 1e9))
        even = c0 if c0 % 2 == 0 else c1
        sb = 0x80 if sign < 0 else 0
        fix = (lambda c: 0 if (fmt == "fp8_e4m3fnuz" and c == 0) else c | sb)
        want_mid.append(fix(even))
        want_below.append(fix(c0))
        want_above.append(fix(c1))
    assert codes(mids, fmt) == want_mid
    assert codes(below, fmt) == want_below
    assert codes(above, fmt) == want_above


def test_e4m3fn_max_and_beyond():
    # 448 = 0x7E; the next (virtual) value 480 has the odd code 0x7F, so the tie 464 -> 448
    vals = [448.0, 450.0, 464.0, nextafter32(464.0, 1e9), 479.0, 480.0, 1e9, math.inf]
    assert codes(vals, "fp8_e4m3fn", sat=False) == [0x7E, 0x7E, 0x7E, 0x7F, 0x7F, 0x7F, 0x7F, 0x7F]
    assert codes([-v for v in vals], "fp8_e4m3fn", sat=False) == \
        [0xFE, 0xFE, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
    assert codes(vals, "fp8_e4m3fn", sat=True) == [0x7E] * len(vals)
    assert codes([-v for v in vals], "fp8_e4m3fn", sat=True) == [0xFE] * len(vals)


def test_e4m3fnuz_max_and_beyond():
    # 240 = 0x7F; the virtual 256 has the even code 0x80, so the tie 248 overflows -> NaN 0x80
    vals = [240.0, 247.0, nextafter32(248.0, 0.0), 248.0, 300.0, math.inf]
    assert codes(vals, "fp8_e4m3fnuz", sat=False) == [0x7F, 0x7F, 0x7F, 0x80, 0x80, 0x80]
    assert codes([-v for v in vals], "fp8_e4m3fnuz", sat=False) == [0xFF, 0xFF, 0xFF, 0x80, 0x80, 0x80]
    assert codes(vals, "fp8_e4m3fnuz", sat=True) == [0x7F] * len(vals)
    assert codes([-v for v in vals], "fp8_e4m3fnuz", sat=True) == [0xFF] * len(vals)


def test_custom_dtype_max_clamps():
    # vLLM's fnuz bound 224 = 0x7E; sat clamps 230 to 224
    assert codes([230.0, -230.0, 224.0], "fp8_e4m3fnuz", dtype_max=224.0) == [0x7E, 0xFE, 0x7E]
    # without sat the bound is the format: 230 -> 224 (below the 232 midpoint), 235 -> 240
    assert codes([230.0, 235.0], "fp8_e4m3fnuz", dtype_max=224.0, sat=False) == [0x7E, 0x7F]
    assert codes([100.0], "fp8_e4m3fn", dtype_max=10.0) == [0x52]               # 10 = 1.25 * 8


def test_subnormals():
    # e4m3fn: smallest subnormal 2^-9, largest 7 * 2^-9, smallest normal 2^-6
    s = 2.0 ** -9
    vals = [s, 2 * s, 7 * s, 8 * s, 0.5 * s, 0.75 * s, 0.25 * s, 1.5 * s, 2.5 * s, 7.5 * s]
    assert codes(vals, "fp8_e4m3fn") == [1, 2, 7, 8, 0, 1, 0, 2, 2, 8]
    # e4m3fnuz: smallest subnormal 2^-10
    s = 2.0 ** -10
    assert codes([s, 0.5 * s, 1.5 * s, 7.5 * s], "fp8_e4m3fnuz") == [1, 0, 2, 8]


def test_zero_sign_nan_inf():
    nan = float("nan")
    neg_nan = -nan
    vals = [0.0, -0.0, -1e-30, 1e-30, nan, neg_nan]
    assert codes(vals, "fp8_e4m3fn") == [0x00, 0x80, 0x80, 0x00, 0x7F, 0x7F]   # NaN sign ignored
    assert codes(vals, "fp8_e4m3fnuz") == [0x00, 0x00, 0x00, 0x00, 0x80, 0x80]
    assert codes([math.inf, -math.inf], "fp8_e4m3fn", sat=False) == [0x7F, 0xFF]
    assert codes([math.inf, -math.inf], "fp8_e4m3fn", sat=True) == [0x7E, 0xFE]
    assert codes([nan, neg_nan], "fp8_e4m3fn", sat=True) == [0x7F, 0x7F]
    assert codes([neg_nan], "fp8_e4m3fn", sat=False) == [0x7F]


def test_oracle_agrees_on_fixed_cases():
    # the oracle itself against hand values (guards the oracle)
    assert oracle_fp8(464.0, "fp8_e4m3fn", 448, False) == 0x7E
    assert oracle_fp8(470.0, "fp8_e4m3fn", 448, False) == 0x7F
    assert oracle_fp8(248.0, "fp8_e4m3fnuz", 240, False) == 0x80
    assert oracle_fp8(-0.0, "fp8_e4m3fn", 448, True) == 0x80
    assert FP8["fp8_e4m3fn"][3] == 0x7E


finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
ranged = st.one_of(st.floats(-600, 600, width=32), st.floats(-0.0625, 0.0625, width=32), finite32,
                   st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0]))


@settings(max_examples=150, deadline=None)
@given(st.lists(ranged, min_size=1, max_size=64), st.sampled_from(FMTS), st.booleans())
def test_random_fp32_matches_enumeration(vals, fmt, sat):
    got = codes(vals, fmt, sat=sat)
    want = [oracle_fp8(v, fmt, MAXV[fmt], sat) for v in vals]
    assert got == want
