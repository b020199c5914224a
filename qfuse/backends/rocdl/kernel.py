"""One kernel function of the fused module -> a loop-level MLIR function.

``render(kernel, space, mapping)`` walks the kernel's stage calls in program order; each
stage's lowering (:mod:`.stages`, registered in ``HANDLERS``) turns its operands into
:class:`Val` s, values known at one of four levels:

* ``scalar``: a function argument or a constant, available everywhere;
* ``row``: one value per row (a norm's ``1 / sqrt(ms + eps)``, a per-token scale), written
  once per row after the reduction loops it needs;
* ``group``: one value per 1xK group of a row (a per_1xK or mx scale);
* ``elem``: one value per column, recomputed in every loop that reads it (a pipeline
  reads its inputs once per loop instead of keeping a row in memory).

A row is one index per leading dim of the kernel's domain: the outputs' leading dims
(``[M]`` for ``[M, N]`` outputs, ``[M, K]`` for expert-indexed ``[M, K, N]``, ``[T, H]``
for ``[T, H, D]``; :func:`rows_param` names the tensor they come from). A row kernel is
then: the loop over the first leading dim (the launch grid), loops over the others; in
them, each row-level value in program order (its reduction loops, parallel over the
columns); then one output loop over the columns (or over the groups, each with its
reduction and its columns) that stores every output. A tensor of fewer leading dims
than the domain is read at the last of them (numpy's broadcast); a stage that reads
other rows (a gather, an expert's scale row, a rope position) reads them itself, through
an index checked against the tensor's size. The mapping (:mod:`.mapping`) decides
whether loops are CPU loops or GPU threads.

Kernel ABI (shared by the CPU twin, the NVVM twin and the AMD launcher, see
:func:`signature`): the kernel's parameters in order (a tensor is a strided memref, a
scalar an ``f32`` / ``i32``), then its outputs in return order (memrefs). Sizes come
from the memrefs (``memref.dim``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from ...dialect.stages import STAGES, call_space, layout_operand
from ...dialect.types import ScalarType, TensorType
from ...errors import UnsupportedError
from . import numerics as nx
from .emit import Emitter
from .mapping import Loops
from .stages import HANDLERS
from . import stages_cache, stages_rows  # noqa: F401  (register their stages in HANDLERS)
from .values import Scope, Val

__all__ = ["rows_param", "Renderer", "render", "signature", "ArgSpec", "storage_type"]


# ------------------------------------------------------------------ storage
#: qfuse dtype -> element type of its memref (codes and bytes are i8, as torch stores them)
_STORAGE = {"bf16": "bf16", "f16": "f16", "f32": "f32", "i32": "i32", "i64": "i64",
            "u8": "i8", "i8": "i8", "fp8_e4m3fn": "i8", "fp8_e4m3fnuz": "i8",
            "fp4_e2m1": "i8", "int4": "i8", "e8m0": "i8"}


def storage_type(dtype_name: str) -> str:
    return _STORAGE[dtype_name]


def memref_type(t: TensorType) -> str:
    dims = "x".join("?" for _ in t.shape)
    strides = ", ".join("?" for _ in t.shape)
    return f"memref<{dims}x{storage_type(t.dtype.name)}, strided<[{strides}], offset: ?>>"


@dataclass(frozen=True)
class ArgSpec:
    """One kernel argument: a tensor (``rank`` > 0, its storage ``elem`` type) or a scalar."""
    name: str
    dtype: str           # qfuse dtype name
    rank: int            # 0: a scalar
    output: bool = False


def signature(kernel) -> list:
    """``[ArgSpec]``: the kernel's parameters, then its outputs (the ABI of every path)."""
    out = []
    for p in kernel.params:
        t = p.value.type
        out.append(ArgSpec(p.value.name, t.dtype.name, t.rank if isinstance(t, TensorType) else 0))
    names = list(kernel.return_names) or [v.name for v in kernel.returns]
    for n, v in zip(names, kernel.returns):
        out.append(ArgSpec(n, v.type.dtype.name, v.type.rank, output=True))
    return out


