"""Check pipeline parameters: dtype names, dims, scalar defaults, duplicates.

``x: bf16[M, N]`` is a tensor (dims are symbols or positive integers); ``eps: f32``
(no brackets) is a scalar, whose optional default literal must fit its dtype.
"""
from __future__ import annotations

import difflib
import math

from ..dialect.types import DTYPES, Dim, DType, ScalarType, TensorType, dtype
from ..errors import DSLTypeError
from . import ast as A
from .limits import check_dim, check_param_count
from ..dialect.typed import ParamInfo, Value

__all__ = ["check_params", "resolve_dtype"]

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
    """ParamInfo for each parameter, in order; raises DSLTypeError on a bad one."""
    check_param_count(params)
    seen: dict = {}
    infos = []
    for param in params:
        if param.name in seen:
            raise DSLTypeError(f"duplicate parameter '{param.name}' (first at line "
                               f"{seen[param.name].line}, column {seen[param.name].col})",
                               param.loc)
        seen[param.name] = param.loc
        infos.append(_check_param(param))
    return infos


def _check_param(param: A.Param) -> ParamInfo:
    dt = resolve_dtype(param.type)
    if isinstance(param.type, A.TensorTypeExpr):
        for dim in param.type.dims:
            if isinstance(dim.value, int):
                check_dim(dim.value, dim.loc)
        if param.default is not None:
            raise DSLTypeError(f"only scalar parameters take a default; '{param.name}' is a "
                               f"tensor", param.default.loc)
        shape = tuple(Dim(d.value) for d in param.type.dims)
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
