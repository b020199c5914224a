"""The README's stage table is generated from the catalog and must stay in sync."""
from pathlib import Path

from qfuse.docgen import render_readme

ROOT = Path(__file__).resolve().parents[1]


def test_readme_stage_table_matches_catalog():
    text = (ROOT / "README.md").read_text()
    assert render_readme(text) == text, "run: python -m qfuse.docgen"


def test_readme_states_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert "make test" in text and "make demo" in text
