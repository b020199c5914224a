"""AITER's quantisation API on qfuse pipelines: ``import qfuse.aiter as aiter``.

Module paths, names, arguments, defaults, output shapes, dtypes and layouts are AITER's
(``aiter.ops.quant``, ``aiter.ops.triton.quant``, ``aiter.ops.cache``, ``aiter.ops.norm``,
``aiter.ops.communication``, ``aiter.utility.fp4_utils``, ``aiter.int4_utils``,
``aiter.dtypes``, ``aiter.QuantType``); each function is a thin wrapper over a pipeline
written in the qfuse DSL (``qfuse/aiter/pipelines/*.qp``). docs/aiter.md lists every
function: what it mirrors, its numerics, AITER's defects and qfuse's defined result,
and which backend runs it (``backend_for``; ``use_backend`` overrides it).

Like ``aiter``, the package also exposes the ops' functions at the top level
(``aiter.pertoken_quant``, ``aiter.reshape_and_cache``, ...); submodules load on first use.
Importing it also makes ``import aiter`` / ``from aiter.ops.quant import ...`` resolve to
it when no real AITER is on the path (``qfuse/aiter/_alias.py``).
"""
from __future__ import annotations

import importlib

from . import _alias, dtypes
from ._errors import AiterArgumentError, AiterUnsupportedError
from ._pipes import backend_for, use_backend
from .enum import ActivationType, QuantType

__all__ = ["dtypes", "QuantType", "ActivationType", "use_backend", "backend_for",
           "AiterArgumentError", "AiterUnsupportedError", "ops", "utility", "int4_utils"]

_alias.install()

_SUBMODULES = ("ops", "utility", "int4_utils")
#: the ops modules whose functions ``aiter`` itself exposes (``from .ops.quant import *``)
_FLAT = ("ops.quant", "ops.cache", "ops.norm", "ops.rmsnorm", "ops.communication")


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name.startswith("_"):        # private names and submodules being imported: never
        raise AttributeError(name)  # a reason to import the ops modules
    for mod in _FLAT:
        try:
            module = importlib.import_module(f"{__name__}.{mod}")
        except ModuleNotFoundError:
            continue
        if name in getattr(module, "__all__", ()):
            return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
