"""The DSL's abstract syntax tree: frozen dataclasses, each carrying ``loc``.

Produced by ``qfuse.dsl.parser`` from a ``.qp`` file or from the source of a
``@quant_pipeline`` function; consumed by ``qfuse.dsl.check``.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Optional, Union

from ..errors import SourceLoc

__all__ = ["Node", "DimRef", "DimExpr", "DimNode", "TensorTypeExpr", "ScalarTypeExpr", "Param",
           "Name", "Number", "Bool", "String", "NoneLit", "Cond", "IfExpr", "Call", "Keyword",
           "BinOp", "Index", "Assign", "Return", "PipelineDef", "ModuleAST", "Expr", "Stmt",
           "TypeExpr"]


@dataclass(frozen=True)
class Node:
    loc: SourceLoc


@dataclass(frozen=True)
class DimRef(Node):
    """One dim in a parameter type: a symbol (``M``) or an integer (``128``)."""
    value: Union[str, int]


@dataclass(frozen=True)
class DimExpr(Node):
    """A derived dim in a parameter type: ``op(a, b)`` with ``op`` one of ``mul`` (``a *
    b``), ``div`` (``a / b``, integer division), ``cdiv`` and ``round_up`` (calls)."""
    op: str
    a: "DimNode"
    b: "DimNode"


DimNode = Union[DimRef, DimExpr]


@dataclass(frozen=True)
class TensorTypeExpr(Node):
    dtype: str
    dims: tuple  # of DimRef / DimExpr


@dataclass(frozen=True)
class ScalarTypeExpr(Node):
    dtype: str


TypeExpr = Union[TensorTypeExpr, ScalarTypeExpr]


@dataclass(frozen=True)
class Name(Node):
    id: str


@dataclass(frozen=True)
class Number(Node):
    value: Union[int, float]


@dataclass(frozen=True)
class Bool(Node):
    value: bool


@dataclass(frozen=True)
class String(Node):
    value: str


@dataclass(frozen=True)
class NoneLit(Node):
    """``None``: an absent value (an optional parameter's default, a variant's output)."""


class CondTest(str, Enum):
    """What an ``IfExpr`` condition asks of its name."""
    TRUE = "true"            # ``name``: a true flag, a present value
    NOT = "not"              # ``not name``
    NONE = "none"            # ``name is None``
    NOT_NONE = "not_none"    # ``name is not None``


@dataclass(frozen=True)
class Cond(Node):
    """The condition of an ``IfExpr`` on one name: ``name`` (true: a flag that is true, a
    value that is present), ``not name``, ``name is None``, ``name is not None``."""
    name: str
    test: "CondTest"


@dataclass(frozen=True)
class IfExpr(Node):
    """``then if cond else other``: which value a pipeline variant takes."""
    cond: Cond
    then: "Expr"
    other: "Expr"


@dataclass(frozen=True)
class Keyword(Node):
    name: str
    value: "Expr"


@dataclass(frozen=True)
class Call(Node):
    func: str
    args: tuple      # of Expr
    kwargs: tuple    # of Keyword


@dataclass(frozen=True)
class BinOp(Node):
    op: str          # "+" | "*"
    left: "Expr"
    right: "Expr"


@dataclass(frozen=True)
class Index(Node):
    """``s[ids]``: an expert-indexed operand (only valid as smooth's scale)."""
    value: Name
    index: Name


Expr = Union[Name, Number, Bool, String, NoneLit, Call, BinOp, Index, IfExpr]


@dataclass(frozen=True)
class Param(Node):
    name: str
    type: TypeExpr
    default: Optional[Expr] = None


@dataclass(frozen=True)
class Assign(Node):
    targets: tuple   # of Name
    value: Expr


@dataclass(frozen=True)
class Return(Node):
    values: tuple    # of Expr


Stmt = Union[Assign, Return]


@dataclass(frozen=True)
class PipelineDef(Node):
    name: str
    params: tuple    # of Param
    body: tuple      # of Stmt
    decorators: tuple = ()  # of Call: ``@quant_pipeline(backend="triton")`` lines, not checked


@dataclass(frozen=True)
class ModuleAST(Node):
    file: str
    pipelines: tuple  # of PipelineDef
