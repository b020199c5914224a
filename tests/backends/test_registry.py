"""Every registered backend through the one seam the runtime uses (backends/base.py)."""
from __future__ import annotations

import pytest
import torch

from qfuse.backends.base import Backend, Target, parse_target
from qfuse.backends.registry import backend_names, check_name, default_backend, get_backend
from qfuse.dsl import load_source
from qfuse.errors import UnsupportedError
from qfuse.runtime.compiler import compile_pipeline
from qfuse.runtime.pipeline import QuantPipeline

SRC = """
def tok(x: bf16[M, N], w: bf16[N]):
    y = smooth(x, w)
    s = scale(y, fp8_e4m3fn, per_token)
    return round(y, s, fp8_e4m3fn), s

def dyn(x: bf16[M, N]):
    s = scale(x, fp8_e4m3fn, per_tensor)
    return round(x, s, fp8_e4m3fn), s
"""
PIPES = load_source(SRC, "registry_test.qp")


@pytest.mark.parametrize("name", backend_names())
def test_every_backend_is_found_and_answers_the_interface(name):
    b = get_backend(name)
    assert isinstance(b, Backend) and b.name == name and get_backend(name) is b
    local = b.target_for(parse_target("cpu:interp"))
    assert b.supports(local)
    h = b.hash(local)
    assert len(h) == 64 and h == b.hash(local)
    assert b.hash(parse_target("cuda:sm_90")) != h      # the target is part of the key
    for tp in PIPES.values():                    # every kernel function it compiles
        for step in compile_pipeline(tp, "reference", "cpu:ref").steps:
            assert b.unsupported(step.program, step.space) is None


@pytest.mark.parametrize("name", backend_names())
@pytest.mark.parametrize("pipe", sorted(PIPES))
def test_every_backend_compiles_and_runs_through_the_runtime(name, pipe):
    tp = PIPES[pipe]
    b = get_backend(name)
    target = str(b.target_for(parse_target("cpu:interp")))
    cp = compile_pipeline(tp, name, target)
    assert cp.backend == name and len(cp.steps) == (1 if pipe == "tok" else 2)
    x = torch.randn(5, 64).bfloat16()
    inputs = {"x": x} if pipe == "dyn" else {"x": x, "w": torch.randn(64).bfloat16()}
    got = QuantPipeline(tp, backend=name)(**inputs, _as_dict=True)
    want = QuantPipeline(tp, backend="reference")(**inputs, _as_dict=True)
    for k in want:
        a, w = got[k], want[k]
        assert torch.equal(a.view(torch.uint8) if a.element_size() == 1 else a,
                           w.view(torch.uint8) if w.element_size() == 1 else w), (name, k)


def test_names_defaults_and_targets():
    with pytest.raises(UnsupportedError, match=r"backend='nope' is not a backend; choose one "
                                               r"of triton, reference, rocdl$"):
        get_backend("nope")
    assert check_name("triton") == "triton"
    assert default_backend("cuda") == "triton" and default_backend("cpu") == "reference"
    t = parse_target("hip:gfx942")
    assert (t.platform, t.arch, t.warp_size, t.fp8_native_fnuz) == ("hip", "gfx942", 64, True)
    assert parse_target("hip:gfx1100").warp_size == 32
    assert parse_target("cuda:sm_90a").capability == 90 and parse_target(t) is t
    assert Target("cpu", "ref") == get_backend("reference").target_for(t)
    for bad in ("rocm:mi300", "cuda:90", "hip:mi300", "cpu:gpu", "cuda"):
        with pytest.raises(UnsupportedError):
            parse_target(bad)
    with pytest.raises(UnsupportedError, match="does not build for cpu:ref"):
        get_backend("triton").check_target(parse_target("cpu:ref"))
