"""``qf-fuse``: plan each pipeline's kernels and outline them in place.

The grouping rule is :mod:`qfuse.passes.plan` (row-space chains fuse; a grid-wide amax,
128x128 tiles, per-block cache scales and remapped rows force boundaries); the ops move
into private kernel functions as :mod:`qfuse.passes.outline` describes. After this pass
a pipeline function holds only ``func.call``s; each callee carries::

    attributes {qf.kernel, qf.space = "row", qf.reason = "grid-wide-amax: ..."}

``qf.reason`` says why the kernel boundary before it exists (empty for the first
kernel). What one kernel computed that a later one may rely on is written on the later
kernel's argument: ``qf.scale_of`` marks a scale that a grid-wide amax kernel took over
an input x which the later kernel reads too (:mod:`qfuse.dialect.encoding`), so the
backend may quantise x with it without range checks.

Because the reader inlines kernel calls, a fused module reads back as the same program,
so fused IR can still be run by the reference backend. A pipeline that is already fused
(only calls) is left as it is.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..dialect.encoding import KERNEL_ATTR, REASON_ATTR, SPACE_ATTR, source_loc
from ..dialect.mlir import ir
from ..errors import QfuseError, UnsupportedError
from .outline import outline_kernels
from .plan import plan_kernels

__all__ = ["FusePass", "fuse_module", "describe_kernels", "SPACE_ATTR", "REASON_ATTR"]


def fuse_module(module):
    """Outline the kernels of every pipeline function of ``module`` in place; returns it."""
    from ..dialect.reader import value_info
    from ..dialect.text import verify
    pipelines = [op for op in module.body.operations
                 if op.operation.name == "func.func" and KERNEL_ATTR not in op.attributes]
    names = {_symbol(fn) for fn in pipelines}
    with module.context, ir.Location.unknown():
        for fn in pipelines:
            if not _needs_fusion(fn):
                continue
            info = value_info(fn)
            kernels = plan_kernels(fn, info)
            _check_kernel_names(fn, kernels, names)
            outline_kernels(fn, kernels, info, _scale_facts(kernels))
    verify(module)
    return module


def _symbol(fn) -> str:
    return ir.StringAttr(fn.attributes["sym_name"]).value


def _needs_fusion(fn) -> bool:
    """Whether ``fn`` holds stages to outline: False for a fused pipeline (only calls);
    a mix of calls and stages is refused (its stages would never run)."""
    ops = [op.operation for op in fn.regions[0].blocks[0].operations]
    calls = [op for op in ops if op.name == "func.call"]
    stages = [op for op in ops if op.name.startswith("qf.")]
    if calls and stages:
        raise UnsupportedError(f"pipeline '{_symbol(fn)}' mixes kernel calls and stages: "
                               "fuse the stages before outlining any of them by hand",
                               source_loc(calls[0].location))
    return bool(stages)


def _scale_facts(kernels: list) -> dict:
    """``{scale value: (x value, granularity, dtype_max)}``: each grid-wide amax kernel's
    dynamic scale of an input x it reads from memory (a pipeline input or an earlier
    kernel's output). A recomputed x (a chain the amax kernel copies) has no such fact:
    the later kernel's x is another value."""
    facts = {}
    for k in kernels:
        last = k.calls[-1]          # a tensor_amax kernel ends in its dynamic scale
        if k.space == "tensor_amax" and last.operands["x"] in k.inputs:
            facts[last.results[0]] = (last.operands["x"], last.options["granularity"],
                                      float(last.options["dtype_max"]))
    return facts


def _check_kernel_names(fn, kernels, pipeline_names: set) -> None:
    """A kernel symbol must not be a pipeline's. The DSL makes that impossible (no ``__``
    in pipeline names); hand-written MLIR gets this error instead of MLIR's
    "redefinition of symbol" with the whole function dumped."""
    for k in kernels:
        if k.name in pipeline_names:
            raise QfuseError(f"pipeline '{_symbol(fn)}' would get a kernel named '{k.name}', "
                             f"which is also a pipeline's name", source_loc(fn.location),
                             hint="rename that pipeline: '__' is reserved for kernel names")


@dataclass(frozen=True)
class FusePass:
    name: str = "qf-fuse"

    def run(self, module):
        return fuse_module(module)


def describe_kernels(module) -> list:
    """One line per kernel function: ``name [space]: stage -> stage (reason)``."""
    lines = []
    for op in module.body.operations:
        attrs = op.operation.attributes
        if op.operation.name != "func.func" or KERNEL_ATTR not in attrs:
            continue
        name = ir.StringAttr(attrs["sym_name"]).value
        space = ir.StringAttr(attrs[SPACE_ATTR]).value
        reason = ir.StringAttr(attrs[REASON_ATTR]).value
        stages = [o.operation.name.removeprefix("qf.")
                  for o in op.regions[0].blocks[0].operations if o.operation.name.startswith("qf.")]
        lines.append(f"{name} [{space}]: {' -> '.join(stages)}" + (f"  ({reason})" if reason else ""))
    return lines
