"""``norm`` (rms / layer, residual variants, gemma) against numpy float64."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from qfuse.backends.reference.stages import run_norm
from ref_oracle import bf16_round

rng = np.random.default_rng(1)


def to_bf16(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(bf16_round(a.astype(np.float32))).to(torch.bfloat16)


def np_norm(u, w=None, b=None, eps=1e-6, kind="rms", gemma=False):
    u = u.astype(np.float64)
    if kind == "rms":
        y = u / np.sqrt(np.mean(u * u, axis=-1, keepdims=True) + eps)
    else:
        d = u - u.mean(axis=-1, keepdims=True)
        y = d / np.sqrt(np.mean(d * d, axis=-1, keepdims=True) + eps)
    if w is not None:
        y = y * ((1.0 + w.astype(np.float64)) if gemma else w.astype(np.float64))
    if b is not None:
        y = y + b.astype(np.float64)
    return y


def close(got: torch.Tensor, want: np.ndarray, ulps=6, row_abs=False):
    """Within a few fp32 ulps of float64: relative to each element, or (``row_abs``, for
    layer norm's mean cancellation and bias add) to the row's largest magnitude."""
    g = got.to(torch.float32).numpy().astype(np.float64)
    ref = np.abs(want).max(axis=-1, keepdims=True) if row_abs else 1e-6 * np.abs(want).max()
    tol = ulps * 2.0 ** -23 * (np.abs(want) + ref)
    assert np.all(np.abs(g - want) <= tol), np.max(np.abs(g - want) / (np.abs(want) + 1e-30))


@pytest.mark.parametrize("kind", ["rms", "layer"])
@pytest.mark.parametrize("with_w,gemma", [(False, False), (True, False), (True, True)])
def test_norm_matches_float64(kind, with_w, gemma):
    x = rng.standard_normal((5, 96)).astype(np.float32) * 3 + 0.5
    w = rng.standard_normal(96).astype(np.float32)
    b = rng.standard_normal(96).astype(np.float32) if kind == "layer" else None
    xt, wt = to_bf16(x), to_bf16(w)
    xs, ws = bf16_round(x), bf16_round(w)
    (y,) = run_norm(xt, wt if with_w else None, 1e-5, torch.from_numpy(b) if b is not None else None,
                    kind=kind, gemma=gemma)
    assert y.dtype == torch.float32 and y.shape == (5, 96)
    close(y, np_norm(xs, ws if with_w else None, b, np.float32(1e-5), kind, gemma),
          row_abs=kind == "layer")


@pytest.mark.parametrize("residual_sum", ["fp32", "rounded"])
def test_residual_variants(residual_sum):
    x = rng.standard_normal((4, 64)).astype(np.float32)
    r = rng.standard_normal((4, 64)).astype(np.float32) * 7
    w = rng.standard_normal(64).astype(np.float32)
    xs, rs, ws = bf16_round(x), bf16_round(r), bf16_round(w)
    y, h = run_norm(to_bf16(x), to_bf16(w), 1e-6, None, to_bf16(r), residual_sum=residual_sum)
    h_sum = (xs + rs).astype(np.float32)                  # one fp32 add, exact here
    assert h.dtype == torch.bfloat16
    np.testing.assert_array_equal(h.to(torch.float32).numpy(), bf16_round(h_sum))
    u = h_sum if residual_sum == "fp32" else bf16_round(h_sum)
    close(y, np_norm(u, ws, eps=np.float32(1e-6)))
    # the two variants genuinely differ
    other = "rounded" if residual_sum == "fp32" else "fp32"
    y2, _ = run_norm(to_bf16(x), to_bf16(w), 1e-6, None, to_bf16(r), residual_sum=other)
    assert not torch.equal(y, y2)


def test_residual_f16_and_f32():
    x = rng.standard_normal((2, 32)).astype(np.float32)
    r = rng.standard_normal((2, 32)).astype(np.float32)
    xh, rh = x.astype(np.float16), r.astype(np.float16)
    _, h = run_norm(torch.from_numpy(xh), None, 1e-6, None, torch.from_numpy(rh))
    assert h.dtype == torch.float16
    np.testing.assert_array_equal(h.numpy(), (xh.astype(np.float32) + rh.astype(np.float32)).astype(np.float16))
    _, h32 = run_norm(torch.from_numpy(x), None, 1e-6, None, torch.from_numpy(r))
    np.testing.assert_array_equal(h32.numpy(), x + r)


@pytest.mark.parametrize("dtype,tdt", [("bf16", torch.bfloat16), ("f16", torch.float16)])
def test_output_dtype_rounds_the_f32_result(dtype, tdt):
    x = torch.randn(3, 40, generator=torch.Generator().manual_seed(3))
    w = torch.randn(40, generator=torch.Generator().manual_seed(4))
    (y32,) = run_norm(x, w, 1e-6)
    (y,) = run_norm(x, w, 1e-6, dtype=dtype)
    assert y.dtype == tdt
    if dtype == "bf16":
        np.testing.assert_array_equal(y.to(torch.float32).numpy(), bf16_round(y32.numpy()))
    else:
        np.testing.assert_array_equal(y.numpy(), y32.numpy().astype(np.float16))


def test_eps_as_tensor_and_zero_row():
    x = torch.zeros(2, 16)
    x[1] = 1.0
    (y,) = run_norm(x, None, torch.tensor(1e-6))
    assert y[0].tolist() == [0.0] * 16
    close(y[1:], np_norm(np.ones((1, 16), np.float32), eps=np.float32(1e-6)))
