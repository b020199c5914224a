"""Calling a pipeline with variants: which variant the arguments select, and its outputs
in the definition's order (``qfuse.dsl.variants`` says what a variant is).

An optional parameter that is left out or passed ``None`` is absent; a flag takes
``True`` or ``False`` (or its default). The chosen variant is an ordinary program: it
gets the present arguments by name, and its outputs come back at their positions in the
definition's ``return``, ``None`` where the variant has none.
"""
from __future__ import annotations

from ..dialect.typed import ParamKind, PipelineFamily
from ..errors import InputError

__all__ = ["VariantBinder", "bind_names"]

_MISSING = object()


def bind_names(pipeline: str, names: list, args: tuple, kwargs: dict) -> dict:
    """Positional and keyword arguments by parameter name; InputError for too many, an
    unknown name or one given twice."""
    if len(args) > len(names):
        raise InputError(f"{pipeline} takes {len(names)} arguments ({', '.join(names)}), "
                         f"got {len(args)}")
    bound = dict(zip(names, args))
    for k, v in kwargs.items():
        if k not in names:
            raise InputError(f"{pipeline} has no parameter {k!r} (parameters: "
                             f"{', '.join(names)})")
        if k in bound:
            raise InputError(f"{pipeline}: {k} given twice")
        bound[k] = v
    return bound


class VariantBinder:
    """Binds calls of the definition ``family`` to one of its variants."""

    def __init__(self, family: PipelineFamily):
        self.family = family
        self.names = [p.name for p in family.params]

    def bind(self, args: tuple, kwargs: dict) -> tuple:
        """``(variant key, the variant's arguments by name)``; InputError naming the
        argument for a flag that is not a bool, or an unknown or repeated argument."""
        fam = self.family
        bound = bind_names(fam.name, self.names, args, kwargs)
        key, inputs = [], {}
        for p in fam.params:
            v = bound.get(p.name, _MISSING)
            if p.kind == ParamKind.FLAG:
                if v is _MISSING:
                    if p.default is None:
                        raise InputError(f"{fam.name}: missing argument {p.name} (a flag: "
                                         f"True or False)")
                    v = p.default
                if not isinstance(v, bool):
                    raise InputError(f"{p.name}: a flag takes True or False, got "
                                     f"{type(v).__name__} {v!r}")
                key.append(v)
            elif p.kind == ParamKind.OPTIONAL:
                given = v is not _MISSING and v is not None
                key.append(given)
                if given:
                    inputs[p.name] = v
            elif v is not _MISSING:
                inputs[p.name] = v
        return tuple(key), inputs

    def outputs(self, outs: dict) -> dict:
        """A variant's outputs (by name) as the definition's: every name, None where absent."""
        return {n: outs.get(n) for n in self.family.return_names}
