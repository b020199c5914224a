"""GPU probe (not a benchmark): row-space kernels looping over row blocks.

    python3 benchmarks/probes/row_loop_probe.py --bundle DIR [--shapes 4096x7168,16384x8192]

For each benchmark pipeline and shape, times every kernel with the default launch and with
``TritonConfig(programs=k * SMs)`` (row_loop.py: fewer programs, each looping over row
blocks with its row-invariant loads hoisted), through ``QuantPipeline.autotune`` with a
recording timer (``do_bench``, L2 flushed). Prints one line per kernel and writes JSON.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
import torch  # noqa: E402
import triton.testing  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--shapes", default="4096x7168,16384x8192")
    ap.add_argument("--pipelines", default="")
    ap.add_argument("--out", default=os.path.join(os.environ.get("OUT", "/tmp"), "row_loop.json"))
    a = ap.parse_args()
    import qfuse
    from benchmarks.cases import CASES
    from qfuse.backends.triton.kernel import TritonConfig
    pipes = qfuse.load(a.bundle)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    cands = [TritonConfig()] + [TritonConfig(programs=k * sms) for k in (2, 3, 4, 6, 8)] + \
            [TritonConfig(num_warps=4, programs=k * sms) for k in (4, 8)]
    names = [n for n in (a.pipelines.split(",") if a.pipelines else CASES) if n]
    out = {"sms": sms, "candidates": [c.__dict__ for c in cands], "rows": []}
    for name in names:
        for shape in a.shapes.split(","):
            m, n = (int(v) for v in shape.split("x"))
            inputs = CASES[name].inputs(m, n, torch.device("cuda"), seed=1)
            times = []

            def timer(fn):
                t = float(triton.testing.do_bench(fn, warmup=10, rep=50))
                times.append(t * 1000.0)
                return t
            pipes[name].autotune(**inputs, candidates=cands, timer=timer)
            for k in range(len(times) // len(cands)):
                row = times[k * len(cands):(k + 1) * len(cands)]
                out["rows"].append({"pipeline": name, "shape": shape, "kernel": k, "us": row})
                best = min(range(len(row)), key=row.__getitem__)
                print(f"{name:28s} {shape:11s} k{k} default {row[0]:7.2f} us | " +
                      " ".join(f"{v:7.2f}" for v in row[1:]) +
                      f" | best #{best} {row[best] / row[0]:.3f}x", flush=True)
            torch.cuda.empty_cache()
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)


main()
