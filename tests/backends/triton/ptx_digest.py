"""sha256 of the sm_90 PTX of every benchmark pipeline's Triton kernels, launched as qfuse
launches them on an NVIDIA GPU at the benchmark shapes (meta tensors, no GPU): the check
that an AMD-only change to the Triton backend leaves NVIDIA's kernels as they were.

    .venv/bin/python tests/backends/triton/ptx_digest.py [--pipelines a,b] > before.json
    ... change ...
    .venv/bin/python tests/backends/triton/ptx_digest.py > after.json; diff before.json after.json

Debug line info (``.loc`` / ``.file`` lines, ``.debug_*`` sections) is dropped before
hashing: it names source lines, which move when a module gains an AMD-only branch.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

SHAPES = [(16, 7168), (4096, 7168), (16384, 8192)]


def strip_debug(ptx: str) -> str:
    """PTX without its line table: no ``.loc`` / ``.file`` lines, no ``.section .debug``."""
    ptx = re.split(r"^\s*\.section\s+\.debug", ptx, maxsplit=1, flags=re.M)[0]
    return "\n".join(ln for ln in ptx.splitlines()
                     if not re.match(r"\s*\.(loc|file)\b", ln))


def compile_ptx(call, capability: int = 90) -> str:
    """One caught launch compiled for ``cuda:sm_<capability>`` through Triton's binder."""
    from triton.backends.compiler import GPUTarget
    from benchmarks.probes.amd_hotpath import compile_call
    return compile_call(call, GPUTarget("cuda", capability, 32), False)[0].asm["ptx"]


def digests(names=None, shapes=SHAPES) -> dict:
    """``{"pipeline MxN": [[kernel, num_warps, grid, sha256], ...]}`` for sm_90."""
    from benchmarks.cases import CASES
    from benchmarks.probes.amd_hotpath import QP, launches_for, meta_inputs
    from qfuse.dsl import load_source
    import torch
    with open(QP) as f:
        pipes = load_source(f.read(), QP)
    out = {}
    for name in names or list(CASES):
        for m, n in shapes:
            rows = []
            for call in launches_for(pipes[name], meta_inputs(name, m, n, torch.float8_e4m3fn),
                                     "cuda:sm_90"):
                g = call[3]
                rows.append([call[0].fn.__name__, call[2].get("num_warps"), list(g),
                             hashlib.sha256(strip_debug(compile_ptx(call)).encode()).hexdigest()])
            out[f"{name} {m}x{n}"] = rows
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--pipelines", default="")
    a = ap.parse_args()
    json.dump(digests([p for p in a.pipelines.split(",") if p] or None), sys.stdout, indent=1)
    print()
