"""Bind-time shape requirements, and the optional strict host check of data indices.

Every stage's shape relations (``qfuse.dialect.requirements``) are checked once per call
signature, before any backend runs: a kernel never addresses a tensor through a relation
that does not hold.

Data indices (KV slots, RoPE positions, expert ids, gather rows) are bounds-checked inside
every kernel with a defined result, the same on every backend, so no value of them can make
a kernel touch memory outside its tensors and no check costs a device synchronisation.
Some of those defined results hide a caller's mistake (a slot past the end of the cache
is skipped; a position past the RoPE table gives NaN). ``index_check="raise"`` (or
``QFUSE_INDEX_CHECK=raise``) validates them on the host before every call instead: one
reduction per index tensor and a single device-to-host copy for all of them, which waits
for the device (so it is off by default, and skipped inside CUDA-graph capture, where the
in-kernel checks still hold).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import torch

from ..dialect.requirements import call_requirements, index_operands
from ..errors import InputError

__all__ = ["IndexPolicy", "index_policy", "check_requirements", "IndexChecks"]


class IndexPolicy:
    """What happens to a data index outside its range (see the module docstring)."""
    DEFINED = "defined"       # the kernels' defined result (default; no synchronisation)
    RAISE = "raise"           # validate on the host first and raise InputError

    ALL = (DEFINED, RAISE)


def index_policy(value: Optional[str] = None) -> str:
    """The policy ``value`` names, else ``QFUSE_INDEX_CHECK``, else ``defined``."""
    v = value if value is not None else os.environ.get("QFUSE_INDEX_CHECK", IndexPolicy.DEFINED)
    if v not in IndexPolicy.ALL:
        raise InputError(f"index_check={v!r}: choose one of {', '.join(IndexPolicy.ALL)}")
    return v


def check_requirements(program, syms: dict) -> None:
    """Raise InputError (at the stage's source location) for the first stage requirement
    that does not hold at the bound dims ``syms``."""
    for call in program.calls:
        for req in call_requirements(call):
            a, b = req.lhs.eval(syms), req.rhs.eval(syms)
            if not req.holds(a, b):
                name = call.operands[req.operand].name
                raise InputError(f"{name}: {req.what} (needs {req.text()}, got {a} vs {b})",
                                 call.loc)


@dataclass(frozen=True)
class _Check:
    param: str               # the index tensor's parameter name
    stage: str
    bound_of: object         # Dim of the valid range [0, bound)
    below: bool              # values < 0 are errors
    above: bool              # values >= bound are errors
    outside: str
    loc: object


class IndexChecks:
    """The strict checks of one program: the index operands whose out-of-range values are
    errors (padding values, like a negative slot, are not)."""

    def __init__(self, program):
        params = {p.value for p in program.params}
        self.checks = []
        for call in program.calls:
            for ix in index_operands(call):
                v = call.operands.get(ix.operand)
                if v is not None and v in params and (ix.error_below or ix.error_above):
                    self.checks.append(_Check(v.name, call.stage, ix.bound, ix.error_below,
                                              ix.error_above, ix.outside, call.loc))

    def __bool__(self) -> bool:
        return bool(self.checks)

    def run(self, inputs: dict, syms: dict) -> None:
        """Validate every checked index tensor in ``inputs``; one host synchronisation."""
        if not self.checks:
            return
        t0 = next(inputs[c.param] for c in self.checks)
        if t0.device.type == "cuda" and torch.cuda.is_current_stream_capturing():
            return
        flags = []
        for c in self.checks:
            t, bound = inputs[c.param], c.bound_of.eval(syms)
            bad = torch.zeros((), dtype=torch.bool, device=t.device)
            if t.numel():
                if c.below:
                    bad = bad | (t < 0).any()
                if c.above:
                    bad = bad | (t >= bound).any()
            flags.append(bad)
        found = torch.stack(flags).tolist()
        for c, hit in zip(self.checks, found):
            if hit:
                self._raise(c, inputs[c.param], c.bound_of.eval(syms))

    @staticmethod
    def _raise(c: _Check, t: torch.Tensor, bound: int) -> None:
        flat = t.reshape(-1)
        bad = torch.zeros_like(flat, dtype=torch.bool)
        if c.below:
            bad |= flat < 0
        if c.above:
            bad |= flat >= bound
        i = int(bad.nonzero()[0, 0])
        valid = f"[0, {bound})" if c.below else f"< {bound} (negative values are padding)"
        raise InputError(f"{c.param}: {c.param}[{i}] = {int(flat[i])} is out of range for "
                         f"{c.stage}: valid values are {valid} (index_check=raise; with "
                         f"index_check=defined: {c.outside})", c.loc)
