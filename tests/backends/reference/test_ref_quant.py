"""``scale`` and ``round`` stages against numpy fp32 arithmetic and the code-table oracles."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from qfuse.backends.reference.stages import run_round, run_scale
from ref_oracle import F32, oracle_e2m1, oracle_e8m0, oracle_fp8

rng = np.random.default_rng(0)


def groups_of(n, k):
    return [(j, min(j + k, n)) for j in range(0, n, k)]


def expected_group_scale(x, k, dm, zero="one", floor=1e-10):
    """Per-row, per-K-group scale with explicit loops (fp32 division by numpy)."""
    m, n = x.shape
    out = np.zeros((m, -(-n // k)), dtype=np.float32)
    for r in range(m):
        for g, (a, b) in enumerate(groups_of(n, k)):
            amax = F32(np.max(np.abs(x[r, a:b])))
            if zero == "floor":
                amax = max(amax, F32(floor))
            s = amax / F32(dm)
            if zero == "one" and s == 0:
                s = F32(1)
            out[r, g] = s
    return out


@pytest.mark.parametrize("gran,k", [("per_1x32", 32), ("per_1x64", 64), ("per_1x128", 128)])
def test_group_scale_partial_last_group(gran, k):
    x = (rng.standard_normal((3, 100)) * 4).astype(np.float32)
    x[0, 96:] = [1000.0, -2.0, 3.0, 0.5]          # the last partial group of row 0
    x[1, :] = 0                                   # a zero row
    (s,) = run_scale(torch.from_numpy(x), dtype="fp8_e4m3fn", granularity=gran)
    want = expected_group_scale(x, k, 448.0)
    assert s.dtype == torch.float32 and s.shape == want.shape
    np.testing.assert_array_equal(s.numpy(), want)
    (s2,) = run_scale(torch.from_numpy(x), dtype="fp8_e4m3fn", granularity=gran, zero="floor")
    np.testing.assert_array_equal(s2.numpy(), expected_group_scale(x, k, 448.0, "floor"))


def test_zero_policies_codes_and_scales():
    x = np.zeros((2, 64), dtype=np.float32)
    x[1] = np.linspace(-3, 3, 64)
    xt = torch.from_numpy(x)
    for gran in ("per_token", "per_1x32"):
        for zero, want0 in (("one", 1.0), ("floor", F32(1e-10) / F32(127)), ("zero", 0.0)):
            (s,) = run_scale(xt, dtype="i8", granularity=gran, zero=zero)
            assert s[0].tolist() == [want0] * s.shape[1], (gran, zero)
            (q,) = run_round(xt, s, dtype="i8", granularity=gran)
            assert q.dtype == torch.int8
            assert q[0].tolist() == [0] * 64
            assert q[1].abs().max().item() == 127                 # the row max maps to 127
    # per_tensor default is zero: all-zero tensor -> scale 0 and codes 0 (not NaN)
    z = torch.zeros(4, 8)
    (s,) = run_scale(z, dtype="fp8_e4m3fn", granularity="per_tensor")
    assert s.shape == (1,) and s.item() == 0.0
    for recip in ("div", "mul_rcp"):
        (q,) = run_round(z, s, dtype="fp8_e4m3fn", granularity="per_tensor", recip=recip)
        assert q.view(torch.uint8).unique().tolist() == [0]


def test_per_token_and_per_tensor_values():
    x = (rng.standard_normal((2, 3, 40)) * 10).astype(np.float32)
    (s,) = run_scale(torch.from_numpy(x), dtype="fp8_e4m3fnuz", granularity="per_token",
                     dtype_max=224.0)
    want = (np.max(np.abs(x), axis=-1, keepdims=True).astype(np.float32) / F32(224)).astype(np.float32)
    assert s.shape == (2, 3, 1)
    np.testing.assert_array_equal(s.numpy(), want)
    (st,) = run_scale(torch.from_numpy(x), dtype="i8", granularity="per_tensor")
    assert st.shape == (1,) and st.item() == np.float32(np.max(np.abs(x))) / F32(127)


def test_nan_propagates_into_the_group_scale():
    x = torch.ones(2, 64)
    x[0, 40] = float("nan")
    (s,) = run_scale(x, dtype="fp8_e4m3fn", granularity="per_1x32")
    assert s[0, 0].item() == F32(1) / F32(448) and math.isnan(s[0, 1].item())
    assert not torch.isnan(s[1]).any()


def test_per_128x128_edge_tiles():
    m, n = 130, 200
    x = (rng.standard_normal((m, n)) * 3).astype(np.float32)
    x[129, 199] = 77.0                            # in the corner tile (rows 128-129, cols 128-199)
    x[:128, 128:] = 0                             # an all-zero tile -> scale 1
    (s,) = run_scale(torch.from_numpy(x), dtype="fp8_e4m3fn", granularity="per_128x128")
    assert s.shape == (2, 2)
    for ti in range(2):
        for tj in range(2):
            blk = x[ti * 128:(ti + 1) * 128, tj * 128:(tj + 1) * 128]
            w = F32(np.max(np.abs(blk))) / F32(448)
            assert s[ti, tj].item() == (w if w != 0 else 1.0)
    (q,) = run_round(torch.from_numpy(x), s, dtype="fp8_e4m3fn", granularity="per_128x128")
    qb = q.view(torch.uint8).numpy()
    for r, c in [(0, 0), (127, 127), (128, 0), (129, 199), (5, 150), (129, 127)]:
        v = x[r, c] / s[r // 128, c // 128].item()
        assert qb[r, c] == oracle_fp8(float(F32(v)), "fp8_e4m3fn", 448.0, True), (r, c)


@pytest.mark.parametrize("recip", ["div", "mul_rcp"])
@pytest.mark.parametrize("target,dm", [("fp8_e4m3fn", 448.0), ("fp8_e4m3fnuz", 240.0)])
def test_round_fp8_per_token_matches_numpy(recip, target, dm):
    x = (rng.standard_normal((8, 50)) * 5).astype(np.float32)
    s = (np.abs(rng.standard_normal((8, 1))) * 0.03 + 1e-3).astype(np.float32)
    (q,) = run_round(torch.from_numpy(x), torch.from_numpy(s), dtype=target,
                     granularity="per_token", recip=recip)
    v = x / s if recip == "div" else x * (F32(1) / s)
    want = [[oracle_fp8(float(e), target, dm, True) for e in row] for row in v.astype(np.float32)]
    assert q.view(torch.uint8).tolist() == want


def test_div_and_mul_rcp_differ_somewhere():
    # x / s and x * (1/s) are different fp32 formulas; find a value where they round apart
    x = np.arange(1, 4000, dtype=np.float32) * F32(0.37)
    s = F32(0.3)
    d, r = x / s, x * (F32(1) / s)
    assert (d != r).any()
    (qd,) = run_round(torch.from_numpy(x[None]), torch.tensor([s]), dtype="i8",
                      granularity="per_tensor", mode="rne", sat=False)
    (qr,) = run_round(torch.from_numpy(x[None]), torch.tensor([s]), dtype="i8",
                      granularity="per_tensor", mode="rne", sat=False, recip="mul_rcp")
    assert qd.tolist()[0] == np.clip(np.round(d), -128, 127).astype(int).tolist()
    assert qr.tolist()[0] == np.clip(np.round(r), -128, 127).astype(int).tolist()


def test_round_i8_default_trunc_and_rne():
    x = torch.tensor([[2.5, -2.5, 3.5, 126.6, 127.5, -128.7, 0.0]])
    s = torch.ones(1, 1)
    assert run_round(x, s, dtype="i8", granularity="per_token")[0].tolist() == \
        [[2, -2, 3, 126, 127, -127, 0]]
    assert run_round(x, s, dtype="i8", granularity="per_token", mode="rne")[0].tolist() == \
        [[2, -2, 4, 127, 127, -127, 0]]


def test_int4_group_partial():
    x = torch.tensor([[0.0] * 31 + [7.0] + [1.0, -3.5, 2.5]])      # N = 35: groups 32 + 3
    (s,) = run_scale(x, dtype="int4", granularity="per_1x32")
    assert s.tolist() == [[1.0, F32(3.5) / F32(7)]]
    (q,) = run_round(x, s, dtype="int4", granularity="per_1x32", mode="rne")
    assert q.tolist()[0][31:] == [7, 2, -7, 5]


@pytest.mark.parametrize("mode", ["roundup", "even", "floor"])
def test_mx_fp4_scale_and_round(mode):
    n = 70                                            # partial last block of 6
    x = (rng.standard_normal((3, n)) * 2).astype(np.float32)
    x[2, :32] = 0
    (b,) = run_scale(torch.from_numpy(x), dtype="fp4_e2m1", granularity="mx", e8m0=mode)
    assert b.dtype == torch.uint8 and b.shape == (3, 3)
    for r in range(3):
        for g, (lo, hi) in enumerate(groups_of(n, 32)):
            assert b[r, g].item() == oracle_e8m0(float(np.max(np.abs(x[r, lo:hi]))), mode, "fp4_e2m1")
    (q,) = run_round(torch.from_numpy(x), b, dtype="fp4_e2m1", granularity="mx")
    assert q.dtype == torch.uint8
    for r in range(3):
        for c in range(n):
            v = math.ldexp(float(x[r, c]), 127 - b[r, c // 32].item()) if b[r, c // 32] else \
                float(x[r, c]) * 2.0 ** 127
            assert q[r, c].item() == oracle_e2m1(float(F32(v))), (r, c)


def test_mx_round_special_bytes():
    x = torch.tensor([[1e-38] * 16 + [3.0] * 16, [1.0] * 32])
    b = torch.tensor([[0], [255]], dtype=torch.uint8)
    (q,) = run_round(x, b, dtype="fp4_e2m1", granularity="mx")
    # b=0 is 2^-127: 1e-38 * 2^127 = 1.70 -> 1.5 (code 3); 3 * 2^127 = inf -> saturate 6 (code 7)
    assert q[0].tolist() == [3] * 16 + [7] * 16
    assert q[1].tolist() == [7] * 32                     # b=255 is NaN -> NaN -> 0x7 | sign(+)
    (q8,) = run_round(x, b, dtype="fp8_e4m3fn", granularity="mx")
    assert q8.view(torch.uint8)[1].tolist() == [0x7F] * 32


def test_static_scale_passthrough():
    s = torch.tensor([0.125])
    (got,) = run_scale(torch.ones(2, 4, dtype=torch.bfloat16), s, dtype="fp8_e4m3fn",
                       granularity="per_tensor")
    assert got.tolist() == [0.125] and got is not s
    (q,) = run_round(torch.ones(2, 4, dtype=torch.bfloat16), got, dtype="fp8_e4m3fn",
                     granularity="per_tensor", recip="mul_rcp")
    assert q.view(torch.uint8).unique().tolist() == [0x50]          # 8.0 = 2^3 -> (10 << 3)


def test_bad_scale_shape_raises():
    with pytest.raises(ValueError, match="per_1x32 scale"):
        run_round(torch.ones(2, 64), torch.ones(2, 3), dtype="i8", granularity="per_1x32")
