"""``qf-legalize``: the shape requirements of every stage, checked where the IR fixes them.

Each stage's bind-time requirements (``qfuse.dialect.requirements``: a key cache's
vector width and head size, a RoPE table's width, an even width to pack, ...) are checked
here whenever both sides are constant dims of the IR, with the message the runtime would
give at call time, located at the stage; relations over symbolic dims wait for the call.
The pass changes nothing. (The block a scale covers is its granularity's
``Granularity.group_size``; backends read the granularity, so no block attribute is
written that could disagree with it.)
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import QfuseError

__all__ = ["LegalizePass", "static_violations"]


def static_violations(tp) -> list:
    """``[(call, requirement, lhs, rhs)]`` of ``tp``'s requirements that fail on constant
    dims (a requirement with a symbol on either side is left for the call)."""
    from ..dialect.requirements import call_requirements
    bad = []
    for call in tp.calls:
        for req in call_requirements(call):
            if req.lhs.symbols() or req.rhs.symbols():
                continue
            a, b = req.lhs.eval({}), req.rhs.eval({})
            if not req.holds(a, b):
                bad.append((call, req, a, b))
    return bad


def _check_function(fn) -> None:
    from ..dialect.reader import read_function
    for call, req, a, b in static_violations(read_function(fn)):
        name = call.operands[req.operand].name
        raise QfuseError(f"{call.stage}: {name}: {req.what} (needs {req.text()}, got {a} vs {b})",
                         call.loc)


def _has_stages(fn) -> bool:
    return any(op.operation.name.startswith("qf.")
               for op in fn.regions[0].blocks[0].operations)


@dataclass(frozen=True)
class LegalizePass:
    name: str = "qf-legalize"

    def run(self, module):
        with module.context:
            for op in module.body.operations:
                if op.operation.name == "func.func" and _has_stages(op):
                    _check_function(op)      # the kernels after qf-fuse, else the pipelines
        return module
