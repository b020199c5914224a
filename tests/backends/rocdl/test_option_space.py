"""The CPU twin against the reference over the option space of ``scale`` / ``round``
(target, granularity, zero policy, E8M0 mode, recip, sat, integer mode, dtype_max) and
the norm / glue options, on pipelines written for each combination: a seeded sample
keeps CI short; every value of every option appears in it."""
from __future__ import annotations

import itertools
import random

import pytest
import torch

from qfuse.backends.reference.interpreter import run_pipeline
from qfuse.dsl import load_source
from qfuse.runtime.compare import compare_outputs, tolerant_stages
from qfuse.runtime.inputs import random_inputs
from qfuse.runtime.pipeline import QuantPipeline

TARGETS = {"fp8_e4m3fn": 448.0, "fp8_e4m3fnuz": 240.0, "i8": 127.0, "int4": 7.0}
GRANS = ["per_token", "per_1x32", "per_1x64", "per_1x128", "per_tensor"]


def _quant_cases() -> list:
    cases = []
    for target, gran, zero, recip, sat in itertools.product(
            TARGETS, GRANS, ["one", "floor", "zero"], ["div", "mul_rcp"], ["true", "false"]):
        dmax = TARGETS[target] * (0.5 if sat == "true" and zero == "floor" else 1.0)
        mode = ", mode=rne" if target in ("i8", "int4") and recip == "div" else ""
        cases.append((f"scale(x, {target}, {gran}, zero={zero}, dtype_max={dmax})",
                      f"round(x, s, {target}, recip={recip}, sat={sat}, dtype_max={dmax}{mode})"))
    for target, mode in itertools.product(["fp4_e2m1", "fp8_e4m3fn", "fp8_e4m3fnuz"],
                                          ["roundup", "even", "rne_legacy", "floor", "ceil"]):
        cases.append((f"scale(x, {target}, mx, e8m0={mode})", f"round(x, s, {target})"))
    rng = random.Random(14)
    mx = cases[-15:]
    return rng.sample(cases[:-15], 20) + mx


@pytest.mark.parametrize("scale,round_", _quant_cases())
def test_scale_round_options(scale, round_):
    src = f"def p(x: bf16[M, N]):\n    s = {scale}\n    q = {round_}\n    return q, s\n"
    _agree(src, [(3, 200), (2, 64), (1, 7)] if "mx" not in scale else [(3, 200), (1, 40)])


NORMS = ["norm(x, w, eps)", "norm(x, w, eps, gemma=true)", "norm(x, eps=eps)",
         "norm(x, w, eps, b=b, kind=layer)", "norm(x, w, eps, dtype=bf16)",
         "norm(x, w, eps, residual=r)[0]", "norm(x, w, eps, residual=r, residual_sum=rounded)[0]"]


@pytest.mark.parametrize("norm", NORMS)
def test_norm_options(norm):
    call = norm.replace("[0]", "")
    two = norm.endswith("[0]")
    lhs = "y, h" if two else "y"
    ret = "q, s, h" if two else "q, s"
    src = (f"def p(x: bf16[M, N], r: bf16[M, N], w: bf16[N], b: bf16[N], eps: f32 = 1e-6):\n"
           f"    {lhs} = {call}\n    s = scale(y, fp8_e4m3fn, per_token)\n"
           f"    q = round(y, s, fp8_e4m3fn)\n    return {ret}\n")
    _agree(src, [(3, 96), (1, 33)])


def test_glue_f16_and_scalars():
    src = ("def p(x: f16[M, N], y: f16[M, N], v: f32[N]):\n"
           "    a = cast(x + y, f16)\n    b = cast(smooth(x, v) * 0.1, bf16)\n"
           "    return a, b, cast(x * y + 2.5, f32)\n")
    _agree(src, [(4, 50), (0, 8)])


def _agree(src: str, shapes: list) -> None:
    tp = next(iter(load_source(src).values()))
    pipe = QuantPipeline(tp, backend="rocdl")
    for m, n in shapes:
        inputs = random_inputs(tp, {"M": m, "N": n}, seed=m + n)
        for k, v in inputs.items():          # a zero row and specials in the data
            if isinstance(v, torch.Tensor) and v.dim() == 2 and v.numel():
                v[0, : min(4, n)] = torch.tensor([0.0, -0.0, 1e-40, 3e4])[: min(4, n)].to(v.dtype)
        got = pipe(**inputs, _as_dict=True)
        want = run_pipeline(tp, inputs)
        ok, msg = compare_outputs(got, want, tolerant_stages(tp))
        assert ok, f"{src}\n{m}x{n}: {msg}"
        if not tolerant_stages(tp):
            assert msg == "exact", f"{src}\n{m}x{n}: {msg}"


@pytest.mark.parametrize("act", ["act_mul(x, act=silu)", "act_mul(x, act=gelu_tanh)",
                                 "silu(x) * x", "gelu(x, approx=tanh)", "act_mul(x, act=gelu)",
                                 "gelu(x) + x"])
def test_activations(act):
    src = (f"def p(x: bf16[M, N]):\n    h = {act}\n"
           f"    s = scale(h, fp8_e4m3fn, per_1x64, zero=floor)\n"
           f"    return round(h, s, fp8_e4m3fn), s, cast(h, bf16)\n")
    _agree(src, [(3, 256), (1, 130)])


def test_gelu_erf_over_its_range():
    """erf (Juffa's erff, stages._erf) across both branches, the switch at 475/512, the
    tails where 1 + erf cancels, +-inf and NaN, in rows of random data (the agreement
    rule's row term) and in f32 as it is."""
    tp = next(iter(load_source("def p(x: f32[M, N]):\n    return gelu(x)\n").values()))
    pipe = QuantPipeline(tp, backend="rocdl")
    sweep = torch.cat([torch.linspace(-10, 10, 2048), (475 / 512 * 2 ** 0.5) *
                       (1 + torch.arange(-8, 8) * 2.0 ** -23)])
    x = torch.randn(sweep.numel(), 64, generator=torch.Generator().manual_seed(5)) * 4
    x[:, 0] = sweep
    x[0, 1:6] = torch.tensor([float("inf"), -float("inf"), float("nan"), -0.0, 1e-40])
    ok, msg = compare_outputs(pipe(x=x, _as_dict=True), run_pipeline(tp, {"x": x}), 1)
    assert ok, msg
