"""All-reduce + RMSNorm + quantisation on 2 GPUs: qfuse's one-shot kernel against NCCL
all-reduce followed by qfuse's pipeline and by torch.compile of the same torch code.

Not run yet: it needs a machine with two or more GPUs (docs/multi-gpu.md has the exact
commands). Three steps:

1. on a CPU with the compiler (lark, MLIR): ``--build DIR`` compiles the pipelines below
   to ``DIR/<name>.json`` (the GPU machine has torch and triton only);
2. ``--dry-run --artifacts DIR``: loads them and prints the cases, no GPU, no NCCL;
3. on the GPUs, one process per GPU::

       NCCL_NVLS_ENABLE=0 torchrun --nproc-per-node 2 benchmarks/multi_gpu.py \\
           --artifacts .bundle/multi_gpu --out $OUT/multi_gpu.json

Per pipeline (fp8 per-token, fp8 1x128, MXFP4; residual add + RMSNorm before), N in
(7168, 8192) and M = 1, 2, 4, ..., 4096, the median microseconds (the slowest rank's) of:

* ``oneshot``: qfuse.distributed.FusedAllReduce(path="oneshot"): copy into symmetric
  memory, barrier, the one generated kernel, barrier;
* ``two_step``: the same pipeline's two-step path (all-gather + rank-order sum + kernel:
  the one-shot path's bits);
* ``nccl_qfuse``: NCCL all-reduce (its own order, bf16) + qfuse's fused kernel;
* ``nccl_compile``: NCCL all-reduce + torch.compile of the same norm + quant in torch.

The issue's target: ``oneshot`` >= 1.5x faster than ``nccl_qfuse`` at M <= 64; the
crossing point of ``oneshot`` and ``nccl_qfuse`` sets qfuse.distributed.ONESHOT_MAX_BYTES.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:                   # `python benchmarks/multi_gpu.py` from anywhere
    sys.path.insert(0, _ROOT)

import torch  # noqa: E402

KINDS = {
    "fp8": "s = scale(y, fp8_e4m3fn, per_token)\n    q = round(y, s, fp8_e4m3fn)",
    "g128": "s = scale(y, fp8_e4m3fn, per_1x128)\n    q = round(y, s, fp8_e4m3fn)",
    "mxfp4": "s = scale(y, fp4_e2m1, mx)\n    q = pack(round(y, s, fp4_e2m1))",
}
NS = (7168, 8192)
MS = tuple(2**i for i in range(13))          # 1 .. 4096
IMPLS = ("oneshot", "two_step", "nccl_qfuse", "nccl_compile")


def source() -> str:
    """The pipelines: ``ar_<kind>`` (all_reduce first) and ``post_<kind>`` (the same
    chain on an already reduced tensor, for the NCCL comparators)."""
    out = []
    for kind, chain in KINDS.items():
        for prefix, reduce in (("ar", "all_reduce(x)"), ("post", "x")):
            out.append(f"def {prefix}_{kind}(x: bf16[M, N], res: bf16[M, N], w: bf16[N], "
                       f"eps: f32 = 1e-6):\n    y, h = norm({reduce}, w, eps, residual=res)"
                       f"\n    {chain}\n    return q, s, h\n")
    return "\n".join(out)


def build(out_dir: str) -> list:
    """Compile every pipeline for the Triton backend into ``out_dir/<name>.json``."""
    from qfuse.dsl import load_source
    from qfuse.runtime.compiler import compile_pipeline
    os.makedirs(out_dir, exist_ok=True)
    names = []
    for name, tp in load_source(source(), "benchmarks/multi_gpu.py").items():
        cp = compile_pipeline(tp, "triton", "cuda:sm_90")
        with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
            f.write(cp.dumps())
        names.append(name)
    return names


def load(art_dir: str) -> dict:
    """``{name: CompiledPipeline}`` from ``--build``'s files (no compiler needed)."""
    from qfuse.runtime.artifact import CompiledPipeline
    out = {}
    for kind in KINDS:
        for prefix in ("ar", "post"):
            name = f"{prefix}_{kind}"
            path = os.path.join(art_dir, f"{name}.json")
            if not os.path.exists(path):
                raise SystemExit(f"{path} is missing: run `python benchmarks/multi_gpu.py "
                                 f"--build {art_dir}` on a machine with the compiler first")
            with open(path, "rb") as f:
                out[name] = CompiledPipeline.loads(f.read(), path, name)
    return out


def rank_inputs(rank: int, m: int, n: int, device, seed: int = 0) -> dict:
    """Rank ``rank``'s partial sum and the shared residual and weight (bf16)."""
    g = torch.Generator().manual_seed(seed * 1000 + rank)
    shared = torch.Generator().manual_seed(seed * 1000 + 999)
    return {"x": torch.randn(m, n, generator=g).bfloat16().to(device),
            "res": torch.randn(m, n, generator=shared).bfloat16().to(device),
            "w": torch.randn(n, generator=shared).bfloat16().to(device)}


def torch_chain(kind: str):
    """The same residual + RMSNorm + quantisation in torch (benchmarks/torch_refs.py)."""
    from benchmarks import torch_refs as R

    def fp8(x, res, w, eps=1e-6):
        h = x.float() + res.float()
        q, s = R._per_token_fp8(R._rms(h, w, eps))
        return q, s, h.to(x.dtype)

    def g128(x, res, w, eps=1e-6):
        h = x.float() + res.float()
        q, s = R.rmsnorm_group128_fp8(h, w, eps)
        return q, s, h.to(x.dtype)

    def mxfp4(x, res, w, eps=1e-6):
        h = x.float() + res.float()
        q, s = R._mx_e2m1(R._rms(h, w, eps))
        return q, s, h.to(x.dtype)
    return {"fp8": fp8, "g128": g128, "mxfp4": mxfp4}[kind]


