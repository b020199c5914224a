"""The all_reduce stage on 1, 2 and 3 gloo processes on the CPU, both backends: every
rank gets the bits of the reference's all-reduce-then-pipeline (the fp32 rank-order sum,
kept in fp32 or rounded to bf16, then residual add + RMSNorm + fp8 per-token / fp8 1x128 / MXFP4), the
same bits on every rank; the planner's collective step; the errors."""
from __future__ import annotations

import pytest
import torch

from ar_pipes import KINDS, expected, pipe, rank_inputs
from gloo_ranks import run_ranks, same_bits
from qfuse.backends.collective import use_group
from qfuse.dsl import load_source
from qfuse.runtime.pipeline import QuantPipeline
from qfuse.errors import QfuseError
from qfuse.runtime.compare import compare_outputs

BACKENDS = ("reference", "triton")


def _run_all(rank: int, world: int) -> dict:
    inp = rank_inputs(rank)
    out = {}
    with use_group("tp", None):               # the pipelines name their group tp
        for backend in BACKENDS:
            for kind in KINDS:
                q, s, h = pipe(f"ar_{kind}", backend)(inp["x"], inp["res"], inp["w"])
                out[(backend, kind)] = {"q": q, "s": s, "h": h}
    return out


def _warm() -> None:
    """Compile every pipeline here, before the ranks fork (they reuse the kernels)."""
    for backend in BACKENDS:
        for kind in KINDS:
            for prefix in ("ar", "post"):
                p = pipe(f"{prefix}_{kind}", backend)
                p.compiled(backend, "cpu:interp" if backend == "triton" else "cpu:ref")


@pytest.mark.parametrize("world", [1, 2, 3])
def test_every_rank_gets_the_reference_bits(tmp_path, world):
    _warm()
    ranks = run_ranks(tmp_path, world, _run_all)
    for kind in KINDS:
        want = expected(world, kind)
        for backend in BACKENDS:
            first = ranks[0][(backend, kind)]
            for r in range(world):
                assert same_bits(ranks[r][(backend, kind)], first), (backend, kind, r)
            if backend == "reference":
                assert same_bits(first, want), kind
            else:
                # the Triton kernels after the collective are bit-identical to the same
                # kernels run on the reference's reduced tensor ...
                assert same_bits(first, expected(world, kind, "triton")), kind
                # ... and agree with the reference (norm's row sums: docs/semantics.md)
                ok, text = compare_outputs(first, want, 1)
                assert ok, text


def test_the_rank_order_matters_here():
    """The inputs are such that another summation order gives other bits (else the
    tests above could not tell the orders apart)."""
    parts = [rank_inputs(r)["x"].float() for r in range(3)]
    fwd = (parts[0] + parts[1]) + parts[2]
    rev = (parts[2] + parts[1]) + parts[0]
    assert fwd[3, 0] == 2.0**25 and rev[3, 0] == 2.0**25 + 4


def test_the_planner_puts_the_collective_between_kernels():
    from qfuse.runtime.compiler import compile_pipeline
    from ar_pipes import PROGRAMS
    cp = compile_pipeline(PROGRAMS["ar_fp8"], "triton", "cpu:interp")
    assert [s.space for s in cp.steps] == ["collective", "row"]
    assert cp.steps[0].source is None                       # a host step: nothing rendered
    assert cp.steps[1].reason.startswith("after-collective")
    assert cp.steps[1].inputs[0] == cp.steps[0].outputs[0]  # the kernel reads the sum
    assert 'group = "tp"' in cp.fused_ir and 'order = "rank"' in cp.fused_ir


_PER_TENSOR = load_source(
    "def pt(x: bf16[M, N]):\n    r = all_reduce(x)\n    s = scale(r, fp8_e4m3fn, per_tensor)\n"
    "    return round(r, s, fp8_e4m3fn), s\n", "pt.qp")["pt"]


def _per_tensor(rank: int, world: int) -> dict:
    x = rank_inputs(rank)["x"]
    out = {}
    for backend in BACKENDS:
        q, s = QuantPipeline(_PER_TENSOR, backend=backend)(x)
        out[backend] = {"q": q, "s": s}
    return out


