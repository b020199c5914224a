"""Docs that are generated or cite files must stay in sync: the README's stage table with
the catalog, the performance tables with their results files in docs/results/."""
import re
import sys
from pathlib import Path

from qfuse.docgen import render_readme

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.report import BLOCK, render_blocks  # noqa: E402

RESULTS = ROOT / "docs" / "results"
# the documents that may cite a results file
DOCS = [ROOT / "README.md", ROOT / "benchmarks" / "README.md",
        *sorted((ROOT / "docs").glob("*.md"))]
REMOVED_RUNS = "94845b6"        # the commit that took docs/runs out of the tree


def test_readme_stage_table_matches_catalog():
    text = (ROOT / "README.md").read_text()
    assert render_readme(text) == text, "run: python -m qfuse.docgen"


def test_readme_states_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert "make test" in text and "make demo" in text


def test_results_tables_are_generated_from_their_files():
    perf = (ROOT / "docs" / "performance.md").read_text()
    assert "h200-2026-11-29" in [m.group(2) for m in BLOCK.finditer(perf)]
    for doc in DOCS:
        text = doc.read_text()
        assert render_blocks(text, str(RESULTS)) == text, \
            f"run: python -m benchmarks.report --update {doc.relative_to(ROOT)}"


def test_every_results_file_is_cited_and_every_cited_one_exists():
    cited = set()
    for doc in DOCS:
        text = doc.read_text()
        cited |= set(re.findall(r"results/([\w.-]+\.json)", text))
        cited |= {m.group(2) + ".json" for m in BLOCK.finditer(text)}
    kept = {p.name for p in RESULTS.iterdir()}
    assert cited - kept == set(), "cited results files that do not exist"
    assert kept - cited == set(), "results files that no doc cites"
    assert all(p.suffix == ".json" for p in RESULTS.iterdir())


def test_no_citation_of_the_removed_run_logs():
    """docs/runs left the tree: text may point into git history, never at a run folder,
    and code comments say why, not which run found it."""
    files = dict.fromkeys([*DOCS, *ROOT.glob("benchmarks/**/*.py"),
                           *ROOT.glob("benchmarks/**/*.md"), *ROOT.glob("qfuse/**/*.py")])
    history = f"{REMOVED_RUNS}^:docs/runs/"
    bad = []
    for path in files:
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if line.count("docs/runs/") > line.count(history) or \
                    (path.suffix == ".py" and re.search(r"\brun\d+\b", line)):
                bad.append(f"{path.relative_to(ROOT)}:{i}")
    assert not bad, f"cite docs/results/ or say why instead: {bad}"
