"""``render_kernel``: one fused kernel (a TypedPipeline) -> Triton source (:class:`KernelSource`).

Spaces (one iteration space per kernel):

* ``row``: rows = the output's leading dims flattened; a program owns BLOCK_M rows and
  whole rows in registers (``BLOCK_<k> = max(next_pow2(width), smallest group)``).
* ``tensor_amax``: the input of a dynamic ``scale(per_tensor)`` evaluated in row space;
  each program atomically maxes its |v| bits into an int32 workspace, and the last
  program to arrive (an atomic counter) turns the amax into the scale, stores it and
  zeroes the workspace again (so a workspace is cleared once, when allocated). The
  kernel's only output is the scale, so the next (row) kernel takes it as a plain f32[1]
  input: no side channel between kernels, and the zero policy is applied once.
* ``tile``: programs over 128x128 tiles (``per_128x128``).
* ``cache_block``: ``cache_write(quant=per_block)``, three kernels (render_cache_block.py).
"""
from __future__ import annotations

from typing import Optional

from ....dialect.types import ScalarType, TensorType
from ....dialect.typed import TypedPipeline
from ....errors import UnsupportedError
from . import stages_cache, stages_glue, stages_norm, stages_quant  # noqa: F401 (register)
from .emit import STORAGE, Cols, Emitter, _ident
from ..kernel import (SPACES, KernelArg, KernelSource, ScalarSpec, TensorSpec, TritonConfig,
                     dim_rule)
from .slot_claims import claim_regions, emit_claim_phase, finish_claims
from .stages_quant import scale_from_amax
from .stores import store_output

__all__ = ["render_kernel", "infer_space", "scale_fact"]


def infer_space(tp: TypedPipeline) -> str:
    """The space a single-kernel pipeline needs (``row`` unless a stage says otherwise)."""
    for c in tp.calls:
        g = c.options.get("granularity")
        if c.stage == "scale" and g == "per_tensor" and c.operands.get("static") is None:
            return "tensor_amax"
        if c.stage in ("scale", "round") and g == "per_128x128":
            return "tile"
        if c.stage == "cache_write" and c.options.get("quant") == "per_block":
            return "cache_block"
    return "row"


def _domain(em: Emitter, tp: TypedPipeline) -> tuple:
    doms = []
    for v in tp.returns:
        call = em.producer.get(v)
        if call is None:
            d = v.type.shape[:-1]
        elif call.stage in ("cache_write", "scale"):
            if call.stage == "scale" and call.options["granularity"] == "per_tensor":
                continue
            d = call.operands["x"].type.shape[:-1]
        elif call.stage == "shuffle":
            d = call.operands["s"].type.shape[:-1]
        else:
            d = v.type.shape[:-1]
        if tuple(d) not in doms:
            doms.append(tuple(d))
    if not doms:
        x = next(c.operands["x"] for c in tp.calls if c.stage == "scale")
        doms.append(tuple(x.type.shape[:-1]))
    if len(doms) > 1:
        raise UnsupportedError(
            f"triton backend: the outputs of kernel {tp.name} iterate over different rows "
            f"({' vs '.join('[' + ', '.join(map(str, d)) + ']' for d in doms)}); the fusion "
            "pass must split them", tp.loc)
    return doms[0]


def _setup_rows(em: Emitter, dom: tuple, first_fastest: bool = False) -> None:
    n_rows = " * ".join(em.dim(d) for d in dom) or "1"
    em.emit("pid = tl.program_id(0)")
    if em.col_split:
        em.emit("pid_c = tl.program_id(1)")
    em.emit("row = pid.to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)[:, None]")
    em.emit(f"n_rows = {n_rows}")
    em.emit("rmask = row < n_rows")
    _lead_from_row(em, dom, "row", "rmask", first_fastest)


def _lead_from_row(em: Emitter, dom: tuple, row: str, mask: str,
                   first_fastest: bool = False) -> None:
    """Leading indices of ``row``: the last dim varies fastest (row-major), or with
    ``first_fastest`` the first dim does (a KV-cache scatter: a program then takes
    consecutive tokens of one head, whose cache chunks of X bytes sit side by side in a
    block, so the writes fill whole sectors instead of half of each)."""
    order = list(range(len(dom))) if first_fastest else list(range(len(dom) - 1, -1, -1))
    names, below = {}, []
    for k, j in enumerate(order):
        div = " * ".join(below)
        idx = f"{row} // ({div})" if div else row
        if k < len(order) - 1:
            idx = f"({idx}) % {em.dim(dom[j])}" if div else f"{row} % {em.dim(dom[j])}"
        names[j] = em.let(f"i_{_ident(str(dom[j]))}", idx) if len(dom) > 1 else row
        below.append(em.dim(dom[j]))
    em.domain_lead = em.make_lead(tuple(names[j] for j in range(len(dom))), mask)