def test_a_grid_wide_amax_after_the_collective_reads_the_sum(tmp_path):
    """A dynamic per_tensor scale recomputes its input's chain in its amax kernel, but
    never a host step: the amax kernel reads the reduced tensor from memory."""
    from qfuse.runtime.compiler import compile_pipeline
    cp = compile_pipeline(_PER_TENSOR, "triton", "cpu:interp")
    assert [s.space for s in cp.steps] == ["collective", "tensor_amax", "row"]
    assert all(c.stage != "all_reduce" for s in cp.steps[1:] for c in s.program.calls)
    (got,) = run_ranks(tmp_path, 1, _per_tensor)
    reduced = rank_inputs(0)["x"]                      # one rank: the sum is x itself
    want = QuantPipeline(load_source(
        "def p(r: bf16[M, N]):\n    s = scale(r, fp8_e4m3fn, per_tensor)\n"
        "    return round(r, s, fp8_e4m3fn), s\n", "p.qp")["p"], backend="reference")(reduced)
    for backend in BACKENDS:
        ok, text = compare_outputs(got[backend], {"q": want[0], "s": want[1]}, 0)
        assert ok, (backend, text)


def test_without_a_process_group_the_error_names_the_fix():
    inp = rank_inputs(0)
    for backend in BACKENDS:
        with pytest.raises(QfuseError, match=r"init_process_group"):
            pipe("ar_fp8", backend)(inp["x"], inp["res"], inp["w"])


def _unbound(rank: int, world: int):
    inp = rank_inputs(rank)
    try:
        pipe("ar_fp8", "reference")(inp["x"], inp["res"], inp["w"])
    except QfuseError as e:
        return str(e)
    return "no error"


def test_an_unbound_group_name_is_an_error_naming_use_group(tmp_path):
    _warm()
    (msg,) = run_ranks(tmp_path, 1, _unbound)
    assert "process group 'tp' is not bound" in msg and "use_group('tp', group)" in msg


@pytest.mark.parametrize("call, message", [
    ("all_reduce(x, group=3)", "option group takes a name"),
    ("all_reduce(x, op=max)", "option op='max' is not one of sum"),
    ("all_reduce(x, order=ring)", "option order='ring' is not one of rank, native"),
    ("all_reduce(ids)", "x must be bf16, f16 or f32, got i32"),
])
def test_bad_calls_are_located_errors(call, message):
    from qfuse.dsl import load_source
    src = f"def p(x: bf16[M, N], ids: i32[M, N]):\n    y = {call}\n    return y\n"
    with pytest.raises(QfuseError, match=message) as e:
        load_source(src, "bad.qp")
    assert "bad.qp:2:" in str(e.value)


def test_the_result_dtype():
    from qfuse.dsl import load_source
    src = ("def p(x: bf16[M, N]):\n    a = all_reduce(x)\n    b = all_reduce(x, dtype=f32)\n"
           "    return a, b\n")
    tp = load_source(src, "t.qp")["p"]
    assert [str(v.type) for v in tp.returns] == ["bf16[M, N]", "f32[M, N]"]


def test_use_group_refuses_a_bad_name():
    with pytest.raises(QfuseError, match="identifier"):
        with use_group("not a name", None):
            pass


_ORDERS = load_source(
    "def rk(x: bf16[M, N], w: bf16[N]):\n    return norm(all_reduce(x), w)\n\n"
    "def nat(x: bf16[M, N], w: bf16[N]):\n    return norm(all_reduce(x, order=native), w)\n",
    "orders.qp")


def _int_parts(rank: int, m: int) -> tuple:
    """Integer-valued partial sums (every order gives the exact sum), every other row of
    a taller tensor (strided rows)."""
    g = torch.Generator().manual_seed(50 + rank)
    tall = torch.randint(-64, 65, (2 * m, 24), generator=g).to(torch.bfloat16)
    return tall[::2], torch.ones(24, dtype=torch.bfloat16)


def _orders(rank: int, world: int) -> dict:
    out = {}
    for m in (4, 0):                          # M = 0: an empty all-gather / all-reduce
        x, w = _int_parts(rank, m)
        for name in ("rk", "nat"):
            out[(m, name)] = QuantPipeline(_ORDERS[name], backend="reference")(x, w)
    return out


def test_native_order_equals_rank_order_on_exact_sums(tmp_path):
    """order=native (torch.distributed.all_reduce, the collective's order) gives the
    rank-order bits where the partial sums are exact; strided rows and M = 0 work (the
    reference backend: the collective is the same host step on both)."""
    ranks = run_ranks(tmp_path, 3, _orders)
    for m in (4, 0):
        total = sum(_int_parts(r, m)[0].float() for r in range(3)).bfloat16()
        for r in ranks:
            a, b = r[(m, "rk")], r[(m, "nat")]
            assert a.shape == (m, 24) and torch.equal(a, b), m
        if m:
            ref = load_source("def p(x: bf16[M, N], w: bf16[N]):\n    return norm(x, w)\n",
                              "p.qp")["p"]
            assert torch.equal(ranks[0][(m, "rk")],
                               QuantPipeline(ref, backend="reference")(total, _int_parts(0, m)[1]))
