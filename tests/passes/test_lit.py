"""Runs the golden IR tests of every pass (``tests/passes/<pass>/*.mlir``) under lit."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PASSES = ("qf-verify", "qf-legalize", "qf-dce", "qf-cse", "qf-fuse", "qf-lower-loops",
          "qf-map-gpu")


def test_every_pass_has_golden_ir_tests():
    from qfuse.passes import get_all_passes
    assert set(get_all_passes()) == set(PASSES)
    for name in PASSES:
        assert sorted((HERE / name).glob("*.mlir")), f"no golden IR test for {name}"


def test_golden_ir_tests_pass_under_lit():
    run = subprocess.run([sys.executable, "-c", "import lit.main; lit.main.main()",
                          "-v", "-j", "2", str(HERE)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"lit failed:\n{run.stdout[-6000:]}\n{run.stderr[-3000:]}"
