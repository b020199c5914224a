"""Render the stage table of the README from the catalog (``python -m qfuse.docgen``).

The README holds the output between ``<!-- stages:begin -->`` and ``<!-- stages:end -->``;
a test keeps the two in sync, so the documented options are the implemented ones.
"""
from __future__ import annotations

import sys
from pathlib import Path

from .dialect.stages import STAGES

BEGIN, END = "<!-- stages:begin -->", "<!-- stages:end -->"


def _option(o) -> str:
    if o.type in ("enum", "dtype"):
        choices = "\\|".join(str(c) for c in o.choices)
        default = f" (default {o.default})" if o.default is not None else ""
        return f"`{o.name}`: {choices}{default}"
    default = f" = {str(o.default).lower() if isinstance(o.default, bool) else o.default}" \
        if o.default is not None else ""
    return f"`{o.name}`: {o.type}{default}"


def stage_table() -> str:
    rows = ["| stage | operands | options | results | what it does |", "|---|---|---|---|---|"]
    for st in STAGES.values():
        operands = ", ".join(f"{o.name}{'?' if o.optional else ''}" for o in st.operands)
        options = "<br>".join(_option(o) for o in st.options) or "-"
        results = ", ".join(st.results)
        rows.append(f"| `{st.name}` | {operands} | {options} | {results} | {st.doc} |")
    return "\n".join(rows)


def render_readme(text: str) -> str:
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{stage_table()}\n{END}{tail}"


def main() -> int:
    readme = Path(__file__).resolve().parent.parent / "README.md"
    readme.write_text(render_readme(readme.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
