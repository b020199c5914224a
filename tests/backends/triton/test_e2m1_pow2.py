"""The E2M1 fast path of ``round(x, scale(x, fp4_e2m1, mx))`` (qf_e2m1_codes_pow2: codes
straight from x's bits and its E8M0 byte, no multiply) against the numpy oracle of
x / 2^(b-127), on every finite bf16 pattern and random fp32 ones, at the ends of the byte
range the guard qf_e8m0_pow2_ok admits; and the guard itself."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qf_triton_testlib import (COLS, DEVICES, e2m1_oracle, k_e2m1_pow2, k_e8m0_pow2_ok, launch,
                               run_rows)


def finite_bf16_patterns() -> np.ndarray:
    x = (np.arange(1 << 16, dtype=np.uint32) << 16).view(np.float32)
    return x[np.isfinite(x)]


def oracle(x, b):
    """E2M1 code of x / 2^(b-127): the quotient is exact in float64, then rounded once."""
    q = np.asarray(x, np.float64) * np.exp2(127.0 - np.asarray(b, np.float64))
    with np.errstate(over="ignore"):
        return e2m1_oracle(q.astype(np.float32)).astype(np.int32)


def check(x, b, device):
    b = np.broadcast_to(np.asarray(b, np.uint8), x.shape).copy()
    (got,) = run_rows(k_e2m1_pow2, device, [x, b], [torch.int32])
    want = oracle(x, b)
    bad = np.nonzero(got.numpy() != want)[0]
    assert bad.size == 0, [(float(x[i]), int(b[i]), int(got[i]), int(want[i])) for i in bad[:8]]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("b", [27, 28, 100, 125, 126, 127, 128, 129, 200, 229, 230])
def test_every_bf16_pattern(device, b):
    """All finite bf16 values (what mxfp4 of a bf16 input sees), every grid point, tie,
    subnormal and saturation among them, and their 2^(b-127) multiples (the same rounding
    problem shifted, so the quotient crosses 0.25 .. 6 at every byte)."""
    x = finite_bf16_patterns()
    check(x, b, device)
    shifted = (x.astype(np.float64) * 2.0 ** (b - 127)).astype(np.float32)
    check(shifted[np.isfinite(shifted)], b, device)


@settings(max_examples=25, deadline=None)
@given(patterns=st.lists(st.integers(0, 2 ** 32 - 1), min_size=1, max_size=512),
       b=st.integers(27, 230))
def test_random_fp32_patterns(patterns, b):
    """fp32 inputs (rmsnorm + mxfp4 rounds fp32 values), any finite bit pattern."""
    x = np.array(patterns, np.uint32).view(np.float32)
    x = x[np.isfinite(x)]
    if x.size:
        check(x, b, "interp")


@pytest.mark.parametrize("device", DEVICES)
def test_guard_admits_bytes_27_to_230_and_zero_groups(device):
    """A program is fast when each group's byte is in [27, 230] or its amax is 0 (zero
    groups and masked padding have byte 0); one other group sends it the general way."""
    rows = [[127] * COLS for _ in range(9)]
    amax = [[1.0] * COLS for _ in range(9)]
    for r, bad in enumerate([26, 231, 254, 255, 0]):
        rows[r][r * 7 + 3] = bad
    rows[5][0], rows[5][1] = 27, 230                   # both ends: still fast
    rows[6][9], amax[6][9] = 0, 0.0                    # an all-zero group: fast
    rows[7][2], amax[7][2] = 0, 1e-39                  # a tiny one with byte 0: general
    dev = "cpu" if device == "interp" else device
    b = torch.tensor(rows, dtype=torch.uint8).reshape(-1).to(dev)
    a = torch.tensor(amax, dtype=torch.float32).reshape(-1).to(dev)
    y = torch.zeros(len(rows), dtype=torch.int32, device=dev)
    launch(k_e8m0_pow2_ok, (len(rows),), device, b, a, y, N=COLS)
    assert y.cpu().tolist() == [0, 0, 0, 0, 0, 1, 1, 0, 1]


@pytest.mark.parametrize("device", DEVICES)
def test_zeros_under_any_byte(device):
    """+-0 (an all-zero group, whatever its byte) gives code 0 | sign."""
    x = np.array([0.0, -0.0] * 128, np.float32)
    for b in (0, 1, 26, 27, 127, 230):
        (got,) = run_rows(k_e2m1_pow2, device, [x, np.full(x.shape, b, np.uint8)], [torch.int32])
        assert got.tolist() == [0, 8] * 128, b
