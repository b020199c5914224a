"""The checked pipeline: SSA values with inferred types and fully resolved options.

``qfuse.dsl.check`` turns a :class:`~qfuse.dsl.ast.PipelineDef` into a
:class:`TypedPipeline`; ``qfuse.dialect.builder`` turns that into a ``func.func`` of
``qf`` ops. Every option of every stage is present in ``StageCall.options`` (defaults
filled by ``qfuse.dialect.stages.resolve_options``), so nothing downstream guesses.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Union

from .types import ScalarType, TensorType
from ..errors import SourceLoc

__all__ = ["Value", "ScaleOf", "ParamInfo", "ConstInfo", "StageCall", "TypedPipeline"]


@dataclass(frozen=True, eq=False)
class Value:
    """One SSA value. ``name`` is the user's variable name (or a generated one)."""
    name: str
    type: Union[TensorType, ScalarType]
    loc: SourceLoc

    def __repr__(self) -> str:
        return f"%{self.name}: {self.type}"


@dataclass(frozen=True)
class ScaleOf:
    """A kernel input that an earlier kernel computed as the dynamic scale of another
    input ``x`` of this kernel (the fusion pass writes it as the ``qf.scale_of`` argument
    attribute, see :mod:`qfuse.dialect.encoding`): every |x| is at most the amax behind
    the scale, so a backend may skip range checks when it quantises x with it."""
    x: Value
    granularity: str
    dtype_max: float


@dataclass(frozen=True)
class ParamInfo:
    value: Value
    default: Optional[Union[int, float, bool]] = None
    scale_of: Optional[ScaleOf] = None     # kernel functions only: see ScaleOf


@dataclass(frozen=True)
class ConstInfo:
    """A literal used as an operand (e.g. ``eps`` written as ``1e-6``)."""
    value: Value
    literal: Union[int, float]


@dataclass
class StageCall:
    stage: str                       # key of qfuse.dialect.stages.STAGES
    operands: dict                   # operand name -> Value | None (declared order)
    options: dict                    # option name -> resolved python value (all options)
    results: list                    # Values, in the stage's declared result order (present ones)
    loc: SourceLoc
    result_names: list = field(default_factory=list)  # declared result names, e.g. ["out", "residual_out"]


@dataclass
class TypedPipeline:
    name: str
    params: list                     # ParamInfo
    consts: list                     # ConstInfo
    calls: list                      # StageCall, in program order
    returns: list                    # Values
    loc: SourceLoc
    return_names: list = field(default_factory=list)  # user names of returned values

    def symbols(self) -> list:
        """Symbolic dim names in first-appearance order over the parameters."""
        seen: list = []
        for p in self.params:
            t = p.value.type
            if isinstance(t, TensorType):
                for d in t.shape:
                    for s in sorted(d.symbols()):
                        if s not in seen:
                            seen.append(s)
        return seen
