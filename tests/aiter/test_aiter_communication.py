"""qfuse.aiter.ops.communication.all_reduce_rmsnorm_quant with several gloo processes on
the CPU: every rank gets the all-reduce + residual + RMSNorm + bias + SmoothQuant + int8
of the summed inputs (integer-valued partial sums, so the collective's summation order
cannot change the sum; one row sums to zero)."""
from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import aiter_oracles as O
from aiter_testlib import agree

WORLD, M, N = 3, 5, 64


def _inputs(rank: int):
    g = torch.Generator().manual_seed(100 + rank)
    part = torch.randint(-8, 9, (M, N), generator=g).to(torch.bfloat16)
    part[1] = 0                                     # row 1 sums to zero on every rank
    shared = torch.Generator().manual_seed(7)
    res = torch.randn(M, N, generator=shared).to(torch.bfloat16)
    res[1] = 0
    w = torch.randn(N, generator=shared).to(torch.bfloat16)
    b = torch.randn(N, generator=shared).to(torch.bfloat16)
    xs = torch.rand(N, generator=shared) + 0.5
    return part, res, xs, w, b


def _rank(rank: int, store: str, backend: str, out_dir: str) -> None:
    import qfuse.aiter as aiter
    from qfuse.aiter.ops.communication import all_reduce_rmsnorm_quant
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank,
                            world_size=WORLD)
    try:
        with aiter.use_backend(backend):
            got = all_reduce_rmsnorm_quant(*_inputs(rank), 1e-6)
        torch.save(got, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("backend", ["reference", "triton"])
def test_all_reduce_rmsnorm_quant_on_gloo(tmp_path, backend):
    # fork: the ranks start from this process (qfuse and torch imported, the pipeline
    # variant compiled here first) instead of a fresh interpreter each
    import qfuse.aiter as aiter
    from qfuse.aiter.ops.norm import OPUS, _bind
    part, res, xs, w, b = _inputs(0)
    meta = torch.empty(part.shape, dtype=torch.int8, device="meta")
    with aiter.use_backend(backend):
        _bind("warm-up", meta, part, meta, w, 1e-6, OPUS, xscale=xs, residual_in=res,
              residual_out=part, rms_bias=b)
    mp.start_processes(_rank, args=(str(tmp_path / "store"), backend, str(tmp_path)),
                       nprocs=WORLD, join=True, start_method="fork")
    parts = [_inputs(r) for r in range(WORLD)]
    _, res, xs, w, b = parts[0]
    total = sum(p[0].float() for p in parts)
    h = total + res.float()
    y = (O.rms(h, w, 1e-6) + b.float()) * xs
    s = y.abs().amax(-1, keepdim=True) / 127
    v = torch.where(s == 0, torch.zeros_like(y), y * (1.0 / s))
    q = v.clamp(-127, 127).round().to(torch.int8)
    for r in range(WORLD):
        out, res_out, ys = torch.load(tmp_path / f"rank{r}.pt")
        assert out.dtype == torch.int8 and ys.shape == (M, 1)
        agree({"q": out, "h": res_out, "s": ys}, {"q": q, "h": h.bfloat16(), "s": s})


def test_needs_an_initialised_process_group():
    from qfuse.aiter.ops.communication import all_reduce_rmsnorm_quant
    with pytest.raises(ValueError, match="init_process_group"):
        all_reduce_rmsnorm_quant(*_inputs(0), 1e-6)
