"""Integer rounding (trunc / rne), E2M1 encoding/decoding and nibble packing."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from qfuse.backends.reference.numerics import (decode_e2m1, encode_e2m1, pack_nibbles,
                                               quantize, round_int)
from ref_oracle import E2M1_VALUES, oracle_e2m1

NAN, INF = float("nan"), float("inf")


def ints(vals, target, mode, sat=True, dtype_max=None):
    dm = {"i8": 127.0, "int4": 7.0}[target] if dtype_max is None else dtype_max
    out = quantize(torch.tensor(vals, dtype=torch.float32), target, dtype_max=dm, mode=mode, sat=sat)
    assert out.dtype == torch.int8
    return out.tolist()


I8_CASES = [  # v, trunc, rne
    (2.5, 2, 2), (-2.5, -2, -2), (3.5, 3, 4), (-3.5, -3, -4), (0.5, 0, 0), (1.5, 1, 2),
    (-0.7, 0, -1), (126.6, 126, 127), (127.5, 127, 127), (-128.7, -127, -127),
    (126.5, 126, 126), (-126.5, -126, -126), (1e9, 127, 127), (-1e9, -127, -127),
    (INF, 127, 127), (-INF, -127, -127), (NAN, 0, 0), (-0.0, 0, 0),
]


@pytest.mark.parametrize("mode,col", [("trunc", 1), ("rne", 2)])
def test_int8_table(mode, col):
    vals = [c[0] for c in I8_CASES]
    assert ints(vals, "i8", mode) == [c[col] for c in I8_CASES]


def test_int8_without_sat_uses_type_range():
    assert ints([-128.7, -128.0, 127.9, 300.0], "i8", "trunc", sat=False) == [-128, -128, 127, 127]
    assert ints([-128.7, -128.5, -127.5], "i8", "rne", sat=False) == [-128, -128, -128]


def test_int4_table():
    vals = [2.5, 3.5, -3.5, 6.6, 7.5, -7.5, -8.4, 100.0, NAN]
    assert ints(vals, "int4", "trunc") == [2, 3, -3, 6, 7, -7, -7, 7, 0]
    assert ints(vals, "int4", "rne") == [2, 4, -4, 7, 7, -7, -7, 7, 0]
    assert ints([-8.4, -9.0, 7.9], "int4", "trunc", sat=False) == [-8, -8, 7]


def test_round_int_clamps_to_its_bounds():     # the bounds: tests/dialect/test_options.py
    assert round_int(torch.tensor([5.0, -5.0]), "rne", -3, 4).tolist() == [4, -3]


# E2M1: value -> expected code (ties to the even code: 0.25->0, 0.75->1.0, 1.25->1.0,
# 1.75->2.0, 2.5->2.0, 3.5->4.0, 5->4.0)
E2M1_CASES = [
    (0.0, 0x0), (0.25, 0x0), (0.26, 0x1), (0.5, 0x1), (0.75, 0x2), (1.0, 0x2), (1.25, 0x2),
    (1.26, 0x3), (1.5, 0x3), (1.75, 0x4), (2.5, 0x4), (2.51, 0x5), (3.0, 0x5), (3.5, 0x6),
    (4.0, 0x6), (5.0, 0x6), (5.01, 0x7), (6.0, 0x7), (7.0, 0x7), (1e9, 0x7), (INF, 0x7),
    (-0.25, 0x8), (-0.75, 0xA), (-1.25, 0xA), (-1.75, 0xC), (-2.5, 0xC), (-3.5, 0xE),
    (-5.0, 0xE), (-7.0, 0xF), (-1e9, 0xF), (-INF, 0xF), (-0.1, 0x8), (-0.0, 0x8),
    (NAN, 0x7), (-NAN, 0x7),
]


def test_e2m1_table():
    vals = [c[0] for c in E2M1_CASES]
    got = encode_e2m1(torch.tensor(vals, dtype=torch.float32))
    assert got.dtype == torch.uint8
    assert got.tolist() == [c[1] for c in E2M1_CASES]
    assert [oracle_e2m1(v) for v in vals] == [c[1] for c in E2M1_CASES]


# round half up (AITER's MoE-sort MXFP4 kernel): every tie to the larger magnitude
E2M1_HALF_UP = [
    (0.0, 0x0), (0.24, 0x0), (0.25, 0x1), (0.74, 0x1), (0.75, 0x2), (1.25, 0x3), (1.74, 0x3),
    (1.75, 0x4), (2.49, 0x4), (2.5, 0x5), (3.5, 0x6), (4.99, 0x6), (5.0, 0x7), (1e9, 0x7),
    (INF, 0x7), (-0.25, 0x9), (-2.5, 0xD), (-5.0, 0xF), (-0.1, 0x8), (-0.0, 0x8),
    (1e-40, 0x0), (NAN, 0x7), (-NAN, 0x7),
]


def test_e2m1_half_up_table():
    vals = [c[0] for c in E2M1_HALF_UP]
    got = encode_e2m1(torch.tensor(vals, dtype=torch.float32), "half_up").tolist()
    assert got == [c[1] for c in E2M1_HALF_UP]
    assert [oracle_e2m1(v, half_up=True) for v in vals] == got


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.floats(-8, 8, width=32), st.floats(width=32)), min_size=1,
                max_size=64))
def test_e2m1_half_up_random_matches_enumeration(vals):
    got = encode_e2m1(torch.tensor(vals, dtype=torch.float32), "half_up").tolist()
    assert got == [oracle_e2m1(v, half_up=True) for v in vals]


def test_e2m1_decode_all_codes():
    got = decode_e2m1(torch.arange(16, dtype=torch.uint8))
    want = E2M1_VALUES + [-v for v in E2M1_VALUES]
    assert got.tolist() == want
    assert math.copysign(1.0, got[8].item()) == -1.0     # code 8 is -0


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.floats(-8, 8, width=32), st.floats(width=32)), min_size=1,
                max_size=64))
def test_e2m1_random_matches_enumeration(vals):
    got = encode_e2m1(torch.tensor(vals, dtype=torch.float32)).tolist()
    assert got == [oracle_e2m1(v) for v in vals]


def test_pack_nibbles():
    q = torch.tensor([[1, 2, 15, 0, 7, 8]], dtype=torch.uint8)
    assert pack_nibbles(q).tolist() == [[0x21, 0x0F, 0x87]]
    i4 = torch.tensor([-8, 7, -1, 0, 3, -2], dtype=torch.int8)
    # two's-complement nibbles: -8 -> 0x8, 7 -> 0x7, -1 -> 0xF, -2 -> 0xE
    assert pack_nibbles(i4).tolist() == [0x78, 0x0F, 0xE3]
    with pytest.raises(ValueError):
        pack_nibbles(torch.zeros(3, dtype=torch.uint8))
