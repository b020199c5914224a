"""The ``qf`` dialect: stage catalog, dtype table and the MLIR side of qfuse.

``types`` and ``stages`` are plain Python. Everything that needs MLIR (``mlir``, ``ops``,
``builder``, ``reader``, ``text``, ``encoding``) is imported on first use, so that the
runtime can load a built bundle without the MLIR bindings::

    from qfuse.dialect import build_module, print_module   # imports MLIR here
"""
from __future__ import annotations

import importlib

_LAZY = {
    "build_module": "builder",
    "read_pipelines": "reader",
    "op_options": "ops",
    "op_operands": "ops",
    "op_results": "ops",
    "make_context": "ops",
    "print_module": "text",
    "parse_module": "text",
    "verify": "text",
    "IRError": "text",
    "mlir_version": "mlir",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
