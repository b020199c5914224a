"""A pipeline with an all_reduce in an AOT bundle: the collective step has no source and
no binary (a host step: TritonBackend.binaries gives none), the bundle builds for
cuda:sm_90 on the CPU, loads and runs on one gloo rank; autotune runs the host step and
tunes the kernel after it; `qfuse ir --emit fused|triton` show it."""
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


def _tune(rank: int, world: int):
    from qfuse.dsl import load_source
    from qfuse.runtime.pipeline import QuantPipeline
    from qfuse.backends.triton.kernel import TritonConfig
    qp = QuantPipeline(load_source(SRC, "ar.qp")["ar"], backend="triton")
    x, w = torch.randn(4, 64).bfloat16(), torch.ones(64).bfloat16()
    costs = iter([3.0, 1.0])
    table = qp.autotune(x, w, candidates=[TritonConfig(block_m=1), TritonConfig(block_m=2)],
                        timer=lambda run: (run(), next(costs))[1])
    return [(k, b, table.entries[k][b]["us"]) for k in table.entries for b in table.entries[k]]


def test_autotune_runs_the_host_step_and_tunes_the_kernel(tmp_path):
    """The collective step is run (its result feeds the kernel after it) and not tuned."""
    (entries,) = run_ranks(tmp_path, 1, _tune)
    assert [(k, us) for k, _, us in entries] == [("ar__k1", 1000.0)]


def test_the_cli_prints_the_fused_ir_and_the_kernel_after_the_collective(tmp_path, capsys):
    from qfuse.cli import main
    qp = tmp_path / "ar.qp"
    qp.write_text(SRC)
    assert main(["ir", str(qp), "--emit", "fused"]) == 0
    assert 'qf.space = "collective"' in capsys.readouterr().out
    assert main(["ir", str(qp), "--emit", "triton"]) == 0
    text = capsys.readouterr().out
    assert "# ===== ar__k1 =====" in text and "ar__k0" not in text     # the host step: no text
