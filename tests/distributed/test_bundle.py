"""A pipeline with an all_reduce in an AOT bundle: the collective step has no source and
no binary (a host step: TritonBackend.binaries gives none), the bundle builds for
cuda:sm_90 on the CPU, loads and runs on one gloo rank."""
from __future__ import annotations

import torch

from gloo_ranks import run_ranks

SRC = "def ar(x: bf16[M, N], w: bf16[N]):\n    return norm(all_reduce(x), w)\n"


def _run(rank: int, world: int, path: str) -> torch.Tensor:
    from qfuse.runtime.bundle import load
    b = load(path, target="cpu:interp")
    g = torch.Generator().manual_seed(rank)
    return b.ar(torch.randn(3, 64, generator=g).bfloat16(), torch.ones(64).bfloat16())


def test_a_bundle_carries_the_collective_step(tmp_path):
    from qfuse.runtime.build import build_bundle
    qp = tmp_path / "ar.qp"
    qp.write_text(SRC)
    out = str(tmp_path / "bundle")
    report = build_bundle([str(qp)], ["cuda:sm_90"], out, progress=False)
    assert not report.failed, report.failed
    assert sorted(p.name for p in (tmp_path / "bundle" / "kernels").iterdir()) == ["ar__k1.py"]
    (got,) = run_ranks(tmp_path, 1, _run, out)
    x = torch.randn(3, 64, generator=torch.Generator().manual_seed(0)).bfloat16().float()
    want = x * torch.rsqrt((x * x).mean(-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
