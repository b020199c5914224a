"""``qf`` MLIR module -> TypedPipelines (the inverse of :mod:`qfuse.dialect.builder`).

The reference backend executes a :class:`~qfuse.dialect.typed.TypedPipeline`, so anything
that rewrites the IR can be run and checked by raising it back to Python. For each
``func.func`` *without* ``qf.kernel``:

* parameters from the block arguments and their ``qf.name`` / ``qf.dims`` /
  ``qf.default`` attributes (and, in a kernel function, ``qf.scale_of``: what an
  earlier kernel computed for it, :class:`~qfuse.dialect.typed.ScaleOf`); constants
  from ``arith.constant``;
* one StageCall per ``qf`` op: operands by catalog name, options decoded from the
  attributes, result types from the stage's ``infer`` rule over the rebuilt operand
  types (so dims keep their symbolic names). Where that rule fails or disagrees with the
  IR (IR without ``qf.dims``: its dims are fresh symbols ``?1, ?2, ...`` that the rule
  cannot match up), the IR type is used, with fresh symbols for its dynamic dims;
* returns from ``func.return`` and the ``qf.name`` result attributes;
* a ``func.call`` of a ``qf.kernel`` function (an outlined fused kernel) is read as its
  body inlined, so a fused module reads back as the same program.

Value names come from name locations; SourceLocs from file locations.

:func:`value_info` gives the same view per SSA value (name, symbolic type, location)
without building a program: the fusion planner reads row domains from it.
"""
from __future__ import annotations

import itertools
from typing import Optional

from ..errors import QfuseError, SourceLoc, UnsupportedError
from .encoding import (DEFAULT_ATTR, DIMS_ATTR, KERNEL_ATTR, NAME_ATTR, SCALE_OF_ATTR,
                       default_value, dims_from_attr, literal_value, location_names,
                       scale_of_value, source_loc, value_type)
from .mlir import ir
from .ops import op_operands, op_options, op_results, stage_of
from .stages import StageError, infer_results, resolve_options
from .types import Dim, TensorType

__all__ = ["read_pipelines", "read_function", "value_info", "op_options", "op_operands",
           "op_results"]


def read_pipelines(module: ir.Module) -> list:
    """One TypedPipeline per pipeline function of ``module``, in module order."""
    funcs = {_sym_name(op): op for op in module.body.operations if _is_func(op)}
    return [read_function(fn, funcs) for fn in funcs.values()
            if KERNEL_ATTR not in fn.operation.attributes]


def _is_func(op) -> bool:
    return op.operation.name == "func.func"


def _sym_name(op) -> str:
    return ir.StringAttr(op.operation.attributes["sym_name"]).value


def _attr_dicts(fn, key: str, count: int) -> list:
    attrs = fn.operation.attributes
    return list(attrs[key]) if key in attrs else [None] * count


