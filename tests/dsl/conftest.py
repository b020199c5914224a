"""Shared helpers for the DSL tests."""
from __future__ import annotations

import pytest

from qfuse.errors import QfuseError


def assert_located(err: QfuseError, file: str, line: int, col: int, substring: str) -> None:
    """``err`` renders as ``file:line:col: error: ...`` with the source line and a caret."""
    text = str(err)
    assert err.loc is not None, text
    assert (err.loc.file, err.loc.line, err.loc.col) == (file, line, col), text
    assert text.startswith(f"{file}:{line}:{col}: error: "), text
    assert substring in err.message, text
    assert "Traceback" not in text
    lines = text.splitlines()
    assert len(lines) >= 3, text
    caret = lines[2]
    assert caret.strip() == "^" and caret.index("^") == col + 1, text   # "  " + col-1 spaces


@pytest.fixture
def located():
    return assert_located
