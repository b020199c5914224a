"""TypedPipeline <-> JSON, so a built bundle carries the checked program without lark or MLIR.

The JSON form is what ``qfuse build`` writes into a bundle manifest and what the cache
stores next to generated kernels: parameters (dtype, dims, defaults), constants, stage
calls (operands by value id, resolved options, results) and returns. Loading it needs
only this module, ``qfuse.dialect.types``, ``qfuse.dialect.typed`` and the stage catalog
(plain Python).

The JSON comes back from disk, so :func:`pipeline_from_json` checks it against
:data:`PROGRAM` first, then checks what a schema cannot (known dtypes, dim ops and
stages, value ids defined before use); anything wrong raises
:class:`~qfuse.runtime.schema.SchemaError`. Options are resolved through the catalog as
the MLIR reader does, so a loaded program holds the same option values (enum members)
as a compiled one.
"""
from __future__ import annotations

from typing import Any

from ..dialect.stages import STAGES, StageError, resolve_options
from ..dialect.types import Dim, ScalarType, TensorType, dtype
from ..dialect.typed import ConstInfo, ParamInfo, StageCall, TypedPipeline, Value
from ..errors import SourceLoc
from .schema import IDENT, Anything, Either, ListOf, MapOf, Obj, Opt, SchemaError, TupleOf, check

__all__ = ["pipeline_to_json", "pipeline_from_json", "dim_to_json", "dim_from_json",
           "type_to_json", "type_from_json", "PROGRAM"]

DIM_OPS = ("cdiv", "mul", "div", "round_up")
# a dim is an int, a symbol or [op, dim, dim]; the nesting is checked by dim_from_json
DIM = Either(int, str, TupleOf(str, Anything(), Anything()))
TYPE = Obj({"dtype": str}, {"dims": ListOf(DIM)})
LOC = Opt(TupleOf(str, int, int))
# names become Python and torch-op schema identifiers (parameters, the pipeline's op name)
VALUE = Obj({"id": int, "name": IDENT, "type": TYPE, "loc": LOC})
NUMBER = Opt(Either(bool, int, float))
PROGRAM = Obj({
    "name": IDENT, "loc": LOC,
    "params": ListOf(Obj({**VALUE.required, "default": NUMBER})),
    "consts": ListOf(Obj({**VALUE.required, "literal": Either(int, float)})),
    "calls": ListOf(Obj({"stage": str, "loc": LOC, "operands": MapOf(Opt(int)),
                         "options": MapOf(Anything()), "results": ListOf(VALUE),
                         "result_names": ListOf(str)})),
    "returns": ListOf(int),
    "return_names": ListOf(str),
})


def dim_to_json(d: Dim) -> Any:
    v = d.value
    if isinstance(v, (int, str)):
        return v
    op, a, b = v
    return [op, dim_to_json(a), dim_to_json(b)]


def dim_from_json(j: Any) -> Dim:
    if isinstance(j, list):
        if len(j) != 3 or j[0] not in DIM_OPS:
            raise SchemaError(f"bad dim {j!r:.80}: expected [op, dim, dim] with op one of "
                              f"{', '.join(DIM_OPS)}")
        return Dim((j[0], dim_from_json(j[1]), dim_from_json(j[2])))
    if isinstance(j, bool) or not isinstance(j, (int, str)):
        raise SchemaError(f"bad dim {j!r:.80}: expected an int, a symbol or [op, dim, dim]")
    return Dim(j)


def type_to_json(t) -> dict:
    if isinstance(t, TensorType):
        return {"dtype": t.dtype.name, "dims": [dim_to_json(d) for d in t.shape]}
    return {"dtype": t.dtype.name}


def _dtype(name: str):
    try:
        return dtype(name)
    except KeyError:
        raise SchemaError(f"unknown dtype {name!r:.80}") from None


def type_from_json(j: dict):
    if "dims" in j:
        return TensorType(_dtype(j["dtype"]), tuple(dim_from_json(d) for d in j["dims"]))
    return ScalarType(_dtype(j["dtype"]))


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


def pipeline_from_json(j: Any) -> TypedPipeline:
    """The program of ``j`` (checked against :data:`PROGRAM`; raises :class:`SchemaError`)."""
    check(j, PROGRAM, "program")
    try:
        return _build(j)
    except RecursionError:           # a dim nested deeper than any program writes
        raise SchemaError(f"program {j['name']!r:.80}: a dim is nested too deeply") from None


def _options(program: str, c: dict, operands: dict) -> dict:
    """A call's options, resolved by the catalog (enum members; SchemaError if invalid)."""
    st = STAGES.get(c["stage"])
    if st is None:
        raise SchemaError(f"program {program!r:.80}: unknown stage {c['stage']!r:.80}")
    args = {k: v.type for k, v in operands.items() if v is not None}
    try:
        return resolve_options(st, args, dict(c["options"]))
    except StageError as e:
        raise SchemaError(f"program {program!r:.80}: {st.name}: {e.message}") from None


def _build(j: dict) -> TypedPipeline:
    values: dict = {}

    def make(d: dict) -> Value:
        v = Value(d["name"], type_from_json(d["type"]), _loc_from_json(d["loc"]))
        values[d["id"]] = v
        return v

    def use(i):
        if i is not None and i not in values:
            raise SchemaError(f"program {j['name']!r:.80}: value id {i} is used before it "
                              f"is defined")
        return values.get(i)

    params = [ParamInfo(make(p), p.get("default")) for p in j["params"]]
    consts = [ConstInfo(make(c), c["literal"]) for c in j["consts"]]
    calls = []
    for c in j["calls"]:
        operands = {k: use(i) for k, i in c["operands"].items()}
        results = [make(r) for r in c["results"]]
        calls.append(StageCall(c["stage"], operands, _options(j["name"], c, operands), results,
                               _loc_from_json(c["loc"]), list(c["result_names"])))
    return TypedPipeline(j["name"], params, consts, calls, [use(i) for i in j["returns"]],
                         _loc_from_json(j["loc"]), list(j["return_names"]))
