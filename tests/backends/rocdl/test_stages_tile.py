"""``per_128x128`` on the ROCDL backend (the ``tile`` iteration space): the CPU twin against
the reference on the example pipeline and on dynamic / static / computed-input tiles,
with M and N not multiples of 128 (partial tiles), M = 0 and 1, a zero tile, NaN and
large values; and the GPU form still lowers (rocdl, nvvm)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from qfuse.backends.base import parse_target
from qfuse.backends.reference.interpreter import run_pipeline
from qfuse.backends.rocdl.lower import gpu_stage
from qfuse.dsl import load_file, load_source
from qfuse.runtime.compare import compare_outputs
from qfuse.runtime.compiler import compile_pipeline
from qfuse.runtime.inputs import random_inputs
from qfuse.runtime.pipeline import QuantPipeline

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

CASES = {
    "example": next(tp for f in EXAMPLES.glob("fp8.qp")
                    for n, tp in load_file(f).items() if n == "block128x128_fp8"),
    "computed_i8": "def p(x: bf16[M, N], y: bf16[M, N]):\n    h = x * 0.5 + y\n"
                   "    s = scale(h, i8, per_128x128, zero=floor)\n"
                   "    return round(h, s, i8, recip=mul_rcp), s\n",
    "static_fnuz": "def p(x: bf16[M, N], s: f32[cdiv(M, 128), cdiv(N, 128)]):\n"
                   "    return round(x, s, fp8_e4m3fnuz, granularity=per_128x128)\n",
    "zero_one_f16": "def p(x: f16[M, N]):\n    s = scale(x, fp8_e4m3fn, per_128x128, zero=one)\n"
                    "    return round(x, s, fp8_e4m3fn), s\n",
}


def _tp(case):
    src = CASES[case]
    return src if not isinstance(src, str) else next(iter(load_source(src).values()))


@pytest.mark.parametrize("case", sorted(CASES))
def test_tiles_match_the_reference(case):
    tp = _tp(case)
    pipe = QuantPipeline(tp, backend="rocdl")
    for m, n in [(300, 200), (129, 256), (1, 7), (0, 16)]:
        inputs = random_inputs(tp, {"M": m, "N": n}, seed=m + n)
        x = inputs["x"]
        if m > 130:
            x[1, :3] = torch.tensor([float("nan"), -0.0, 3e4]).to(x.dtype)
            x[128:, 128:] = 0                      # a zero tile (partial)
        got, want = pipe(**inputs, _as_dict=True), run_pipeline(tp, inputs)
        ok, msg = compare_outputs(got, want, 0)
        assert ok and msg == "exact", f"{case} {m}x{n}: {msg}"


def test_a_norm_before_the_tile_runs_in_a_kernel_of_its_own():
    from qfuse.runtime.compare import tolerant_stages
    src = ("def p(x: bf16[M, N], w: bf16[N]):\n    y = norm(x, w)\n"
           "    s = scale(y, fp8_e4m3fn, per_128x128)\n    return round(y, s, fp8_e4m3fn), s\n")
    tp = next(iter(load_source(src).values()))
    cp = compile_pipeline(tp, "rocdl", "cpu:interp")
    assert [s.space for s in cp.steps] == ["row", "tile"]
    inputs = random_inputs(tp, {"M": 140, "N": 130}, seed=2)
    got = QuantPipeline(tp, backend="rocdl")(**inputs, _as_dict=True)
    ok, msg = compare_outputs(got, run_pipeline(tp, inputs), tolerant_stages(tp))
    assert ok, msg


def test_the_gpu_form_lowers():
    for case in ("example", "static_fnuz"):
        for step in compile_pipeline(_tp(case), "rocdl", "any").steps:
            for target, text in step.source.gpu.items():
                assert "llvm.func" in gpu_stage(text, parse_target(target)), (case, target)
