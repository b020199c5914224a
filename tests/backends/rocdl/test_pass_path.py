"""The ROCDL backend compiles from the lowering passes' output: what the runtime stores
for a kernel (the CPU twin's loops, the gpu form a target's binaries come from) is the
kernel's function after ``qf-lower-loops`` / ``qf-map-gpu{target=...}`` run by the pass
manager; the passes name the fix when no kernel lowering is registered; pass specs with
options."""
from __future__ import annotations

import re

import pytest

from qfuse.dialect.builder import build_module
from qfuse.dsl import load_source
from qfuse.errors import QfuseError
from qfuse.passes import run_passes
from qfuse.runtime.compiler import compile_pipeline
from qfuse.runtime.lowering import install, kernel_texts

SRC = """
def p(x: bf16[M, N], w: bf16[N]):
    y = norm(x, w)
    s = scale(y, fp8_e4m3fn, per_tensor)
    return round(y, s, fp8_e4m3fn), s
"""


def _fused():
    return run_passes(build_module([load_source(SRC, "p.qp")["p"]]), "default")


def test_the_stored_kernels_are_the_passes_output():
    install()
    loops = kernel_texts(run_passes(_fused(), "qf-lower-loops"))
    gpu = kernel_texts(run_passes(_fused(), "qf-map-gpu{target=cuda:sm_90}"))
    cp = compile_pipeline(load_source(SRC, "p.qp")["p"], "rocdl", "cuda:sm_90")
    assert [s.space for s in cp.steps] == ["tensor_amax", "row"]
    for step in cp.steps:
        k = step.source
        assert loops[step.name] in k.loops and gpu[step.name] in k.gpu["cuda:sm_90"]
        assert "qf.kernel" in k.loops            # printed by MLIR from the pass's module
        assert k.binaries["cuda:sm_90"]["cubin"][:4] == b"\x7fELF"


def test_without_a_registered_lowering_the_pass_names_the_fix(monkeypatch):
    from qfuse.passes import lowering
    monkeypatch.setattr(lowering, "_TABLE", {})
    with pytest.raises(QfuseError, match=r"qf-lower-loops: no kernel lowering is registered "
                                         r"for the loops level: call qfuse.runtime.lowering"):
        run_passes(_fused(), "qf-lower-loops")


#: a pass spec -> the error it gets
BAD_SPECS = {
    "qf-map-gpu{target=hip:gfx950 chip=x}": "unknown option 'chip=x' (options: target)",
    "qf-lower-loops{target=hip:gfx950}": "unknown option 'target=hip:gfx950' (options: none)",
    "qf-map-gpu{target": "bad pass",
    "qf-nope": "unknown pass 'qf-nope'",
}


def test_bad_pass_specs_are_named_errors():
    from qfuse.passes.manager import resolve_pipeline
    for spec, message in BAD_SPECS.items():
        with pytest.raises(QfuseError, match=re.escape(message)):
            resolve_pipeline(spec)


def test_a_pass_spec_reads_back_from_its_label():
    from qfuse.passes.manager import pass_label, resolve_pipeline
    p, q = resolve_pipeline("qf-fuse, qf-map-gpu{target=hip:gfx950}")
    assert (pass_label(p), pass_label(q)) == ("qf-fuse", "qf-map-gpu{target=hip:gfx950}")
    assert resolve_pipeline([pass_label(q)])[0] == q
