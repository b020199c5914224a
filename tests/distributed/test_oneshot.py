"""The one-shot all-reduce kernel in the Triton interpreter, the ranks' buffers simulated
as separate tensors of one process (a peer table built from their addresses): on every
simulated rank it gives the bits of the two-step path (the rank-order fp32 sum, then the
same fused kernel) and agrees with the reference's all-reduce-then-pipeline, for fp8
per-token, fp8 1x128 and MXFP4, on 1, 2 and 3 ranks; what it refuses; the dispatcher's
choice on the CPU. The symmetric-memory glue (qfuse/distributed/symm.py) is not run here:
it needs CUDA GPUs."""
from __future__ import annotations

import pytest
import torch

from ar_pipes import KINDS, PROGRAMS, SUM_DTYPE, expected, pipe, rank_inputs
from gloo_ranks import run_ranks, same_bits
from qfuse.backends.collective import ordered_sum
from qfuse.distributed import FusedAllReduce, OneShotKernel, peer_table, plan_oneshot
from qfuse.dsl import load_source
from qfuse.errors import QfuseError, UnsupportedError
from qfuse.runtime.compare import compare_outputs
from qfuse.runtime.compiler import compile_pipeline

_KERNELS: dict = {}


def kernel(name: str) -> OneShotKernel:
    if name not in _KERNELS:
        _KERNELS[name] = OneShotKernel(plan_oneshot(compile_pipeline(PROGRAMS[name], "triton",
                                                                     "cpu:interp")))
    return _KERNELS[name]


def _simulate(name: str, parts: list, shared: dict) -> list:
    """The one-shot kernel on each simulated rank: rank r binds its own buffer."""
    bufs = [p.contiguous() for p in parts]
    table = peer_table(bufs)
    return [kernel(name)(table, bufs[r], shared) for r in range(len(bufs))]


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("kind", KINDS)
def test_oneshot_gives_the_two_step_bits_on_every_rank(kind, world):
    parts = [rank_inputs(r) for r in range(world)]
    outs = _simulate(f"ar_{kind}", [p["x"] for p in parts],
                     {"res": parts[0]["res"], "w": parts[0]["w"]})
    two_step = expected(world, kind, "triton")
    for r, out in enumerate(outs):
        assert same_bits(out, two_step), (kind, world, r)
    ok, text = compare_outputs(outs[0], expected(world, kind), 1)
    assert ok, text


@pytest.mark.filterwarnings("ignore::RuntimeWarning")     # numpy: inf - inf, overflow
def test_edge_values_sum_as_the_ordered_sum():
    """-0.0 on every rank stays -0.0 (the sum starts from rank 0's value, not from 0),
    +inf + -inf is NaN, a NaN on one rank makes its row NaN, a sum past the bf16 range
    rounds to inf: the same bits as the two-step path."""
    m, n = 5, 160
    world = 3
    parts = [rank_inputs(r, m, n)["x"] for r in range(world)]
    for r, p in enumerate(parts):
        p[0] = -0.0
        p[1, 7] = float("inf") if r == 0 else (float("-inf") if r == 1 else 1.0)
        p[2, 3] = float("nan") if r == 2 else 2.0
        p[3, :4] = 3.0e38 if r < 2 else 1.0
    shared = {"res": torch.zeros(m, n, dtype=torch.bfloat16),
              "w": torch.ones(n, dtype=torch.bfloat16)}
    for kind in ("g128", "fp8"):              # bf16 and f32 sums
        outs = _simulate(f"ar_{kind}", parts, shared)
        reduced = ordered_sum(parts, SUM_DTYPE[kind])
        assert torch.equal(reduced[0].view(torch.int16 if reduced.dtype == torch.bfloat16
                                           else torch.int32), (reduced[0] * 0 - 0.0).view(
            torch.int16 if reduced.dtype == torch.bfloat16 else torch.int32))
        q, s, h = pipe(f"post_{kind}", "triton")(reduced, shared["res"], shared["w"])
        for out in outs:
            ok, text = compare_outputs(out, {"q": q, "s": s, "h": h}, 0)
            assert ok, (kind, text)


