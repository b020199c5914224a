"""Which values of a program a stage updates in place (the catalog's ``Stage.in_place``).

A ``cache_write`` result *is* the cache it was given, written through: on every backend
the caller's tensor is updated and handed back. The DSL checker (a parameter updated in
place has no other use), the torch custom op (its schema marks the parameter mutated)
and the executor (backends write into the caller's tensor) ask these two functions.
Plain Python, like the catalog.
"""
from __future__ import annotations

from .stages import STAGES

__all__ = ["in_place_updates", "updated_params"]


def in_place_updates(calls) -> list:
    """``[(call, operand name, operand value, result value)]``: each result of ``calls``
    that is its operand's tensor updated in place (where the call has both)."""
    out = []
    for c in calls:
        st = STAGES[c.stage]
        names = [r.rstrip("?") for r in st.results]
        for operand, result in st.in_place:
            v, i = c.operands.get(operand), names.index(result)
            if v is not None and i < len(c.results):
                out.append((c, operand, v, c.results[i]))
    return out


def updated_params(program) -> dict:
    """``{result value name: parameter name}`` of the parameters ``program`` (a
    TypedPipeline) updates in place."""
    params = {p.value for p in program.params}
    return {res.name: v.name for _, _, v, res in in_place_updates(program.calls) if v in params}