class Renderer:
    """Renders one kernel: holds the emitter, the mapping and the kernel's memrefs."""

    def __init__(self, kernel, space: str, mapping=None, target=None):
        self.kernel = kernel
        self.target = target
        self.space = space
        self.m = mapping or Loops()
        self.e = Emitter(indent=3 if self.m.gpu else 2)
        self.args: dict = {}            # parameter Value -> SSA name of its argument
        self.outs: list = []            # SSA names of the output arguments, in return order
        self.vals: dict = {}            # Value -> Val
        self.group_size: Optional[int] = None
        self.rows_tensor = None         # the param whose columns the kernel walks
        self.lead_sizes: list = []      # SSA sizes of the domain's leading dims
        self.forced: list = []          # row-level Vals, in program order
        self.group_forced: list = []    # group-level stage results, in program order
        self.row_tails: list = []       # fn(scope): stores at the end of each row

    def native_fp8(self, target) -> bool:
        """Whether this kernel converts to fp8 ``target`` with the chip's instruction: the
        fnuz format on gfx942, OCP e4m3fn on gfx950 (elsewhere: the integer emulation)."""
        t = self.target
        if t is None or t.platform != "hip":
            return False
        from ...dialect.options import QuantTarget
        return (t.arch, target) in (("gfx942", QuantTarget.FP8_E4M3FNUZ),
                                    ("gfx950", QuantTarget.FP8_E4M3FN))

    def native_fp4(self) -> bool:
        """Whether E2M1 codes come from gfx950's scaled fp4 convert."""
        t = self.target
        return t is not None and t.platform == "hip" and t.arch == "gfx950"

    def math(self, name: str, v: str) -> str:
        """An exact fp32 ``math`` op (``sqrt``: correctly rounded; ``trunc``, ``roundeven``):
        ``math.<name>``, which becomes the LLVM intrinsic (``sqrtss`` / ``roundss`` on the CPU,
        the IEEE sequences on AMD). On NVIDIA the intrinsic is called directly
        (``llvm.nvvm.sqrt.rn.f``: ``sqrt.rn.f32``; ``llvm.trunc`` / ``llvm.roundeven``:
        ``cvt.rzi`` / ``cvt.rni``), because ``convert-gpu-to-nvvm`` sends ``math`` ops to
        libdevice, which is not installed; ``exp2`` likewise on AMD (``convert-gpu-to-rocdl``
        would call ocml): LLVM lowers ``llvm.exp2.f32`` to ``v_exp_f32`` / ``ex2.approx``."""
        t = self.target
        gpu_call = t is not None and (t.platform == "cuda" or name == "exp2" and t.is_gpu)
        if gpu_call:
            fn = "llvm.nvvm.sqrt.rn.f" if name == "sqrt" and t.platform == "cuda" else \
                f"llvm.{name}.f32"
            return self.e.op(f'llvm.call_intrinsic "{fn}"({v}) : (f32) -> f32')
        return self.e.op(f"math.{name} {v} : f32")

    # ------------------------------------------------------------- operands
    def refuse(self, call, what: str) -> None:
        raise UnsupportedError(f"rocdl backend: {call.stage}: {what} is not lowered yet",
                               call.loc)

    def val(self, value) -> Val:
        """The Val of a kernel Value (a parameter, a constant or a stage result)."""
        v = self.vals.get(value)
        if v is None:
            raise UnsupportedError(f"rocdl backend: %{value.name} is not a value it can "
                                   f"read", value.loc)
        return v

    def scalar(self, ssa: str, type_: str = "f32") -> Val:
        return Val("scalar", type_, lambda s: ssa)

    def load_at(self, value, idx: list) -> str:
        """Tensor ``value`` at the index SSA names ``idx``, widened to f32 (floats) or i32
        (integer storage)."""
        ref, t = self.args[value], value.type
        elem = storage_type(t.dtype.name)
        e = self.e
        x = e.op(f"memref.load {ref}[{', '.join(idx)}] : {memref_type(t)}")
        if elem == "bf16":       # exact widening by the bits: LLVM's own bf16 folds
            i = e.cast("extui", e.bitcast(x, "bf16", "i16"), "i16", "i32")   # can call
            return nx.f32_of(e, e.bin("shli", i, e.i32(16), "i32"))          # libgcc
        if elem == "f16":
            return e.cast("extf", x, elem, "f32")
        if elem == "f32":
            return x
        if elem == "i64":
            return e.cast("trunci", x, elem, "i32")
        signed = t.dtype.name in ("i8", "int4", "i32")      # codes and bytes: unsigned
        return x if elem == "i32" else e.cast("extsi" if signed else "extui", x, elem, "i32")

    def load_index(self, value, idx: list) -> str:
        """An index read from data (i32 / i64 tensor ``value`` at ``idx``) as a signed
        ``index``, never narrowed: the caller checks it against the size it indexes."""
        t = value.type
        elem = storage_type(t.dtype.name)
        if elem not in ("i32", "i64"):
            raise UnsupportedError(f"rocdl backend: {value.name} indexes rows and must be "
                                   f"i32 or i64, not {t.dtype.name}", value.loc)
        x = self.e.op(f"memref.load {self.args[value]}[{', '.join(idx)}] : {memref_type(t)}")
        return self.e.cast("index_cast", x, elem, "index")

    def in_range(self, i: str, size: str) -> str:
        """``0 <= i < size`` (signed ``index`` compares): an i1."""
        e = self.e
        return e.bin("andi", e.cmpi("sge", i, e.idx(0), "index"),
                     e.cmpi("slt", i, size, "index"), "i1")

    def load(self, value, idx: Callable, level: str) -> Val:
        """A Val loading tensor ``value`` at ``idx(scope)`` (a list of index SSA names),
        widened to f32 (floats) or i32 (integer storage)."""
        t = value.type
        return Val(level, "f32" if t.dtype.is_float else "i32",
                   lambda s: self.load_at(value, idx(s)),
                   width=self.cols if level == "elem" else None)

    def once(self, key, make: Callable) -> str:
        """``make()`` written once per ``key`` (only where a stage's lowering runs, at the
        top of the kernel, so every loop sees it): two stages deriving the same width get
        the same SSA name, and so one column loop."""
        memo = self.__dict__.setdefault("_once", {})
        if key not in memo:
            memo[key] = make()
        return memo[key]

    def out_dim(self, out: int, i: int) -> str:
        """Dim ``i`` of output ``out`` (its index in the kernel's returns)."""
        t = self.kernel.returns[out].type
        return self.e.op(f"memref.dim {self.outs[out]}, {self.e.idx(i)} : {memref_type(t)}",
                         "d")

    def store_raw(self, out: int, x: str, idx: list) -> None:
        """``x`` (already of the output's storage type) into output ``out`` at ``idx``."""
        t = self.kernel.returns[out].type
        self.e.line(f"memref.store {x}, {self.outs[out]}[{', '.join(idx)}] : "
                    f"{memref_type(t)}")

    def dim(self, value, i: int) -> str:
        t = value.type
        return self.e.op(f"memref.dim {self.args[value]}, {self.e.idx(i)} : {memref_type(t)}",
                         "d")

    # ------------------------------------------------------------- computing
    def at(self, scope: Scope, val: Val) -> str:
        """The SSA name of ``val`` in ``scope``, computing it there once."""
        got = scope.lookup(val)
        if got is not None:
            return got
        need = {"elem": scope.col, "group": scope.group, "row": scope.row}.get(val.level, "")
        if need is None:
            raise AssertionError(f"a {val.level} value read where its index is unknown")
        name = val.get(scope)
        scope.memo[id(val)] = name
        return name

    def f32_of_index(self, i: str) -> str:
        e = self.e
        return e.cast("uitofp", e.cast("index_cast", i, "index", "i64"), "i64", "f32")

    def reduce_cols(self, scope: Scope, body: Callable, op: str, lb=None, ub=None,
                    parallel: bool = True) -> str:
        """``op``-reduce ``body(col_scope)`` (f32) over the columns ``[lb, ub)`` (``ub``: the
        width the caller's value is defined over), starting from 0: a parallel loop whose
        partial results the mapping combines (``maximumf``: amax, NaN-propagating;
        ``addf``: a sum)."""
        e = self.e
        lb = lb or e.idx(0)
        start, step = self.m.par_bounds(e, lb, 1) if parallel else (lb, e.idx(1))
        col, acc = e.fresh("col"), e.fresh("acc")
        res = e.fresh("red")
        with e.block(f"{res} = scf.for {col} = {start} to {ub} step {step} "
                     f"iter_args({acc} = {e.f32(0.0)}) -> (f32) {{"):
            inner = scope.child(col=col)
            nxt = e.bin(op, acc, body(inner), "f32")
            e.line(f"scf.yield {nxt} : f32")
        return self.m.combine(e, res, op) if parallel else res

    # ------------------------------------------------------------- stores
    def store(self, scope: Scope, out: int, val: Val, idx: list) -> None:
        """Store ``val`` into output ``out`` (its index in the kernel's returns)."""
        e = self.e
        out_value = self.kernel.returns[out]
        ref, t = self.outs[out], out_value.type
        elem = storage_type(t.dtype.name)
        if len(idx) != t.rank:
            raise UnsupportedError(f"rocdl backend: output {out_value.name} ({t}) is not "
                                   f"stored over this kernel's rows", out_value.loc)
        x = self.at(scope, val)
        if elem == "bf16":
            x = e.bitcast(nx.round_bf16_bits(e, x), "i16", "bf16")
        elif elem == "f16":
            x = e.bitcast(nx.round_f16_bits(e, x), "i16", "f16")
        elif elem == "i8":
            x = e.cast("trunci", x, "i32", "i8")
        elif elem != "f32":
            raise UnsupportedError(f"rocdl backend: cannot store a {t.dtype.name} output",
                                   out_value.loc)
        e.line(f"memref.store {x}, {ref}[{', '.join(idx)}] : {memref_type(t)}")

    # ------------------------------------------------------------- the kernel
    def render(self) -> str:
        k, e = self.kernel, self.e
        arg_texts = []
        for i, spec in enumerate(signature(k)):
            name = f"%a{i}"
            if i < len(k.params):
                v = k.params[i].value
                self.args[v] = name
            else:
                v = k.returns[i - len(k.params)]
                self.outs.append(name)
            t = v.type
            arg_texts.append(f"{name}: {memref_type(t) if isinstance(t, TensorType) else _scalar(t)}")
        self.m.setup(e)
        self._bind_params()
        self.arg_refs = list(self.args.values()) + self.outs
        for call in k.calls:
            handler = HANDLERS.get(call.stage)
            if handler is None:
                self.refuse(call, "this stage")
            self._check_options(call, handler.options)
            results = handler(self, call)
            for value, val in zip(call.results, results):
                self.vals[value] = val
                if val.level == "row":
                    self.forced.append(val)
                elif val.level == "group":
                    self.group_forced.append(val)
        if self.rows_tensor is None:
            raise UnsupportedError("rocdl backend: the kernel reads no [rows, cols] tensor",
                                   k.loc)
        if getattr(self, "body", None) is not None:
            self.body()                  # a stage that writes the whole kernel (per_block)
        elif self.space == "tensor_amax":
            self._tensor_amax()
        else:
            self._domain()
            self._row_kernel()
        return self.m.wrap(k.name, ", ".join(arg_texts), e.text(self.e._indent))

    def _check_options(self, call, lowered: frozenset) -> None:
        """Refuse an option the stage's lowering does not lower, at a value other than
        its catalog default."""
        spec = STAGES[call.stage]
        for name, value in call.options.items():
            if name not in lowered and value != spec.option(name).default:
                self.refuse(call, f"{name}={value}")

    def _bind_params(self) -> None:
        k = self.kernel
        for p in k.params:
            v, t = p.value, p.value.type
            if isinstance(t, ScalarType):
                if not t.dtype.is_float:
                    raise UnsupportedError(f"rocdl backend: integer scalar {v.name}", v.loc)
                self.vals[v] = self.scalar(self.args[v])
        self.rows_tensor = cols_param(k)
        for c in k.consts:
            self.vals[c.value] = self.scalar(self.e.f32(float(c.literal)))
        if self.rows_tensor is not None:
            rank = self.rows_tensor.type.rank
            self.rows_count = self.dim(self.rows_tensor, 0)
            self.cols = self.dim(self.rows_tensor, rank - 1)
        for p in k.params:
            v, t = p.value, p.value.type
            if isinstance(t, TensorType) and v not in self.vals:
                self.vals[v] = self.tensor_val(v)

    def tensor_val(self, v) -> Val:
        """A parameter tensor as a Val, read at the last ``rank - 1`` leading indices of
        the row: ``[..., cols]`` per element, ``[..., 1]`` per row (``[1]``: once).
        (Group-shaped scales are read by ``round`` itself; rows read through an index by
        their stage.)"""
        t = v.type
        if _unit(t.shape[-1]):
            return self.load(v, lambda s: s.suffix(t.rank - 1) + [self.e.idx(0)], "row")
        return self.load(v, lambda s: s.suffix(t.rank - 1) + [s.col], "elem")

    def _domain(self) -> None:
        """The sizes of the leading dims of the tensor :func:`rows_param` names (the
        domain's rows), written once at the top."""
        k = self.kernel
        index = rows_param(k)
        ref = self.arg_refs[index]
        t = (k.params[index].value if index < len(k.params)
             else k.returns[index - len(k.params)]).type
        e = self.e
        if index < len(k.params) and k.params[index].value is self.rows_tensor:
            self.lead_sizes = [self.rows_count]     # its dim 0 is already read
        self.lead_sizes += [e.op(f"memref.dim {ref}, {e.idx(i)} : {memref_type(t)}", "d")
                            for i in range(len(self.lead_sizes), t.rank - 1)]

    def _outputs(self) -> list:
        """``[(output index, its Val)]``."""
        return [(i, self.val(v)) for i, v in enumerate(self.kernel.returns)]

    def _row_kernel(self) -> None:
        e, m = self.e, self.m
        outs = self._outputs()
        widths = {val.width or self.cols for _, val in outs if val.level == "group"} | \
            {val.width or self.cols for val in self.group_forced}
        if len(widths) > 1:
            raise UnsupportedError(f"rocdl backend: groups over columns of several widths in "
                                   f"kernel {self.kernel.name}", self.kernel.loc)
        self.group_cols = widths.pop() if widths else self.cols
        with m.rows(e, self.lead_sizes[0]) as row:
            self._lead_loops((row,), self.lead_sizes[1:], outs)

    def _lead_loops(self, lead: tuple, sizes: list, outs: list) -> None:
        """Loops over the domain's other leading dims, then the row's body at ``lead``."""
        e = self.e
        if sizes:
            k = e.fresh("lead")
            with e.block(f"scf.for {k} = {e.idx(0)} to {sizes[0]} step {e.idx(1)} {{"):
                self._lead_loops(lead + (k,), sizes[1:], outs)
            return
        m = self.m
        scope = Scope(lead=lead)
        for val in self.forced:
            self.at(scope, val)
        with m.leader(e):
            for i, val in outs:
                if val.level in ("row", "scalar") and val.store is not None:
                    val.store(scope, i)
                elif val.level in ("row", "scalar"):
                    rank = self.kernel.returns[i].type.rank
                    self.store(scope, i, val, list(lead) + [e.idx(0)]
                               if rank == len(lead) + 1 else [e.idx(0)])
        # one column loop per width of the outputs (act_mul's N/2 next to x's N, ...); the
        # group loop takes the outputs of the groups' width
        widths = []
        for _, val in outs:
            if val.level == "elem" and (val.width or self.cols) not in widths:
                widths.append(val.width or self.cols)
        if self.group_size:
            mine = [(i, v) for i, v in outs
                    if v.level != "elem" or (v.width or self.cols) == self.group_cols]
            self._group_loop(scope, mine, _step(mine))
            widths = [w for w in widths if w != self.group_cols]
        for width in widths:
            mine = [(i, v) for i, v in outs
                    if v.level == "elem" and (v.width or self.cols) == width]
            step = _step(mine)
            start, stride = m.par_bounds(e, e.idx(0), step)
            col = e.fresh("col")
            with e.block(f"scf.for {col} = {start} to {width} step {stride} {{"):
                self._store_cols(scope.child(col=col), mine, step)
        for tail in self.row_tails:
            tail(scope)

    def _group_loop(self, scope: Scope, outs: list, step: int) -> None:
        e, k = self.e, self.group_size
        groups = e.bin("ceildivui", self.group_cols, e.idx(k), "index")
        start, stride = self.m.par_bounds(e, e.idx(0), 1)
        g = e.fresh("g")
        with e.block(f"scf.for {g} = {start} to {groups} step {stride} {{"):
            gs = scope.child(group=g)
            for val in self.group_forced:
                self.at(gs, val)
            for i, val in outs:
                if val.level == "group" and val.store is not None:
                    val.store(gs, i)
                elif val.level == "group":
                    self.store(gs, i, val, list(scope.lead) + [g])
            lb, ub = self.group_range(gs, self.group_cols)
            col = e.fresh("col")
            with e.block(f"scf.for {col} = {lb} to {ub} step {e.idx(step)} {{"):
                self._store_cols(gs.child(col=col), outs, step)

    def group_range(self, scope: Scope, cols: Optional[str] = None) -> tuple:
        """``[g*K, min(g*K + K, cols))``: the columns of the scope's group."""
        e, k = self.e, self.group_size
        lb = e.bin("muli", scope.group, e.idx(k), "index")
        ub = e.bin("minui", e.bin("addi", lb, e.idx(k), "index"), cols or self.cols, "index")
        return lb, ub

    def _store_cols(self, scope: Scope, outs: list, step: int) -> None:
        e = self.e
        cols = [scope] if step == 1 else [scope, scope.sibling(col=e.bin(
            "addi", scope.col, e.idx(1), "index"))]
        for i, val in outs:
            if val.level != "elem":
                continue
            if val.store is not None:
                for s in cols:
                    val.store(s, i)
            elif val.pair:
                half = e.bin("divui", scope.col, e.idx(2), "index")
                self.store(scope, i, val, list(scope.lead) + [half])
            else:
                for s in cols:
                    self.store(s, i, val, list(s.lead) + [s.col])

    def _tensor_amax(self) -> None:
        """One program for the whole tensor (on the GPU a grid of blocks, each striding
        over the rows): the columns in parallel, each thread's running amax combined once
        at the end, then across the grid (:meth:`~.mapping.Loops.grid_amax`)."""
        e = self.e
        outs = self._outputs()
        body = getattr(self, "tensor_amax_body", None)
        if body is None:
            raise UnsupportedError("rocdl backend: a tensor_amax kernel without its amax",
                                   self.kernel.loc)
        src = body
        row, acc, res = e.fresh("row"), e.fresh("acc"), e.fresh("red")
        first, step = self.m.grid_rows(e, self.rows_count)    # the GPU: this block's rows
        with e.block(f"{res} = scf.for {row} = {first} to {self.rows_count} step "
                     f"{step} iter_args({acc} = {e.f32(0.0)}) -> (f32) {{"):
            scope = Scope(lead=(row,))
            for val in self.forced:
                self.at(scope, val)
            part = self.reduce_cols(scope, lambda s: nx.abs_f32(e, self.at(s, src)),
                                    "maximumf", ub=self.cols, parallel=False) \
                if not self.m.gpu else \
                self._thread_amax(scope, src)
            e.line(f"scf.yield {e.bin('maximumf', acc, part, 'f32')} : f32")
        amax = self.m.combine(e, res, "maximumf")
        top = Scope()
        with self.m.grid_amax(e, amax) as total:     # the GPU: across the blocks
            top.memo[id(self.tensor_amax_input)] = total
            for i, val in outs:
                self.store(top, i, val, [e.idx(0)])

    def _thread_amax(self, scope: Scope, src: Val) -> str:
        """On the GPU: this thread's amax over its columns of the row (no combine yet)."""
        e = self.e
        start, step = self.m.par_bounds(e, e.idx(0), 1)
        col, acc, res = e.fresh("col"), e.fresh("acc"), e.fresh("red")
        with e.block(f"{res} = scf.for {col} = {start} to {self.cols} step {step} "
                     f"iter_args({acc} = {e.f32(0.0)}) -> (f32) {{"):
            v = nx.abs_f32(e, self.at(scope.child(col=col), src))
            e.line(f"scf.yield {e.bin('maximumf', acc, v, 'f32')} : f32")
        return res


