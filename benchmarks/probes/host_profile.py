"""GPU probe: cProfile of qfuse calls at M = 1 (host-bound), top functions by own time.

    python3 benchmarks/probes/host_profile.py --bundle DIR [--pipeline per_token_fp8]
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
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--pipeline", default="per_token_fp8")
    a = ap.parse_args()
    import qfuse
    from benchmarks.cases import CASES
    fn = qfuse.load(a.bundle)[a.pipeline]
    inputs = CASES[a.pipeline].inputs(1, 7168, torch.device("cuda"), seed=0)
    for _ in range(10):
        fn(**inputs)
    torch.cuda.synchronize()
    x = inputs[next(iter(inputs))]
    for label, f in [("torch.empty", lambda: torch.empty((1, 7168), dtype=torch.uint8, device="cuda")),
                     ("x.view(int16)", lambda: x.view(torch.int16)),
                     ("is_compiling", torch.compiler.is_compiling),
                     ("call", lambda: fn(**inputs))]:
        t0 = time.perf_counter()
        for _ in range(2000):
            f()
        torch.cuda.synchronize()
        print(f"{label}: {(time.perf_counter() - t0) / 2000 * 1e6:.2f} us", flush=True)
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(2000):
        fn(**inputs)
    pr.disable()
    pstats.Stats(pr).sort_stats("tottime").print_stats(22)


main()
