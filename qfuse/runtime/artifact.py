"""A compiled pipeline as plain data: what the cache stores and a bundle ships.

``CompiledPipeline`` holds the checked program (JSON), the fused IR text (for humans),
and one ``KernelStep`` per kernel in launch order: the backend's artifact for it (Triton:
the rendered source with its launch rules; ROCDL: the kernel's IR, ABI and code
objects), and the names of the values it reads and writes. Each backend stores and
reads its own artifact (``Backend.dump_artifact`` / ``load_artifact``, checked against
``Backend.artifact_schema``); loading and running needs what running the kernels needs
(torch, and Triton or the platform's driver bindings), never lark or the MLIR bindings.

:meth:`CompiledPipeline.loads` is the one reader of the stored form (cache entries and
bundles): the JSON is checked against :func:`artifact_schema` (a step's artifact against
its backend's schema) before anything is built from it, so damage raises
:class:`~qfuse.runtime.schema.SchemaError` naming the place, never a raw ``KeyError``.
Kernel and pipeline names must be Python identifiers: a kernel name becomes a function
and a module name, and must not carry a path (``../x``) into the module directory.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any, Optional

from ..dialect.typed import TypedPipeline
from .program_json import PROGRAM, pipeline_from_json, pipeline_to_json
from .schema import (IDENT, Anything, ListOf, MapOf, Obj, Opt, SchemaError, TupleOf, Where,
                     check, load_json)

__all__ = ["KernelStep", "CompiledPipeline", "FORMAT_VERSION", "artifact_schema"]

FORMAT_VERSION = 1


_HEAD = Obj({"format": int, "backend": str})


@functools.lru_cache(maxsize=None)
def artifact_schema(backend: str) -> Obj:
    """The schema of :meth:`CompiledPipeline.to_json` for ``backend`` (built on first use:
    a step's ``source`` is the backend's own stored artifact, whose schema the backend
    gives, :meth:`~qfuse.backends.base.Backend.artifact_schema`)."""
    from . import schema
    inner = _backend(backend).artifact_schema(schema)
    source = Opt(inner) if inner is not None else \
        Where(Anything(), lambda v: v is None, "null (this backend stores no kernel artifact)")
    step = Obj({"name": IDENT, "space": str, "reason": str, "inputs": ListOf(str),
                "outputs": ListOf(str), "source": source, "program": Opt(PROGRAM)})
    return Obj({"format": int, "name": IDENT, "backend": str, "target": str,
                "program": PROGRAM, "returns": ListOf(TupleOf(str, str)),
                "steps": ListOf(step)},
               {"versions": MapOf(str), "fused_ir": str})


def _backend(name: str):
    from ..backends.registry import get_backend
    return get_backend(name)


def _load_source(b, data: Any, what: str):
    """A step's stored artifact through its backend; its ArtifactError is damage."""
    from ..backends.base import ArtifactError
    if data is None:
        return None
    try:
        return b.load_artifact(data)
    except ArtifactError as e:
        raise SchemaError(f"{what}: {e.message}") from None


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
    source: object = None     # the backend's artifact (KernelSource, RocdlKernel; None: reference)
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
        """``{kernel name: its artifact's text}`` (Triton: the module source; ROCDL: the
        loop-level MLIR), stored for humans as ``<kernel><source_suffix>``."""
        return {s.name: s.source.text for s in self.steps if s.source is not None}

    @property
    def source_suffix(self) -> str:
        return _backend(self.backend).source_suffix

    def to_json(self) -> dict:
        b = _backend(self.backend)
        return {
            "format": FORMAT_VERSION, "name": self.name, "backend": self.backend,
            "target": self.target, "versions": self.versions, "fused_ir": self.fused_ir,
            "program": pipeline_to_json(self.program), "returns": self.returns,
            "steps": [{"name": s.name, "space": s.space, "reason": s.reason,
                       "inputs": s.inputs, "outputs": s.outputs,
                       "source": b.dump_artifact(s.source) if s.source is not None else None,
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
        check(j, _HEAD, f"{what}: $")
        from ..backends.registry import NAMES
        if j["backend"] not in NAMES:
            raise SchemaError(f"{what}: $.backend: {j['backend']!r:.40} is not a backend of "
                              f"this qfuse ({', '.join(NAMES)})")
        b = _backend(j["backend"])
        check(j, artifact_schema(j["backend"]), f"{what}: $")
        _check_names(j, what)
        try:                         # what a schema cannot see (dtypes, value ids)
            program = pipeline_from_json(j["program"])
            steps = [KernelStep(s["name"], s["space"], s["reason"], list(s["inputs"]),
                                list(s["outputs"]),
                                _load_source(b, s["source"], f"{what}: step {s['name']}"),
                                pipeline_from_json(s["program"]) if s["program"] else None)
                     for s in j["steps"]]
        except SchemaError as e:
            raise SchemaError(f"{what}: {e.message}") from None
        return cls(j["name"], program, j["backend"], j["target"], j.get("fused_ir", ""), steps,
                   [tuple(r) for r in j["returns"]], dict(j.get("versions", {})))