def cols_param(kernel):
    """The parameter whose last dim is the kernel's columns: the first tensor of rank >= 2
    (not a per-row ``[..., 1]``) that a stage reads, in program order (the input the
    pipeline starts from; act_mul and flatten then change the width)."""
    params = {p.value for p in kernel.params}
    for call in kernel.calls:
        for v in call.operands.values():
            if v in params and _walkable(v.type):
                return v
    return next((p.value for p in kernel.params if _walkable(p.value.type)), None)


def _walkable(t) -> bool:
    return isinstance(t, TensorType) and t.rank >= 2 and not _unit(t.shape[-1])


def rows_param(kernel) -> Optional[int]:
    """The argument (ABI index: parameters, then outputs) whose leading dims are the
    kernel's rows, its dim 0 the launch grid: the first output of rank >= 2 that is not a
    store layout (a shuffled scale is padded); a kernel storing nothing per row (the
    grid-wide amax), over tiles (``per_128x128``: the rows of its input) or into a tensor
    it updates in place (a KV cache: the rows of the tokens written) walks the rows of
    :func:`cols_param`, and so does one whose rows are that input's (its leading dims are
    the output's)."""
    producer = {r: c for c in kernel.calls for r in c.results}
    tiled = any(call_space(c) == "tile" for c in kernel.calls)
    blocks = next((c for c in kernel.calls if call_space(c) == "cache_block"), None)
    if blocks is not None:           # one program per scale row (its dim 0)
        v = blocks.operands["scales"]
        return next(i for i, p in enumerate(kernel.params) if p.value is v)
    src = cols_param(kernel)
    param = next((i for i, p in enumerate(kernel.params) if p.value is src), None)
    for i, v in enumerate(kernel.returns):
        call = producer.get(v)
        if tiled or v.type.rank < 2 or call is not None and (
                layout_operand(call.stage) or STAGES[call.stage].in_place):
            continue
        if src is not None and tuple(src.type.shape[:-1]) == tuple(v.type.shape[:-1]):
            return param
        return len(kernel.params) + i
    return param


def _step(outs: list) -> int:
    """Columns per iteration: 2 where a packed byte is stored (it reads c and c + 1)."""
    return 2 if any(val.pair for _, val in outs) else 1


def _unit(d) -> bool:
    return d.is_const and d.value == 1


def _scalar(t: ScalarType) -> str:
    return "f32" if t.dtype.is_float else "i32"


def render(kernel, space: str, mapping=None, target=None) -> str:
    """The function (``Loops``) or ``gpu.func`` (``Gpu``) of one kernel, as MLIR text;
    ``target`` picks the native conversions of an AMD chip."""
    return Renderer(kernel, space, mapping, target).render()
