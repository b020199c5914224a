"""Benchmark qfuse pipelines against plain torch (eager and torch.compile) on one GPU.

    python benchmarks/bench.py --bundle DIR [--shapes 16x7168,4096x7168,16384x8192]
                               [--out results.json] [--pipelines a,b]
    python benchmarks/bench.py --cpu-smoke [--bundle DIR|reference|stub]

One run measures, for each shape, the copy bandwidth (a bf16 ``copy_`` of M x N, read +
write bytes over time: the roofline of these memory-bound kernels), then for each
pipeline x shape: qfuse (the callable from ``qfuse.load(DIR)``), torch eager and
``torch.compile(fn, dynamic=False)`` of ``torch_refs``. Times are the median of
``triton.testing.do_bench`` and, for M <= 64, the median of CUDA-graph replays (20 calls
per graph); qfuse is graph-timed at every M as well, which separates its host overhead
from its kernels. GB/s counts compulsory bytes (``cases.py``); the correctness column compares
qfuse with the torch eager reference (codes bit for bit, mismatch counts, never fails).
``--cpu-smoke`` runs everything on tiny CPU shapes with ``perf_counter`` timing; without
``--bundle`` it uses ``torch_refs`` itself as a stub bundle. Importable: :func:`run`.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
import traceback

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:                   # `python benchmarks/bench.py` from anywhere
    sys.path.insert(0, _ROOT)

import torch  # noqa: E402

from benchmarks import aiter_impl, torch_refs  # noqa: E402
from benchmarks.cases import CASES  # noqa: E402
from benchmarks.report import (GRAPH_MAX_M, as_tuple, compare_outputs, derive,  # noqa: E402
                               format_row, format_table, geomean_vs_aiter)
from benchmarks.timer import Timer, _err  # noqa: E402

__all__ = ["run", "main", "load_pipes", "compare_outputs", "format_table", "parse_shapes",
           "DEFAULT_SHAPES", "SMOKE_SHAPES"]

DEFAULT_SHAPES = "1x7168,16x7168,64x7168,4096x7168,16384x8192"      # decode rows: M <= 64
SMOKE_SHAPES = "4x256,40x512"
IMPLS = ("qfuse", "eager", "compile")


# ---------------------------------------------------------------------------- setup
def parse_shapes(text: str) -> list:
    shapes = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        m, sep, n = part.lower().partition("x")
        if not sep or not m.isdigit() or not n.isdigit():
            raise SystemExit(f"bad shape {part!r}: write MxN, e.g. 16x7168")
        shapes.append((int(m), int(n)))
    return shapes


def stub_pipes() -> dict:
    """``torch_refs`` in the bundle's calling convention (a stand-in for ``qfuse.load``)."""
    return dict(torch_refs.REFS)


def reference_pipes(qp: str = os.path.join(_ROOT, "benchmarks", "pipelines.qp")) -> dict:
    """The qfuse reference interpreter as a bundle (needs the DSL front end: CPU side)."""
    from qfuse.backends.reference import run_pipeline
    from qfuse.dsl import load_file

    def call(tp):
        return lambda **kw: tuple(run_pipeline(tp, kw).values())
    return {name: call(tp) for name, tp in load_file(qp).items()}


def load_pipes(spec, cpu_smoke: bool = False):
    """``stub`` (the default with ``--cpu-smoke``): torch_refs, to check the harness itself;
    ``reference``: the qfuse reference interpreter; else a bundle dir for ``qfuse.load``."""
    if spec is None and not cpu_smoke:
        raise SystemExit("--bundle DIR is required (build it with: python -m qfuse.cli build "
                         "benchmarks/pipelines.qp --target cuda:sm_90 -o DIR)")
    if spec in (None, "stub"):
        return stub_pipes()
    if spec == "reference":
        return reference_pipes()
    import qfuse
    if not hasattr(qfuse, "load"):
        raise SystemExit(f"this qfuse ({os.path.dirname(qfuse.__file__)}) has no qfuse.load")
    return qfuse.load(spec)