def _setup_tile(em: Emitter, tp: TypedPipeline) -> tuple:
    x = next(c.operands["x"] for c in tp.calls if c.options.get("granularity") == "per_128x128")
    if x.type.rank != 2:
        raise em.unsupported(None, "per_128x128 needs a 2-D input")
    m, n = (em.dim(d) for d in x.type.shape)
    em.emit("pid_m = tl.program_id(0)")
    em.emit("pid_n = tl.program_id(1)")
    em.emit("row = pid_m.to(tl.int64) * TILE + tl.arange(0, TILE)[:, None]")
    em.emit(f"rmask = row < {m}")
    c = em.let("cols", "pid_n * TILE + tl.arange(0, TILE)[None, :]")
    cm = em.let("cmask", f"{c} < {n}")
    em.tile_cols = Cols(c, cm, "tile")
    em.tile_ids = (em.let("tm", "pid_m.to(tl.int64)"), em.let("tn", "pid_n.to(tl.int64)"))
    em.domain_lead = em.make_lead(("row",), "rmask")
    return (x.type.shape[0],), (f"cdiv({dim_rule(x.type.shape[0])}, TILE)",
                                f"cdiv({dim_rule(x.type.shape[1])}, TILE)")


def _tensor_amax(em: Emitter, tp: TypedPipeline) -> None:
    call = tp.calls[-1]
    if not (call.stage == "scale" and call.options["granularity"] == "per_tensor"
            and call.operands.get("static") is None) or list(tp.returns) != call.results:
        raise UnsupportedError(
            "triton backend: a tensor_amax kernel ends in a dynamic scale(per_tensor) and "
            "returns only that scale", tp.loc,
            hint="split the pipeline first: the fusion plan puts the amax in its own kernel "
                 "(qfuse.passes.plan.plan_kernels, then triton.sub_pipeline per kernel)")
    x = call.operands["x"]
    cols = em.natural(em.base_block(x.type.shape[-1]), x.type.shape[-1])
    xv = em.f32(em.value_at(x, em.domain_lead, cols))
    em.emit("")
    em.stage_comment(call, ": grid-wide amax, then the last program stores the scale")
    part = em.let("part", f"{em.lib('qft_amax_bits_all')}({xv}, rmask & {cols.mask})")
    # the counter's acq_rel add releases this program's max and, in the last program,
    # acquires every other's, so the max itself and the final read can be relaxed
    em.emit(f"tl.atomic_max(ws_ptr, {part}, sem=\"relaxed\")")
    done = em.let("arrived", "tl.atomic_add(ws_ptr + 1, 1, sem=\"acq_rel\")")
    em.emit(f"if {done} == tl.num_programs(0) - 1:")
    em.indent += 1
    amax = em.let("amax", "tl.atomic_max(ws_ptr, 0, sem=\"relaxed\").to(tl.float32, bitcast=True)")
    s = scale_from_amax(em, call, amax)
    em.emit(f"tl.store({em.out_names[call.results[0]]}_ptr, {s})")
    # every other program is done with the workspace: leave it zeroed for the next launch
    # (the launcher keeps one per stream instead of clearing it before every launch)
    # (plain stores, after a barrier so that no thread's store can pass the atomic read
    # above; the branch is uniform: `arrived` is one value per program)
    em.emit("tl.debug_barrier()")
    em.emit("tl.store(ws_ptr, 0)")
    em.emit("tl.store(ws_ptr + 1, 0)")
    em.indent -= 1


def render_kernel(kernel: TypedPipeline, space: Optional[str] = None,
                  config: Optional[TritonConfig] = None,
                  scale_facts: Optional[dict] = None) -> KernelSource:
    """Render ``kernel`` (params = inputs, returns = outputs) in ``space`` (inferred when
    None). The text does not depend on ``config`` (block sizes are constexprs).
    ``scale_facts``: what earlier kernels of the pipeline computed, see scale_fact."""
    space = space or infer_space(kernel)
    if space not in SPACES:
        raise UnsupportedError(f"triton backend: unknown iteration space {space!r} "
                               f"(supported: {', '.join(SPACES)})", kernel.loc)
    if space == "cache_block":
        from .cache_block import render_cache_block
        return render_cache_block(kernel)
    split = space == "row" and column_split_ok(kernel)
    facts = dict(scale_facts or {})
    em = _render_body(kernel, space, split, facts)
    if split and len(em.bases) != 1:     # columns of several widths: whole rows
        split, em = False, _render_body(kernel, space, False, facts)
    grid, min_programs, workspace = em.grid, 0, 0
    col_split = 0
    if split:
        col_split = em.base_min["BLOCK_0"]
        grid = grid + (f"cdiv({dim_rule(em.base_dim['BLOCK_0'])}, BLOCK_0)",)
    if space == "tensor_amax":
        min_programs, workspace = 1, 2
    if em.claims:                    # cache writes: their slot claims launch first
        return _with_claims(em, kernel, space, grid, col_split)
    return _assemble(em, kernel, space, grid, min_programs, workspace, col_split=col_split)


