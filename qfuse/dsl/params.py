"""Check pipeline parameters: dtype names, dims, scalar defaults, duplicates.

``x: bf16[M, N]`` is a tensor (dims are symbols or positive integers, or expressions of
them: ``e8m0[M, cdiv(N, 32)]``); ``eps: f32`` (no brackets) is a scalar, whose optional
default literal must fit its dtype. Any of them may default to ``None``: an optional
parameter, present in some variants of the pipeline and absent in the others.
``shuffle: bool = false`` is a flag: a compile-time choice between variants (it reaches
no kernel), read by ``a if shuffle else b`` and by bool options.

A symbol used inside a dim expression must also be a plain dim of some parameter: a call
binds symbols from the sizes of the tensors that show them alone, then checks every
expression against its tensor's size.
"""
from __future__ import annotations

import difflib
import math

from ..dialect.types import (DTYPES, Dim, DType, ScalarType, TensorType, cdiv_dim, div_dim,
                             dtype, mul_dim, round_up_dim)
from ..errors import DSLTypeError
from . import ast as A
from .limits import MAX_DIM_DEPTH, check_dim, check_param_count, dim_depth
from ..dialect.typed import FamilyParam, ParamInfo, ParamKind, Value

__all__ = ["check_params", "resolve_dtype", "FLAG_TYPE"]

#: The type name of a flag parameter (``shuffle: bool = false``).
FLAG_TYPE = "bool"

_INT_RANGES = {"i32": (-2**31, 2**31 - 1), "i64": (-2**63, 2**63 - 1), "u8": (0, 255)}
_FLOAT_MAX = {"f32": 3.4028234663852886e38, "bf16": 3.3895313892515355e38, "f16": 65504.0}
SCALAR_DTYPES = tuple(d.name for d in DTYPES.values() if d.kind in ("float", "int"))


def resolve_dtype(type_expr) -> DType:
    """The DType a parameter type names (aliases allowed); unknown names list the valid ones."""
    try:
        return dtype(type_expr.dtype)
    except KeyError:
        close = difflib.get_close_matches(type_expr.dtype, list(DTYPES), n=1)
        raise DSLTypeError(f"unknown dtype '{type_expr.dtype}' (dtypes: {', '.join(DTYPES)})",
                           type_expr.loc,
                           hint=f"did you mean '{close[0]}'?" if close else None) from None


def check_params(params) -> list:
    """``(ParamInfo or None, FamilyParam)`` for each parameter, in order (a flag has no
    ParamInfo: it reaches no program); raises DSLTypeError on a bad one."""
    check_param_count(params)
    seen: dict = {}
    out = []
    for param in params:
        if param.name in seen:
            raise DSLTypeError(f"duplicate parameter '{param.name}' (first at line "
                               f"{seen[param.name].line}, column {seen[param.name].col})",
                               param.loc)
        seen[param.name] = param.loc
        if isinstance(param.type, A.ScalarTypeExpr) and param.type.dtype == FLAG_TYPE:
            out.append((None, FamilyParam(param.name, ParamKind.FLAG, None, _flag_default(param),
                                          param.loc)))
            continue
        optional = isinstance(param.default, A.NoneLit)
        info = _check_param(param if not optional else A.Param(param.loc, param.name,
                                                               param.type, None))
        out.append((info, FamilyParam(param.name, ParamKind.OPTIONAL if optional else ParamKind.VALUE,
                                      info.value.type, info.default, param.loc)))
    _check_bound_symbols(params)
    return out


def _flag_default(param: A.Param):
    """A flag's default: true, false, or None (the caller must give it)."""
    node = param.default
    if node is None:
        return None
    if not isinstance(node, A.Bool):
        raise DSLTypeError(f"the default of the flag '{param.name}: bool' must be true or "
                           f"false", node.loc)
    return node.value


