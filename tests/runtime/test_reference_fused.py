"""The reference backend runs the fused module: the kernels ``qfuse ir --emit fused``
prints, in launch order, each interpreted stage by stage. It gives the same bits as the
checked program run unfused, on every example and benchmark pipeline."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from qfuse.backends.reference import run_pipeline
from qfuse.dsl import load_file
from qfuse.runtime.inputs import random_inputs
from qfuse.runtime.pipeline import QuantPipeline

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "examples").glob("*.qp")) + [ROOT / "benchmarks" / "pipelines.qp"]
PIPES = {f"{f.stem}:{n}": tp for f in FILES for n, tp in load_file(str(f)).items()}


def _dims(tp) -> dict:
    dims = dict(M=5, N=96, S=3, N2=64, A=4, B=6, R=16, E=4, K=2, T=6, H=2, D=32, P=8, BS=16)
    names = {p.value.name: p.value.type for p in tp.params}
    caches = [t for n, t in names.items() if "cache" in n and hasattr(t, "dtype")]
    if caches:
        x = 16 // max(1, caches[0].dtype.bits // 8)
        dims.update(B=3, X=x, DX=dims["D"] // x, BSX=dims["BS"] // x, S=3 * dims["BS"])
    return dims


def _bits(t):
    if not isinstance(t, torch.Tensor):
        return t
    return t.view(torch.uint8) if t.element_size() == 1 else \
        t.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])


@pytest.mark.parametrize("key", sorted(PIPES))
def test_fused_module_gives_the_unfused_bits(key):
    tp = PIPES[key]
    inputs = random_inputs(tp, _dims(tp), seed=7)
    want = run_pipeline(tp, {k: v.clone() if isinstance(v, torch.Tensor) else v
                             for k, v in inputs.items()})
    qp = QuantPipeline(tp, backend="reference")
    cp = qp.compiled("reference", "cpu:ref")
    assert cp.steps and all(s.program is not None for s in cp.steps)
    got = qp(**{k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in inputs.items()},
             _as_dict=True)
    assert list(got) == list(want)
    for k in want:
        assert torch.equal(_bits(got[k]), _bits(want[k])), k


def test_the_steps_are_the_fused_modules_kernels():
    tp = PIPES["fp8:per_tensor_fp8"]
    cp = QuantPipeline(tp, backend="reference").compiled("reference", "cpu:ref")
    kernels = [s.name for s in cp.steps]
    assert kernels == ["per_tensor_fp8__k0", "per_tensor_fp8__k1"]
    for k in kernels:
        assert f"func.func private @{k}(" in cp.fused_ir
