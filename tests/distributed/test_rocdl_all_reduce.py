"""all_reduce under ``backend="rocdl"``: the collective is a host step between the ROCDL
kernels (no RocdlKernel, no binary; the runner runs the stage's host implementation, as
the Triton runner does), the kernels around it are lowered by the ROCDL backend. On the
CPU the kernels run on the CPU twin, on one and two gloo ranks: every rank gets the same
bits, the bits of the same ROCDL kernels run on the reference's reduced tensor, and the
reference's (codes and the residual sum bit for bit, the fp32 scales within the agreement
rule for the norm's row sums, docs/semantics.md). ``qfuse build --backend rocdl`` of such a pipeline builds
for the three targets and the bundle runs on a gloo rank; ``qfuse ir --emit loops``
shows the host step as a declaration the pipeline calls."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from ar_pipes import KINDS, PROGRAMS, expected, pipe, rank_inputs
from gloo_ranks import bits, run_ranks, same_bits
from test_collective_tooling import SRC, _run as _run_bundle   # the Triton bundle's check
from qfuse.backends.collective import use_group
from qfuse.dsl import load_source
from qfuse.runtime.compare import compare_outputs
from qfuse.runtime.pipeline import QuantPipeline


def _run_all(rank: int, world: int) -> dict:
    inp = rank_inputs(rank)
    out = {}
    with use_group("tp", None):
        for kind in KINDS:
            q, s, h = pipe(f"ar_{kind}", "rocdl")(inp["x"], inp["res"], inp["w"])
            out[kind] = {"q": q, "s": s, "h": h}
    return out


def _warm() -> None:
    """Compile here, before the ranks fork (they reuse the compiled pipelines)."""
    for kind in KINDS:
        for prefix in ("ar", "post"):
            pipe(f"{prefix}_{kind}", "rocdl").compiled("rocdl", "cpu:interp")


@pytest.mark.parametrize("world", [1, 2])
def test_every_rank_gets_the_bits_of_the_kernels_on_the_reduced_tensor(tmp_path, world):
    _warm()
    ranks = run_ranks(tmp_path, world, _run_all)
    for kind in KINDS:
        first = ranks[0][kind]
        for r in range(world):
            assert same_bits(ranks[r][kind], first), (kind, r)
        # the ROCDL kernels after the collective: bit-identical to the same kernels run
        # on the reference's reduced tensor (the collective adds nothing of its own) ...
        assert same_bits(first, expected(world, kind, "rocdl")), kind
        # ... and to the reference: the residual sum h and the codes q bit for bit; the
        # fp32 scales within the agreement rule (a few differ in the last bits: the
        # norm's row sums run in another order, docs/semantics.md)
        want = expected(world, kind)
        for name in ("h", "q"):
            assert torch.equal(bits(first[name]), bits(want[name])), (kind, name)
        ok, text = compare_outputs(first, want, 1)
        assert ok, text


_PER_TENSOR = load_source(
    "def pt(x: bf16[M, N]):\n    r = all_reduce(x)\n    s = scale(r, fp8_e4m3fn, per_tensor)\n"
    "    return round(r, s, fp8_e4m3fn), s\n", "pt.qp")["pt"]


def _per_tensor(rank: int, world: int) -> dict:
    q, s = QuantPipeline(_PER_TENSOR, backend="rocdl")(rank_inputs(rank)["x"])
    return {"q": q, "s": s}


@pytest.mark.parametrize("world", [1, 2])
def test_a_grid_wide_amax_after_the_collective_is_the_references_bits(tmp_path, world):
    """No norm: the whole pipeline is exact, so every byte equals the reference's."""
    from qfuse.runtime.compiler import compile_pipeline
    cp = compile_pipeline(_PER_TENSOR, "rocdl", "cpu:interp")
    assert [s.space for s in cp.steps] == ["collective", "tensor_amax", "row"]
    assert cp.steps[0].source is None and cp.steps[1].source.grid == "blocks"
    ranks = run_ranks(tmp_path, world, _per_tensor)
    reduced = sum((rank_inputs(r)["x"].float() for r in range(world)),
                  torch.zeros(())).bfloat16()          # rank order, fp32, rounded once
    want = QuantPipeline(load_source(
        "def p(r: bf16[M, N]):\n    s = scale(r, fp8_e4m3fn, per_tensor)\n"
        "    return round(r, s, fp8_e4m3fn), s\n", "p.qp")["p"], backend="reference")(reduced)
    for got in ranks:
        assert same_bits(got, {"q": want[0], "s": want[1]})


