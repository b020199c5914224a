"""The one door to the MLIR Python bindings.

qfuse uses torch-mlir's complete upstream bindings (``torch_mlir.ir`` and friends,
see ``shared/spec/probe-mlir-bindings.md``). This module is the only place in qfuse that
imports that wheel; everything else writes ``from qfuse.dialect.mlir import ir, func``.
Swapping the bindings (e.g. for ``xtc-mlir-python-bindings``, which lacks
``dialects.ext``) therefore touches one file.

Importing this module loads MLIR (~300 MB of shared libraries), so ``qfuse.dialect``
imports it lazily: a built bundle runs without it.

It exports what qfuse uses. The Python rewrite API (``torch_mlir.rewrite``: pattern sets,
the greedy and walk drivers) is left out because no pass is a local rewrite of one op:
qf-fuse plans over a whole function and outlines in place, qf-legalize only checks, and
dead or duplicate stages go to MLIR's own canonicalize / cse passes. A pass that rewrites
one op at a time would import it here.
"""
from __future__ import annotations

import sys
from functools import lru_cache

from torch_mlir import ir
from torch_mlir._mlir_libs._mlir import globals as _binding_globals
from torch_mlir.dialects import arith, func
from torch_mlir.dialects.ext import Dialect, Operand, Pure, Result, result
from torch_mlir.passmanager import PassManager

__all__ = ["ir", "func", "arith", "PassManager", "Dialect", "Operand", "Result", "result", "Pure",
           "MLIRError", "BINDINGS", "mlir_version", "register_dialect_module"]

#: Raised by parse/verify/pass runs; carries ``error_diagnostics``.
MLIRError = ir.MLIRError

#: Distribution that provides the bindings (its version pins the LLVM/MLIR commit).
BINDINGS = "torch-mlir"


@lru_cache(maxsize=None)
def mlir_version() -> str:
    """A stable string naming the MLIR build, for cache keys: ``"torch-mlir==20261001"``."""
    try:
        from importlib.metadata import version
        return f"{BINDINGS}=={version(BINDINGS)}"
    except Exception:  # pragma: no cover - a source checkout without metadata
        import torch_mlir
        return f"{BINDINGS}@{getattr(torch_mlir, '__file__', None) or 'unknown'}"


def register_dialect_module(namespace: str, module) -> None:
    """Make ``module`` the Python module of dialect ``namespace`` for the bindings.

    Each time an op is wrapped (``value.owner``, ``op.opview``) the bindings import
    ``<search prefix>.<namespace>`` to find its op classes, and they remember only
    successful imports: for a dialect defined elsewhere every wrap cost a failed import
    search (about 0.2 ms, most of a long pipeline's verification).
    """
    for prefix in _binding_globals.dialect_search_modules[:1]:
        sys.modules.setdefault(f"{prefix}.{namespace}", module)
