"""``import aiter`` / ``from aiter.ops.quant import ...`` served by ``qfuse.aiter``: after
``import qfuse.aiter as aiter``, code written against AITER's module paths runs unchanged.

A meta-path finder answers for ``aiter`` and ``aiter.*`` with the very module objects of
``qfuse.aiter`` (no second copy: one pipeline cache, one ``use_backend`` state). It never
hides a real AITER: ``aiter`` itself is served only when Python's path finder finds no
``aiter`` package on ``sys.path`` (installed, or AITER's peer kernels a benchmark puts on
the path), and ``aiter.*`` only while ``aiter`` is this alias. It sits first in
``sys.meta_path`` because the path finder would otherwise load ``aiter.ops.quant`` a
second time from the alias's ``__path__``. ``QFUSE_AITER_ALIAS=0`` turns it off.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys

__all__ = ["install"]

_PREFIX = "aiter"


class _Existing(importlib.abc.Loader):
    """Hands out an already imported module under another name."""

    def __init__(self, module):
        self.module = module

    def create_module(self, spec):
        return self.module

    def exec_module(self, module) -> None:
        pass


class AiterAlias(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == _PREFIX:
            if importlib.machinery.PathFinder.find_spec(fullname) is not None:
                return None                              # a real AITER is on the path
        elif not fullname.startswith(_PREFIX + ".") or not _aliased():
            return None
        try:
            module = importlib.import_module("qfuse." + fullname)
        except ModuleNotFoundError:
            return None
        return importlib.util.spec_from_loader(fullname, _Existing(module),
                                               is_package=hasattr(module, "__path__"))


def _aliased() -> bool:
    top = sys.modules.get(_PREFIX)
    return top is not None and getattr(top, "__name__", "") == "qfuse." + _PREFIX


def install() -> None:
    """Put the finder first in ``sys.meta_path``, once (unless ``QFUSE_AITER_ALIAS=0``)."""
    if os.environ.get("QFUSE_AITER_ALIAS", "1") == "0":
        return
    if not any(isinstance(f, AiterAlias) for f in sys.meta_path):
        sys.meta_path.insert(0, AiterAlias())
