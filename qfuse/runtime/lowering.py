"""The lowering passes with the backend's kernel lowering: registration and the runtime's
pass path.

``qf-lower-loops`` and ``qf-map-gpu`` (:mod:`qfuse.passes`) look the kernel lowering up
in a table (:mod:`qfuse.passes.lowering`); the ROCDL backend provides it. Neither layer
may import the other (tests/test_layering.py), so the runtime, which sees both, fills
the table (:func:`install`, called by the runtime's compile and by ``qfuse opt`` /
``qfuse ir``).

For a backend that lowers through these passes (``Backend.lowering_targets`` not None),
:func:`lowered_kernels` runs them through the pass manager on copies of the fused module
(``qf-lower-loops``; ``qf-map-gpu{target=T}`` for each GPU target) and gives each
kernel's lowered functions, which the backend compiles from (it keeps the conversions
below the ``gpu`` level).
"""
from __future__ import annotations

from typing import Optional

__all__ = ["install", "lowered_kernels", "lowering_passes", "run_lowering", "kernel_texts",
           "collect"]


def install() -> None:
    """Register the ROCDL backend's kernel lowering for the ``loops`` and ``gpu`` levels."""
    from ..backends.rocdl.lowering import lower_kernel
    from ..passes.lowering import LEVELS, register_kernel_lowering
    for level in LEVELS:
        register_kernel_lowering(level, lower_kernel)


def lowering_passes(target: Optional[str] = None) -> list:
    """The pass specs of one lowering: the loop level, or the ``gpu`` level of ``target``."""
    return ["qf-lower-loops"] if target is None else [f"qf-map-gpu{{target={target}}}"]


def _copy(module):
    """A copy of ``module`` in its context, locations kept (errors stay at DSL positions)."""
    from ..dialect.text import parse_module, print_module
    return parse_module(print_module(module, debug_info=True), ctx=module.context)


def run_lowering(fused, target: Optional[str] = None, *, print_after_all: bool = False):
    """A copy of the fused module after ``qf-lower-loops`` (``target`` None) or after
    ``qf-map-gpu{target=...}``, run by the pass manager (``print_after_all``: as
    ``qfuse ir --print-after-all`` shows the other passes)."""
    from ..passes import run_passes
    install()
    return run_passes(_copy(fused), lowering_passes(target), print_after_all=print_after_all)


def kernel_texts(module) -> dict:
    """``{kernel name: its lowered function's text}`` of a lowered module (the loop
    functions, the gpu.funcs); host step declarations are left out."""
    from ..dialect.encoding import KERNEL_ATTR
    from ..dialect.mlir import ir
    out = {}
    blocks = [module.body]
    while blocks:
        for op in blocks.pop().operations:
            o = op.operation
            if o.name == "gpu.module":
                blocks.append(o.regions[0].blocks[0])
            elif KERNEL_ATTR in o.attributes and o.regions[0].blocks:
                out[ir.StringAttr(o.attributes["sym_name"]).value] = o.get_asm()
    return out


def collect(loops, gpu: dict) -> dict:
    """``{kernel: {"loops": text, "gpu": {target: text}}}`` from the lowered modules
    (``gpu``: ``{target: module after qf-map-gpu}``)."""
    out = {name: {"loops": text, "gpu": {}} for name, text in kernel_texts(loops).items()}
    for t, module in gpu.items():
        for name, text in kernel_texts(module).items():
            out[name]["gpu"][t] = text
    return out


def lowered_kernels(fused, backend, target) -> Optional[dict]:
    """``{kernel name: {"loops": text, "gpu": {target: text}}}`` from the lowering passes
    for a backend that compiles from them (None for any other backend)."""
    targets = backend.lowering_targets(target)
    if targets is None:
        return None
    return collect(run_lowering(fused),
                   {str(t): run_lowering(fused, str(t)) for t in targets})
