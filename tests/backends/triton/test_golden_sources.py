"""The generated Triton source of every example and benchmark pipeline, pinned.

``golden/<pipeline>.txt`` holds the source of each of the pipeline's kernels, in launch
order, as ``pipeline.source()`` prints it. A change to code generation shows up here as a
diff to review; when it is intended, regenerate with

    QFUSE_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/backends/triton/test_golden_sources.py

and commit the new files with the change. The text must not depend on the target
(a bundle carries one source for cuda:sm_90, hip:gfx942 and hip:gfx950).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from qfuse.dsl import load_file
from qfuse.runtime.compiler import compile_pipeline

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = Path(__file__).resolve().parent / "golden"
FILES = sorted((ROOT / "examples").glob("*.qp")) + [ROOT / "benchmarks" / "pipelines.qp"]
TARGETS = ("cuda:sm_90", "hip:gfx942", "hip:gfx950")


def _pipelines() -> dict:
    out = {}
    for f in FILES:
        for name, tp in load_file(str(f)).items():
            out.setdefault(name, tp)      # benchmark names shared with examples are the same
    return out


PIPES = _pipelines()


def _source(tp, target: str) -> str:
    cp = compile_pipeline(tp, "triton", target)
    return "\n\n".join(f"# ===== {name} =====\n{text}" for name, text in cp.sources().items())


@pytest.mark.parametrize("name", sorted(PIPES))
def test_generated_source_is_pinned_and_target_independent(name):
    texts = {t: _source(PIPES[name], t) for t in TARGETS}
    assert len(set(texts.values())) == 1, f"{name}: the source differs between targets"
    text = texts[TARGETS[0]]
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("QFUSE_UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden source for {name}: run with QFUSE_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{name}: generated source changed (see the module docstring)"


def test_every_golden_file_has_a_pipeline():
    stale = sorted(p.stem for p in GOLDEN.glob("*.txt") if p.stem not in PIPES)
    assert not stale, f"golden sources of pipelines that no longer exist: {stale}"
