"""The agreement rule between backends (qfuse/runtime/compare.py, docs/semantics.md)."""
from __future__ import annotations

import torch

from qfuse.dsl import load_source
from qfuse.runtime.compare import compare_outputs, float_tolerance, tolerant_stages

EPS = 2.0 ** -23


def test_exact_formats_and_exact_pipelines_must_match_bit_for_bit():
    q = torch.tensor([1, 2, 3], dtype=torch.uint8)
    assert compare_outputs({"q": q}, {"q": q.clone()}, 0) == (True, "exact")
    ok, text = compare_outputs({"q": q + 1}, {"q": q}, 0)
    assert not ok and "3/3 codes differ by one step" in text
    x = torch.tensor([[1.0, 2.0]])
    assert not compare_outputs({"y": x + EPS}, {"y": x}, 0)[0]       # k = 0: no tolerance


def test_float_tolerance_scales_with_the_row_and_the_inexact_stages():
    w = torch.tensor([[4.0, 1e-6, -2.0], [1e-3, 2e-3, 0.0]])
    tol = float_tolerance(w, 1)
    assert torch.allclose(tol[0], torch.full((3,), 4 * EPS * 4.0))     # the row's max
    assert torch.allclose(tol[1], torch.full((3,), 4 * EPS * 2e-3))
    assert torch.equal(float_tolerance(w, 2), 2 * tol)
    near = w.clone()
    near[0, 1] += 3 * 4 * EPS           # 3 ulp of the row's scale on a cancelled element
    assert compare_outputs({"y": near}, {"y": w}, 1)[0]
    near[0, 1] += 4 * 4 * EPS
    assert not compare_outputs({"y": near}, {"y": w}, 1)[0]
    assert compare_outputs({"y": near}, {"y": w}, 2)[0]
    nan = torch.tensor([[float("nan"), 1.0]])
    assert compare_outputs({"y": nan.clone()}, {"y": nan}, 0)[0]


def test_codes_may_land_one_step_away_rarely_and_only_in_inexact_pipelines():
    w = torch.zeros(2000, dtype=torch.uint8)
    g = w.clone()
    g[0] = 1
    assert compare_outputs({"q": g}, {"q": w}, 1)[0]
    assert not compare_outputs({"q": g}, {"q": w}, 0)[0]
    g[:3] = 1
    assert not compare_outputs({"q": g}, {"q": w}, 1)[0]            # 3 in 2000: too many
    g = w.clone()
    g[0] = 2
    assert not compare_outputs({"q": g}, {"q": w}, 1)[0]            # two steps


def test_counting_inexact_stages():
    p = load_source("""
def exact(x: f32[S, M, N]):
    return reduce(x)

def act_then_sum(x: f32[S, M, N2]):
    return reduce(act_mul(x))

def two_norms(x: bf16[M, N]):
    return norm(norm(x), kind=layer)
""", "k.qp")
    assert tolerant_stages(p["exact"]) == 0           # a sum in order is exact
    assert tolerant_stages(p["act_then_sum"]) == 2
    assert tolerant_stages(p["two_norms"]) == 2
