"""A compiled pipeline as plain data: what the cache stores and a bundle ships.

``CompiledPipeline`` holds the checked program (JSON), the fused IR text (for humans),
and one ``KernelStep`` per kernel in launch order: the rendered Triton source with its
launch rules, and the names of the values it reads and writes. Loading and running it
needs torch and triton only (no lark, no MLIR bindings).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Optional

from ..dialect.typed import TypedPipeline
from .program_json import pipeline_from_json, pipeline_to_json

__all__ = ["KernelStep", "CompiledPipeline", "FORMAT_VERSION"]

FORMAT_VERSION = 1


def _source_to_json(src) -> dict:
    return dataclasses.asdict(src)


def _source_from_json(d: dict):
    from ..backends.triton.kernel import KernelArg, KernelSource, ScalarSpec, TensorSpec

    def tup(x):
        return tuple(tup(i) for i in x) if isinstance(x, list) else x
    nested = {"args": KernelArg, "tensors": TensorSpec, "scalars": ScalarSpec}
    kw = {}
    for f in dataclasses.fields(KernelSource):
        if f.name not in d:
            continue
        v = d[f.name]
        if f.name in nested:
            v = tuple(nested[f.name](**{k: tup(x) for k, x in item.items()}) for item in v)
        kw[f.name] = tup(v)
    return KernelSource(**kw)


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
    def from_json(cls, j: dict) -> "CompiledPipeline":
        if j.get("format") != FORMAT_VERSION:
            raise ValueError(f"compiled pipeline format {j.get('format')} != {FORMAT_VERSION}")
        steps = [KernelStep(s["name"], s["space"], s["reason"], list(s["inputs"]),
                            list(s["outputs"]),
                            _source_from_json(s["source"]) if s["source"] else None,
                            pipeline_from_json(s["program"]) if s["program"] else None)
                 for s in j["steps"]]
        return cls(j["name"], pipeline_from_json(j["program"]), j["backend"], j["target"],
                   j.get("fused_ir", ""), steps, [tuple(r) for r in j["returns"]],
                   dict(j.get("versions", {})))
