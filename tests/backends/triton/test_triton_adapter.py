"""triton_adapter.py, the one place that uses Triton's private API, on the installed Triton.

On the CPU (triton 3.9 here): every attribute, signature and call layout the adapter
relies on is present (``api_problems``), the interpreter shim runs nested jit functions
and leaves ``triton.language`` as it found it, and the direct launcher passes its
arguments in the jit's own order. On a GPU (triton 3.6 on the GPU machines): a kernel
launched through the jit is launched again through ``direct_launcher``.
"""
from pathlib import Path

import pytest
import torch
import triton
import triton.language as tl
from triton.runtime.interpreter import InterpretedFunction
from triton.runtime.jit import JITFunction

from qfuse.backends.triton import triton_adapter as tri
from qfuse.backends.triton.launch.cross_compile import compile_kernel
from qfuse.backends.triton.numerics import qf_div

ROOT = Path(__file__).resolve().parents[3]


@triton.jit
def _twice(x):
    return x * 2.0


@triton.jit
def k_nested(x_ptr, y_ptr, m_ptr, N: tl.constexpr):
    """y = qf_div(2x, 3) (nested jit helpers), m = max(x) (tl.max is a jit function too)."""
    o = tl.arange(0, N)
    x = tl.load(x_ptr + o)
    tl.store(y_ptr + o, qf_div(_twice(x), 3.0))
    tl.store(m_ptr, tl.max(x, axis=0))


def test_the_installed_triton_has_everything_the_adapter_uses():
    assert tri.api_problems() == []


def test_supported_versions_are_documented():
    lo, hi = (f"{a}.{b}" for a, b in tri.SUPPORTED)
    for text in (tri.__doc__, (ROOT / "README.md").read_text(),
                 (ROOT / "docs" / "runtime.md").read_text()):
        assert f"triton {lo} .. {hi}" in " ".join(text.split())


def test_interpreter_runs_nested_jit_functions_and_restores_triton_language():
    call, core = JITFunction.__call__, dict(vars(tl.core))
    x = torch.linspace(-3, 5, 16)
    y, m = torch.empty(16), torch.empty(1)
    with tri.interpreting(k_nested) as k:
        assert isinstance(k, InterpretedFunction)
        k[(1,)](x, y, m, N=16)
    assert torch.equal(y, (x * 2) / 3) and m.item() == 5.0
    assert JITFunction.__call__ is call
    assert all(vars(tl.core).get(name) is v for name, v in core.items())
    y2 = torch.empty(16)
    tri.interpret(k_nested)[(1,)](x, y2, m, N=16)
    assert torch.equal(y2, y)
    # triton.language is intact: the same kernel compiles for a GPU in this process
    asm = compile_kernel(k_nested, {"x_ptr": "*fp32", "y_ptr": "*fp32", "m_ptr": "*fp32"},
                         {"N": 16}, "cuda:sm_90")
    assert "div.rn.f32" in asm["ptx"]


def test_direct_launcher_uses_the_jit_call_layout():
    log = []

    class Compiled:                        # the attributes of a CompiledKernel it reads
        function, packed_metadata = "handle", "meta"

        def run(self, *args):
            log.append(args)

    launch = tri.direct_launcher(Compiled(), (5, 2))
    launch(77, ["a", 1, 2.5])
    assert log == [(5, 2, 1, 77, "handle", "meta", None, None, None, "a", 1, 2.5)]
    assert tri.direct_launcher(object(), (1,)) is None       # another layout: keep the jit


def test_launch_hooks_are_seen(monkeypatch):
    from triton import knobs
    assert not tri.hooks_active()
    monkeypatch.setattr(knobs.runtime, "launch_enter_hook", lambda *a, **k: None)
    assert tri.hooks_active()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_launch_through_the_jit_then_directly():
    dev = torch.device("cuda")
    x = torch.linspace(-3, 5, 16, device=dev)
    y, m = torch.empty(16, device=dev), torch.empty(1, device=dev)
    # no contraction: triton 3.6 fuses by default (qfuse launches always pass this)
    kernel = tri.launch_jit(k_nested, (1,), [x, y, m], {"N": 16, "enable_fp_fusion": False})
    torch.cuda.synchronize()
    assert torch.equal(y, (x * 2) / 3) and m.item() == 5.0
    launch = tri.direct_launcher(kernel, (1,))
    assert launch is not None and not tri.hooks_active()
    x2 = torch.linspace(-7, 1, 16, device=dev)
    y2, m2 = torch.empty(16, device=dev), torch.empty(1, device=dev)
    device = tri.current_device()
    assert device == torch.cuda.current_device()
    launch(tri.current_stream(device), [x2, y2, m2, 16])     # constexprs too, as the jit does
    torch.cuda.synchronize()
    assert torch.equal(y2, (x2 * 2) / 3) and m2.item() == 1.0
