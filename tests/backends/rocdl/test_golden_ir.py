"""Golden IR of the ROCDL ladder: each ``golden/*.mlir`` holds a fused qf module, a RUN
line (``qfuse ir %s --emit STAGE [--target T] | FileCheck %s``) and CHECK lines for that
stage's output, run here with qfuse's CLI and the ``filecheck`` package (as lit runs the
passes' golden tests, tests/passes/)."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

GOLDEN = sorted((Path(__file__).resolve().parent / "golden").glob("*.mlir"))
RUN = re.compile(r"^// RUN: qfuse ir %s (.*) \| FileCheck %s$", re.MULTILINE)


def test_every_stage_has_a_golden_test():
    stages = {RUN.search(p.read_text()).group(1).split()[1] for p in GOLDEN}
    assert {"loops", "gpu", "rocdl"} <= stages


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden_ir(path):
    args = shlex.split(RUN.search(path.read_text()).group(1))
    out = subprocess.run([sys.executable, "-m", "qfuse.cli", "ir", str(path), *args],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    check = subprocess.run([sys.executable, "-m", "filecheck", str(path)], input=out.stdout,
                           capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr
