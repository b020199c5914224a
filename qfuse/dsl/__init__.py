"""The qfuse DSL front end: text -> AST (``parser``) -> checked pipelines (``check``).

``load_file("fp8.qp")`` gives ``{name: TypedPipeline}`` in file order; every user
error is a :class:`~qfuse.errors.QfuseError` located in the source.
"""
from __future__ import annotations

import os

from .check import check_module, check_pipeline
from .parser import parse_file, parse_function, parse_source
from .typed import TypedPipeline

__all__ = ["parse_source", "parse_file", "parse_function", "check_module", "check_pipeline",
           "load_source", "load_file"]


def load_source(text: str, file: str = "<string>") -> dict[str, TypedPipeline]:
    """Parse and check DSL text; pipelines by name, in source order."""
    return {p.name: p for p in check_module(parse_source(text, file))}


def load_file(path: str | os.PathLike) -> dict[str, TypedPipeline]:
    """Parse and check a ``.qp`` file; pipelines by name, in file order."""
    return {p.name: p for p in check_module(parse_file(path))}
