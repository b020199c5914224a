"""``qfuse bench ARGS...``: the H200 benchmark (benchmarks/bench.py) from a source checkout."""
from __future__ import annotations

import runpy
import sys
from pathlib import Path

from .errors import QfuseError

__all__ = ["register", "run_bench"]

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench.py"


def run_bench(rest: list) -> int:
    if not SCRIPT.exists():
        raise QfuseError(f"the benchmark lives in the source tree ({SCRIPT} is missing): run it "
                         f"from a checkout of qfuse")
    sys.argv = [str(SCRIPT), *rest]
    try:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def register(sub) -> None:
    p = sub.add_parser("bench", help="qfuse vs torch eager vs torch.compile vs copy bandwidth "
                                     "(see benchmarks/README.md; args go to benchmarks/bench.py)")
    p.add_argument("args", nargs="*", help="e.g. --bundle DIR --out results.json, or --cpu-smoke")
    p.set_defaults(fn=lambda a: run_bench(a.args))
