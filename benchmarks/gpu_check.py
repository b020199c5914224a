"""Bit-identity of a GPU backend against the reference, on a real GPU, from a bundle.

    python benchmarks/gpu_check.py --bundle DIR [--out results.json] [--backend rocdl]

The backend is the bundle's (``qfuse build --backend ...``); ``--backend`` states which one
is expected and refuses another bundle. Triton bundles run on a box with torch + triton
only; rocdl bundles (``--target cuda:sm_90``: the NVVM twin) with torch + cuda-bindings
(their cubins load through the CUDA driver API; pipelines the rocdl backend refused at
build time are listed as skipped). ``--device cpu`` runs a rocdl bundle's CPU twin (needs
torch-mlir). Neither needs lark or the passes: every pipeline of the bundle
at M in {1, 16, 4096, 16384} (row pipelines: N = 7168 for M <= 4096, 8192 for 16384;
KV-cache pipelines: 4096 tokens, 8 heads of 128), with random inputs, zero rows and
ties injected; qfuse (Triton, compiled from the bundled source by the local Triton) is
compared with the reference backend on the same device.

Exact formats must match bit for bit. Pipelines with a norm sum in fp32 in a different
order than torch (and silu/gelu use the device's exp/erf), so there a code may sit on the
other side of a rounding boundary: such pipelines pass when every differing code is one
step away from the reference's (fp8/int8 byte +-1, fp4 nibble +-1) and at most 1e-4 of
the codes differ; float outputs must agree within 4 ulps. The report gives the counts.
Also records timings: bundle load, first call (Triton JIT compile from source), and a
warm call.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))



def dims_for(tp, m: int, n: int) -> dict:
    syms = set(tp.symbols())
    d = {"M": m, "N": n, "E": 8, "K": 2, "S": 2, "N2": 2 * n, "A": 56, "B": n // 56, "R": m}
    if {"T", "H", "D"} <= syms:      # a KV-cache pipeline: m tokens, 8 heads of 128
        bs = 16
        d = {"T": m, "H": 8, "D": 128, "BS": bs, "B": max(1, -(-m // bs)) + 2, "P": 4096, "R": 64}
        x = 16 if any("fp8" in str(p.value.type) or "i8[" in str(p.value.type)
                      for p in tp.params) else 8
        d.update(X=x, DX=128 // x, BSX=bs // x, S=d["B"] * bs)
    return {k: v for k, v in d.items() if k in syms}


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.uint8) if t.element_size() == 1 else t.contiguous()


def compare(name: str, got: torch.Tensor, want: torch.Tensor, tolerant: bool = False,
            nibbles: bool = False, signed_nibbles: bool = False) -> dict:
    if got.shape != want.shape or got.dtype != want.dtype:
        return {"ok": False, "why": f"{tuple(got.shape)}/{got.dtype} vs {tuple(want.shape)}/{want.dtype}"}
    if want.dtype.is_floating_point and want.element_size() > 1:
        g, w = got.float(), want.float()
        same = (g == w) | (torch.isnan(g) & torch.isnan(w))
        diff = int((~same).sum())
        if diff == 0:
            return {"ok": True, "exact": True}
        ulp = (w.abs() * 2.0 ** -23).clamp_min(1e-38)
        rel = ((g - w).abs() / ulp)[~same]
        return {"ok": bool(rel.max() <= 4 * (2 ** 16 if want.dtype != torch.float32 else 1)),
                "exact": False, "differing": diff, "max_ulps": float(rel.max())}
    gb, wb = bits(got), bits(want)
    mask = gb != wb
    diff = int(mask.sum())
    if diff == 0 or not tolerant:
        return {"ok": diff == 0, "exact": diff == 0, "differing": diff}
    a, b = gb[mask].int(), wb[mask].int()
    signed = got.dtype == torch.int8 or signed_nibbles
    if nibbles:                      # two 4-bit codes per byte (int4: two's complement)
        def nib(x, sh):
            v = (x >> sh) & 15
            return torch.where(v > 7, v - 16, v) if signed_nibbles else v
        step = ((nib(a, 0) - nib(b, 0)).abs() <= 1) & ((nib(a, 4) - nib(b, 4)).abs() <= 1)
    else:                            # int8 codes compare as signed values (-1 next to 0)
        if signed:
            a, b = torch.where(a > 127, a - 256, a), torch.where(b > 127, b - 256, b)
        step = (a - b).abs() == 1
    frac = diff / max(1, gb.numel())
    return {"ok": bool(step.all()) and frac <= 1e-4, "exact": False, "differing": diff,
            "fraction": frac, "all_one_step": bool(step.all())}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--out", default="gpu_check.json")
    ap.add_argument("--pipelines", default="")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--backend", choices=("triton", "rocdl"), default=None,
                    help="the backend the bundle must be built for (default: any)")
    ap.add_argument("--shapes", default="1x7168,16x7168,4096x7168,16384x8192")
    return ap.parse_args(argv)


def bundle_backend(path: str, expected) -> str:
    """The bundle's backend (its manifest's), checked against ``expected``."""
    with open(os.path.join(path, "manifest.json")) as f:
        backend = json.load(f).get("backend", "triton")
    if expected and backend != expected:
        raise SystemExit(f"gpu_check: {path} is a {backend} bundle, --backend {expected} "
                         f"was asked for (qfuse build --backend {expected} ...)")
    return backend


def toolchain(backend: str) -> dict:
    """What runs the kernels here: Triton's version, or the CUDA driver bindings'."""
    from importlib.metadata import PackageNotFoundError, version
    if backend == "triton":
        import triton
        return {"triton": triton.__version__}
    try:
        return {"cuda-bindings": version("cuda-bindings")}
    except PackageNotFoundError:
        return {"cuda-bindings": "absent"}


def main(argv=None) -> int:
    args = parse_args(argv)
    backend = bundle_backend(args.bundle, args.backend)
    import qfuse
    from qfuse.backends.reference import run_pipeline
    from qfuse.runtime.inputs import random_inputs
    t0 = time.perf_counter()
    pipes = qfuse.load(args.bundle, target=None if args.device == "cuda" else "cpu:interp")
    load_s = time.perf_counter() - t0
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    results = {"device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu", "torch": torch.__version__,
               "backend": backend, **toolchain(backend), "bundle_load_s": load_s,
               "skipped": pipes.manifest.get("failed", []), "runs": []}
    only = set(filter(None, args.pipelines.split(",")))
    for name, qp in pipes.items():
        if only and name not in only:
            continue
        for m, n in [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]:
            dims = dims_for(qp.program, m, n)
            rec = {"pipeline": name, "dims": dims}
            try:
                inputs = random_inputs(qp.program, dims, seed=m, device=args.device)
                first = next((v for v in inputs.values() if isinstance(v, torch.Tensor)
                              and v.is_floating_point() and v.dim() >= 2), None)
                if first is not None and first.shape[0] > 2:
                    first[1] = 0                                    # a zero row
                ref_in = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in inputs.items()}
                sync()
                t = time.perf_counter()
                got = qp(**inputs, _as_dict=True)
                sync()
                rec["first_call_s"] = time.perf_counter() - t
                t = time.perf_counter()
                qp(**{k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in ref_in.items()})
                sync()
                rec["warm_call_s"] = time.perf_counter() - t
                want = run_pipeline(qp.program, ref_in)
                stages = {c.stage for c in qp.program.calls}
                tolerant = bool(stages & {"norm", "silu", "gelu", "act_mul"})
                packed = "pack" in stages
                int4 = any(c.stage == "round" and c.options.get("dtype") == "int4"
                           for c in qp.program.calls)
                rec["outputs"] = {k: compare(k, got[k], want[k], tolerant,
                                             packed and got[k].dtype == torch.uint8, int4)
                                  for k in want}
                rec["ok"] = all(o["ok"] for o in rec["outputs"].values())
            except Exception as e:                                   # record and go on
                rec["ok"], rec["error"] = False, f"{type(e).__name__}: {e}"[:2000]
            results["runs"].append(rec)
            status = "ok " if rec["ok"] else "BAD"
            print(f"{status} {name:32s} {str(dims):60s} "
                  f"{json.dumps(rec.get('outputs', rec.get('error')))[:300]}", flush=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    bad = [r for r in results["runs"] if not r["ok"]]
    for skip in results["skipped"]:
        print(f"skip {skip['pipeline']:32s} {skip['error'].splitlines()[0][:200]}")
    print(f"{len(results['runs']) - len(bad)} passed, {len(bad)} failed, "
          f"{len(results['skipped'])} not built for {backend}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