def _cache_writes(kernel: TypedPipeline) -> list:
    return [c for c in kernel.calls if c.stage == "cache_write"]


def _with_claims(em: Emitter, kernel: TypedPipeline, space: str, grid: tuple,
                 col_split: int):
    """A row kernel with cache writes as two launches: the slot claims, then the kernel."""
    calls = _cache_writes(kernel)
    claim = Emitter(kernel, space)
    claim.bm = em.bm
    regions, ws = claim_regions(claim, calls)
    tokens = calls[0].operands["x"].type.shape[0]
    emit_claim_phase(claim, list(regions.values()), claim.dim(tokens))
    name = _ident(kernel.name)
    phases = [(f"{name}_claim", claim, (f"cdiv({dim_rule(tokens)}, BLOCK_M)",)),
              (name, em, grid)]
    return _assemble(em, kernel, space, grid, 0, ws, phases, col_split=col_split, primary=1)


def column_split_ok(tp: TypedPipeline) -> bool:
    """Whether a row-space kernel may split its columns across programs: no stage reduces
    over a whole row (norm statistics, a per-token scale, a KV-cache row with its scale).
    Group scales (per_1xK, mx) reduce within groups, which a split keeps whole (a chunk is
    at least the group size); every other stage addresses columns arithmetically."""
    for c in tp.calls:
        if c.stage in ("norm", "cache_write"):
            return False
        if c.stage == "scale" and c.operands.get("static") is None and \
                c.options.get("granularity") in ("per_token", "per_tensor"):
            return False
    return True


def scale_fact(kernel: TypedPipeline, space: str) -> dict:
    """``{scale value name: (x name, granularity, dtype_max)}`` for a ``tensor_amax``
    kernel whose scale is taken over a kernel parameter x (a pipeline input, read from
    memory): a later kernel's ``round(x, s)`` of that same input is then bounded by
    construction (stages_quant._bounded_by_own_scale). Empty for any other kernel."""
    if space != "tensor_amax" or not kernel.calls:
        return {}
    c = kernel.calls[-1]
    x = c.operands["x"]
    if c.stage != "scale" or c.operands.get("static") is not None or \
            x not in {p.value for p in kernel.params}:
        return {}
    return {c.results[0].name: (x.name, c.options["granularity"], float(c.options["dtype_max"]))}


def _render_body(kernel: TypedPipeline, space: str, split: bool,
                 facts: Optional[dict] = None) -> Emitter:
    em = Emitter(kernel, space)
    em.scale_facts = facts or {}
    em.bm = "TILE" if space == "tile" else "BLOCK_M"
    em.tile_cols, em.tile_ids = None, None
    em.col_split = split
    if space == "tile":
        dom, em.grid = _setup_tile(em, kernel)
    else:
        dom = (_domain(em, kernel) if space == "row" else
               tuple(kernel.calls[-1].operands["x"].type.shape[:-1]))
        _setup_rows(em, dom, any(c.stage == "cache_write" for c in kernel.calls))
        rows = " * ".join(dim_rule(d) for d in dom) or "1"
        em.grid = (f"cdiv({rows}, BLOCK_M)",)
    if space == "tensor_amax":
        _tensor_amax(em, kernel)
    else:
        writes = _cache_writes(kernel)
        if writes and space != "row":
            raise em.unsupported(writes[0], f"a cache write in the {space} space")
        em.claims, _ = claim_regions(em, writes)
        for v in dict.fromkeys(kernel.returns):
            store_output(em, v)
        finish_claims(em, list(em.claims.values()))
    return em