def device_info(device: torch.device) -> dict:
    info = {"device": str(device), "python": platform.python_version(),
            "torch": torch.__version__, "host": platform.node()}
    try:
        import triton
        info["triton"] = triton.__version__
    except Exception as e:  # pragma: no cover - triton is there wherever torch.compile is
        info["triton"] = f"unavailable: {e}"
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        info.update(name=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                    capability=f"{p.major}.{p.minor}", sms=p.multi_processor_count,
                    memory_gib=round(p.total_memory / 2**30, 1),
                    l2_mib=round(getattr(p, "L2_cache_size", 0) / 2**20, 1))
        try:
            q = "name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,temperature.gpu,power.draw"
            r = subprocess.run(["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=30)
            info["nvidia_smi"] = r.stdout.strip().splitlines()[0] if r.stdout else r.stderr.strip()
            info["driver"] = info["nvidia_smi"].split(",")[1].strip()
        except Exception as e:
            info["driver"] = f"unknown ({type(e).__name__})"
    else:
        info["name"] = platform.processor() or platform.machine()
    return info


# ---------------------------------------------------------------------------- timing
def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


# ---------------------------------------------------------------------------- run
def _compile(fn, backend: str):
    return torch.compile(fn, dynamic=False, backend=backend)


def _copy_row(timer, m: int, n: int, device) -> dict:
    """The roofline of one shape: a bf16 ``copy_`` of M x N, read + write bytes."""
    row = {"shape": f"{m}x{n}", "bytes": 2 * m * n * 2}
    try:
        src = torch.randn(m, n, device=device).to(torch.bfloat16)
        dst = torch.empty_like(src)
        row.update(timer.measure(lambda: dst.copy_(src), m))
        row["gbps"] = row["bytes"] / row["us"] / 1e3
    except Exception as e:
        row["error"] = _err(e)
    return row


def _clone(inputs: dict) -> dict:
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}


def _bench_case(name, m, n, fns, timer, device, seed, tune=None) -> dict:
    """One pipeline x shape: check qfuse and compile against eager, then time each impl."""
    case = CASES[name]
    row = {"pipeline": name, "label": case.label, "shape": f"{m}x{n}", "M": m, "N": n}
    try:
        row["bytes"] = case.nbytes(m, n)
        inputs = case.inputs(m, n, device, seed=seed + m + n)
        ref_out = as_tuple(torch_refs.REFS[name](**_clone(inputs)))
        _sync(device)
    except Exception as e:
        row["error"] = "inputs/reference: " + _err(e)
        return row
    if tune is not None and not isinstance(fns.get("qfuse"), Exception) \
            and hasattr(fns.get("qfuse"), "autotune"):
        try:                                     # pick launch configs on these inputs first
            t0 = time.perf_counter()
            table = fns["qfuse"].autotune(**_clone(inputs))
            tune.merge(table)
            row["tune_s"] = time.perf_counter() - t0
            row["tuned"] = table.entries
        except Exception as e:
            row["tune_error"] = _err(e)
    for impl, fn in fns.items():
        r = row[impl] = {}
        if isinstance(fn, Exception):
            r["error"] = "no callable: " + _err(fn)
            continue
        if isinstance(fn, aiter_impl.Absent):   # AITER has no Triton kernel for it
            r["absent"] = fn.why
            continue
        try:
            own = _clone(inputs)                # a KV write updates its cache in place
            t0 = time.perf_counter()
            got = fn(**own)
            _sync(device)
            r["first_call_s"] = time.perf_counter() - t0
            if impl != "eager":
                key = {"qfuse": "correct", "rocdl": "rocdl_correct"}.get(impl, "compile_vs_eager")
                key = "aiter_vs_eager" if impl == "aiter" else key
                row[key] = compare_outputs(got, ref_out, _return_names(name, ref_out))
            got = own = None
            r.update(timer.measure(lambda: fn(**inputs), m, graph_always=impl == "qfuse"))
        except Exception as e:
            r["error"] = _err(e)
            r["traceback"] = traceback.format_exc(limit=6)
    if name == "kv_key_per_token_fp8" and "qfuse" in fns:   # the scatter's own roofline
        row["scatter_roofline"] = _scatter_roofline(inputs, timer, m)
    return row


def _scatter_roofline(inputs, timer, m) -> dict:
    """probes/kv_scatter.py on a copy of this row's inputs: the best plain Triton kernel
    moving the same bytes to the same slots (its time, launch config)."""
    from benchmarks.probes import kv_scatter
    try:
        return kv_scatter.best(timer, _clone(inputs), m)
    except Exception as e:
        return {"error": _err(e)}


def run(pipes, shapes, names=None, device="cuda", impls=IMPLS, compile_backend="inductor",
        timer: "Timer | None" = None, log=print, seed: int = 0, checkpoint=None, peer=None,
        tune=None, tune_path=None, rocdl_pipes=None) -> dict:
    """Measure everything; returns the JSON-able result (see README.md). With
    ``checkpoint`` (a path), the partial result is written there after every row. With
    ``tune`` (a ``TuningTable``), each qfuse pipeline is autotuned on each shape's inputs
    before it is timed, and the winners are merged into ``tune``. ``peer``: the AITER peer
    (``aiter_impl.load_peer``) for the ``aiter`` impl."""
    device = torch.device(device)
    names = list(names or CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise ValueError(f"unknown pipelines {unknown}; known: {', '.join(CASES)}")
    timer = timer or Timer(device)
    for k in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, k):
            setattr(torch._dynamo.config, k, max(64, getattr(torch._dynamo.config, k)))
    out = {"device": device_info(device), "shapes": [f"{m}x{n}" for m, n in shapes],
           "impls": list(impls), "compile_backend": compile_backend,
           "timer": {"warmup_ms": timer.warmup_ms, "rep_ms": timer.rep_ms,
                     "graph_inner": timer.graph_inner, "graph_max_m": GRAPH_MAX_M},
           "copy": [], "results": []}
    copy_gbps = {}
    for m, n in shapes:
        c = _copy_row(timer, m, n, device)
        out["copy"].append(c)
        if "gbps" in c:
            copy_gbps[(m, n)] = c["gbps"]
            log(f"copy {m}x{n}: {c['us']:.2f} us, {c['gbps']:.0f} GB/s ({c['timer']})")
    peak = max(copy_gbps.values(), default=None)
    out["peak_copy_gbps"] = peak
    compiled = {}
    for name in names:
        ref = torch_refs.REFS[name]
        fns = {}
        if "qfuse" in impls:
            try:
                fns["qfuse"] = pipes[name]
            except Exception as e:
                fns["qfuse"] = e
        if "rocdl" in impls:                    # the rocdl bundle (NVVM twin on CUDA)
            fns["rocdl"] = _rocdl_fn(rocdl_pipes, name)
        if "eager" in impls:
            fns["eager"] = ref
        if "compile" in impls:
            fns["compile"] = compiled.setdefault(name, _compile(ref, compile_backend))
        if "aiter" in impls:                    # AITER's own Triton kernel, same process
            fns["aiter"] = aiter_impl.column_fn(peer, name)
        for m, n in shapes:
            row = _bench_case(name, m, n, fns, timer, device, seed, tune)
            out["results"].append(row)
            derive(row, copy_gbps.get((m, n)), peak)
            log(format_row(row))
            if "rocdl" in impls:
                log(_rocdl_derive(row, copy_gbps.get((m, n))))
            if checkpoint:
                write_json(out, checkpoint)
            if tune is not None and tune_path:      # the table so far (a run may be cut off)
                _write_text(tune_path, tune.dumps())
            if device.type == "cuda":
                torch.cuda.empty_cache()
    sp = [r["speedup_vs_compile"] for r in out["results"] if r.get("speedup_vs_compile")]
    out["geomean_speedup_vs_compile"] = math.exp(sum(map(math.log, sp)) / len(sp)) if sp else None
    out["geomean_count"] = len(sp)
    out.update(geomean_vs_aiter(out["results"]))
    out["errors"] = [f"{r['pipeline']} {r['shape']} {k}: {v['error'] if isinstance(v, dict) else v}"
                     for r in out["results"] for k, v in r.items()
                     if k == "error" or (isinstance(v, dict) and "error" in v)]
    return out


# ---------------------------------------------------------------------------- rocdl column
def _rocdl_fn(pipes, name):
    """The rocdl bundle's callable for ``name``, or the exception saying why there is none
    (a pipeline the rocdl backend refused is listed in the bundle's ``failed``)."""
    if pipes is None:
        return RuntimeError("--impls rocdl needs --rocdl-bundle DIR (qfuse build --backend "
                            "rocdl --target cuda:sm_90 ...)")
    try:
        return pipes[name]
    except Exception as e:
        why = {f["pipeline"]: f["error"] for f in getattr(pipes, "manifest", {}).get("failed", [])}
        return RuntimeError(why.get(name, "").splitlines()[0][:200] if name in why else _err(e))


def _rocdl_derive(row: dict, copy_gbps) -> str:
    """The rocdl column of one row: its time, GB/s, % of copy and speed relative to the
    Triton backend (``rocdl_vs_triton`` > 1: faster); returns the log line."""
    r, q = row.get("rocdl") or {}, row.get("qfuse") or {}
    if "us" in r and row.get("bytes"):
        r["gbps"] = row["bytes"] / r["us"] / 1e3
        if copy_gbps:
            r["pct_copy"] = 100 * r["gbps"] / copy_gbps
    if "us" in r and "us" in q:
        row["rocdl_vs_triton"] = q["us"] / r["us"]
    return rocdl_line(row)


def rocdl_line(row: dict) -> str:
    from benchmarks.report import summarize_check
    r = row.get("rocdl") or {}
    t = "ERR " + r["error"][:120] if "error" in r else f"{r['us']:.2f} us" if "us" in r else "-"
    rel = f", {row['rocdl_vs_triton']:.2f}x triton" if "rocdl_vs_triton" in row else ""
    pct = f", {r['pct_copy']:.1f}% copy" if "pct_copy" in r else ""
    ok = summarize_check(row["rocdl_correct"]) if "rocdl_correct" in row else "-"
    return f"  rocdl {row['pipeline']} {row['shape']}: {t}{pct}{rel}, correct: {ok}"


def _return_names(name, ref_out) -> list:
    known = {"add_rmsnorm_per_token_fp8": ["q", "s", "h"], "mxfp4_even": ["p", "s"],
             "rmsnorm_mxfp4_shuffle": ["q", "ss"], "kv_key_per_token_fp8": ["kc", "ks"]}
    return known.get(name, ["q", "s"][:len(ref_out)])


def _write_text(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def write_json(result: dict, path: str) -> None:
    _write_text(path, json.dumps(result, indent=1, default=str))


def _load_rocdl(path):
    """The rocdl bundle (its manifest must say rocdl), or an _Unloadable saying why not."""
    if not path:
        return None
    try:
        import qfuse
        pipes = qfuse.load(path)
        if pipes.manifest.get("backend") != "rocdl":
            raise ValueError(f"{path} is a {pipes.manifest.get('backend')} bundle, not rocdl")
        return pipes
    except Exception as e:
        print(f"rocdl bundle did not load: {_err(e)}", flush=True)
        return _Unloadable(_err(e))


class _Unloadable:
    def __init__(self, why: str):
        self.why = why

    def __getitem__(self, name):
        raise RuntimeError(f"the bundle did not load ({self.why})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", help="qfuse bundle dir (qfuse.load), or 'reference' / 'stub'")
    ap.add_argument("--shapes", help=f"MxN list (default {DEFAULT_SHAPES}; smoke {SMOKE_SHAPES})")
    ap.add_argument("--pipelines", help="comma-separated subset (default: all 12)")
    ap.add_argument("--impls", default=",".join(IMPLS), help="subset of qfuse,eager,compile "
                    "(add rocdl with --rocdl-bundle)")
    ap.add_argument("--rocdl-bundle", help="a rocdl bundle dir for the rocdl column (qfuse build "
                    "--backend rocdl --target cuda:sm_90: the NVVM twin)")
    ap.add_argument("--out", help="JSON path (default $OUT/bench_results.json when $OUT is set)")
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny shapes on CPU, perf_counter")
    ap.add_argument("--compile-backend", help="torch.compile backend (default inductor; "
                                              "smoke: eager)")
    ap.add_argument("--warmup-ms", type=float, default=25)
    ap.add_argument("--rep-ms", type=float, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tune", metavar="FILE", help="autotune each pipeline x shape before "
                    "timing it; write the merged table to FILE (ship it: qfuse build --tuning)")
    ap.add_argument("--aiter", metavar="DIR", help="the AITER peer for the aiter impl (default "
                    ".peer-aiter, else ../shared/peers/aiter); adds aiter to --impls")
    a = ap.parse_args(argv)
    device = "cpu" if a.cpu_smoke else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: use --cpu-smoke for a CPU check")
    shapes = parse_shapes(a.shapes or (SMOKE_SHAPES if a.cpu_smoke else DEFAULT_SHAPES))
    names = a.pipelines.split(",") if a.pipelines else None
    impls = tuple(i for i in a.impls.split(",") if i)
    impls += ("aiter",) if a.aiter and "aiter" not in impls else ()
    # (first: on the CPU it sets TRITON_INTERPRET=1 before anything imports triton)
    peer = aiter_impl.load_peer(a.aiter, a.cpu_smoke) if "aiter" in impls else None
    bundle_error = None
    try:
        pipes = load_pipes(a.bundle, a.cpu_smoke) if "qfuse" in impls else {}
    except Exception as e:                      # time the torch side anyway
        bundle_error = _err(e)
        print(f"bundle did not load: {bundle_error}", flush=True)
        pipes = _Unloadable(bundle_error)
    rocdl_pipes = _load_rocdl(a.rocdl_bundle) if "rocdl" in impls else None
    backend = a.compile_backend or ("eager" if a.cpu_smoke else "inductor")
    timer = Timer(torch.device(device), a.warmup_ms, a.rep_ms)
    path = a.out or (os.path.join(os.environ["OUT"], "bench_results.json")
                     if os.environ.get("OUT") else None)
    tune = None
    if a.tune:
        from qfuse.runtime.autotune import TuningTable
        tune = TuningTable()
    result = run(pipes, shapes, names, device, impls, backend, timer, seed=a.seed, peer=peer,
                 checkpoint=path, tune=tune, tune_path=a.tune, rocdl_pipes=rocdl_pipes)
    if tune is not None:
        _write_text(a.tune, tune.dumps())
        result["tuning_file"] = a.tune
    result["bundle"], result["bundle_error"] = a.bundle, bundle_error
    shipped = getattr(pipes, "manifest", {}).get("autotune") if not a.cpu_smoke else None
    result["launch_configs"] = (f"the bundle's autotune table ({shipped}) where it has the "
                                "kernel and M bucket, else the default rule" if shipped
                                else "the default rule (TritonConfig)")
    print(f"launch configs: {result['launch_configs']}", flush=True)
    text = format_table(result)
    if "rocdl" in impls:                       # the rocdl column, under the table
        text += "\n\nrocdl (NVVM twin):\n" + "\n".join(rocdl_line(r) for r in result["results"])
    print("\n" + text, flush=True)
    if path:
        write_json(result, path)
        with open(os.path.splitext(path)[0] + ".md", "w") as f:
            f.write(text + "\n")
        print(f"wrote {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
