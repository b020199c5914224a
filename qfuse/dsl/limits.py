"""The front end's limits, in one place: literals, identifiers, nesting, sizes.

Anything a user can write is checked against these bounds before it reaches code that
cannot take it (Python's recursion limit, int/float conversion, MLIR's 64-bit
attributes, torch's custom-op schema, file-name lengths), so bad input gets a located
:class:`~qfuse.errors.QfuseError` instead of a crash deep inside a library. Each bound
is generous for real pipelines and far below where anything downstream breaks;
``docs/language-limits.md`` lists them for users.
"""
from __future__ import annotations

import keyword
import math

from ..dialect.types import F32_MAX, I64_MAX, I64_MIN, fits_f32
from ..errors import DSLSyntaxError, DSLTypeError, SourceLoc

__all__ = ["MAX_NESTING", "MAX_OPERATORS", "MAX_NAME", "MAX_PARAMS", "MAX_DIM",
           "MAX_DIM_DEPTH", "MAX_VARIANT_PARAMS", "MAX_STAGES", "INT_MIN", "INT_MAX", "F32_MAX", "number_literal",
           "check_identifier", "check_dim", "check_param_count", "check_f32", "fits_f32",
           "dim_depth"]

#: Brackets open at once in one statement. Every tree walk below the parser (lark's
#: transformer, the checker, dataclass repr/eq) recurses once per level.
MAX_NESTING = 32
#: ``+`` / ``*`` (and ``/`` in dims) operators in one statement, or in one parameter list
#: (a chain is as deep as it is long).
MAX_OPERATORS = 64
#: Characters in a name: kernel, cache and generated-file names are built from it.
MAX_NAME = 128
#: Parameters of one pipeline: each pipeline is a torch custom op, whose schema takes 64.
MAX_PARAMS = 64
#: A constant dim (and an integer option's default ceiling): indices stay 32-bit.
MAX_DIM = 2**31 - 1
#: Nesting of a derived dim such as ``cdiv(N/2, 32)/2``: dims compare recursively.
MAX_DIM_DEPTH = 16
#: Optional parameters and flags of one pipeline: each doubles the variants the checker
#: checks when the pipeline is defined (qfuse.dsl.variants).
MAX_VARIANT_PARAMS = 8
#: Stage calls in one pipeline (the verifier and the planner are linear in it).
MAX_STAGES = 4096
#: Integer literals are 64-bit (MLIR attributes and torch scalars are).
INT_MIN, INT_MAX = I64_MIN, I64_MAX

# Longest decimal that can still be in the i64 range (19 digits), with slack for zeros.
_MAX_INT_DIGITS = 40


def number_literal(text: str, negative: bool, loc: SourceLoc):
    """The value of a NUMBER token (an int, or a float for ``.``/``e`` forms), in range.

    Integers must fit in 64 bits; floats must be finite doubles. Checked on the text
    first, so a 5000-digit literal is refused without converting it.
    """
    sign = "-" if negative else ""
    if not any(c in text for c in ".eE"):
        digits = text.lstrip("0")
        value = int(sign + (digits or "0")) if len(digits) <= _MAX_INT_DIGITS else None
        if value is None or not INT_MIN <= value <= INT_MAX:
            raise DSLSyntaxError(f"integer literal {_abbrev(sign + text)} is out of range "
                                 f"(integers are 64-bit: {INT_MIN}..{INT_MAX})", loc)
        return value
    value = float(sign + text)
    if not math.isfinite(value):
        raise DSLSyntaxError(f"number {_abbrev(sign + text)} is out of range (it overflows a "
                             f"64-bit float)", loc)
    return value


def _abbrev(text: str, keep: int = 24) -> str:
    """A long literal shortened for a message: ``1000000...000 (5001 characters)``."""
    if len(text) <= keep:
        return text
    return f"{text[:12]}...{text[-6:]} ({len(text)} characters)"


def check_identifier(name: str, loc: SourceLoc, role: str) -> None:
    """A user-chosen name (``role``: pipeline, parameter, variable, dim) is usable.

    Not a Python keyword (pipelines run as Python callables and torch ops, whose
    signatures use the names), at most :data:`MAX_NAME` characters, and for a pipeline
    no ``__``: that spelling is reserved for the kernels qfuse generates
    (``<pipeline>__k0``), so a pipeline name can never equal a kernel name.
    """
    if keyword.iskeyword(name):
        raise DSLTypeError(f"'{name}' is a Python keyword and cannot name a {role}", loc,
                           hint=f"pick another name, e.g. {name}_")
    if len(name) > MAX_NAME:
        raise DSLTypeError(f"{role} name is {len(name)} characters long; the limit is "
                           f"{MAX_NAME}", loc)
    if role == "pipeline" and "__" in name:
        raise DSLTypeError(f"pipeline name '{name}' contains '__', which is reserved for "
                           f"generated kernel names ('<pipeline>__k0')", loc,
                           hint=f"use single underscores: {_single_underscores(name)}")


def _single_underscores(name: str) -> str:
    while "__" in name:
        name = name.replace("__", "_")
    return name


def check_dim(value: int, loc: SourceLoc) -> None:
    """A constant dim is a positive 32-bit size."""
    if not 1 <= value <= MAX_DIM:
        raise DSLTypeError(f"dims must be positive and at most {MAX_DIM}, got "
                           f"{_abbrev(str(value))}", loc)


def check_param_count(params: tuple) -> None:
    """At most :data:`MAX_PARAMS` parameters; the error points at the first one too many."""
    if len(params) > MAX_PARAMS:
        raise DSLTypeError(f"a pipeline takes at most {MAX_PARAMS} parameters (a torch "
                           f"custom-op limit), this one has {len(params)}",
                           params[MAX_PARAMS].loc)


def check_f32(value: float, loc: SourceLoc, what: str) -> float:
    """``value`` as a float that fits f32; DSLTypeError naming ``what`` otherwise."""
    if not fits_f32(float(value)):
        raise DSLTypeError(f"{what} {value!r} does not fit in f32 (|x| <= {F32_MAX:.7g}): "
                           f"arithmetic is fp32", loc)
    return float(value)


def dim_depth(dim) -> int:
    """How deeply a derived dim nests (``N`` is 1, ``cdiv(N/2, 32)`` is 3), iteratively."""
    depth, level = 0, [dim]
    while level:
        depth += 1
        level = [part for d in level if isinstance(d.value, tuple) for part in d.value[1:]]
    return depth
