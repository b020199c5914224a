"""Bit-identity of the fused all-reduce on 2 (or more) GPUs: on every rank, for fp8
per-token, fp8 1x128 and MXFP4 and a few decode and prefill sizes,

* the one-shot kernel (symmetric memory) gives the bits of the two-step path (NCCL
  all-gather + rank-order fp32 sum + the fused kernel);
* every rank gets the same bits (gathered to rank 0 and compared);
* both agree with the reference backend's all-reduce-then-pipeline (the checked program
  run eagerly in torch on the GPU: the agreement rule of docs/semantics.md, norm's row
  sums being free in order).

Not run yet (no multi-GPU machine so far). Build the pipelines on a CPU with the compiler
first, then on the GPUs (docs/multi-gpu.md)::

    python benchmarks/multi_gpu.py --build .bundle/multi_gpu
    NCCL_NVLS_ENABLE=0 torchrun --nproc-per-node 2 benchmarks/multi_gpu_check.py \\
        --artifacts .bundle/multi_gpu --out $OUT/multi_gpu_check.json

Exit status 0 when everything matched, 1 otherwise (the JSON says which case).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import torch  # noqa: E402

from benchmarks.multi_gpu import KINDS, load, rank_inputs  # noqa: E402

SIZES = ((1, 7168), (7, 7168), (64, 8192), (300, 7168))


def _bits(t: torch.Tensor) -> torch.Tensor:
    t = t.contiguous()
    return t.view({1: torch.uint8, 2: torch.int16, 4: torch.int32}[t.element_size()])


def _same(a: tuple, b: tuple) -> bool:
    return all(x.shape == y.shape and torch.equal(_bits(x), _bits(y)) for x, y in zip(a, b))


def check(arts: dict, rank: int, device, kinds, sizes) -> list:
    import torch.distributed as dist
    from qfuse.backends.reference.interpreter import run_pipeline
    from qfuse.distributed import FusedAllReduce
    from qfuse.runtime.compare import compare_outputs
    rows = []
    for kind in kinds:
        cp = arts[f"ar_{kind}"]
        names = [n for n, _ in cp.returns]
        oneshot = FusedAllReduce(cp, max(m for m, _ in sizes), path="oneshot")
        two_step = FusedAllReduce(cp, max(m for m, _ in sizes), path="two_step")
        for m, n in sizes:
            inp = rank_inputs(rank, m, n, device)
            a = oneshot(**inp)
            b = two_step(**inp)
            ref = run_pipeline(cp.program, {**inp, "eps": 1e-6})
            ok_ref, text = compare_outputs(dict(zip(names, a)), ref, 1)
            everyone = [None] * dist.get_world_size()
            dist.all_gather_object(everyone, [t.cpu() for t in a])
            same_ranks = all(_same(everyone[0], e) for e in everyone)
            rows.append({"kind": kind, "M": m, "N": n, "oneshot_eq_two_step": _same(a, b),
                         "same_on_every_rank": same_ranks, "agrees_with_reference": ok_ref,
                         "reference_report": "" if ok_ref else text[:2000]})
            if rank == 0:
                print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--artifacts", default=".bundle/multi_gpu")
    ap.add_argument("--kinds", type=lambda s: s.split(","), default=list(KINDS))
    ap.add_argument("--out")
    ap.add_argument("--dry-run", action="store_true",
                    help="load the artifacts and print the cases; no GPU, no NCCL")
    args = ap.parse_args(argv)
    bad = [k for k in args.kinds if k not in KINDS]
    if bad:
        ap.error(f"unknown kind {', '.join(bad)} (kinds: {', '.join(KINDS)})")
    arts = load(args.artifacts)
    if args.dry_run:
        print(f"{len(args.kinds) * len(SIZES)} cases: kinds {', '.join(args.kinds)}, "
              f"sizes {', '.join(f'{m}x{n}' for m, n in SIZES)}")
        return 0
    import torch.distributed as dist
    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
    rank = int(os.environ.get("RANK", "0"))
    torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
    dist.init_process_group("nccl")
    device = torch.device("cuda", torch.cuda.current_device())
    rows = check(arts, rank, device, args.kinds, SIZES)
    ok = all(r["oneshot_eq_two_step"] and r["same_on_every_rank"] and
             r["agrees_with_reference"] for r in rows)
    if rank == 0 and args.out:
        with open(args.out, "w") as f:
            json.dump({"ok": ok, "world": dist.get_world_size(),
                       "device": torch.cuda.get_device_name(), "rows": rows}, f, indent=1)
    dist.destroy_process_group()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
