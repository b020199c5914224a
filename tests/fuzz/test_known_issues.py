"""Minimal reproducers of the fuzz findings whose fix belongs outside the front end
(``fuzz_harness.KNOWN_ISSUES``). Each is a strict xfail: when the owner fixes it, the
test passes, fails as XPASS, and the entry in KNOWN_ISSUES goes."""
from __future__ import annotations

import pytest
import torch

from fuzz_harness import KNOWN_ISSUES, Finding, run_both
from qfuse.dsl import load_source

ISSUES = {k.name: k for k in KNOWN_ISSUES}


def _xfail(name: str):
    issue = ISSUES[name]
    return pytest.mark.xfail(strict=True, reason=f"{issue.owner}: {issue.reason}")


def _agree(src: str, dims: dict) -> None:
    tp = load_source(src, "repro.qp")["p"]
    finding = run_both(tp, dims, "repro", src.encode())
    assert finding is None, finding.render()


@_xfail("triton-derived-dims")
@pytest.mark.parametrize("src", [
    "def p(x: bf16[M, A, B]):\n    h = act_mul(x)\n    return reduce(h), h\n",
    "def p(x: bf16[M, N]):\n    s = scale(x, fp8_e4m3fn, per_128x128)\n    return cast(s, f16)\n",
], ids=["act_mul-then-reduce", "cast-of-128x128-scale"])
def test_kernels_over_derived_dims_run_on_triton(src):
    _agree(src, dict(M=3, N=64, A=2, B=32))


@_xfail("float-outputs-beyond-4-ulp")
@pytest.mark.parametrize("src", [
    "def p(x: bf16[M, N]):\n    return gelu(x, approx=tanh)\n",
    "def p(x: f16[M, N]):\n    return gelu(x)\n",
    "def p(x: bf16[M, N]):\n    return norm(norm(x), kind=layer)\n",
], ids=["gelu-tanh", "gelu-erf-f16", "norm-of-norm"])
def test_unquantised_float_results_agree_within_the_rule(src):
    _agree(src, dict(M=3, N=64))


def test_each_known_issue_has_a_reproducer_here():
    assert set(ISSUES) == {"triton-derived-dims", "float-outputs-beyond-4-ulp"}


def test_known_issue_patterns_match_their_findings_only():
    derived = Finding("o", "run", "triton: NameError: name 'B' is not defined")
    floats = Finding("o", "run", "backends differ: gelu_0: 72 values within 114.8 ulp",
                     "gelu_0: 72 values within 114.8 ulp\n(norm/silu/gelu tolerance: yes)")
    strict = Finding("o", "run", "backends differ: add_0: 3 values within 9.0 ulp",
                     "add_0: 3 values within 9.0 ulp\n(norm/silu/gelu tolerance: no)")
    other_codes = Finding("o", "run", "backends differ: q: 9/64 codes differ", "",
                          b"def g(x: bf16[M, N]):\n")
    assert ISSUES["triton-derived-dims"].matches(derived)
    assert ISSUES["float-outputs-beyond-4-ulp"].matches(floats)
    assert not any(k.matches(strict) for k in KNOWN_ISSUES)
    assert not any(k.matches(other_codes) for k in KNOWN_ISSUES)
