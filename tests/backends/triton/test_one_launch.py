"""A dynamic per-tensor scale and its row kernel as ONE launch where the tensor fits one
program (qfuse/backends/triton/launch/one_launch.py): chosen at bind time from the shape,
and bit-identical to the two launches it replaces (and to the reference), in the
interpreter at, below and above ONE_PROGRAM_MAX_ELEMENTS and at M = 0 and 1."""
import pytest
import torch

from qfuse.backends.reference import run_pipeline as ref_run
from qfuse.backends.triton.launch import one_launch
from qfuse.backends.triton.runner import TritonRunner
from qfuse.dsl import load_source
from qfuse.runtime.compiler import compile_pipeline

SRC = """
def per_tensor_fp8(x: bf16[M, N]):
    s = scale(x, fp8_e4m3fn, per_tensor)
    return round(x, s, fp8_e4m3fn), s

def rms_per_tensor_i8(x: bf16[M, N], w: bf16[N], eps: f32 = 1e-6):
    y = norm(x, w, eps)
    s = scale(y, i8, per_tensor, zero=one)
    return round(y, s, i8), s
"""
P = load_source(SRC, "one_launch.qp")
LIMIT = one_launch.ONE_PROGRAM_MAX_ELEMENTS


def _bits(t):
    return t.view(torch.uint8) if t.element_size() == 1 else t.view(torch.int32)


def _run(name, inputs, one: bool, monkeypatch):
    monkeypatch.setenv(one_launch.ENV, "1" if one else "0")
    runner = TritonRunner(compile_pipeline(P[name], "triton", "cpu:interp"), {})
    out = runner.run(dict(inputs), key="sig")
    launches = len(runner._fast["sig"][0])
    return out, launches


def _inputs(name, m, n, seed):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(m, n, generator=g) * 3).to(torch.bfloat16)
    if m:
        x[0, 0] = 77.0                     # a clear maximum in the first program's rows
    if name == "per_tensor_fp8":
        return {"x": x}
    return {"x": x, "w": (torch.rand(n, generator=g) + 0.5).to(torch.bfloat16), "eps": 1e-6}


# (M, N, one launch?): tile = np2(M) x np2(N) elements against LIMIT
CASES = [
    (1, 96, True),                          # decode: one row
    (1, LIMIT, True),                       # one row at the limit
    (1, LIMIT + 1, False),                  # one row past it (np2 doubles the block)
    (3, 100, True),
    (LIMIT // 256, 256, True),              # at the limit: 64 x 256
    (LIMIT // 256 + 1, 256, False),         # one row more: 128 x 256 rows of block
    (0, 64, True),                          # no rows: the scale of nothing, no codes
]


@pytest.mark.parametrize("name", sorted(P))
@pytest.mark.parametrize("m,n,one", CASES)
def test_one_launch_is_bit_identical_to_two(name, m, n, one, monkeypatch):
    inputs = _inputs(name, m, n, seed=m * 1000 + n)
    got, launches = _run(name, inputs, True, monkeypatch)
    want, two = _run(name, inputs, False, monkeypatch)
    assert two == 2 and launches == (1 if one else 2), (launches, two)
    ref = ref_run(P[name], dict(inputs))
    assert list(got) == list(want) == list(ref)
    for k in got:
        assert torch.equal(_bits(got[k]), _bits(want[k])), k
        # (a norm's fp32 row sum may differ from the reference's in its order, which moves
        # a scale by an ulp: docs/semantics.md; the two launch paths share that order)
        if name == "per_tensor_fp8":
            assert torch.equal(_bits(got[k]), _bits(ref[k].contiguous())), k


def test_zero_tensor_takes_the_zero_policy_in_one_launch(monkeypatch):
    """All zeros: amax 0 gives scale 0 (zero=zero, fp8) and 1 (zero=one), as two launches."""
    for name in P:
        inputs = _inputs(name, 2, 40, 0)
        inputs["x"] = torch.zeros(2, 40, dtype=torch.bfloat16)
        got, launches = _run(name, inputs, True, monkeypatch)
        want, _ = _run(name, inputs, False, monkeypatch)
        assert launches == 1
        for k in got:
            assert torch.equal(_bits(got[k]), _bits(want[k])), (name, k)


def test_seen_signature_reuses_the_one_launch(monkeypatch):
    """A second call of the same signature goes through the bound plan (run_seen) and
    still gives the reference's bits for new data."""
    monkeypatch.setenv(one_launch.ENV, "1")
    runner = TritonRunner(compile_pipeline(P["per_tensor_fp8"], "triton", "cpu:interp"), {})
    runner.run(_inputs("per_tensor_fp8", 4, 64, 1), key="sig")
    fresh = _inputs("per_tensor_fp8", 4, 64, 2)
    got = runner.run_seen("sig", dict(fresh))
    ref = ref_run(P["per_tensor_fp8"], dict(fresh))
    for k in got:
        assert torch.equal(_bits(got[k]), _bits(ref[k].contiguous())), k


def test_the_source_and_its_refusals():
    cp = compile_pipeline(P["per_tensor_fp8"], "triton", "cpu:interp")
    amax, rows = (s.source for s in cp.steps)
    src = one_launch.one_launch_source(amax, rows)
    assert src.grid == ("1",) and "ONE_PROGRAM" not in dict(src.constexprs)
    assert f"    {amax.name}(" in src.text and "tl.debug_barrier()" in src.text
    assert {t.name for t in src.tensors if t.role == "output"} == {t for t, _ in src.outputs}
    assert one_launch.one_launch_source(rows, amax) is None      # not an amax kernel first
    assert one_launch.one_launch_source(amax, amax) is None
