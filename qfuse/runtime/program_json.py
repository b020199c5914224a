"""TypedPipeline <-> JSON, so a built bundle carries the checked program without lark or MLIR.

The JSON form is what ``qfuse build`` writes into a bundle manifest and what the cache
stores next to generated kernels: parameters (dtype, dims, defaults), constants, stage
calls (operands by value id, resolved options, results) and returns. Loading it needs
only this module, ``qfuse.dialect.types`` and ``qfuse.dialect.typed`` (plain Python).
"""
from __future__ import annotations

from typing import Any

from ..dialect.types import Dim, ScalarType, TensorType, dtype
from ..dialect.typed import ConstInfo, ParamInfo, StageCall, TypedPipeline, Value
from ..errors import SourceLoc

__all__ = ["pipeline_to_json", "pipeline_from_json", "dim_to_json", "dim_from_json",
           "type_to_json", "type_from_json"]


def dim_to_json(d: Dim) -> Any:
    v = d.value
    if isinstance(v, (int, str)):
        return v
    op, a, b = v
    return [op, dim_to_json(a), dim_to_json(b)]


def dim_from_json(j: Any) -> Dim:
    if isinstance(j, list):
        return Dim((j[0], dim_from_json(j[1]), dim_from_json(j[2])))
    return Dim(j)


def type_to_json(t) -> dict:
    if isinstance(t, TensorType):
        return {"dtype": t.dtype.name, "dims": [dim_to_json(d) for d in t.shape]}
    return {"dtype": t.dtype.name}


def type_from_json(j: dict):
    if "dims" in j:
        return TensorType(dtype(j["dtype"]), tuple(dim_from_json(d) for d in j["dims"]))
    return ScalarType(dtype(j["dtype"]))


def _loc_to_json(loc) -> Any:
    return [loc.file, loc.line, loc.col] if loc is not None else None


def _loc_from_json(j) -> Any:
    return SourceLoc(j[0], j[1], j[2]) if j else None


def pipeline_to_json(tp: TypedPipeline) -> dict:
    ids: dict = {}

    def vid(v: Value) -> int:
        if v not in ids:
            ids[v] = len(ids)
        return ids[v]

    def value(v: Value) -> dict:
        return {"id": vid(v), "name": v.name, "type": type_to_json(v.type),
                "loc": _loc_to_json(v.loc)}

    return {
        "name": tp.name,
        "loc": _loc_to_json(tp.loc),
        "params": [{**value(p.value), "default": p.default} for p in tp.params],
        "consts": [{**value(c.value), "literal": c.literal} for c in tp.consts],
        "calls": [{"stage": c.stage, "loc": _loc_to_json(c.loc),
                   "operands": {k: (None if v is None else vid(v)) for k, v in c.operands.items()},
                   "options": dict(c.options),
                   "results": [value(r) for r in c.results],
                   "result_names": list(c.result_names)} for c in tp.calls],
        "returns": [vid(v) for v in tp.returns],
        "return_names": list(tp.return_names),
    }


def pipeline_from_json(j: dict) -> TypedPipeline:
    values: dict = {}

    def make(d: dict) -> Value:
        v = Value(d["name"], type_from_json(d["type"]), _loc_from_json(d["loc"]))
        values[d["id"]] = v
        return v

    params = [ParamInfo(make(p), p.get("default")) for p in j["params"]]
    consts = [ConstInfo(make(c), c["literal"]) for c in j["consts"]]
    calls = []
    for c in j["calls"]:
        operands = {k: (None if i is None else values[i]) for k, i in c["operands"].items()}
        results = [make(r) for r in c["results"]]
        calls.append(StageCall(c["stage"], operands, dict(c["options"]), results,
                               _loc_from_json(c["loc"]), list(c["result_names"])))
    return TypedPipeline(j["name"], params, consts, calls, [values[i] for i in j["returns"]],
                         _loc_from_json(j["loc"]), list(j["return_names"]))