class _Reader:
    """Walks one pipeline function (and the kernels it calls) into a TypedPipeline."""

    def __init__(self, fn, funcs: dict):
        from . import typed
        self.typed = typed
        self.fn, self.funcs = fn, funcs
        self.fn_loc = source_loc(fn.operation.location) or SourceLoc("<mlir>", 0, 0)
        self.env: dict = {}            # ir.Value -> Value
        self.consts, self.calls = [], []
        self._fresh = itertools.count(1)
        self._names = itertools.count()

    # ---------------------------------------------------------------- helpers
    def fresh_dim(self) -> Dim:
        return Dim(f"?{next(self._fresh)}")

    def loc(self, mlir_loc) -> SourceLoc:
        return source_loc(mlir_loc) or self.fn_loc

    def new_value(self, name: Optional[str], vtype, loc: SourceLoc):
        return self.typed.Value(name or f"_v{next(self._names)}", vtype, loc)

    def value(self, v, where: SourceLoc):
        if v not in self.env:
            raise QfuseError(f"cannot read back {v.get_name()}: not defined by a pipeline "
                             f"argument, constant or qf op", where)
        return self.env[v]

    # ------------------------------------------------------------------ parts
    def read(self):
        fn = self.fn
        block = fn.operation.regions[0].blocks[0]
        arg_attrs = _attr_dicts(fn, "arg_attrs", len(block.arguments))
        params = []
        for i, (arg, attrs) in enumerate(zip(block.arguments, arg_attrs)):
            dims, name = _get(attrs, DIMS_ATTR), _get(attrs, NAME_ATTR)
            dims = None if dims is None else dims_from_attr(dims)
            val = self.new_value(f"arg{i}" if name is None else name.value,
                                 value_type(arg.type, dims, self.fresh_dim), self.loc(arg.location))
            self.env[arg] = val
            default = _get(attrs, DEFAULT_ATTR)
            default = None if default is None else default_value(default)
            params.append(self.typed.ParamInfo(val, default))
        params = self.scale_facts(params, arg_attrs)
        returns = self.read_block(block)
        res_attrs = _attr_dicts(fn, "res_attrs", len(returns))
        names = [v.name if _get(a, NAME_ATTR) is None else _get(a, NAME_ATTR).value
                 for a, v in zip(res_attrs, returns)]
        return self.typed.TypedPipeline(_sym_name(fn), params, self.consts, self.calls,
                                        returns, self.fn_loc, names)

    def scale_facts(self, params: list, arg_attrs: list) -> list:
        """``params`` with the ``qf.scale_of`` facts of their arguments attached."""
        out = []
        for p, attrs in zip(params, arg_attrs):
            attr = _get(attrs, SCALE_OF_ATTR)
            if attr is not None:
                try:
                    x, gran, dmax = scale_of_value(attr)
                except StageError as e:
                    raise QfuseError(f"argument {p.value.name}: {e.message}", self.fn_loc) from None
                if not 0 <= x < len(params) or params[x] is p:
                    raise QfuseError(f"argument {p.value.name}: {SCALE_OF_ATTR} names argument "
                                     f"{x}, which is not another argument", self.fn_loc)
                p = self.typed.ParamInfo(p.value, p.default,
                                         self.typed.ScaleOf(params[x].value, gran, dmax))
            out.append(p)
        return out

    def read_block(self, block) -> list:
        """Read the ops of ``block``; returns the Values its terminator returns."""
        for op in block.operations:
            name, where = op.operation.name, self.loc(op.operation.location)
            if name == "func.return":
                return [self.value(v, where) for v in op.operation.operands]
            try:
                if name == "arith.constant":
                    self.read_constant(op, where)
                elif stage_of(op) is not None:
                    self.read_stage(op, where)
                elif name == "func.call":
                    self.read_kernel_call(op, where)
                else:
                    raise UnsupportedError(f"cannot read {name} back into a pipeline", where)
            except StageError as e:
                raise QfuseError(f"{name}: {e.message}", where) from None
        raise QfuseError("function body has no func.return", self.fn_loc)

    def read_constant(self, op, where: SourceLoc) -> None:
        result = op.operation.results[0]
        names = location_names(op.operation.location)
        val = self.new_value(names[0] if names else None,
                             value_type(result.type, fresh=self.fresh_dim), where)
        self.env[result] = val
        literal = literal_value(op.operation.attributes["value"])
        self.consts.append(self.typed.ConstInfo(val, literal))

    def read_stage(self, op, where: SourceLoc) -> None:
        st = stage_of(op)
        operands = {n: (None if v is None else self.value(v, where))
                    for n, v in op_operands(op).items()}
        arg_types = {n: v.type for n, v in operands.items() if v is not None}
        options = resolve_options(st, arg_types, op_options(op))
        try:
            inferred = dict(infer_results(st, arg_types, options))
        except StageError:        # fresh dims (no qf.dims) differ by name: use the IR types
            inferred = {}
        names = location_names(op.operation.location)
        present = [(n, r) for n, r in op_results(op).items() if r is not None]
        values = []
        for i, (rname, r) in enumerate(present):
            vtype = _agreeing(inferred.get(rname), value_type(r.type, fresh=self.fresh_dim))
            val = self.new_value(names[i] if i < len(names) else None, vtype, where)
            self.env[r] = val
            values.append(val)
        self.calls.append(self.typed.StageCall(st.name, operands, options, values, where,
                                              [n for n, _ in present]))

    def read_kernel_call(self, op, where: SourceLoc) -> None:
        callee = ir.FlatSymbolRefAttr(op.operation.attributes["callee"]).value
        kernel = self.funcs.get(callee)
        if kernel is None or KERNEL_ATTR not in kernel.operation.attributes:
            raise UnsupportedError(f"cannot read a call of @{callee} (not a qf.kernel)", where)
        body = kernel.operation.regions[0].blocks[0]
        for arg, operand in zip(body.arguments, op.operation.operands):
            self.env[arg] = self.value(operand, where)
        outs = self.read_block(body)
        for r, val in zip(op.operation.results, outs):
            self.env[r] = val


def _get(attrs, key: str):
    """``attrs[key]`` of an optional DictAttr, or None."""
    return attrs[key] if attrs is not None and key in attrs else None


def _agreeing(inferred, actual):
    """The inferred type when it matches the IR's dtype and rank, else the IR's."""
    if (isinstance(inferred, TensorType) and isinstance(actual, TensorType)
            and inferred.dtype == actual.dtype and inferred.rank == actual.rank):
        return inferred
    return actual


def read_function(fn, funcs: Optional[dict] = None):
    """The TypedPipeline of one pipeline ``func.func`` (``funcs``: symbol -> func, for
    kernel calls)."""
    return _Reader(fn, funcs or {}).read()


def value_info(fn) -> dict:
    """``{ir.Value: Value}`` for the arguments, constants and ``qf`` results of one
    ``func.func``: the name, symbolic type and location the reader gives each value."""
    reader = _Reader(fn, {})
    reader.read()
    return reader.env
