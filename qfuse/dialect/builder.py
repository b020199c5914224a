"""TypedPipeline -> ``qf`` MLIR module (the MLIRGen step of the Toy tutorial).

Each pipeline becomes one public ``func.func @<name>`` over tensors and scalars::

    func.func @rmsnorm_per_token_fp8(
        %arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "x"},
        %arg1: tensor<?xbf16> {qf.dims = ["N"], qf.name = "w"},
        %arg2: f32 {qf.default = 9.9999999999999995E-7 : f64, qf.name = "eps"})
        -> (tensor<?x?xf8E4M3FN> {qf.name = "q"}, tensor<?x1xf32> {qf.name = "s"}) {
      %0 = "qf.norm"(%arg0, %arg1, %arg2) {...} : (...) -> tensor<?x?xf32>
      ...

Literals become ``arith.constant``; every op, block argument and constant gets the file
location of its DSL node (names in a name location, see :mod:`qfuse.dialect.encoding`).
The module is verified once at the end; a failure is a :class:`QfuseError` at the DSL
position of the failing op, never a raw MLIR exception.
"""
from __future__ import annotations

from typing import Optional

from ..errors import QfuseError
from .encoding import (DEFAULT_ATTR, DIMS_ATTR, NAME_ATTR, attr_name, default_attr, dims_attr,
                       literal_attr, location, mlir_type, option_attr)
from .mlir import arith, func, ir
from .ops import make_context, op_class
from .stages import STAGES, StageError, resolve_options
from .text import verify
from .types import TensorType

__all__ = ["build_module", "build_function", "function_shell", "param_attrs"]


def build_module(pipelines: list, ctx: Optional[ir.Context] = None) -> ir.Module:
    """One ``func.func`` per pipeline in a new module, verified.

    ``ctx`` must have ``qf`` loaded (see :func:`qfuse.dialect.ops.make_context`); a fresh
    one is made when it is None. Raises QfuseError (located) when the result is invalid.
    """
    ctx = ctx or make_context()
    with ctx, ir.Location.unknown():
        module = ir.Module.create()
        for tp in pipelines:
            build_function(tp, module)
    verify(module)
    return module


def build_function(tp, module: ir.Module) -> func.FuncOp:
    """Append ``func.func @<tp.name>`` to ``module`` (inside its Context; not verified)."""
    fn, block, env = function_shell(tp, module)
    with ir.InsertionPoint(block):
        for c in tp.consts:
            attr = literal_attr(c.value.type.dtype, c.literal)
            env[c.value] = arith.ConstantOp(mlir_type(c.value.type), attr,
                                            loc=location(c.value.loc, [c.value.name])).result
        for call in tp.calls:
            _build_call(call, env)
        func.ReturnOp([_lookup(env, v, tp.loc) for v in tp.returns], loc=location(tp.loc))
    return fn


def function_shell(tp, module: ir.Module) -> tuple:
    """An empty ``func.func @<tp.name>`` with the pipeline's signature, ``qf.name`` /
    ``qf.dims`` / ``qf.default`` attributes and located block arguments.
    Returns ``(func, entry block, {parameter Value: block argument})``."""
    with ir.InsertionPoint(module.body):
        arg_types = [mlir_type(p.value.type) for p in tp.params]
        res_types = [mlir_type(v.type) for v in tp.returns]
        fn = func.FuncOp(tp.name, ir.FunctionType.get(arg_types, res_types), loc=location(tp.loc))
    if tp.params:
        fn.arg_attrs = ir.ArrayAttr.get([param_attrs(p) for p in tp.params])
    names = list(tp.return_names) or [v.name for v in tp.returns]
    if names:
        fn.res_attrs = ir.ArrayAttr.get([ir.DictAttr.get({NAME_ATTR: ir.StringAttr.get(n)})
                                         for n in names])
    block = fn.add_entry_block(arg_locs=[location(p.value.loc) for p in tp.params])
    return fn, block, {p.value: arg for p, arg in zip(tp.params, block.arguments)}


def param_attrs(p) -> ir.DictAttr:
    """Argument attributes of a ParamInfo: ``qf.name``, ``qf.dims``, ``qf.default``."""
    t = p.value.type
    attrs = {NAME_ATTR: ir.StringAttr.get(p.value.name)}
    if isinstance(t, TensorType):
        attrs[DIMS_ATTR] = dims_attr(t.shape)
    if p.default is not None:
        attrs[DEFAULT_ATTR] = default_attr(p.default)
    return ir.DictAttr.get(attrs)


def _lookup(env: dict, value, loc):
    if value not in env:
        raise QfuseError(f"internal: {value!r} is used before it is defined", loc)
    return env[value]


def _build_call(call, env: dict) -> None:
    """One ``qf.<stage>`` op for a StageCall; its results are added to ``env``."""
    st = STAGES[call.stage]
    operands = {spec.name: (None if call.operands.get(spec.name) is None
                            else _lookup(env, call.operands[spec.name], call.loc))
                for spec in st.operands}
    arg_types = {n: v.type for n, v in call.operands.items() if v is not None}
    try:
        options = resolve_options(st, arg_types, dict(call.options))
    except StageError as e:
        raise QfuseError(f"{st.op_name}: {e.message}", call.loc) from None
    attrs = {attr_name(st, spec.name): option_attr(spec, options[spec.name])
             for spec in st.options}
    declared = [r.rstrip("?") for r in st.results]
    present = list(call.result_names) or declared[:len(call.results)]
    by_name = dict(zip(present, call.results))
    results = {n: (mlir_type(by_name[n].type) if n in by_name else None) for n in declared}
    op = op_class(st.name)(**operands, **attrs, **results,
                           loc=location(call.loc, [v.name for v in call.results]))
    for name, value in by_name.items():
        env[value] = getattr(op, name)
