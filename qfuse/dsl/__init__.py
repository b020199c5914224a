"""The qfuse DSL front end: text -> AST (``parser``) -> checked pipelines (``check``).

``load_file("fp8.qp")`` gives ``{name: TypedPipeline}`` in file order; every user
error is a :class:`~qfuse.errors.QfuseError` located in the source.

The parser (lark) is imported on first use: ``qfuse.dsl.typed`` (the checked program)
must stay importable where only torch and triton exist (a loaded bundle).
"""
from __future__ import annotations

import importlib
import os

__all__ = ["parse_source", "parse_file", "parse_function", "check_module", "check_pipeline",
           "load_source", "load_file", "TypedPipeline"]

_LAZY = {"check_module": "check", "check_pipeline": "check", "parse_file": "parser",
         "parse_function": "parser", "parse_source": "parser", "TypedPipeline": "typed"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_source(text: str, file: str = "<string>") -> dict:
    """Parse and check DSL text; pipelines by name, in source order."""
    from .check import check_module
    from .parser import parse_source
    return {p.name: p for p in check_module(parse_source(text, file))}


def load_file(path: "str | os.PathLike") -> dict:
    """Parse and check a ``.qp`` file; pipelines by name, in file order."""
    from .check import check_module
    from .parser import parse_file
    return {p.name: p for p in check_module(parse_file(path))}