#: The dim expressions a parameter type may use, by their DSL spelling.
_DIM_OPS = {"mul": mul_dim, "div": div_dim, "cdiv": cdiv_dim, "round_up": round_up_dim}


def _dim(node) -> Dim:
    """The Dim of a DimRef or DimExpr (constants folded); DSLTypeError for an unknown
    function or a size out of range (so no division is by zero)."""
    if isinstance(node, A.DimRef):
        if isinstance(node.value, int):
            check_dim(node.value, node.loc)
        return Dim(node.value)
    make = _DIM_OPS.get(node.op)
    if make is None:
        close = difflib.get_close_matches(node.op, ["cdiv", "round_up"], n=1)
        raise DSLTypeError(f"unknown dim function '{node.op}' (dims: names, integers, a * b, "
                           f"a / b, cdiv(a, b), round_up(a, b))", node.loc,
                           hint=f"did you mean '{close[0]}'?" if close else None)
    d = make(_dim(node.a), _dim(node.b))      # each side is a positive size already
    if d.is_const:
        check_dim(d.value, node.loc)
    if dim_depth(d) > MAX_DIM_DEPTH:
        raise DSLTypeError(f"a dim nests more than {MAX_DIM_DEPTH} expressions deep", node.loc)
    return d


def _plain_symbols(params) -> set:
    return {d.value for p in params if isinstance(p.type, A.TensorTypeExpr)
            for d in p.type.dims if isinstance(d, A.DimRef) and isinstance(d.value, str)}


def _check_bound_symbols(params) -> None:
    """Every symbol of a dim expression is a plain dim somewhere (see the module doc)."""
    plain = _plain_symbols(params)
    for p in params:
        if not isinstance(p.type, A.TensorTypeExpr):
            continue
        for d in p.type.dims:
            if isinstance(d, A.DimExpr):
                loose = sorted(_dim(d).symbols() - plain)
                if loose:
                    raise DSLTypeError(
                        f"'{loose[0]}' appears only inside dim expressions; a call could not "
                        f"bind it", d.loc,
                        hint=f"give {loose[0]} as a plain dim of a parameter too, e.g. "
                             f"x: bf16[M, {loose[0]}]")


def _check_param(param: A.Param) -> ParamInfo:
    dt = resolve_dtype(param.type)
    if isinstance(param.type, A.TensorTypeExpr):
        shape = tuple(_dim(d) for d in param.type.dims)
        if param.default is not None:
            raise DSLTypeError(f"only scalar parameters take a default; '{param.name}' is a "
                               f"tensor", param.default.loc)
        return ParamInfo(Value(param.name, TensorType(dt, shape), param.loc))
    if dt.name not in SCALAR_DTYPES:
        raise DSLTypeError(f"scalar parameter '{param.name}' cannot be {dt.name} (scalars: "
                           f"{', '.join(SCALAR_DTYPES)})", param.type.loc,
                           hint=f"a tensor needs dims: {param.name}: {dt.name}[N]")
    default = None if param.default is None else _check_default(param, dt)
    return ParamInfo(Value(param.name, ScalarType(dt), param.loc), default)


def _check_default(param: A.Param, dt: DType):
    node = param.default
    if not isinstance(node, A.Number):
        raise DSLTypeError(f"the default of '{param.name}: {dt.name}' must be a number",
                           node.loc)
    value = node.value
    if dt.is_float:
        try:
            as_float = float(value)
        except OverflowError:
            as_float = math.inf
        if not math.isfinite(as_float) or abs(as_float) > _FLOAT_MAX[dt.name]:
            raise DSLTypeError(f"default {value} does not fit {dt.name}", node.loc)
        return as_float
    if not isinstance(value, int):
        raise DSLTypeError(f"default {value} of '{param.name}' must be an integer ({dt.name})",
                           node.loc)
    low, high = _INT_RANGES[dt.name]
    if not low <= value <= high:
        raise DSLTypeError(f"default {value} does not fit {dt.name} ({low}..{high})", node.loc)
    return value
