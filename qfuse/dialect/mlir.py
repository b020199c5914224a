"""The one door to the MLIR Python bindings.

qfuse uses torch-mlir's complete upstream bindings (``torch_mlir.ir`` and friends,
see ``shared/spec/probe-mlir-bindings.md``). This module is the only place in qfuse that
imports that wheel; everything else writes ``from qfuse.dialect.mlir import ir, func``.
Swapping the bindings (e.g. for ``xtc-mlir-python-bindings``, which lacks
``dialects.ext``) therefore touches one file.

Importing this module loads MLIR (~300 MB of shared libraries), so ``qfuse.dialect``
imports it lazily: a built bundle runs without it.
"""
from __future__ import annotations

import sys
from functools import lru_cache

from torch_mlir import ir
from torch_mlir._mlir_libs._mlir import globals as _binding_globals
from torch_mlir.dialects import arith, func
from torch_mlir.dialects.ext import (Dialect, DialectAlreadyLoadedError, Operand, Pure, Result,
                                     result)
from torch_mlir.passmanager import PassManager
from torch_mlir.rewrite import (FrozenRewritePatternSet, GreedyRewriteConfig, PatternRewriter,
                                RewritePatternSet, apply_patterns_and_fold_greedily,
                                walk_and_apply_patterns)

__all__ = ["ir", "func", "arith", "PassManager", "RewritePatternSet", "FrozenRewritePatternSet",
           "PatternRewriter", "GreedyRewriteConfig", "apply_patterns_and_fold_greedily",
           "walk_and_apply_patterns", "Dialect", "DialectAlreadyLoadedError", "Operand", "Result",
           "result", "Pure", "MLIRError", "BINDINGS", "mlir_version", "register_dialect_module"]

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
