"""Programs the fuzzer found the backends disagreeing on, kept as plain tests: each runs
on the reference and on Triton in the interpreter and must agree by docs/semantics.md
("Agreement", qfuse/runtime/compare.py)."""
from __future__ import annotations

import pytest

from fuzz_harness import run_both
from qfuse.dsl import load_source


def _agree(src: str, dims: dict) -> None:
    tp = load_source(src, "repro.qp")["p"]
    finding = run_both(tp, dims, "repro", src.encode())
    assert finding is None, finding.render()


@pytest.mark.parametrize("src", [
    # the second kernel sees B only inside B / 2: the runtime passes the pipeline's sizes
    "def p(x: bf16[M, A, B]):\n    h = act_mul(x)\n    return reduce(h), h\n",
    # the cast kernel sees M and N only inside cdiv(M, 128), cdiv(N, 128)
    "def p(x: bf16[M, N]):\n    s = scale(x, fp8_e4m3fn, per_128x128)\n    return cast(s, f16)\n",
], ids=["act_mul-then-reduce", "cast-of-128x128-scale"])
def test_kernels_over_derived_dims_run_on_triton(src):
    _agree(src, dict(M=3, N=64, A=2, B=32))


@pytest.mark.parametrize("src", [
    "def p(x: bf16[M, N]):\n    return gelu(x, approx=tanh)\n",
    "def p(x: f16[M, N]):\n    return gelu(x)\n",
    "def p(x: bf16[M, N]):\n    return norm(norm(x), kind=layer)\n",
], ids=["gelu-tanh", "gelu-erf-f16", "norm-of-norm"])
def test_unquantised_float_results_agree_within_the_rule(src):
    _agree(src, dict(M=3, N=64))
