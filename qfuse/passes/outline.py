"""Outlining in place: the ops of each planned kernel move into a private ``func.func``.

Like MLIR's own outlining passes (``gpu-kernel-outlining``), nothing is rebuilt from
Python: for each :class:`~qfuse.passes.plan.KernelPlan`, in launch order,

1. a private ``func.func @<pipeline>__k<i>`` is inserted before the pipeline function,
   one argument per kernel input (``qf.name`` / ``qf.dims`` from the reader's view of the
   value, and ``qf.scale_of`` where the plan knows what an earlier kernel computed for
   it), one result per output (``qf.name``);
2. the constants the kernel reads are cloned into it (each kernel holds its own
   literals), and so are the stages a grid-wide amax kernel recomputes (their originals
   belong to another kernel);
3. the kernel's own ops are moved into it and their operands rewired to its arguments;
4. a ``func.call`` before the pipeline's ``func.return`` takes their place: uses outside
   the kernel now read the call's results.

What is left in the pipeline function are the calls, the constants it returns as they
are, and its ``func.return``; stages of a kernel the plan dropped (its results were all
recomputed elsewhere) have no uses left and are erased.
"""
from __future__ import annotations

from ..dialect.builder import param_attrs
from ..dialect.encoding import (KERNEL_ATTR, NAME_ATTR, REASON_ATTR, SCALE_OF_ATTR, SPACE_ATTR,
                                location, scale_of_attr, source_loc)
from ..dialect.mlir import func, ir
from ..dialect.ops import stage_of
from ..dialect.typed import ParamInfo

__all__ = ["outline_kernels"]


def outline_kernels(fn, kernels: list, info: dict, facts: dict) -> list:
    """Outline ``kernels`` (the plan of the pipeline function ``fn``, in launch order);
    returns the kernel functions. ``info``: the reader's view of ``fn``'s values;
    ``facts``: ``{scale value: (x value, granularity, dtype_max)}`` for the scales that
    kernels compute over an input x (written as ``qf.scale_of`` where a later kernel reads
    both). Must run inside ``fn``'s Context."""
    block = fn.regions[0].blocks[0]
    ret = block.operations[len(block.operations) - 1]
    constants = [op.operation for op in block.operations if op.operation.name == "arith.constant"]
    shells = [_Kernel(fn, k, info, facts, constants) for k in kernels]   # clones first:
    outer: dict = {}          # a moved value -> the call result that replaces it outside
    for kernel in shells:     # the originals they copy are all still in place here
        kernel.move_in(ret, outer)
    _erase_leftovers(block)
    return [kernel.fn for kernel in shells]


class _Kernel:
    """One kernel function under construction."""

    def __init__(self, pipeline, plan, info: dict, facts: dict, constants: list):
        self.plan = plan
        self.fn = _kernel_function(pipeline, plan, info, facts)
        self.call_loc = location(source_loc(plan.calls[0].op.location),
                                 [info[v].name for v in plan.outputs])
        self.block = self.fn.regions[0].blocks[0]
        self.args = dict(zip(plan.inputs, self.block.arguments))   # original value -> arg
        self.local: dict = {}    # original value -> its clone inside the kernel
        used = {v for c in plan.calls for v in c.operands.values() if v is not None}
        for const in constants:
            if const.results[0] in used:
                self._clone(const)
        seen_owned = False
        for call in plan.calls:
            if id(call) in plan.owned:
                seen_owned = True
            else:
                # a recomputed copy; the plan puts them before the kernel's own stages
                assert not seen_owned, f"{plan.name}: a recomputed stage after an owned one"
                self._clone(call.op)

    def _clone(self, op) -> None:
        new = op.clone(ip=ir.InsertionPoint(self.block)).operation
        self._rewire(new, {})
        self.local.update(zip(op.results, new.results))

    def _rewire(self, op, outer: dict) -> None:
        """Point ``op``'s operands from values outside the kernel at its own. An operand
        may be an original value or, once its kernel was outlined, the call result that
        replaced it (``outer``)."""
        inside = {outer.get(v, v): a for v, a in self.args.items()}
        inside.update({outer.get(v, v): c for v, c in self.local.items()})
        for v in set(op.operands):
            new = inside.get(v)
            if new is not None:
                op.replace_uses_of_with(v, new)

    def move_in(self, ret, outer: dict) -> None:
        """Move the kernel's own ops in, return its outputs, and call it before ``ret``."""
        plan = self.plan
        with ir.InsertionPoint(ret):
            call = func.CallOp(self.fn, [outer.get(v, v) for v in plan.inputs],
                               loc=self.call_loc)
        for c in plan.calls:
            if id(c) in plan.owned:
                self.block.append(c.op)
                self._rewire(c.op, outer)
        with ir.InsertionPoint(self.block):
            func.ReturnOp([self.local.get(v, v) for v in plan.outputs], loc=self.fn.location)
        body = [op.operation for op in self.block.operations]
        for v, r in zip(plan.outputs, call.results):
            v.replace_all_uses_except(r, body)
            outer[v] = r


def _kernel_function(pipeline, plan, info: dict, facts: dict):
    """An empty private ``func.func`` for ``plan``, before ``pipeline``, with its entry
    block, argument / result attributes and the kernel attributes."""
    first = source_loc(plan.calls[0].op.location)
    with ir.InsertionPoint(pipeline):
        ftype = ir.FunctionType.get([v.type for v in plan.inputs],
                                    [v.type for v in plan.outputs])
        fn = func.FuncOp(plan.name, ftype, loc=location(first))
    if plan.inputs:
        fn.arg_attrs = ir.ArrayAttr.get([_arg_attrs(v, plan.inputs, info, facts)
                                         for v in plan.inputs])
    if plan.outputs:
        fn.res_attrs = ir.ArrayAttr.get([ir.DictAttr.get({NAME_ATTR: ir.StringAttr.get(
            info[v].name)}) for v in plan.outputs])
    fn.add_entry_block(arg_locs=[location(info[v].loc) for v in plan.inputs])
    attrs = fn.operation.attributes
    attrs["sym_visibility"] = ir.StringAttr.get("private")
    attrs[KERNEL_ATTR] = ir.UnitAttr.get()
    attrs[SPACE_ATTR] = ir.StringAttr.get(plan.space)
    attrs[REASON_ATTR] = ir.StringAttr.get(plan.reason)
    return fn


def _arg_attrs(v, inputs: list, info: dict, facts: dict) -> ir.DictAttr:
    """``qf.name`` / ``qf.dims`` of a kernel input, and ``qf.scale_of`` when it is a
    scale an earlier kernel computed over another input of this kernel."""
    attrs = param_attrs(ParamInfo(info[v]))
    fact = facts.get(v)
    if fact is None or fact[0] not in inputs:
        return attrs
    x, gran, dmax = fact
    entries = {a.name: a.attr for a in attrs}
    entries[SCALE_OF_ATTR] = scale_of_attr(inputs.index(x), gran, dmax)
    return ir.DictAttr.get(entries)


def _erase_leftovers(block) -> None:
    """Erase what the kernels no longer need: stages of dropped kernels (every use was
    rewired to a recomputed copy) and constants only kernels read."""
    for op in reversed(list(block.operations)):
        op = op.operation
        dead = stage_of(op) is not None or op.name == "arith.constant"
        if dead and not any(True for r in op.results for _ in r.uses):
            op.erase()
        elif stage_of(op) is not None:
            raise AssertionError(f"{op.name} is still used outside its kernel")
