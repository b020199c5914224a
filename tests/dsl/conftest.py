"""Shared helpers for the DSL tests."""
from __future__ import annotations

import pytest

from qfuse.errors import QfuseError, source_line


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
    quoted, caret = lines[1], lines[2]
    assert caret.strip() == "^", text
    source = source_line(file, line)
    if len(source) == len(quoted) - 2:                      # "  " + the whole line
        assert caret.index("^") == col + 1, text
    else:                                                   # a window of a long line
        assert quoted[caret.index("^")] == source[col - 1], text


@pytest.fixture
def located():
    return assert_located
