"""CPU probe, the AMD proxy: hot-path instructions per element and registers of qfuse's
kernels and of AITER's Triton kernel for the same op, cross-compiled for gfx942 and gfx950
(no AMD GPU here, and none needed).

    .venv/bin/python -m benchmarks.probes.amd_hotpath [--chips gfx942,gfx950]
        [--shapes 16x7168,4096x7168,16384x8192] [--pipelines a,b] [--aiter DIR]
        [--out docs/results/amd-proxy-DATE.json] [--keep DIR]
    .venv/bin/python -m benchmarks.report --markdown docs/results/amd-proxy-DATE.json

Both sides are launched the way they launch on a GPU, with meta tensors (no memory, no
device) of the benchmark case's shapes, and the launches Triton would compile are caught
(``JITFunction.run``) and compiled for the chip through Triton's own argument binder, so
each kernel gets the specialisation its JIT would give it (16-byte divisibility of
pointers and ints, ints equal to 1 as constants, AMD's 32-bit pointer ranges):

* qfuse: the pipeline's kernels from ``compile_pipeline(tp, "triton", "hip:<chip>")``, each
  launched by ``TritonKernel.launch`` with the default launch rule for AMD (the bench
  bundle's tuning table is the H200's) and FMA contraction off, as qfuse launches them.
* AITER: the wrapper the peer maps to the pipeline (``benchmarks/aiter_impl.py``), called
  as a user calls it, so the constexprs, ``num_warps`` and grid are the wrapper's choice at
  that shape; ``get_num_sms()`` answers the chip's CU count (304 on MI300X, 256 on MI355X),
  which sizes AITER's persistent row loops. FMA contraction on (Triton 3.9's default,
  which AITER runs with).

fp8 is each chip's own e4m3: ``fp8_e4m3fnuz`` on gfx942 (MI300's hardware format and
AITER's choice there; qfuse compiles ``benchmarks/pipelines.qp`` with fp8_e4m3fn replaced)
and ``fp8_e4m3fn`` on gfx950.

Per kernel: VGPRs, SGPRs, AGPRs, spills and occupancy from the code object's metadata, and
the hot path (``amdgcn.hot_path``: the heaviest path, loop bodies weighted by their trip
counts, blocks of a ``tl.debug_barrier()`` line left out as cold). Instructions per
element = the sum over a pipeline's launches of (hot-path instructions per program x
threads per program x programs) / (M x N): the instructions each element's lane issues,
as ``sass_hotpath.py`` counts for SASS (per-thread instructions over elements per thread).
Loop trip counts come from ``TRIPS`` (the loops these kernels have); a loop it does not know
is counted once and listed under ``unknown_loops``.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import json
import linecache
import math
import os
import re
import subprocess
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import torch  # noqa: E402

from benchmarks import aiter_impl  # noqa: E402
from benchmarks.cases import CASES  # noqa: E402
from benchmarks.probes import amdgcn  # noqa: E402

__all__ = ["CHIPS", "SHAPES", "run", "main", "capture", "trips_for", "cold"]

QP = os.path.join(_ROOT, "benchmarks", "pipelines.qp")
SHAPES = [(16, 7168), (4096, 7168), (16384, 8192)]
WAVE = 64                                   # CDNA wavefront: lanes per warp
CHIPS = {
    "gfx942": {"gpu": "MI300X", "cus": 304, "fp8": torch.float8_e4m3fnuz, "qp_fp8": "fp8_e4m3fnuz"},
    "gfx950": {"gpu": "MI355X", "cus": 256, "fp8": torch.float8_e4m3fn, "qp_fp8": "fp8_e4m3fn"},
}


# ---------------------------------------------------------------------------- launches
@contextlib.contextmanager
def capture():
    """Record ``(jit fn, args, kwargs, grid)`` of every Triton launch instead of running it."""
    from triton.runtime.jit import JITFunction
    calls, original = [], JITFunction.run

    def record(self, *args, grid, warmup, **kwargs):
        calls.append((self, args, kwargs, grid))
    JITFunction.run = record
    try:
        yield calls
    finally:
        JITFunction.run = original


def _meta(v, fp8):
    if not isinstance(v, torch.Tensor):
        return v
    dtype = fp8 if v.dtype == torch.float8_e4m3fn else v.dtype
    return torch.empty_strided(v.shape, v.stride(), dtype=dtype, device="meta")


def meta_inputs(name: str, m: int, n: int, fp8) -> dict:
    """The case's inputs at M x N as meta tensors (fp8 caches in the chip's fp8 type)."""
    return {k: _meta(v, fp8) for k, v in CASES[name].inputs(m, n, "meta").items()}


_COMPILED: dict = {}


def compile_call(call, target, fusion: bool):
    """Compile one caught launch for Triton's ``GPUTarget`` ``target`` as the JIT would:
    ``(compiled kernel, bound args by name)``. Uses Triton's binder (3.9's ``jit.py``)."""
    import triton
    from triton.compiler import ASTSource, compile as tcompile, make_backend
    from triton.runtime.jit import create_function_from_signature
    fn, args, kwargs, grid = call
    backend = make_backend(target)
    kwargs = dict(kwargs)
    kwargs.setdefault("enable_fp_fusion", fusion)
    kwargs["debug"] = kwargs.get("debug", fn.debug) or triton.knobs.runtime.debug
    kwargs["instrumentation_mode"] = triton.knobs.compilation.instrumentation_mode
    kwargs["fpsan_homomorphic_casts"] = triton.knobs.compilation.fpsan_homomorphic_casts
    binder = create_function_from_signature(fn.signature, fn.params, backend)
    bound, spec, opts = binder(*args, **kwargs)
    options, signature, constexprs, attrs = fn._pack_args(backend, kwargs, bound, spec, opts)
    key = (id(fn), repr(target), repr(signature), repr(sorted(constexprs.items())),
           repr(sorted(attrs.items())), repr(sorted(options.__dict__.items())))
    if key not in _COMPILED:
        _COMPILED[key] = tcompile(ASTSource(fn, signature, constexprs, attrs), target=target,
                                  options=options.__dict__)
    return _COMPILED[key], dict(bound)


def compile_launch(call, chip: str, fusion: bool):
    """Compile one caught launch for ``hip:<chip>``: ``(asm text, bound args by name,
    num_warps, grid)``."""
    from triton.backends.compiler import GPUTarget
    k, bound = compile_call(call, GPUTarget("hip", chip, WAVE), fusion)
    grid = call[3]
    g = grid(bound) if callable(grid) else grid
    return k.asm["amdgcn"], bound, k.metadata.num_warps, tuple(g) + (1,) * (3 - len(g))


def launches_for(tp, inputs: dict, target: str) -> list:
    """The launches of qfuse's kernels for ``tp`` on ``inputs`` (meta) compiled for
    ``target`` (``hip:gfx942``, ``cuda:sm_90``), the default launch rule of its vendor."""
    import functools
    from qfuse.backends.triton.launch import TritonKernel
    from qfuse.runtime.compiler import compile_pipeline
    cp = compile_pipeline(tp, "triton", target)
    env, out = dict(inputs), []
    for step in cp.steps:
        kern = TritonKernel(step.source)
        # the launch asks torch whether it runs on ROCm; here the target says so
        kern._constexprs = functools.partial(TritonKernel._constexprs, kern,
                                             hip=target.startswith("hip"))
        ins = {n: env[n] for n in step.inputs}
        dims = kern.bind_dims(ins)
        outs = kern.allocate_outputs(ins, dims)
        with capture() as calls:
            kern.launch(ins, outs, dims, None, interpret=False)
        out += calls
        for tensor_name, value_name in step.source.outputs:
            env[value_name] = outs[tensor_name]
    return out


def qfuse_launches(tp, inputs: dict, chip: str) -> list:
    """The launches of qfuse's kernels for ``tp`` on ``inputs`` (meta), AMD's launch rule."""
    return launches_for(tp, inputs, f"hip:{chip}")


def aiter_launches(peer, name: str, inputs: dict, chip: str) -> list:
    """The launches of AITER's wrapper for pipeline ``name`` on ``inputs`` (meta)."""
    peer.K.rms.get_num_sms = lambda: CHIPS[chip]["cus"]     # sizes the persistent grids
    call = aiter_impl.bind(peer, name, inputs, fp8=CHIPS[chip]["fp8"])
    with capture() as calls:
        call()
    return calls


