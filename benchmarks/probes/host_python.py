"""CPU probe: the Python cost of a qfuse call, with the kernel launch stubbed out.

    .venv/bin/python benchmarks/probes/host_python.py [--pipeline per_token_fp8] [--calls N]
                                                      [--repeat K] [--kwargs]

Runs the pipeline twice through the Triton interpreter (so the executor binds the
signature), replaces ``BoundLaunch.__call__`` by a no-op and times calls: what is left is
binding, signature lookup, output allocation and argument assembly, i.e. the host cost
of a GPU call minus Triton's launcher. Prints microseconds per call and a cProfile.
"""
import argparse
import cProfile
import os
import pstats
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
import torch  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pipeline", default="per_token_fp8")
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5, help="timed loops; the best is printed")
    ap.add_argument("--kwargs", action="store_true", help="call with keywords (as bench.py)")
    a = ap.parse_args()
    from qfuse.backends.triton.launch import fastpath
    from qfuse.dsl import load_file
    from qfuse.runtime.pipeline import QuantPipeline
    from benchmarks.cases import CASES
    root = os.path.join(os.path.dirname(__file__), "..")
    qp = QuantPipeline(load_file(os.path.join(root, "pipelines.qp"))[a.pipeline], backend="triton")
    inputs = CASES[a.pipeline].inputs(2, 256, torch.device("cpu"), seed=0)
    args = list(inputs.values())

    def call():
        return qp(**inputs) if a.kwargs else qp(*args)
    call()
    call()
    fastpath.BoundLaunch.__call__ = lambda self, inputs, outputs: None
    best = float("inf")
    for _ in range(a.repeat):          # the least disturbed of several loops
        t0 = time.perf_counter()
        for _ in range(a.calls):
            call()
        best = min(best, (time.perf_counter() - t0) / a.calls * 1e6)
    print(f"{a.pipeline}: {best:.1f} us of Python per call (best of {a.repeat} loops)")
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(a.calls):
        call()
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(12)


main()
