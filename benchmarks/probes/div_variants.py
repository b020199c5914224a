"""GPU probe (not a benchmark): the cost of qf_div_codes variants inside generated kernels.

    python3 benchmarks/probes/div_variants.py --bundle DIR --variant cur|nobranch|mul|divrn

Replaces numerics.qf_div_codes before the bundle's kernels load (one process per variant),
then times per-token pipelines by CUDA-graph replay and counts codes that differ from the
`divrn` variant (every element through div.rn.f32).
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from qfuse.backends.triton import numerics  # noqa: E402


@triton.jit
def nobranch(a, b):
    y = tl.math.div_rn(1.0, b)
    nb = 0.0 - b
    q0 = a * y
    q1 = tl.fma(tl.fma(q0, nb, a), y, q0)
    return tl.where((q1 != q1) | (q0 == 0.0), q0, q1)


@triton.jit
def mul(a, b):
    return a * tl.math.div_rn(1.0, b)


@triton.jit
def divrn(a, b):
    return tl.math.div_rn(a, b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--variant", default="cur")
    a = ap.parse_args()
    if a.variant != "cur":
        numerics.qf_div_codes = {"nobranch": nobranch, "mul": mul, "divrn": divrn}[a.variant]
    import qfuse
    from benchmarks.bench import Timer
    from benchmarks.cases import CASES
    pipes = qfuse.load(a.bundle)
    timer = Timer(torch.device("cuda"))
    out = {}
    for name in ("per_token_fp8", "rmsnorm_per_token_fp8", "add_rmsnorm_per_token_fp8"):
        for m, n in ((4096, 7168), (16384, 8192)):
            inputs = CASES[name].inputs(m, n, torch.device("cuda"), seed=1)
            fn = pipes[name]
            res = fn(**inputs)
            q = (res[0] if isinstance(res, tuple) else res).view(torch.uint8)
            path = os.path.join(os.environ.get("OUT", "/tmp"), f"q_{name}_{m}.pt")
            if a.variant == "divrn":
                torch.save(q.cpu(), path)
            us = timer.graph_us(lambda: fn(**inputs), inner=10, reps=20)
            out[f"{name} {m}x{n}"] = us
            print(f"{a.variant} {name} {m}x{n}: {us:.1f} us", flush=True)
        torch.cuda.empty_cache()
    if a.variant != "divrn":
        for name in ("per_token_fp8", "rmsnorm_per_token_fp8", "add_rmsnorm_per_token_fp8"):
            for m, n in ((4096, 7168), (16384, 8192)):
                path = os.path.join(os.environ.get("OUT", "/tmp"), f"q_{name}_{m}.pt")
                if os.path.exists(path):
                    inputs = CASES[name].inputs(m, n, torch.device("cuda"), seed=1)
                    res = pipes[name](**inputs)
                    q = (res[0] if isinstance(res, tuple) else res).view(torch.uint8).cpu()
                    print(f"{a.variant} {name} {m}: {(q != torch.load(path)).sum().item()} codes "
                          f"differ from divrn", flush=True)


main()
