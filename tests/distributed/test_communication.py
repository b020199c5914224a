"""qfuse.aiter.ops.communication.all_reduce_rmsnorm_quant on its all_reduce pipeline, on
3 gloo processes, both backends, with and without the bias: every rank gets the same
bits, those of the single-process pipeline (rmsnorm2d_fwd_with_add_smoothquant's
numerics) run on the rank-order fp32 sum rounded to bf16 (random partial sums: the order
is the reference's, not the collective's)."""
from __future__ import annotations

import pytest
import torch

from gloo_ranks import run_ranks, same_bits
from qfuse.backends.collective import ordered_sum
from qfuse.runtime.compare import compare_outputs

M, N = 5, 96
BACKENDS = ("reference", "triton")


def _inputs(rank: int):
    g = torch.Generator().manual_seed(300 + rank)
    part = (torch.randn(M, N, generator=g) * 3).bfloat16()
    part[1] = 0                                     # row 1 sums to zero: scale 0, codes 0
    shared = torch.Generator().manual_seed(9)
    res = torch.randn(M, N, generator=shared).bfloat16()
    res[1] = 0
    w = torch.randn(N, generator=shared).bfloat16()
    b = torch.randn(N, generator=shared).bfloat16()
    xs = torch.rand(N, generator=shared) + 0.5
    return part, res, xs, w, b


def _rank(rank: int, world: int) -> dict:
    import qfuse.aiter as aiter
    from qfuse.aiter.ops.communication import all_reduce_rmsnorm_quant
    part, res, xs, w, b = _inputs(rank)
    out = {}
    for backend in BACKENDS:
        with aiter.use_backend(backend):
            for bias in (b, None):
                q, h, s = all_reduce_rmsnorm_quant(part, res, xs, w, bias, 1e-6)
                out[(backend, bias is None)] = {"q": q, "h": h, "s": s}
    return out


def _single(reduced, backend: str, bias: bool) -> dict:
    """The same numerics in one process (norm.qp through qfuse.aiter.ops.norm)."""
    import qfuse.aiter as aiter
    from qfuse.aiter.ops.norm import OPUS, _bind
    _, res, xs, w, b = _inputs(0)
    meta = torch.empty(reduced.shape, dtype=torch.int8, device="meta")
    with aiter.use_backend(backend):
        outs, m = _bind("single", meta, reduced, meta, w, 1e-6, OPUS, xscale=xs,
                        residual_in=res, residual_out=reduced, rms_bias=b if bias else None)
    return {"q": outs["q"], "h": outs["res_out"], "s": outs["s"].view(m, 1)}


@pytest.mark.parametrize("world", [3])
def test_all_reduce_rmsnorm_quant_on_gloo(tmp_path, world):
    import qfuse.aiter as aiter
    from qfuse.aiter.ops.communication import all_reduce_rmsnorm_quant
    for backend in BACKENDS:                  # compile here: the forked ranks reuse it
        with aiter.use_backend(backend), pytest.raises(ValueError):
            all_reduce_rmsnorm_quant(*_inputs(0)[:4], None, 1e-6)     # no process group
    ranks = run_ranks(tmp_path, world, _rank)
    reduced = ordered_sum([_inputs(r)[0] for r in range(world)], torch.bfloat16)
    for backend in BACKENDS:
        for no_bias in (False, True):
            got = ranks[0][(backend, no_bias)]
            assert all(same_bits(r[(backend, no_bias)], got) for r in ranks)
            want = _single(reduced, "reference", not no_bias)
            assert got["q"].dtype == torch.int8 and got["s"].shape == (M, 1)
            if backend == "reference":
                assert same_bits(got, want)
            else:
                ok, text = compare_outputs(got, want, 1)
                assert ok, text
