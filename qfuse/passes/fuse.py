"""``qf-fuse``: outline each kernel of the plan into a private ``func.func`` and call it.

The grouping rule is :mod:`qfuse.passes.plan` (row-space chains fuse; a grid-wide amax,
128x128 tiles, per-block cache scales and remapped rows force boundaries). After this
pass a pipeline function holds only ``func.call``s; each callee carries::

    attributes {qf.kernel, qf.space = "row", qf.reason = "grid-wide-amax: ..."}

``qf.reason`` says why the kernel boundary before it exists (empty for the first
kernel). Because the reader inlines kernel calls, a fused module reads back as the same
program, so fused IR can still be run by the reference backend and re-fused.
"""
from __future__ import annotations

from dataclasses import dataclass

from .plan import plan_kernels

__all__ = ["FusePass", "fuse_module", "SPACE_ATTR", "REASON_ATTR"]

SPACE_ATTR = "qf.space"
REASON_ATTR = "qf.reason"


def _kernel_pipeline(tp, k):
    from ..dialect.typed import ParamInfo, TypedPipeline
    used = {id(v) for c in k.calls for v in c.operands.values() if v is not None}
    consts = [c for c in tp.consts if id(c.value) in used]
    return TypedPipeline(name=k.name, params=[ParamInfo(v) for v in k.inputs], consts=consts,
                         calls=list(k.calls), returns=list(k.outputs), loc=k.calls[0].loc,
                         return_names=[v.name for v in k.outputs])


def _build_main(tp, kernels, kernel_fns, module) -> None:
    from ..dialect.builder import function_shell
    from ..dialect.encoding import literal_attr, location, mlir_type
    from ..dialect.mlir import arith, func, ir
    _, block, env = function_shell(tp, module)
    with ir.InsertionPoint(block):
        for c in tp.consts:
            if c.value in tp.returns:   # a literal returned as is
                env[c.value] = arith.ConstantOp(mlir_type(c.value.type),
                                                literal_attr(c.value.type.dtype, c.literal)).result
        for k, kfn in zip(kernels, kernel_fns):
            call = func.CallOp(kfn, [env[v] for v in k.inputs],
                               loc=location(k.calls[0].loc, [v.name for v in k.outputs]))
            for v, r in zip(k.outputs, call.results):
                env[v] = r
        func.ReturnOp([env[v] for v in tp.returns], loc=location(tp.loc))


def fuse_module(module):
    """A new module: per pipeline, kernel functions (in order) and the calling function."""
    from ..dialect.builder import build_function
    from ..dialect.encoding import KERNEL_ATTR
    from ..dialect.mlir import ir
    from ..dialect.reader import read_pipelines
    from ..dialect.text import verify
    tps = read_pipelines(module)
    pipeline_names = {tp.name for tp in tps}
    with module.context, ir.Location.unknown():
        new = ir.Module.create()
        for tp in tps:
            kernels = plan_kernels(tp)
            _check_kernel_names(tp, kernels, pipeline_names)
            fns = []
            for k in kernels:
                fn = build_function(_kernel_pipeline(tp, k), new)
                attrs = fn.operation.attributes
                attrs["sym_visibility"] = ir.StringAttr.get("private")
                attrs[KERNEL_ATTR] = ir.UnitAttr.get()
                attrs[SPACE_ATTR] = ir.StringAttr.get(k.space)
                attrs[REASON_ATTR] = ir.StringAttr.get(k.reason)
                fns.append(fn)
            _build_main(tp, kernels, fns, new)
    verify(new)
    return new


def _check_kernel_names(tp, kernels, pipeline_names: set) -> None:
    """A kernel symbol must not be a pipeline's. The DSL makes that impossible (no ``__``
    in pipeline names); hand-written MLIR gets this error instead of MLIR's
    "redefinition of symbol" with the whole function dumped."""
    from ..errors import QfuseError
    for k in kernels:
        if k.name in pipeline_names:
            raise QfuseError(f"pipeline '{tp.name}' would get a kernel named '{k.name}', "
                             f"which is also a pipeline's name", tp.loc,
                             hint="rename that pipeline: '__' is reserved for kernel names")


@dataclass(frozen=True)
class FusePass:
    name: str = "qf-fuse"

    def run(self, module):
        return fuse_module(module)


def describe_kernels(module) -> list:
    """One line per kernel function: ``name [space]: stage -> stage (reason)``."""
    from ..dialect.encoding import KERNEL_ATTR
    from ..dialect.mlir import ir
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
