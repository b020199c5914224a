"""``import mypipes`` finds ``mypipes.qp`` on ``sys.path`` (after ``qfuse.install_import_hook()``).

The module's attributes are the file's pipelines as :class:`QuantPipeline` callables,
compiled lazily on the first call and taken from the on-disk cache afterwards.
``importlib.reload(mypipes)`` re-reads the file, so edits are picked up and a pipeline
removed from the file is removed from the module. A syntax or type error in the file
(non-UTF-8 text included) raises at import time with ``file:line:col``.

Which file wins: an ordinary module or package of that name anywhere on the path (found
by Python's ``PathFinder``) wins over a ``.qp``, as before; a ``.qp`` wins over a bare
directory of that name (which Python would import as an empty namespace package). The
finder therefore sits just before ``PathFinder`` in ``sys.meta_path`` and asks it first.
Pipelines named like module attributes (``__spec__``, ``__file__``: any ``__dunder__``)
are refused with an error naming the file and line, since setting them would break the
module.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys

from ..errors import QfuseError

__all__ = ["install_import_hook", "uninstall_import_hook", "QpFinder"]


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


class QpLoader(importlib.abc.Loader):
    def __init__(self, path: str):
        self.path = path

    def create_module(self, spec):
        return None                      # the default module object

    def exec_module(self, module) -> None:
        from ..dsl import load_file
        from .pipeline import QuantPipeline
        pipes = load_file(self.path)     # raises QfuseError (located) on a bad file
        for name, tp in pipes.items():
            # the module's own rule, whatever names the DSL accepts: a pipeline must not
            # replace a module attribute (__spec__, __file__, __qfuse_pipelines__ ...)
            if _is_dunder(name):
                raise QfuseError(f"pipeline name {name!r} is reserved for module attributes "
                                 f"(it would replace {module.__name__}.{name}); rename the "
                                 f"pipeline", tp.loc)
        callables = {name: QuantPipeline(tp) for name, tp in pipes.items()}
        for stale in getattr(module, "__qfuse_pipelines__", []):   # a reload: drop removed ones
            if stale not in callables and not _is_dunder(stale):
                module.__dict__.pop(stale, None)
        module.__file__ = self.path
        module.__qfuse_pipelines__ = list(callables)
        module.__dict__.update(callables)


def _is_namespace(spec) -> bool:
    """A spec for a bare directory (an implicit namespace package): no file behind it."""
    return spec.origin is None and spec.submodule_search_locations is not None


class QpFinder(importlib.abc.MetaPathFinder):
    """Finds ``<name>.qp`` in the directories of ``sys.path`` (or a package's path)."""

    def find_spec(self, fullname, path=None, target=None):
        candidate = self._find_qp(fullname, path)
        if candidate is None:
            return None
        other = importlib.machinery.PathFinder.find_spec(fullname, path)
        if other is not None and not _is_namespace(other):
            return None                  # an ordinary module or package wins
        return importlib.util.spec_from_file_location(fullname, candidate,
                                                      loader=QpLoader(candidate))

    @staticmethod
    def _find_qp(fullname: str, path):
        leaf = fullname.rpartition(".")[2]
        for entry in (sys.path if path is None else path):
            if not isinstance(entry, str):       # bytes or other objects: PathFinder's business
                continue
            try:
                candidate = os.path.join(entry or os.getcwd(), f"{leaf}.qp")
                if os.path.isfile(candidate):
                    return candidate
            except (OSError, ValueError):         # a deleted cwd, a NUL in the entry
                continue
        return None


_FINDER = QpFinder()


def install_import_hook() -> None:
    """Let ``import name`` load ``name.qp`` (idempotent; ordinary modules still win)."""
    if _FINDER in sys.meta_path:
        return
    pos = next((i for i, f in enumerate(sys.meta_path)
                if f is importlib.machinery.PathFinder), len(sys.meta_path))
    sys.meta_path.insert(pos, _FINDER)


def uninstall_import_hook() -> None:
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