def _assemble(em: Emitter, tp: TypedPipeline, space, grid, min_programs, workspace,
              phases=None, col_split: int = 0, primary: int = 0):
    """KernelSource of one or more kernel functions (``phases``: [(fn name, emitter, grid)],
    all with the same signature; the launcher runs them in order). Phase ``primary`` names
    the kernel and gives the grid its launch heuristics look at."""
    phases = phases or [(_ident(tp.name), em, grid)]
    ems = [e for _, e, _ in phases]
    args, tensors, scalars, strides = [], [], [], []
    for p in tp.params:
        v = p.value
        if isinstance(v.type, ScalarType):
            continue
        nm = em.names[v]
        view, sig, _ = STORAGE[v.type.dtype.name]
        args.append(KernelArg(f"{nm}_ptr", "input", v.name, sig=sig))
        tensors.append(TensorSpec(v.name, "input", v.type.dtype.name,
                                  tuple(dim_rule(d) for d in v.type.shape), view))
        strides += [KernelArg(f"{nm}_s{k}", "stride", v.name, k, "i64", "input")
                    for k in range(v.type.rank - 1)]
    outs = []
    for v, nm in em.out_names.items():
        if not isinstance(v.type, TensorType):
            raise em.unsupported(None, f"output {v.name} is not a tensor")
        view, sig, _ = STORAGE[v.type.dtype.name]
        init, dense = _init_of(em, em.producer.get(v), v)
        args.append(KernelArg(f"{nm}_ptr", "output", v.name, sig=sig))
        tensors.append(TensorSpec(v.name, "output", v.type.dtype.name,
                                  tuple(dim_rule(d) for d in v.type.shape), view, init, dense))
        strides += [KernelArg(f"{nm}_s{k}", "stride", v.name, k, "i64", "output")
                    for k in range(v.type.rank - 1)]
        outs.append((v.name, v.name))
    if workspace:
        args.append(KernelArg("ws_ptr", "workspace", "ws", sig="*i32"))
    symbols = list(tp.symbols())
    for e in ems:
        symbols += [s for s in e.symbols if s not in symbols]
    args += [KernelArg(f"dim_{s}", "dim", s, sig="i32") for s in symbols]
    args += strides
    for p in tp.params:
        v = p.value
        if isinstance(v.type, ScalarType):
            dt = v.type.dtype.name
            args.append(KernelArg(em.names[v], "scalar", v.name,
                                  sig={"f32": "fp32", "bf16": "fp32", "f16": "fp32"}.get(dt, dt)))
            scalars.append(ScalarSpec(v.name, dt, p.default))
    cexpr = dict([("BLOCK_M", "BLOCK_M")] if space != "tile" else [("TILE", "128")])
    for e in ems:
        for name, rule in e.block_rules() + getattr(e, "extra_constexprs", []):
            if cexpr.setdefault(name, rule) != rule:
                raise AssertionError(f"phases disagree on {name}: {cexpr[name]} vs {rule}")
    cexpr["NATIVE"] = "NATIVE"
    args += [KernelArg(n, "constexpr", n, sig="constexpr") for n in cexpr]
    text = _module_text(tp, space, args, phases)
    return KernelSource(name=phases[primary][0], space=space, text=text, args=tuple(args),
                        tensors=tuple(tensors), scalars=tuple(scalars), symbols=tuple(symbols),
                        constexprs=tuple(cexpr.items()), grid=tuple(phases[primary][2]),
                        min_programs=min_programs, workspace=str(workspace or ""),
                        checks=tuple(c for e in ems for c in e.checks), outputs=tuple(outs),
                        phases=tuple((f, tuple(g)) for f, _, g in phases) if len(phases) > 1
                        else (), col_split=col_split)


def _sym(s: str):
    from ....dialect.types import Dim
    return Dim(s)


def _init_of(em: Emitter, call, v) -> tuple:
    if call is None:
        return None, False
    if call.stage == "shuffle":                 # the kernel writes its pad bytes too
        return None, True
    if call.stage == "cache_write":
        src = call.operands["cache" if v is call.results[0] else "scales"]
        if src not in em.params:
            raise em.unsupported(call, "the cache (and its scales) must be kernel inputs")
        return ("copy", src.name), False
    return None, False


def _module_text(tp: TypedPipeline, space: str, args: list, phases: list) -> str:
    helpers = sorted(set().union(*(e.helpers for _, e, _ in phases)))
    libs = sorted(set().union(*(e.libs for _, e, _ in phases)))
    head = [f'"""qfuse kernel {phases[0][0]} (space: {space}), from pipeline {tp.name} at '
            f'{Emitter.where_(tp)}.', "",
            "Generated by qfuse.backends.triton.render; do not edit.", '"""',
            "import triton", "import triton.language as tl", ""]
    if helpers:
        head.append("from qfuse.backends.triton.numerics import " + ", ".join(helpers))
    if libs:
        head.append("from qfuse.backends.triton.lib import " + ", ".join(libs))
    # dims are specialised like any int (N % 16 == 0 lets masked loads vectorise)
    deco = "@triton.jit"
    sig = [f"    {a.name}: tl.constexpr," if a.role == "constexpr" else f"    {a.name},"
           for a in args]
    out = head
    for fname, e, _ in phases:
        out += ["", "", deco, f"def {fname}("] + sig + ["):"] + (e.lines or ["    pass"])
    return "\n".join(out) + "\n"
