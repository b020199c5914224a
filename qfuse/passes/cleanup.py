"""``qf-dce`` and ``qf-cse``: dead-stage elimination and common-subexpression elimination.

Every ``qf`` op is Pure (no memory effects), so MLIR's canonicalizer erases a stage
whose results nobody uses, and CSE merges two identical stages (same op, operands and
attributes). ``symbol-dce`` drops private kernel functions nothing calls.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DeadStagePass", "CSEPass"]


def _run_mlir(module, pipeline: str):
    """Run upstream passes, then verify once: the pass manager's own verification after
    every pass would run the qf verifiers without their shared memo (quadratic)."""
    from ..dialect.mlir import PassManager
    from ..dialect.text import verify
    with module.context:
        pm = PassManager.parse(f"builtin.module({pipeline})")
        pm.enable_verifier(False)
        pm.run(module.operation)
    verify(module)
    return module


@dataclass(frozen=True)
class DeadStagePass:
    name: str = "qf-dce"

    def run(self, module):
        return _run_mlir(module, "canonicalize, symbol-dce")


@dataclass(frozen=True)
class CSEPass:
    name: str = "qf-cse"

    def run(self, module):
        return _run_mlir(module, "cse")
