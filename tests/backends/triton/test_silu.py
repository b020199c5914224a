"""qf_silu (silu(x) = x / (1 + exp(-x)), to a few ulp, docs/semantics.md) against float64:
relative error on normal results, the flush below 2^-126 on NVIDIA, and the specials."""
import numpy as np
import pytest
import torch

from qf_triton_testlib import DEVICES, k_silu, run_rows

ULPS = 8          # ex2.approx + rcp.approx (NVIDIA), or exp + fdiv: a few ulp each


def silu64(x):
    x = np.asarray(x, np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        return x / (1.0 + np.exp(-x))


@pytest.mark.parametrize("device", DEVICES)
def test_relative_error_on_normal_results(device):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(20000) * s for s in (0.01, 1, 4, 20)] +
                       [np.linspace(-87, 80, 20000)]).astype(np.float32)
    (got,) = run_rows(k_silu, device, [x], [torch.float32])
    want = silu64(x)
    normal = np.abs(want) >= 2.0 ** -126
    ulp = np.spacing(np.abs(want[normal]).astype(np.float32)).astype(np.float64)
    err = np.abs(got.numpy()[normal].astype(np.float64) - want[normal]) / ulp
    # the exp's argument x * log2(e) is rounded first: its error grows with |x|
    allowed = ULPS + np.abs(x[normal]).astype(np.float64) * 1.5
    assert (err <= allowed).all(), (x[normal][err > allowed][:5], err[err > allowed][:5])


@pytest.mark.parametrize("device", DEVICES)
def test_specials(device):
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -100.0, -88.5, 100.0, 1e30, -1e30],
                 np.float32)
    (got,) = run_rows(k_silu, device, [x], [torch.float32])
    g = got.numpy()
    assert g[0] == 0 and not np.signbit(g[0]) and g[1] == 0 and np.signbit(g[1])
    assert g[2] == np.inf and np.isnan(g[3]) and np.isnan(g[4])
    # below 2^-126 the result is tiny or a flushed -0: never larger, never positive
    assert (np.abs(g[5:7]) < 2.0 ** -120).all() and np.signbit(g[5:7]).all()
    assert g[7] == 100.0 and g[8] == np.float32(1e30) and g[9] == 0 and np.signbit(g[9])
