"""User-facing errors.

Every error a user can cause (DSL syntax, types, shapes, options, tensors passed at
call time) is a :class:`QfuseError`. When it has a source location, ``str()`` shows
``file:line:col: error: message``, the source line and a caret under the column,
the way compilers do. Nothing here imports torch, lark or MLIR.
"""
from __future__ import annotations

import linecache
import os
from dataclasses import dataclass
from typing import Optional

__all__ = ["SourceLoc", "QfuseError", "DSLSyntaxError", "DSLTypeError", "InputError",
           "UnsupportedError", "render_location"]


@dataclass(frozen=True)
class SourceLoc:
    """A position in DSL source: ``file`` (path or ``<string>``), 1-based ``line`` and ``col``."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


_SOURCES: dict[str, str] = {}


def register_source(file: str, text: str) -> None:
    """Remember the text of an in-memory source so errors can quote its lines."""
    _SOURCES[file] = text


def source_line(file: str, line: int) -> Optional[str]:
    """Line ``line`` (1-based) of a registered source or a file, split on ``\\n`` only,
    as the parser counts lines (a stray ``\\r`` or form feed does not start a line)."""
    text = _SOURCES.get(file)
    if text is not None:
        lines = text.split("\n")
        return lines[line - 1].rstrip("\r") if 0 < line <= len(lines) else None
    if os.path.exists(file):
        got = linecache.getline(file, line)
        return got.rstrip("\n") if got else None
    return None


#: Quoted source lines are cut to a window of this many characters around the caret.
_QUOTE_WIDTH = 100


def render_location(loc: SourceLoc, message: str, kind: str = "error") -> str:
    """``file:line:col: error: message`` + source line + caret (when the line is known)."""
    head = f"{loc}: {kind}: {message}"
    src = source_line(loc.file, loc.line)
    if src is None:
        return head
    col = max(loc.col, 1)
    if len(src) > _QUOTE_WIDTH:                  # a long line: quote the part around col
        start = max(0, min(col - 1 - _QUOTE_WIDTH // 2, len(src) - _QUOTE_WIDTH))
        src = ("..." if start else "") + src[start:start + _QUOTE_WIDTH] + \
            ("..." if start + _QUOTE_WIDTH < len(src) else "")
        col = col - start + (3 if start else 0)
    caret = " " * (col - 1) + "^"
    return f"{head}\n  {src}\n  {caret}"


class QfuseError(Exception):
    """A user error, optionally positioned in DSL source."""

    def __init__(self, message: str, loc: Optional[SourceLoc] = None, *, hint: str | None = None):
        self.message = message
        self.loc = loc
        self.hint = hint
        super().__init__(message)

    def __str__(self) -> str:
        text = render_location(self.loc, self.message) if self.loc else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class DSLSyntaxError(QfuseError):
    """The DSL text does not parse."""


class DSLTypeError(QfuseError):
    """The DSL parses but a stage, option, dtype or symbolic dim is wrong."""


class UnsupportedError(QfuseError):
    """A valid-looking combination that qfuse does not implement (says what is supported)."""


class InputError(QfuseError):
    """A tensor or scalar passed to a pipeline at call time is wrong (names the parameter)."""
