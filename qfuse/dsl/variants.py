"""Pipeline variants: one definition with optional parameters and flags, many programs.

AITER's entry points take optional tensors (a residual, a smooth scale, a second input)
and flags (shuffle the scale, also return the unquantised value); each combination runs
a different kernel. A qfuse definition says all of them at once::

    def rms_fp8(x: bf16[M, N], w: bf16[N], eps: f32, res: bf16[M, N] = None,
                out_bf16: bool = false):
        y, h = norm(x, w, eps, residual=res)        # h is None where res is None
        s = scale(y, fp8_e4m3fn, per_token)
        return round(y, s, fp8_e4m3fn), s, h, (cast(y, bf16) if out_bf16 else None)

Each combination of present / absent optional parameters and flag values is a variant:
an ordinary checked program in which the absent ones are ``None`` (an optional operand
they feed is not given; a required one is an error located there, naming the variant),
``a if cond else b`` has taken one branch, and an output that is ``None`` is absent. All
variants are checked here, when the definition is; the runtime compiles the one a call
selects (``qfuse.runtime.pipeline``), each under its own name and cache key.

The variant with every optional parameter given and every flag at its default (false
when it has none) is the principal one: :func:`check_variants` returns it, named like
the definition, with the others on its ``family``; the others are named
``<name>__v<bits>``, one bit per selecting parameter in declaration order (1: given /
true), so a kernel name (``<pipeline>__k<i>``) still gives its pipeline back.
"""
from __future__ import annotations

import itertools
from typing import Callable

from ..dialect.typed import ParamKind, PipelineFamily, TypedPipeline
from ..errors import DSLTypeError
from .limits import MAX_VARIANT_PARAMS

__all__ = ["check_variants", "variant_name"]


def variant_name(name: str, key: tuple) -> str:
    """The program name of variant ``key`` of definition ``name`` (see the module doc)."""
    return f"{name}__v{''.join('1' if on else '0' for on in key)}"


def _principal(selectors: list) -> tuple:
    return tuple(True if p.kind == ParamKind.OPTIONAL else bool(p.default) for p in selectors)


def check_variants(pipe, params: list, checker: Callable) -> TypedPipeline:
    """Check every variant of ``pipe`` (``params``: ``check_params`` of its parameters;
    ``checker(choice)``: a checker for one variant, ``choice`` by parameter name) and
    return the principal variant, the family attached to every variant."""
    selectors = [fp for _, fp in params if fp.kind != ParamKind.VALUE]
    if len(selectors) > MAX_VARIANT_PARAMS:
        extra = selectors[MAX_VARIANT_PARAMS]
        raise DSLTypeError(f"more than {MAX_VARIANT_PARAMS} optional parameters and flags in "
                           f"one pipeline (each doubles its variants)", extra.loc,
                           hint="split it into several pipelines")
    principal = _principal(selectors)
    keys = [principal] + [k for k in itertools.product((True, False), repeat=len(selectors))
                          if k != principal]
    family = PipelineFamily(pipe.name, [fp for _, fp in params], [], {}, principal)
    checkers = {}
    for key in keys:
        c = checker({p.name: on for p, on in zip(selectors, key)})
        try:
            tp = c.run()
        except DSLTypeError as err:
            note = f"in the variant where {family.describe(key)}"
            err.hint = f"{err.hint}; {note}" if err.hint else note
            raise
        tp.name = pipe.name if key == principal else variant_name(pipe.name, key)
        tp.family = family
        family.variants[key] = tp
        checkers[key] = c
    family.return_names = _return_names([checkers[k].slots for k in keys])
    for key, tp in family.variants.items():
        tp.return_names = [n for n, (_, v) in zip(family.return_names, checkers[key].slots)
                           if v is not None]
    return family.variants[principal]


def _return_names(slot_lists: list) -> list:
    """One name per returned expression, the same in every variant: its label in the
    first variant (principal first) that has one, else ``out<i>``."""
    names = []
    for i in range(len(slot_lists[0])):
        label = next((slots[i][0] for slots in slot_lists if slots[i][0] is not None), None)
        names.append(label or f"out{i}")
    return names
