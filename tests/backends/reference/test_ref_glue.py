"""Glue stages: add/mul broadcasting, activations, cast, reduce order, flatten, rope,
gather (negative and packed ids) and smooth (dense and expert-indexed)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from qfuse.backends.reference.stages import (run_act_mul, run_add, run_cast, run_flatten,
                                             run_gather, run_gelu, run_mul, run_reduce, run_rope,
                                             run_silu, run_smooth)
from ref_oracle import F32, bf16_round

rng = np.random.default_rng(2)


def test_add_mul_broadcasting_and_scalars():
    a = rng.standard_normal((3, 8)).astype(np.float32)
    v = rng.standard_normal(8).astype(np.float32)
    b = rng.standard_normal((3, 8)).astype(np.float32)
    at = torch.from_numpy(a).to(torch.bfloat16)
    a16 = bf16_round(a)
    (o,) = run_mul(at, 0.1)                                   # scalar rounded to f32 first
    assert o.dtype == torch.float32
    np.testing.assert_array_equal(o.numpy(), a16 * F32(0.1))
    (o,) = run_mul(0.1, at)
    np.testing.assert_array_equal(o.numpy(), a16 * F32(0.1))
    (o,) = run_add(at, torch.from_numpy(v))
    np.testing.assert_array_equal(o.numpy(), a16 + v)
    (o,) = run_add(torch.from_numpy(v), at)
    np.testing.assert_array_equal(o.numpy(), v + a16)
    (o,) = run_mul(torch.from_numpy(a), torch.from_numpy(b))
    np.testing.assert_array_equal(o.numpy(), a * b)
    (o,) = run_add(torch.from_numpy(a), torch.tensor(2.5))
    np.testing.assert_array_equal(o.numpy(), a + F32(2.5))


def test_activations_close_to_float64():
    x = np.linspace(-12, 12, 401).astype(np.float32)
    xt = torch.from_numpy(x)
    xd = x.astype(np.float64)
    (s,) = run_silu(xt)
    np.testing.assert_allclose(s.numpy(), xd / (1 + np.exp(-xd)), rtol=4e-6, atol=1e-30)
    (g,) = run_gelu(xt)
    erf = np.array([math.erf(v / math.sqrt(2)) for v in xd])
    np.testing.assert_allclose(g.numpy(), 0.5 * xd * (1 + erf), rtol=4e-6, atol=4e-6)   # 1 + erf cancels for x << 0
    (gt,) = run_gelu(xt, approx="tanh")
    want = 0.5 * xd * (1 + np.tanh(math.sqrt(2 / math.pi) * (xd + 0.044715 * xd ** 3)))
    np.testing.assert_allclose(gt.numpy(), want, rtol=4e-6, atol=4e-6)   # 1 + erf cancels for x << 0


@pytest.mark.parametrize("act", ["silu", "gelu", "gelu_tanh"])
def test_act_mul_halves(act):
    x = torch.randn(4, 2, 10, generator=torch.Generator().manual_seed(5))
    (o,) = run_act_mul(x, act=act)
    assert o.shape == (4, 2, 5)
    fn = {"silu": run_silu, "gelu": run_gelu,
          "gelu_tanh": lambda t: run_gelu(t, approx="tanh")}[act]
    assert torch.equal(o, fn(x[..., :5])[0] * x[..., 5:])


def test_cast_rne():
    # 1 + 2^-8 is the bf16 tie between 1 and 1 + 2^-7 -> 1 (even); 1 + 3*2^-8 -> 1 + 2^-6
    x = np.array([1 + 2 ** -8, 1 + 3 * 2 ** -8, -(1 + 2 ** -8) * 3, 65519.0, 65520.0, 1e-8],
                 dtype=np.float32)
    (b,) = run_cast(torch.from_numpy(x), dtype="bf16")
    assert b.dtype == torch.bfloat16
    np.testing.assert_array_equal(b.to(torch.float32).numpy(), bf16_round(x))
    assert b[0].item() == 1.0 and b[1].item() == 1 + 2 ** -6
    (h,) = run_cast(torch.from_numpy(x), dtype="f16")
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(h.numpy(), x.astype(np.float16))   # 65520 -> inf
    assert math.isinf(h[4].item()) and h[3].item() == 65504.0
    (w,) = run_cast(b, dtype="f32")
    assert w.dtype == torch.float32 and torch.equal(w, b.to(torch.float32))


def test_reduce_is_sequential():
    x = torch.tensor([[1.0], [1e8], [-1e8], [3.0]])
    (o,) = run_reduce(x)
    # ((1 + 1e8) - 1e8) + 3 = (1e8 - 1e8) + 3 = 3 in fp32; a pairwise sum would give 4
    want = ((F32(1) + F32(1e8)) + F32(-1e8)) + F32(3)
    assert o.tolist() == [float(want)] == [3.0]
    parts = rng.standard_normal((5, 3, 7)).astype(np.float32)
    acc = parts[0].copy()
    for p in parts[1:]:
        acc = acc + p
    np.testing.assert_array_equal(run_reduce(torch.from_numpy(parts))[0].numpy(), acc)


def test_flatten_strided():
    base = torch.arange(2 * 4 * 3 * 2, dtype=torch.float32).reshape(2, 3, 4, 2)
    x = base[:, :, :, 0].transpose(1, 2)                 # [2, 4, 3], not contiguous
    (o,) = run_flatten(x)
    assert o.shape == (2, 12) and o.dtype == x.dtype
    for m in range(2):
        for a in range(4):
            for b in range(3):
                assert o[m, a * 3 + b].item() == x[m, a, b].item()


@pytest.mark.parametrize("style", ["neox", "gptj"])
def test_rope_against_loops(style):
    t_, h_, d_, r2, p_ = 3, 2, 10, 3, 6                   # rotary dim 6 of 10
    x = rng.standard_normal((t_, h_, d_)).astype(np.float32)
    cos = rng.standard_normal((p_, r2)).astype(np.float32)
    sin = rng.standard_normal((p_, r2)).astype(np.float32)
    pos = np.array([5, 0, 2])
    (o,) = run_rope(torch.from_numpy(x), torch.from_numpy(cos), torch.from_numpy(sin),
                    torch.from_numpy(pos), style=style)
    want = x.copy()
    for t in range(t_):
        for h in range(h_):
            for i in range(r2):
                j1, j2 = (i, i + r2) if style == "neox" else (2 * i, 2 * i + 1)
                c, s = cos[pos[t], i], sin[pos[t], i]
                x1, x2 = x[t, h, j1], x[t, h, j2]
                want[t, h, j1] = x1 * c - x2 * s
                want[t, h, j2] = x2 * c + x1 * s
    np.testing.assert_array_equal(o.numpy(), want)
    # positions outside the table [0, P) rotate by NaN; the pass-through dims keep x
    bad = torch.tensor([5, 6, -1])
    (o2,) = run_rope(torch.from_numpy(x), torch.from_numpy(cos), torch.from_numpy(sin), bad,
                     style=style)
    rotated = slice(0, 2 * cos.shape[1])
    assert torch.equal(o2[0], o[0])
    assert o2[1:, :, rotated].isnan().all()
    assert torch.equal(o2[1:, :, 2 * cos.shape[1]:], torch.from_numpy(x[1:, :, 2 * cos.shape[1]:]))
    with pytest.raises(ValueError, match="sin table"):
        run_rope(torch.from_numpy(x), torch.from_numpy(cos), torch.from_numpy(sin[:, :1]), bad,
                 style=style)


def test_gather_negative_and_out_of_range():
    x = torch.arange(12, dtype=torch.float32).reshape(4, 3) + 1
    idx = torch.tensor([2, -1, 0, 4, 3, -7], dtype=torch.int32)
    (o,) = run_gather(x, idx)
    want = [x[2].tolist(), [0.0] * 3, x[0].tolist(), [0.0] * 3, x[3].tolist(), [0.0] * 3]
    assert o.tolist() == want


def test_gather_packed_ids_and_fp8_rows():
    x = (torch.arange(8, dtype=torch.float32).reshape(4, 2) + 1).to(torch.float8_e4m3fn)
    # MoE sorted ids: topk slot in the high byte, token in the low 24 bits
    idx = torch.tensor([(3 << 24) | 1, 2, 0xFFFFFF, (1 << 24) | 5, -1], dtype=torch.int64)
    (o,) = run_gather(x, idx, packed_ids=True)
    assert o.dtype == torch.float8_e4m3fn
    xb = x.view(torch.uint8)
    assert o.view(torch.uint8).tolist() == [xb[1].tolist(), xb[2].tolist(), [0, 0], [0, 0], [0, 0]]
    # without packed_ids the high byte makes the id out of range
    (o2,) = run_gather(x, idx)
    assert o2.view(torch.uint8).tolist() == [[0, 0], xb[2].tolist(), [0, 0], [0, 0], [0, 0]]


def test_smooth_dense_and_expert_indexed():
    x = rng.standard_normal((3, 8)).astype(np.float32)
    s = rng.standard_normal(8).astype(np.float32)
    (o,) = run_smooth(torch.from_numpy(x), torch.from_numpy(s))
    np.testing.assert_array_equal(o.numpy(), x * s)
    se = rng.standard_normal((4, 8)).astype(np.float32)
    x[1, 3] = np.inf                                     # a zero row stays zero even with inf
    ids = np.array([[0, 3], [-1, 4], [2, 2]], dtype=np.int32)
    (oe,) = run_smooth(torch.from_numpy(x), torch.from_numpy(se), torch.from_numpy(ids))
    assert oe.shape == (3, 2, 8)
    for m in range(3):
        for k in range(2):
            e = ids[m, k]
            want = x[m] * se[e] if 0 <= e < 4 else np.zeros(8, np.float32)
            np.testing.assert_array_equal(oe[m, k].numpy(), want)