def cases(ms=MS, ns=NS, kinds=tuple(KINDS)) -> list:
    return [(kind, n, m) for kind in kinds for n in ns for m in ms]


def _time_us(fn, reps: int, warmup: int) -> float:
    """Median of ``reps`` CUDA-event timings of ``fn`` (after ``warmup`` calls)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b) * 1e3)
    return statistics.median(ts)


def impls(arts: dict, kind: str, max_rows: int, compile_backend: str) -> dict:
    """``{impl: fn(inputs) -> results}`` for one pipeline on this rank."""
    import torch.distributed as dist
    from qfuse.distributed import FusedAllReduce
    from qfuse.runtime.executor import Executor
    oneshot = FusedAllReduce(arts[f"ar_{kind}"], max_rows, path="oneshot")
    two_step = FusedAllReduce(arts[f"ar_{kind}"], max_rows, path="two_step")
    post = Executor(arts[f"post_{kind}"])
    compiled = torch.compile(torch_chain(kind), backend=compile_backend, dynamic=False)

    def nccl(inp):
        y = inp["x"].clone()
        dist.all_reduce(y)
        return y

    return {
        "oneshot": lambda inp: oneshot(**inp),
        "two_step": lambda inp: two_step(**inp),
        "nccl_qfuse": lambda inp: post.run({**inp, "x": nccl(inp), "eps": 1e-6}),
        "nccl_compile": lambda inp: compiled(nccl(inp), inp["res"], inp["w"]),
    }


def run(args) -> dict:
    import torch.distributed as dist
    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")      # NVLink multicast off (KINDS.md)
    rank = int(os.environ.get("RANK", "0"))
    torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
    dist.init_process_group("nccl")
    device = torch.device("cuda", torch.cuda.current_device())
    arts = load(args.artifacts)
    rows = []
    for kind in args.kinds:
        fns = impls(arts, kind, max(args.ms), args.compile_backend)
        for n in args.ns:
            for m in args.ms:
                inp = rank_inputs(rank, m, n, device, args.seed)
                row = {"kind": kind, "N": n, "M": m}
                for impl in args.impls:
                    dist.barrier()
                    try:
                        us = _time_us(lambda: fns[impl](inp), args.reps, args.warmup)
                    except Exception as e:               # one failing impl: say so, go on
                        us = None
                        row[f"{impl}_error"] = f"{type(e).__name__}: {e}"[:300]
                    worst = [None] * dist.get_world_size()
                    dist.all_gather_object(worst, us)
                    row[impl] = None if None in worst else max(worst)
                if row.get("oneshot") and row.get("nccl_qfuse"):
                    row["speedup_vs_nccl_qfuse"] = row["nccl_qfuse"] / row["oneshot"]
                rows.append(row)
                if rank == 0:
                    print(json.dumps(row), flush=True)
    result = {"world": dist.get_world_size(), "device": torch.cuda.get_device_name(),
              "torch": torch.__version__, "nccl_nvls_enable": os.environ["NCCL_NVLS_ENABLE"],
              "rows": rows}
    dist.destroy_process_group()
    return result


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", metavar="DIR", help="compile the pipelines into DIR (CPU, "
                    "needs the compiler) and exit")
    ap.add_argument("--artifacts", metavar="DIR", default=".bundle/multi_gpu",
                    help="the compiled pipelines (default .bundle/multi_gpu)")
    ap.add_argument("--dry-run", action="store_true",
                    help="load the artifacts and print the cases; no GPU, no NCCL")
    ap.add_argument("--kinds", type=lambda s: s.split(","), default=list(KINDS))
    ap.add_argument("--ns", type=lambda s: [int(v) for v in s.split(",")], default=list(NS))
    ap.add_argument("--ms", type=lambda s: [int(v) for v in s.split(",")], default=list(MS))
    ap.add_argument("--impls", type=lambda s: s.split(","), default=list(IMPLS))
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compile-backend", default="inductor")
    ap.add_argument("--out", help="write the results JSON here (rank 0)")
    args = ap.parse_args(argv)
    bad = [k for k in args.kinds if k not in KINDS] + \
        [i for i in args.impls if i not in IMPLS]
    if bad:
        ap.error(f"unknown kind or impl: {', '.join(bad)} (kinds: {', '.join(KINDS)}; "
                 f"impls: {', '.join(IMPLS)})")
    if any(m < 1 for m in args.ms) or any(n < 1 for n in args.ns):
        ap.error("--ms and --ns take positive sizes")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.build:
        for name in build(args.build):
            print(f"built {args.build}/{name}.json")
        return 0
    if args.dry_run:
        arts = load(args.artifacts)
        from qfuse.distributed import ONESHOT_MAX_BYTES, plan_oneshot
        for kind in args.kinds:
            plan = plan_oneshot(arts[f"ar_{kind}"])
            print(f"{kind}: one-shot kernel {plan.source.name} "
                  f"({len(plan.source.text.splitlines())} lines)")
        print(f"{len(cases(args.ms, args.ns, args.kinds))} cases x {len(args.impls)} impls "
              f"({', '.join(args.impls)}); ONESHOT_MAX_BYTES = {ONESHOT_MAX_BYTES}")
        return 0
    result = run(args)
    if args.out and int(os.environ.get("RANK", "0")) == 0:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
