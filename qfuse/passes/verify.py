"""``qf-verify``: run the MLIR verifier (with the qf op verifiers) and report at DSL positions."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["VerifyPass"]


@dataclass(frozen=True)
class VerifyPass:
    name: str = "qf-verify"

    def run(self, module):
        from ..dialect.text import verify
        verify(module)
        return module
