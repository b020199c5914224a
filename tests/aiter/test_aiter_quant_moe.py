"""``fused_dynamic_mxfp4_quant_moe_sort`` (topk > 1, the kernel's own scale buffer) and the
ue8m0 (power-of-two) 1x64 / 1x128 group scales of ``per_group_quant_hip`` /
``get_hip_quant(per_1x128)``, against oracles written from aiter-semantics.md and AITER's
kernels, on both backends."""
from __future__ import annotations

import math

import pytest
import torch

import aiter_oracles as O
from aiter_testlib import backends, edge_rows, on, same_bits
from qfuse.aiter import AiterArgumentError, QuantType, dtypes
from qfuse.aiter.ops import quant as Q
from qfuse.aiter.ops.triton.quant.fused_mxfp4_quant import fused_dynamic_mxfp4_quant_moe_sort

GRID = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]


def e2m1_half_up(v: torch.Tensor) -> torch.Tensor:
    """E2M1 codes, ties to the larger magnitude (the MoE-sort kernel), saturating at 6,
    NaN gives 7 (qfuse's rule)."""
    out = []
    for x in v.reshape(-1).tolist():
        if math.isnan(x):
            out.append(7)
            continue
        a = min(abs(x), 6.0)
        k = min(range(8), key=lambda i: (abs(GRID[i] - a), -i))     # ties: the larger
        out.append(k | (8 if math.copysign(1.0, x) < 0 else 0))
    return torch.tensor(out, dtype=torch.uint8).view(v.shape)


