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

from functools import lru_cache

from torch_mlir import ir
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
           "result", "Pure", "MLIRError", "BINDINGS", "mlir_version"]

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