def test_the_generated_kernel_reads_the_peers_not_the_reduced_tensor():
    src = kernel("ar_fp8").plan.source
    assert "qfd_peer_sum(qfd_peers_ptr, QFD_WORLD, " in src.text
    assert "tl.load(all_reduce_0_ptr" not in src.text
    assert src.args[0].name == "qfd_peers_ptr" and src.args[-1].name == "QFD_WORLD"
    assert src.tensor("all_reduce_0").dtype == "bf16"     # bound to this rank's bf16 buffer
    bf16 = kernel("ar_g128").plan.source.text
    assert "qf_round_bf16(qfd_peer_sum(" in bf16          # rounded as the collective rounds


def _compiled(body: str, name: str = "p"):
    src = f"def {name}(x: bf16[M, N], w: bf16[N]):\n{body}"
    return compile_pipeline(load_source(src, "t.qp")[name], "triton", "cpu:interp")


@pytest.mark.parametrize("body, message", [
    ("    y = norm(all_reduce(x, order=native), w)\n    return y\n", "order=native"),
    ("    r = all_reduce(x)\n    y = norm(r, w)\n    return y, r\n", "is a result"),
    ("    y = norm(x, w)\n    return y\n", "compiles to steps"),
    ("    r = all_reduce(x)\n    s = scale(r, fp8_e4m3fn, per_tensor)\n"
     "    return round(r, s, fp8_e4m3fn), s\n", "compiles to steps"),
])
def test_what_the_oneshot_path_refuses(body, message):
    with pytest.raises(UnsupportedError, match=message):
        plan_oneshot(_compiled(body))


def test_the_reference_backend_has_no_oneshot_kernel():
    cp = compile_pipeline(PROGRAMS["ar_fp8"], "reference", "cpu:ref")
    with pytest.raises(UnsupportedError, match="triton backend"):
        plan_oneshot(cp)


def test_a_bad_peer_table_is_refused():
    parts = [rank_inputs(r)["x"] for r in range(2)]
    k = kernel("ar_fp8")
    with pytest.raises(UnsupportedError, match="int64 vector"):
        k(peer_table(parts).to(torch.int32), parts[0], {"res": parts[0], "w": parts[0][0]})


def test_the_dispatcher_on_the_cpu_takes_the_two_step_path():
    fused = FusedAllReduce(pipe("ar_fp8", "triton"), max_rows=64)
    x = rank_inputs(0)["x"]
    assert fused.choose(x) == "two_step"                 # no CUDA, no symmetric memory
    forced = FusedAllReduce(pipe("ar_fp8", "triton"), max_rows=64, path="oneshot")
    with pytest.raises(QfuseError, match="symmetric memory needs CUDA"):
        forced(x, rank_inputs(0)["res"], rank_inputs(0)["w"])
    with pytest.raises(QfuseError, match="path must be one of"):
        FusedAllReduce(pipe("ar_fp8", "triton"), 64, path="fast")


def _fused_rank(rank: int, world: int):
    inp = rank_inputs(rank)
    from qfuse.distributed import use_group
    with use_group("tp", None):
        q, s, h = FusedAllReduce(pipe("ar_g128", "triton"), max_rows=64)(
            inp["x"], inp["res"], inp["w"])
    return {"q": q, "s": s, "h": h}


def test_the_dispatcher_runs_the_two_step_path_on_gloo(tmp_path):
    pipe("ar_g128", "triton").compiled("triton", "cpu:interp")
    ranks = run_ranks(tmp_path, 2, _fused_rank)
    want = expected(2, "g128", "triton")
    assert all(same_bits(r, want) for r in ranks)


def test_the_symmetric_memory_gate_on_the_cpu():
    """symm.py's version and device check (its glue itself needs CUDA GPUs: unrun)."""
    from qfuse.distributed import symm
    assert "needs CUDA" in symm.unavailable(torch.device("cpu"))
    with pytest.raises(RuntimeError, match="symmetric memory: .*needs CUDA"):
        symm.SymmetricBuffer(4, 64, torch.bfloat16, torch.device("cpu"))
    assert symm._version() >= (2, 0)