def group_bytes(rows: torch.Tensor) -> torch.Tensor:
    """Even E8M0 bytes of the 1x32 groups of each row (the last group partial)."""
    m, n = rows.shape
    g = -(-n // 32)
    p = torch.nn.functional.pad(rows.float(), (0, g * 32 - n)).view(m, g, 32)
    return O.e8m0(p.abs().amax(-1), "even")


def oracle(x, ids, nv, token_num, topk):
    m, n = x.shape
    g = -(-n // 32)
    b = group_bytes(x)
    f = torch.where(b == 255, torch.tensor(float("nan")),
                    torch.pow(2.0, b.double() - 127).float())
    f = torch.where(b == 0, torch.tensor(2.0 ** -127), f)
    v = x.float() / f.repeat_interleave(32, -1)[:, :n]
    q = O.pack(e2m1_half_up(v))
    r = ids.shape[0]
    rows32, sn = -(-r // 32) * 32, -(-g // 8) * 8
    sorted_b = torch.zeros(rows32, g, dtype=torch.uint8)
    for i, raw in enumerate(ids.tolist()):
        if i >= nv:
            continue
        t, k = raw & 0xFFFFFF, raw >> 24
        row = t if topk == 1 else t * topk + k
        if t < token_num and (topk == 1 or 0 <= k < topk):
            sorted_b[i] = b[row]
    buf = torch.zeros(rows32 * sn, dtype=torch.uint8)
    for rr in range(rows32):
        for c in range(g):
            idx = ((rr // 32) * 32 * sn + (c // 8) * 256 + (c % 4) * 64 + (rr % 16) * 4
                   + ((c % 8) // 4) * 2 + (rr % 32) // 16)
            buf[idx] = sorted_b[rr, c]
    return q, buf.view(rows32, sn)


def packed(pairs) -> torch.Tensor:
    vals = [(t | (k << 24)) for t, k in pairs]
    return torch.tensor([v - 2 ** 32 if v >= 2 ** 31 else v for v in vals], dtype=torch.int32)


@backends
@pytest.mark.parametrize("token_num,topk,n", [(5, 3, 156), (7, 1, 288), (1, 2, 28), (4, 8, 256)])
def test_moe_sort(backend, token_num, topk, n):
    m = token_num * topk
    x = edge_rows(max(m - 6, 1), n, seed=n)[:m]
    x = torch.cat([x, torch.randn(max(m - x.shape[0], 0), n).bfloat16()])[:m]
    pairs = [(t, k) for k in range(topk) for t in range(token_num)]
    pairs += [(token_num, 0), (0, topk), (0xFFFFFF, 0xFF), (token_num - 1, 0)]
    ids = packed(pairs)
    nv = torch.tensor([len(pairs) - 1], dtype=torch.int32)   # the last id is past the count
    q, s = on(backend, fused_dynamic_mxfp4_quant_moe_sort, x, ids, nv, token_num, topk)
    assert q.dtype == dtypes.fp4x2 and s.dtype == dtypes.fp8_e8m0
    wq, ws = oracle(x, ids, int(nv), token_num, topk)
    same_bits(q.view(torch.uint8), wq, "codes")
    same_bits(s.view(torch.uint8), ws, "sorted scales")


@backends
def test_moe_sort_aiter_test_shape(backend):
    """AITER's own test case (op_tests/triton_tests/quant/test_fused_mxfp4_quant.py):
    hidden 256, token_num 32, topk 8, 1024 sorted ids (slots sorted, tokens random) of
    which 512 are valid, num_valid_ids an int64 pair, block_size 128."""
    token_num, topk, r = 32, 8, 1024
    g = torch.Generator().manual_seed(5)
    x = (torch.randn(token_num * topk, 256, generator=g) / 20).bfloat16()
    slot = torch.randint(0, topk, (r,), generator=g).sort().values
    ids = ((slot << 24) | torch.randint(0, token_num, (r,), generator=g)).to(torch.int32)
    nv = torch.tensor([512, token_num], dtype=torch.int64)
    q, s = on(backend, fused_dynamic_mxfp4_quant_moe_sort, x, ids, nv, token_num, topk,
              block_size=128)
    wq, ws = oracle(x, ids, 512, token_num, topk)
    same_bits(q.view(torch.uint8), wq, "codes")
    same_bits(s.view(torch.uint8), ws, "sorted scales")


@backends
def test_moe_sort_half_up_ties_and_no_valid_ids(backend):
    ties = torch.tensor([6.0, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, -0.25, -2.5, -5.0, 0.0])
    x = ties.repeat(2, 32)[:, :128].bfloat16()                # amax 6: scale 1 (even)
    q, s = on(backend, fused_dynamic_mxfp4_quant_moe_sort, x, packed([(0, 0)] * 40),
              torch.tensor([0], dtype=torch.int32), 2, 1)
    assert q.view(torch.uint8)[0, :6].tolist() == [0x17, 0x32, 0x54, 0x76, 0xD9, 0x0F]
    assert s.shape == (64, 8) and not s.view(torch.uint8).any()   # every position past 0


def test_moe_sort_bad_arguments():
    x = torch.randn(6, 128).bfloat16()
    ids, nv = packed([(0, 0)]), torch.tensor([1], dtype=torch.int32)
    f = fused_dynamic_mxfp4_quant_moe_sort
    with pytest.raises(AiterArgumentError, match="token_num \\* topk"):
        f(x, ids, nv, 4, 2)
    with pytest.raises(AiterArgumentError, match="multiple of 4"):
        f(torch.randn(6, 30).bfloat16(), ids, nv, 6, 1)
    for n in (64, 200, 68, 96):            # ceil(N / 32) = 2, 7, 3, 3: AITER asserts
        with pytest.raises(AiterArgumentError, match=r"\(ceil\(N / 32\) // 2\) % 2 == 0"):
            f(torch.randn(6, n).bfloat16(), ids, nv, 6, 1)
    with pytest.raises(AiterArgumentError, match="block_size must be a multiple of 32"):
        f(x, ids, nv, 6, 1, block_size=16)
    with pytest.raises(AiterArgumentError, match="sorted_ids"):
        f(x, ids.float(), nv, 6, 1)
    with pytest.raises(AiterArgumentError, match="num_valid_ids"):
        f(x, ids, torch.tensor([1.0]), 6, 1)
    with pytest.raises(AiterArgumentError, match="scaling_mode"):
        f(x, ids, nv, 6, 1, scaling_mode="nearest")


def ue8m0_groups(x, g, dt):
    """AITER's dynamic_per_group_scaled_quant e8m0 branch: s = ceil_pow2(max(amax, 1e-10) /
    dtype_max), codes of x / s (exact: s is a power of two), the byte its exponent."""
    m, n = x.shape
    xg = x.float().view(m, n // g, g)
    a = (xg.abs().amax(-1).clamp(min=1e-10) / O.FMAX[dt])
    s = torch.tensor([2.0 ** math.ceil(math.log2(v)) for v in a.view(-1).tolist()]).view(a.shape)
    q = O.codes(xg / s[..., None], dt).view(m, n)
    b = torch.tensor([int(math.log2(v)) + 127 for v in s.view(-1).tolist()],
                     dtype=torch.uint8).view(s.shape)
    return q, b


@backends
@pytest.mark.parametrize("g", [64, 128])
@pytest.mark.parametrize("dt", [torch.float8_e4m3fn, torch.int8])
def test_per_group_quant_hip_ue8m0(backend, g, dt):
    x = edge_rows(5, 256, nan=False)
    y, s = on(backend, Q.per_group_quant_hip, x, quant_dtype=dt, group_size=g,
              scale_type=dtypes.fp8_e8m0)
    wq, wb = ue8m0_groups(x, g, dt)
    same_bits(y, wq, "codes")
    same_bits(s.view(torch.uint8), wb, "e8m0 bytes")
    assert s.dtype == dtypes.fp8_e8m0
    if g == 128:
        y2, s2 = on(backend, Q.get_hip_quant(QuantType.per_1x128), x, quant_dtype=dt,
                    scale_type=dtypes.fp8_e8m0)
        same_bits(y2, wq, "per_1x128 codes")
        same_bits(s2.view(torch.uint8), wb, "per_1x128 bytes")


@backends
@pytest.mark.parametrize("dt", [torch.int8, torch.float8_e4m3fn])
def test_smooth_per_token_scaled_quant_3d_distinct_rows(backend, dt):
    """A 3-D input whose (token, slot) rows differ (AITER's [M, topk, N] activations, here a
    strided slice): each row smoothed by its own expert's row (the DSL's 3-D
    expert-indexed smooth), quantised per row; an id out of [0, E) is skipped."""
    m, k, n, e = 4, 3, 40, 5
    big = edge_rows(m * k * 2 - 4, n, nan=False).view(m, 2 * k, n)   # 4 edge rows appended
    x = big[:, ::2, :]                                    # strided along the slot dim
    xs = torch.rand(e, n) + 0.5
    ids = torch.randint(0, e, (m, k), dtype=torch.int32)
    ids[1, 2] = -1
    out = torch.full((m, k, n), 3, dtype=torch.int8).view(dt)
    scales = torch.full((m, k), 7.0)
    on(backend, Q.smooth_per_token_scaled_quant, out, x, scales, xs, ids)
    for i in range(m):
        for j in range(k):
            if ids[i, j] < 0:
                assert bool((out[i, j].view(torch.int8) == 3).all()) and scales[i, j] == 7.0
                continue
            wy, ws = O.per_token(x[i, j:j + 1], dt, "floor", "rcp", x_scale=xs[ids[i, j]])
            same_bits(out[i, j], wy[0], f"row {i},{j}")
            same_bits(scales[i, j], ws[0, 0], f"scale {i},{j}")