# ---------------------------------------------------------------------------- hot path
def _line(lp) -> str:
    return linecache.getline(lp.file, lp.line).strip() if lp.file and lp.line else ""


def _cdiv(a, b):
    return -(-a // b)


# (pattern on the loop's source line, trips per program from the launch's bound args).
# AITER's persistent loops stride the rows by NUM_PRGMS (on average rows / NUM_PRGMS each);
# its MXFP4 kernel walks NUM_ITER column blocks; qfuse's in-kernel duplicate-slot scan
# reads the slots 128 at a time.
TRIPS = [
    (re.compile(r"for \w+ in tl\.range\(row_start, (\w+), NUM_PRGMS"),
     lambda a, m: a[m.group(1)] / a["NUM_PRGMS"]),
    (re.compile(r"for pid_n in tl\.range\(start_n, min\(start_n \+ NUM_ITER, N\)"),
     lambda a, m: min(a["NUM_ITER"], _cdiv(a["N"], a["BLOCK_SIZE_N"]))),
    (re.compile(r"for start in range\(0, n_tokens, BLOCK\)"),
     lambda a, m: _cdiv(a["dim_T"], 128)),
    # the E8M0 shuffle's pad byte (stages_layout.py), shared out over the programs: the
    # cells of rows M..round_up(M, 32) and of columns S..round_up(S, 8), 256 a step, then
    # the whole 32-row blocks up to round_up(M, 256), 1024 bytes a step
    (re.compile(r"for pad_k0 in range\("),
     lambda a, m: _pad_cells(a) / (a["_programs"] * 256)),
    (re.compile(r"for pad_b0 in range\("),
     lambda a, m: _pad_rows_bytes(a) / (a["_programs"] * 1024)),
]


def _scale_cols(a) -> tuple:
    """(S, round_up(S, 8)): E8M0 scale columns of an MX group-32 row and the padded ones."""
    s = _cdiv(a["dim_N"], 32)
    return s, _cdiv(s, 8) * 8


def _pad_cells(a) -> int:
    m, (s, sn) = a["dim_M"], _scale_cols(a)
    return (_cdiv(m, 32) * 32 - m) * sn + m * (sn - s)


def _pad_rows_bytes(a) -> int:
    m, (_, sn) = a["dim_M"], _scale_cols(a)
    return (_cdiv(m, 256) * 256 - _cdiv(m, 32) * 32) * sn
_STAGES = re.compile(r"num_stages\s*=\s*(\w+)")


def trips_for(lp, args: dict, num_stages: int):
    """``(body executions per program, why)`` of loop ``lp``; None for a loop TRIPS does not
    know. A loop software-pipelined over S stages runs its body trips - (S - 1) times and
    the last S - 1 iterations after it (the epilogue the walk counts once)."""
    text = _line(lp)
    for pattern, rule in TRIPS:
        m = pattern.search(text)
        if m:
            trips = rule(args, m)
            s = _STAGES.search(text)
            stages = (int(s.group(1)) if s.group(1).isdigit() else int(args[s.group(1)])) \
                if s else num_stages
            return max(0.0, trips - (stages - 1)), f"{trips:g} trips, {stages} stages"
    return None


@functools.lru_cache(maxsize=None)
def _cold_lines(file: str) -> frozenset:
    """Lines of ``file`` marked cold: each ``tl.debug_barrier()`` line and, where it opens
    its block (the line before it ends with ``:``), the rest of that block."""
    lines, out = linecache.getlines(file), set()
    for i, text in enumerate(lines):
        if text.strip() != "tl.debug_barrier()":
            continue
        out.add(i + 1)
        before = [ln for ln in lines[:i] if ln.strip()]
        if not before or not before[-1].rstrip().endswith(":"):
            continue
        depth = len(text) - len(text.lstrip())
        j = i
        while j < len(lines) and (not lines[j].strip()
                                  or len(lines[j]) - len(lines[j].lstrip()) >= depth):
            out.add(j + 1)
            j += 1
    return frozenset(out)


def cold(ins) -> bool:
    """qfuse marks its rarely taken branches (the general path of a fast-path ``round``, the
    last program of a grid-wide amax) with ``tl.debug_barrier()`` as their first line."""
    return bool(ins.line) and linecache.getline(ins.file, ins.line).strip() == "tl.debug_barrier()"


def cold_block(ins) -> bool:
    """``cold`` for a one-wave program, which has no barrier to emit: the other lines of a
    block that a ``tl.debug_barrier()`` line opens mark it."""
    return bool(ins.line) and bool(ins.file) and ins.line in _cold_lines(ins.file)


def _hot(k, trips):
    """The hot path with ``cold``; where no instruction carries a barrier line (one wave),
    with ``cold_block``, unless that leaves no path (a block the compiler shares between
    both sides of the branch): then the branch counts as hot."""
    if not any(cold(i) for i in k.instrs):
        try:
            return amdgcn.hot_path(k, trips, cold_block)
        except ValueError:
            pass
    return amdgcn.hot_path(k, trips, cold)


def analyse(call, chip: str, fusion: bool, elements: int, keep: str = "") -> dict:
    """One launch: registers, hot path and its share of instructions per element."""
    asm, args, warps, grid = compile_launch(call, chip, fusion)
    k = amdgcn.parse(asm)
    if keep:
        with open(os.path.join(keep, f"{k.name}_{chip}.s"), "w") as f:
            f.write(asm)
    unknown = []
    stages = int(call[2].get("num_stages") or 2)       # AMD's default when not passed
    args = {**args, "_programs": math.prod(grid)}

    def trips(lp):
        t = trips_for(lp, args, stages)
        if t is None:
            unknown.append(f"{os.path.basename(lp.file)}:{lp.line}")
            return 1.0
        return t[0]
    hp = _hot(k, trips)
    lanes = warps * WAVE * math.prod(grid)
    scale = lanes / elements
    meta = k.meta
    return {"kernel": k.name, "grid": list(grid), "num_warps": warps,
            "vgprs": meta.get("vgpr_count"), "sgprs": meta.get("sgpr_count"),
            "agprs": meta.get("agpr_count", 0),
            "spills": meta.get("vgpr_spill_count", 0) + meta.get("sgpr_spill_count", 0),
            "occupancy": meta.get("occupancy"), "instructions": len(k.instrs),
            "hot": round(hp.count, 1), "instr_per_elem": round(hp.count * scale, 2),
            "mix_per_elem": {c: round(v * scale, 2) for c, v in sorted(hp.mix.items())},
            "top_ops": {o: round(v * scale, 2) for o, v in hp.ops.most_common(10)},
            "loops": [f"{os.path.basename(lp.file)}:{lp.line} x{w:g}" for lp, w in hp.loops],
            "unknown_loops": unknown}


def _side(kernels: list) -> dict:
    mix = {}
    for kr in kernels:
        for c, v in kr["mix_per_elem"].items():
            mix[c] = round(mix.get(c, 0) + v, 2)
    return {"instr_per_elem": round(sum(kr["instr_per_elem"] for kr in kernels), 2),
            "vgprs": max(kr["vgprs"] for kr in kernels),
            "sgprs": max(kr["sgprs"] for kr in kernels),
            "spills": sum(kr["spills"] for kr in kernels), "mix_per_elem": mix,
            "kernels": kernels}


def _pipelines(chip: str) -> dict:
    from qfuse.dsl import load_source
    with open(QP) as f:
        text = f.read()
    return load_source(re.sub(r"\bfp8_e4m3fn\b", CHIPS[chip]["qp_fp8"], text), QP)


def run(chips, shapes, names=None, peer=None, log=print, keep: str = "") -> list:
    """One row per chip x pipeline x shape: ``{"qfuse": side, "aiter": side | {"absent"}}``."""
    rows = []
    ops = aiter_impl.pipeline_ops(peer) if peer is not None else {}
    for chip in chips:
        pipes = _pipelines(chip)
        for name in names or list(CASES):
            for m, n in shapes:
                row = {"chip": chip, "pipeline": name, "shape": f"{m}x{n}"}
                inputs = meta_inputs(name, m, n, CHIPS[chip]["fp8"])
                try:
                    row["qfuse"] = _side([analyse(c, chip, False, m * n, keep) for c in
                                          qfuse_launches(pipes[name], inputs, chip)])
                except Exception as e:                  # report, keep going
                    row["qfuse"] = {"error": f"{type(e).__name__}: {e}"[:300]}
                if peer is None:
                    row["aiter"] = {"absent": "no AITER peer (--aiter DIR)"}
                elif name not in ops:
                    row["aiter"] = {"absent": aiter_impl.absent_reason(peer, name),
                                    "op": None}
                else:
                    try:
                        row["aiter"] = _side([analyse(c, chip, True, m * n, keep) for c in
                                              aiter_launches(peer, name, inputs, chip)])
                        row["aiter"]["op"] = ops[name]
                    except Exception as e:
                        row["aiter"] = {"error": f"{type(e).__name__}: {e}"[:300]}
                rows.append(row)
                log(_row_line(row))
    return rows


def _row_line(r: dict) -> str:
    def side(s):
        if "instr_per_elem" in s:
            return f"{s['instr_per_elem']:7.2f}/elem {s['vgprs']:3d} vgpr"
        return (s.get("error") or s.get("absent", ""))[:40]
    return f"{r['chip']} {r['pipeline']:26s} {r['shape']:11s} qfuse {side(r['qfuse'])} | aiter {side(r['aiter'])}"


def provenance() -> dict:
    """Versions, the commit, and qfuse files modified in the worktree when it ran."""
    import triton

    def git(*a):                # (not stripped: a porcelain line starts with its status)
        return subprocess.run(["git", *a], cwd=_ROOT, capture_output=True, text=True).stdout
    return {"triton": triton.__version__, "torch": torch.__version__,
            "commit": git("rev-parse", "--short", "HEAD").strip(),
            "modified": [ln[3:] for ln in git("status", "--porcelain", "--", "qfuse").splitlines()]}


def main(argv=None) -> list:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.probes.amd_hotpath",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--chips", default="gfx942,gfx950")
    ap.add_argument("--shapes", default=",".join(f"{m}x{n}" for m, n in SHAPES))
    ap.add_argument("--pipelines", default="")
    ap.add_argument("--aiter", help="the AITER peer folder (default: .peer-aiter or "
                                    "../shared/peers/aiter)")
    ap.add_argument("--out", help="write the results JSON (docs/results/amd-proxy-DATE.json)")
    ap.add_argument("--keep", default="", help="folder for the AMDGCN of every kernel")
    a = ap.parse_args(argv)
    chips = [c for c in a.chips.split(",") if c]
    shapes = [tuple(int(v) for v in s.split("x")) for s in a.shapes.split(",") if s]
    names = [n for n in a.pipelines.split(",") if n] or None
    where = aiter_impl.find(a.aiter)
    peer = aiter_impl.load(where) if where else None
    if a.keep:
        os.makedirs(a.keep, exist_ok=True)
    rows = run(chips, shapes, names, peer, keep=a.keep)
    if a.out:
        name = os.path.splitext(os.path.basename(a.out))[0]
        doc = {"run": name, "kind": "amd-proxy", **provenance(),
               "date": datetime.date.today().isoformat(),
               "aiter_commit": peer.AITER_COMMIT if peer else None,
               "note": "CPU-derived: cross-compiled, never run on an AMD GPU",
               "method": (__doc__.split("\n\n", 2)[2]).strip(),
               "chips": {c: {k: str(v) for k, v in CHIPS[c].items()} for c in chips},
               "rows": rows}
        with open(a.out, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        print(f"wrote {a.out}")
    return rows


if __name__ == "__main__":
    main()