def test_the_collective_is_a_host_step_and_the_kernel_is_compiled_for_the_gpu():
    from qfuse.backends.base import parse_target
    from qfuse.backends.registry import get_backend
    from qfuse.runtime.compiler import compile_pipeline
    cp = compile_pipeline(PROGRAMS["ar_fp8"], "rocdl", "hip:gfx942")
    assert [s.space for s in cp.steps] == ["collective", "row"]
    host, kernel = cp.steps
    assert host.source is None and host.program.calls[0].stage == "all_reduce"
    assert kernel.inputs[0] == host.outputs[0]          # the kernel reads the sum
    b = get_backend("rocdl")
    assert b.binaries(host.source, parse_target("hip:gfx942"), {}) == {}
    assert b.unsupported(host.program, host.space) is None
    hsaco = kernel.source.binaries["hip:gfx942"]["hsaco"]
    assert hsaco[:4] == b"\x7fELF"
    assert sorted(cp.sources()) == [kernel.name]        # the host step has no text


def test_without_a_process_group_the_error_names_the_fix():
    from qfuse.errors import QfuseError
    inp = rank_inputs(0)
    with pytest.raises(QfuseError, match=r"init_process_group"):
        pipe("ar_fp8", "rocdl")(inp["x"], inp["res"], inp["w"])


def _qfuse(*args):
    return subprocess.run([sys.executable, "-m", "qfuse.cli", *args], capture_output=True,
                          text=True, timeout=600)


def test_qfuse_build_and_ir_of_a_pipeline_with_an_all_reduce(tmp_path):
    qp = tmp_path / "ar.qp"
    qp.write_text(SRC)
    out = tmp_path / "bundle"
    run = _qfuse("build", str(qp), "--backend", "rocdl", "--target", "hip:gfx942",
                 "--target", "hip:gfx950", "--target", "cuda:sm_90", "-o", str(out), "--quiet")
    assert run.returncode == 0, run.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert not manifest["failed"], manifest["failed"]
    bins = manifest["pipelines"]["ar"]["binaries"]
    for t, ext in (("hip:gfx942", "hsaco"), ("hip:gfx950", "hsaco"), ("cuda:sm_90", "cubin")):
        assert bins[t]["ar__k0"] == []                 # the host step: no binary
        assert any(p.endswith(f"ar__k1.{ext}") for p in bins[t]["ar__k1"]), (t, bins[t])
    assert sorted(p.name for p in (out / "kernels").iterdir()) == ["ar__k1.mlir"]
    (got,) = run_ranks(tmp_path, 1, _run_bundle, str(out))
    x = torch.randn(3, 64, generator=torch.Generator().manual_seed(0)).bfloat16()
    want = QuantPipeline(load_source("def p(x: bf16[M, N], w: bf16[N]):\n    return norm(x, w)\n",
                                     "p.qp")["p"], backend="reference")(x, torch.ones(64).bfloat16())
    ok, text = compare_outputs({"y": got}, {"y": want}, 1)
    assert ok, text
    # qf-lower-loops: the host step a declaration the pipeline calls, the kernel lowered
    run = _qfuse("ir", str(qp), "--emit", "loops")
    assert run.returncode == 0, run.stderr
    assert "func.func private @ar__k0(" in run.stdout and 'qf.host_op = "qf.all_reduce"' \
        in run.stdout and "func.func @ar__k1(" in run.stdout
    # the backend's conversions below gpu: the kernel only
    run = _qfuse("ir", str(qp), "--emit", "rocdl")
    assert run.returncode == 0, run.stderr
    assert "ar__k1: rocdl (hip:gfx942)" in run.stdout and "ar__k0:" not in run.stdout
