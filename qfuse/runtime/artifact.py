"""A compiled pipeline as plain data: what the cache stores and a bundle ships.

``CompiledPipeline`` holds the checked program (JSON), the fused IR text (for humans),
and one ``KernelStep`` per kernel in launch order: the rendered Triton source with its
launch rules, and the names of the values it reads and writes. Loading and running it
needs torch and triton only (no lark, no MLIR bindings).

:meth:`CompiledPipeline.loads` is the one reader of the stored form (cache entries and
bundles): the JSON is checked against :func:`artifact_schema` (kernel sources against the
fields of ``KernelSource`` itself) before anything is built from it, so damage raises
:class:`~qfuse.runtime.schema.SchemaError` naming the place, never a raw ``KeyError``.
Kernel and pipeline names must be Python identifiers: a kernel name becomes a function
and a module name, and must not carry a path (``../x``) into the module directory.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from typing import Any, Optional

from ..dialect.typed import TypedPipeline
from .program_json import PROGRAM, pipeline_from_json, pipeline_to_json
from .schema import IDENT, ListOf, MapOf, Obj, Opt, SchemaError, TupleOf, check, dataclass_spec, \
    load_json

__all__ = ["KernelStep", "CompiledPipeline", "FORMAT_VERSION", "artifact_schema"]

FORMAT_VERSION = 1


@functools.lru_cache(maxsize=1)
def artifact_schema() -> Obj:
    """The schema of :meth:`CompiledPipeline.to_json` (built on first use: it reads the
    kernel dataclasses, whose module imports the Triton backend)."""
    from ..backends.triton.kernel import KernelArg, KernelSource, ScalarSpec, TensorSpec
    source = dataclass_spec(KernelSource, {
        "name": IDENT,
        "args": ListOf(dataclass_spec(KernelArg)),
        "tensors": ListOf(dataclass_spec(TensorSpec)),
        "scalars": ListOf(dataclass_spec(ScalarSpec)),
        "phases": ListOf(TupleOf(IDENT, ListOf(str))),     # (kernel function, grid rules)
    })
    step = Obj({"name": IDENT, "space": str, "reason": str, "inputs": ListOf(str),
                "outputs": ListOf(str), "source": Opt(source), "program": Opt(PROGRAM)})
    return Obj({"format": int, "name": IDENT, "backend": str, "target": str,
                "program": PROGRAM, "returns": ListOf(TupleOf(str, str)),
                "steps": ListOf(step)},
               {"versions": MapOf(str), "fused_ir": str})


def _source_to_json(src) -> dict:
    return dataclasses.asdict(src)


def _tup(x):
    return tuple(_tup(i) for i in x) if isinstance(x, list) else x


def _dataclass_from_json(cls, d: dict, nested: Optional[dict] = None):
    """``cls`` from checked JSON: lists become tuples, keys ``cls`` lacks are dropped."""
    nested = nested or {}
    kw = {}
    for f in dataclasses.fields(cls):
        if f.name in d:
            v = d[f.name]
            kw[f.name] = (tuple(_dataclass_from_json(nested[f.name], i) for i in v)
                          if f.name in nested else _tup(v))
    return cls(**kw)


def _source_from_json(d: dict):
    from ..backends.triton.kernel import KernelArg, KernelSource, ScalarSpec, TensorSpec
    return _dataclass_from_json(KernelSource, d, {"args": KernelArg, "tensors": TensorSpec,
                                                  "scalars": ScalarSpec})


def _check_names(j: dict, what: str) -> None:
    """What a schema cannot relate: the program is the pipeline's. (A step's kernel
    function may be named apart from the step, e.g. ``<step>_amax``: not checked.)"""
    if j["program"]["name"] != j["name"]:
        raise SchemaError(f"{what}: pipeline {j['name']} holds the program of "
                          f"{j['program']['name']}")


@dataclass
class KernelStep:
    name: str                 # kernel function name (pipeline__kN)
    space: str                # row | tensor_amax | tile | cache_block
    reason: str               # why the boundary before it exists
    inputs: list              # value names read (pipeline params or earlier outputs)
    outputs: list             # value names written
    source: object = None     # KernelSource (triton backend) or None (reference)
    program: Optional[TypedPipeline] = None   # the kernel's own program (reference fallback)


@dataclass
class CompiledPipeline:
    name: str
    program: TypedPipeline
    backend: str
    target: str
    fused_ir: str = ""
    steps: list = field(default_factory=list)
    returns: list = field(default_factory=list)     # [(return name, value name)]
    versions: dict = field(default_factory=dict)

    def sources(self) -> dict:
        """``{kernel name: Triton source text}``."""
        return {s.name: s.source.text for s in self.steps if s.source is not None}

    def to_json(self) -> dict:
        return {
            "format": FORMAT_VERSION, "name": self.name, "backend": self.backend,
            "target": self.target, "versions": self.versions, "fused_ir": self.fused_ir,
            "program": pipeline_to_json(self.program), "returns": self.returns,
            "steps": [{"name": s.name, "space": s.space, "reason": s.reason,
                       "inputs": s.inputs, "outputs": s.outputs,
                       "source": _source_to_json(s.source) if s.source is not None else None,
                       "program": pipeline_to_json(s.program) if s.program is not None else None}
                      for s in self.steps],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True, indent=1)

    @classmethod
    def loads(cls, raw: bytes, what: str, name: Optional[str] = None) -> "CompiledPipeline":
        """Read the stored form (``raw`` JSON bytes; ``what`` names it in errors). With
        ``name``, the pipeline must be that one: an entry stored under another name is
        refused, not used."""
        cp = cls.from_json(load_json(raw, Obj({"format": int}), what), what)
        if name is not None and cp.name != name:
            raise SchemaError(f"{what}: holds pipeline {cp.name!r}, expected {name!r}")
        return cp

    @classmethod
    def from_json(cls, j: Any, what: str = "compiled pipeline") -> "CompiledPipeline":
        """Build from the JSON of :meth:`to_json`; raises :class:`SchemaError` on damage
        or another format."""
        if not isinstance(j, dict) or j.get("format") != FORMAT_VERSION:
            got = j.get("format") if isinstance(j, dict) else type(j).__name__
            raise SchemaError(f"{what}: format {got!r:.40}, this qfuse reads {FORMAT_VERSION}")
        check(j, artifact_schema(), f"{what}: $")
        _check_names(j, what)
        try:                         # what a schema cannot see (dtypes, value ids)
            program = pipeline_from_json(j["program"])
            steps = [KernelStep(s["name"], s["space"], s["reason"], list(s["inputs"]),
                                list(s["outputs"]),
                                _source_from_json(s["source"]) if s["source"] else None,
                                pipeline_from_json(s["program"]) if s["program"] else None)
                     for s in j["steps"]]
        except SchemaError as e:
            raise SchemaError(f"{what}: {e.message}") from None
        return cls(j["name"], program, j["backend"], j["target"], j.get("fused_ir", ""), steps,
                   [tuple(r) for r in j["returns"]], dict(j.get("versions", {})))
