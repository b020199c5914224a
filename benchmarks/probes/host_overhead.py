"""GPU probe (not a benchmark): host time of one qfuse call, per pipeline of a bundle.

    python3 benchmarks/probes/host_overhead.py --bundle DIR

At M = 1 (N = 7168) the kernels take a few microseconds, so calls in a loop are bound by
the host: the loop time per call is the Python + launch cost of a call.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
import torch  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--calls", type=int, default=2000)
    a = ap.parse_args()
    import qfuse
    from benchmarks.cases import CASES
    pipes = qfuse.load(a.bundle)
    out = {}
    for name, case in CASES.items():
        inputs = case.inputs(1, 7168, torch.device("cuda"), seed=0)
        fn = pipes[name]
        for _ in range(5):
            fn(**inputs)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(a.calls):
            fn(**inputs)
        torch.cuda.synchronize()
        out[name] = (time.perf_counter() - t0) / a.calls * 1e6
        print(f"{name}: {out[name]:.1f} us per call (host)", flush=True)
    if os.environ.get("OUT"):
        with open(os.path.join(os.environ["OUT"], "host_overhead.json"), "w") as f:
            json.dump(out, f, indent=1)


main()
