"""The checked pipeline: SSA values with inferred types and fully resolved options.

``qfuse.dsl.check`` turns a :class:`~qfuse.dsl.ast.PipelineDef` into a
:class:`TypedPipeline`; ``qfuse.dialect.builder`` turns that into a ``func.func`` of
``qf`` ops. Every option of every stage is present in ``StageCall.options`` (defaults
filled by ``qfuse.dialect.stages.resolve_options``), so nothing downstream guesses.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional, Union

from .types import ScalarType, TensorType
from ..errors import SourceLoc

__all__ = ["Value", "ScaleOf", "ParamInfo", "ConstInfo", "StageCall", "TypedPipeline",
           "FamilyParam", "ParamKind", "PipelineFamily"]


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
    # the definition this program is one variant of (optional parameters, flags), if any
    family: Optional["PipelineFamily"] = field(default=None, repr=False, compare=False)

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


class ParamKind(str, Enum):
    """How a declared parameter takes part in a definition's variants."""
    VALUE = "value"          # in every variant
    OPTIONAL = "optional"    # ``= None``: a variant has it or not
    FLAG = "flag"            # ``name: bool``: a compile-time choice, in no signature


@dataclass(frozen=True)
class FamilyParam:
    """One declared parameter of a definition with variants (:class:`PipelineFamily`).

    ``kind``: ``value`` (in every variant), ``optional`` (``= None``: a variant has it or
    not) or ``flag`` (``name: bool``: a compile-time choice, in no variant's signature)."""
    name: str
    kind: ParamKind
    type: Optional[Union[TensorType, ScalarType]] = None    # None for a flag
    default: Any = None          # a scalar's or a flag's default (None: the caller gives it)
    loc: Optional[SourceLoc] = None


@dataclass
class PipelineFamily:
    """The pipelines one definition with optional parameters or flags stands for: one
    checked TypedPipeline per combination of present / absent optionals and flag values.

    A variant's key has one bool per selecting parameter (``selectors``, declaration
    order): present / true. ``return_names`` names every output of the definition; a
    variant returns the ones it has (an output that is None there is absent)."""
    name: str
    params: list                     # FamilyParam, declaration order
    return_names: list
    variants: dict                   # key -> TypedPipeline
    principal: tuple                 # the key of the variant the checker hands out

    @property
    def selectors(self) -> list:
        return [p for p in self.params if p.kind != ParamKind.VALUE]

    def describe(self, key: tuple) -> str:
        """``res is None, shuffle=true``: the arguments that select variant ``key``."""
        parts = []
        for p, on in zip(self.selectors, key):
            if p.kind == ParamKind.FLAG:
                parts.append(f"{p.name}={'true' if on else 'false'}")
            else:
                parts.append(f"{p.name} is {'given' if on else 'None'}")
        return ", ".join(parts)
