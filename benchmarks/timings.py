"""Start-up costs of a bundle on the GPU box: load, first call (Triton JIT), warm call.

    python benchmarks/timings.py --bundle DIR [--pipeline rmsnorm_per_token_fp8]

Run it twice in fresh processes: the first run compiles the kernels from the bundled
source (cold Triton cache), the second finds them in Triton's on-disk cache (warm).
"""
import argparse
import json
import os
import sys
import time

t_start = time.perf_counter()
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--pipeline", default="rmsnorm_per_token_fp8")
    ap.add_argument("--shape", default="4096x7168")
    args = ap.parse_args()
    import torch
    t0 = time.perf_counter()
    import qfuse
    pipes = qfuse.load(args.bundle)
    t_load = time.perf_counter() - t0
    from qfuse.runtime.inputs import random_inputs
    m, n = (int(v) for v in args.shape.split("x"))
    qp = pipes[args.pipeline]
    inputs = random_inputs(qp.program, {"M": m, "N": n}, device="cuda")
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    qp(**inputs)
    torch.cuda.synchronize()
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    qp(**inputs)
    torch.cuda.synchronize()
    t_second = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(100):
        qp(**inputs)
    torch.cuda.synchronize()
    t_steady = (time.perf_counter() - t0) / 100
    print(json.dumps({"pipeline": args.pipeline, "shape": args.shape,
                      "import_torch_and_start_s": t0 and (time.perf_counter() - t_start),
                      "bundle_import_and_load_s": t_load, "first_call_s": t_first,
                      "second_call_s": t_second, "steady_call_s": t_steady}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
