"""``import mypipes`` finds ``mypipes.qp`` on ``sys.path`` (after ``qfuse.install_import_hook()``).

The module's attributes are the file's pipelines as :class:`QuantPipeline` callables,
compiled lazily on the first call and taken from the on-disk cache afterwards.
``importlib.reload(mypipes)`` re-reads the file, so edits are picked up. A syntax or
type error in the file raises at import time with ``file:line:col``.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys

__all__ = ["install_import_hook", "uninstall_import_hook", "QpFinder"]


class QpLoader(importlib.abc.Loader):
    def __init__(self, path: str):
        self.path = path

    def create_module(self, spec):
        return None                      # the default module object

    def exec_module(self, module) -> None:
        from ..dsl import load_file
        from .pipeline import QuantPipeline
        pipes = load_file(self.path)     # raises QfuseError (located) on a bad file
        module.__file__ = self.path
        module.__qfuse_pipelines__ = list(pipes)
        for name, tp in pipes.items():
            setattr(module, name, QuantPipeline(tp))


class QpFinder(importlib.abc.MetaPathFinder):
    """Finds ``<name>.qp`` in the directories of ``sys.path`` (or a package's path)."""

    def find_spec(self, fullname, path=None, target=None):
        leaf = fullname.rpartition(".")[2]
        for entry in (path or sys.path):
            candidate = os.path.join(entry or os.getcwd(), f"{leaf}.qp")
            if os.path.isfile(candidate):
                return importlib.util.spec_from_file_location(fullname, candidate,
                                                              loader=QpLoader(candidate))
        return None


_FINDER = QpFinder()


def install_import_hook() -> None:
    """Let ``import name`` load ``name.qp`` (idempotent; normal modules still win first)."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.append(_FINDER)


def uninstall_import_hook() -> None:
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
