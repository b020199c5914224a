"""The core of the Triton renderer: lazy column-expression evaluation.

Every SSA value of the kernel is a recipe ``value_at(v, lead, cols)``: its registers at
the leading indices ``lead`` (one index variable per leading dim, plus a validity mask)
and the columns ``cols`` (an int tensor ``[1, B]`` plus a mask). Kernel inputs load from
memory at exactly those positions; elementwise stages compose; per-row and per-group
reductions are computed once per ``lead`` and reused; width-changing stages ask their
operand at mapped columns (``act_mul``: c and c + N/2; ``rope``: the partner column;
``flatten``: [m, c // B, c % B]) or rows (``gather``, expert-indexed ``smooth``).
Results are memoised on (value, lead, cols), so each register tensor is computed once.

Register kinds: floats are always fp32 (``f32``; a bf16/f16 value holds an fp32 that is
exact in its dtype), codes are ``u8`` (fp8, E2M1, E8M0, packed) or ``i8`` (int8, int4),
indices ``i32``/``i64``. Stage renderers live in ``stages_*.py`` and register in
:data:`RENDER` (values) and :data:`STORE` (outputs with their own store rule).

An :class:`Emitter` is told everything about its kernel's iteration space once, as an
:class:`EmitContext` that the space's module (``row.py``, ``tensor_amax.py``, ``tile.py``,
``cache_block.py``) builds; what the emitter derives while it emits (names, blocks,
symbols, the domain's index variables, runtime checks) it keeps itself.
"""
from __future__ import annotations

import re
import struct
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from os.path import basename
from typing import Callable, Mapping, Optional

from ....dialect.types import Dim, ScalarType
from ....dialect.typed import StageCall, TypedPipeline, Value
from ....errors import UnsupportedError
from ..kernel import dim_rule

__all__ = ["Block", "Cols", "Lead", "Reg", "EmitContext", "Emitter", "RENDER", "STORE",
           "NAT_BLOCK", "OUT_ROWS", "FLAT_OUTPUTS", "COMMENT_OPTIONS", "f32_literal", "STORAGE", "dim_expr",
           "unsupported"]

RENDER: dict[str, Callable] = {}   # stage -> fn(em, call, which, lead, cols) -> Reg
STORE: dict[str, Callable] = {}    # stage -> fn(em, call, value, out_ptr) for special stores
# stage -> fn(em, call) -> the Block its result is stored at, or None for the result's own
# width (a result narrower than its input's columns: packed bytes, group scales)
NAT_BLOCK: dict[str, Callable] = {}
# stage -> fn(call, value) -> the leading dims the row space stores an output over (None:
# one value, stored once); absent: the value's own leading dims
OUT_ROWS: dict[str, Callable] = {}
# stages whose store addresses the output as one flat buffer (it must be contiguous)
FLAT_OUTPUTS: set = set()
# stage -> the options its comment in the kernel text shows: a tuple, or a function of
# its options returning one (a scale shows the option that applies to its granularity)
COMMENT_OPTIONS: dict = {}

# qfuse dtype -> (torch view used for binding, triton pointer type, register kind)
STORAGE = {
    "bf16": ("int16", "*i16", "f32"), "f16": ("float16", "*fp16", "f32"),
    "f32": ("float32", "*fp32", "f32"), "i32": ("int32", "*i32", "i32"),
    "i64": ("int64", "*i64", "i64"), "u8": ("uint8", "*u8", "u8"),
    "i8": ("int8", "*i8", "i8"), "int4": ("int8", "*i8", "i8"),
    "fp8_e4m3fn": ("uint8", "*u8", "u8"), "fp8_e4m3fnuz": ("uint8", "*u8", "u8"),
    "fp4_e2m1": ("uint8", "*u8", "u8"), "e8m0": ("uint8", "*u8", "u8"),
}


def f32_literal(x: float) -> str:
    """The fp32 value of ``x`` as an exact Python literal (Triton reads it as fp32)."""
    v = struct.unpack("<f", struct.pack("<f", float(x)))[0]
    if v != v or v in (float("inf"), float("-inf")):
        raise UnsupportedError(f"triton backend: the constant {x} is not finite")
    return repr(v)


@dataclass(frozen=True)
class Block:
    """A constexpr block size: ``base * num / den`` (powers of two, so always exact)."""
    base: str
    ratio: Fraction = Fraction(1)

    def times(self, f) -> "Block":
        return Block(self.base, self.ratio * Fraction(f))

    @property
    def text(self) -> str:
        n, d = self.ratio.numerator, self.ratio.denominator
        return self.base + (f" * {n}" if n != 1 else "") + (f" // {d}" if d != 1 else "")


@dataclass(frozen=True)
class Cols:
    """Columns to evaluate at: ``var`` (int tensor, or ``"0"`` for per-row values)."""
    var: str
    mask: Optional[str]
    key: str
    block: Optional[Block] = None       # set for the natural columns arange(0, block)


@dataclass(frozen=True)
class Lead:
    """Leading indices (int64 vars, broadcastable to [BLOCK_M, 1]) and their validity."""
    names: tuple
    mask: Optional[str]
    key: str


@dataclass(frozen=True)
class Reg:
    var: str
    kind: str                           # "f32" | "u8" | "i8" | "i32" | "i64"


ROW = Cols("0", None, "row")
RESERVED = {"pid", "pid_m", "pid_n", "row", "rmask", "n_rows", "tl", "triton", "ws_ptr",
            "BLOCK_M", "TILE", "NATIVE", "pid_c", "and", "or", "not", "in", "is", "if", "for", "def",
            "return", "range", "lambda", "None", "True", "False", "float"}


def _ident(name: str) -> str:
    s = re.sub(r"\W", "_", name)
    return s if s and not s[0].isdigit() else "v_" + s


def dim_expr(d: Dim, symbols: Optional[list] = None) -> str:
    """A Dim as a kernel expression over the ``dim_<sym>`` arguments; the symbols it reads
    are appended to ``symbols`` (in first-use order) when given."""
    v = d.value
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        if symbols is not None and v not in symbols:
            symbols.append(v)
        return f"dim_{v}"
    op, a, b = v
    a, b = dim_expr(a, symbols), dim_expr(b, symbols)
    return {"cdiv": f"(({a} + {b} - 1) // {b})", "mul": f"({a} * {b})",
            "div": f"({a} // {b})", "round_up": f"((({a} + {b} - 1) // {b}) * {b})"}[op]


def unsupported(call: Optional[StageCall], msg: str) -> UnsupportedError:
    """The error for what this backend cannot render, located at ``call`` when given."""
    where = f"{call.stage}: " if call is not None else ""
    return UnsupportedError(f"triton backend: {where}{msg}", call.loc if call else None)


@dataclass(frozen=True)
class EmitContext:
    """What an :class:`Emitter` is told about its kernel body, all at construction.

    ``rows`` (leading Dims, flattened: a program owns ``block_rows`` of them) or ``tile``
    (the ``per_128x128`` input, whose 128x128 tiles the programs own) is the domain whose
    prologue opens the body; with neither the caller emits its own (a claim phase, a
    cache_block scale phase)."""
    space: str                          # row | tensor_amax | tile | cache_block
    rows: Optional[tuple] = None        # the row domain: Dims, the last varies fastest ...
    first_fastest: bool = False         # ... or the first (a KV scatter: tokens of one head)
    tile: Optional[Value] = None        # tile space: the 2-D input cut into tiles
    col_split: bool = False             # row space: programs also split the columns (pid_c)
    # {scale value name: (x name, granularity, dtype_max)} that earlier kernels of the
    # pipeline computed (the qf.scale_of argument attributes, render.scale_facts;
    # stages_quant._bounded_by_own_scale)
    scale_facts: Mapping = field(default_factory=dict)
    claims: Mapping = field(default_factory=dict)   # id(cache_write call) -> ClaimRegion
    constexprs: tuple = ()              # (name, rule) of constexprs beyond BLOCK_<k>

    @property
    def block_rows(self) -> str:
        """The constexpr of rows per program: ``TILE`` in the tile space, else ``BLOCK_M``."""
        return "TILE" if self.space == "tile" else "BLOCK_M"


class Emitter:
    """Builds one kernel body. ``tp`` is the kernel (params = inputs, returns = outputs),
    ``ctx`` what its iteration space says about it; the constructor emits the prologue of
    ``ctx``'s domain (program ids, rows and their leading indices, or the tile)."""

    def __init__(self, tp: TypedPipeline, ctx: EmitContext):
        self.tp, self.ctx = tp, ctx
        self.lines: list = []
        self.indent = 1
        self.counter = 0
        self.memo: dict = {}
        self.helpers: set = set()
        self.libs: set = set()
        self.symbols: list = []
        self.bases: dict = {}           # Dim -> base constexpr name
        self.base_min: dict = {}        # base name -> smallest allowed value
        self.base_dim: dict = {}        # base name -> Dim
        self.natural_cols: dict = {}
        self.producer = {r: c for c in tp.calls for r in c.results}
        self.params = {p.value: p for p in tp.params}
        self.consts = {c.value: c.literal for c in tp.consts}
        self.call_index = {id(c): i for i, c in enumerate(tp.calls)}
        # identifiers: inputs and outputs get distinct names; temporaries end in _<n>
        used = set(RESERVED)

        def uniq(base: str, scalar: bool) -> str:
            # tensors become <name>_ptr / <name>_s<k>, which no temporary (<hint>_<n>) can
            # be; a scalar keeps its bare name unless that looks like a temporary
            nm, k = base, 1
            while nm in used or (scalar and re.search(r"_\d+$", nm)):
                k += 1
                nm = f"{base}_v{k}"
            used.add(nm)
            return nm
        self.names = {p.value: uniq(_ident(p.value.name), isinstance(p.value.type, ScalarType))
                      for p in tp.params}
        self.out_names: dict = {}
        for v in tp.returns:
            if v not in self.out_names:
                base = _ident(v.name)
                self.out_names[v] = uniq(base if base not in used else base + "_out", False)
        self.checks: list = []          # (rule, message): checked at bind (KernelSource.checks)
        self.extra_constexprs: list = list(ctx.constexprs)
        self.fork_at: Optional[tuple] = None    # see fork_tail
        self.domain_lead: Optional[Lead] = None     # the domain's leading indices
        self.tile_cols: Optional[Cols] = None       # tile space: the tile's columns ...
        self.tile_ids: Optional[tuple] = None       # ... and (tile row, tile column)
        if ctx.tile is not None:
            self._open_tile(ctx.tile)
        elif ctx.rows is not None:
            self._open_rows(tuple(ctx.rows), ctx.first_fastest)

    @property
    def space(self) -> str:
        return self.ctx.space

    # ------------------------------------------------------------------ domains
    def _open_rows(self, dom: tuple, first_fastest: bool) -> None:
        """Programs over the rows of ``dom`` (its dims flattened), BLOCK_M rows each."""
        n_rows = " * ".join(self.dim(d) for d in dom) or "1"
        self.emit("pid = tl.program_id(0)")
        if self.ctx.col_split:
            self.emit("pid_c = tl.program_id(1)")
        self.emit("row = pid.to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)[:, None]")
        self.emit(f"n_rows = {n_rows}")
        self.emit("rmask = row < n_rows")
        self.domain_lead = self._lead_from_row(dom, first_fastest)

    def _lead_from_row(self, dom: tuple, first_fastest: bool) -> Lead:
        """Leading indices of ``row``: the last dim varies fastest (row-major), or with
        ``first_fastest`` the first dim does (a KV-cache scatter: a program then takes
        consecutive tokens of one head, whose cache chunks of X bytes sit side by side in a
        block, so the writes fill whole sectors instead of half of each)."""
        row = "row"
        order = list(range(len(dom))) if first_fastest else list(range(len(dom) - 1, -1, -1))
        names, below = {}, []
        for k, j in enumerate(order):
            div = " * ".join(below)
            idx = f"{row} // ({div})" if div else row
            if k < len(order) - 1:
                idx = f"({idx}) % {self.dim(dom[j])}" if div else f"{row} % {self.dim(dom[j])}"
            names[j] = self.let(f"i_{_ident(str(dom[j]))}", idx) if len(dom) > 1 else row
            below.append(self.dim(dom[j]))
        return self.make_lead(tuple(names[j] for j in range(len(dom))), "rmask")

    def _open_tile(self, x: Value) -> None:
        """Programs over the 128x128 tiles of the 2-D ``x`` (grid: tile rows x tile columns)."""
        if x.type.rank != 2:
            raise self.unsupported(None, "per_128x128 needs a 2-D input")
        m, n = (self.dim(d) for d in x.type.shape)
        self.emit("pid_m = tl.program_id(0)")
        self.emit("pid_n = tl.program_id(1)")
        self.emit("row = pid_m.to(tl.int64) * TILE + tl.arange(0, TILE)[:, None]")
        self.emit(f"rmask = row < {m}")
        c = self.let("cols", "pid_n * TILE + tl.arange(0, TILE)[None, :]")
        cm = self.let("cmask", f"{c} < {n}")
        self.tile_cols = Cols(c, cm, "tile")
        self.tile_ids = (self.let("tm", "pid_m.to(tl.int64)"), self.let("tn", "pid_n.to(tl.int64)"))
        self.domain_lead = self.make_lead(("row",), "rmask")

    # ------------------------------------------------------------------ text
    def emit(self, text: str) -> None:
        self.lines.append(("    " * self.indent + text) if text else "")

    @contextmanager
    def indented(self):
        """Lines emitted inside are one level deeper (the body of an ``if`` / ``for``)."""
        self.indent += 1
        try:
            yield
        finally:
            self.indent -= 1

    def check(self, rule: str, message: str) -> None:
        """A condition on the dims (a rule) that binding checks, with its error message."""
        self.checks.append((rule, message))

    def fork_tail(self, else_at: int) -> bool:
        """Mark the ``if``/``else`` just emitted (its ``else:`` line at ``else_at``, both
        branches assigning the same names) so that close_fork copies the rest of this output
        section into each branch: the branch results then die inside the branches instead
        of living in a register each across the join. False if a fork is already open."""
        if self.fork_at is not None:
            return False
        self.fork_at = (else_at, len(self.lines))
        return True

    def close_fork(self) -> None:
        """End of an output section: move the lines after an open fork into both branches."""
        if self.fork_at is None:
            return
        else_at, end = self.fork_at
        tail = ["    " + ln if ln else "" for ln in self.lines[end:]]
        self.lines = self.lines[:else_at] + tail + self.lines[else_at:end] + tail
        self.fork_at = None

    def comment(self, text: str) -> None:
        self.emit("# " + text)

    def tmp(self, hint: str = "t") -> str:
        self.counter += 1
        return f"{_ident(hint)[:24]}_{self.counter}"

    def let(self, hint: str, expr: str) -> str:
        name = self.tmp(hint)
        self.emit(f"{name} = {expr}")
        return name

    def helper(self, name: str) -> str:
        self.helpers.add(name)
        return name

    def lib(self, name: str) -> str:
        self.libs.add(name)
        return name

    @staticmethod
    def where_(call: StageCall) -> str:
        loc = call.loc
        return f"{basename(str(loc.file))}:{loc.line}:{loc.col}" if loc else "?"

    def stage_comment(self, call: StageCall, what: str = "") -> None:
        keys = COMMENT_OPTIONS.get(call.stage, ())
        keys = keys(call.options) if callable(keys) else keys
        opts = ", ".join(f"{k}={call.options[k]}" for k in keys if k in call.options)
        res = ", ".join(r.name for r in call.results)
        self.comment(f"{call.stage}({opts}) -> {res} @ {self.where_(call)}{what}")

    @staticmethod
    def unsupported(call: Optional[StageCall], msg: str) -> UnsupportedError:
        return unsupported(call, msg)

    # ------------------------------------------------------------------ dims
    def dim(self, d: Dim) -> str:
        """A Dim as a kernel expression over the ``dim_<sym>`` arguments."""
        return dim_expr(d, self.symbols)

    def constexpr_dim(self, d: Dim, hint: str) -> str:
        """A dim passed as a constexpr (e.g. the split count: a fully unrolled loop)."""
        if d.is_const:
            return str(d.value)
        name = f"{hint}_{_ident(dim_rule(d))}".upper()
        if (name, dim_rule(d)) not in self.extra_constexprs:
            self.extra_constexprs.append((name, dim_rule(d)))
        return name

    def base_block(self, width: Dim) -> Block:
        if width not in self.bases:
            name = f"BLOCK_{len(self.bases)}"
            self.bases[width] = name
            self.base_min[name] = 1
            self.base_dim[name] = width
            self.dim(width)
        return Block(self.bases[width])

    def note_block(self, b: Block) -> Block:
        self.base_min[b.base] = max(self.base_min[b.base], b.ratio.denominator)
        return b

    def block_rules(self) -> list:
        return [(name, f"max(np2({dim_rule(self.base_dim[name])}), {self.base_min[name]})")
                for name in self.bases.values()]

    def natural(self, block: Block, width: Dim) -> Cols:
        """Columns ``arange(0, block)`` masked to ``< width``."""
        self.note_block(block)
        key = (block.text, width)
        if key not in self.natural_cols:
            if self.ctx.col_split:       # program pid_c owns columns [pid_c * B, (pid_c + 1) * B)
                c = self.let("cols", f"(pid_c * ({block.text}) + tl.arange(0, {block.text}))[None, :]")
            else:
                c = self.let("cols", f"tl.arange(0, {block.text})[None, :]")
            m = self.let("cmask", f"{c} < {self.dim(width)}")
            self.natural_cols[key] = Cols(c, m, f"nat[{block.text}|{self.dim(width)}]", block)
        return self.natural_cols[key]

    def nat_block(self, v: Value) -> Block:
        """The block a value is stored at: its own width's, or what its stage derives from
        its operand's (:data:`NAT_BLOCK`: packed bytes, group scales, shuffled scales)."""
        call = self.producer.get(v)
        rule = NAT_BLOCK.get(call.stage) if call is not None else None
        block = rule(self, call) if rule is not None else None
        return block if block is not None else self.base_block(v.type.shape[-1])

    def nat_cols(self, v: Value) -> Cols:
        return self.natural(self.nat_block(v), v.type.shape[-1])

    # ------------------------------------------------------------------ masks and leads
    def and_mask(self, *masks) -> Optional[str]:
        ms = [m for m in masks if m]
        if not ms:
            return None
        return ms[0] if len(ms) == 1 else "(" + " & ".join(ms) + ")"

    def sub_lead(self, lead: Lead, rank: int) -> Lead:
        """The last ``rank`` leading indices of ``lead`` (numpy-style suffix broadcast)."""
        if rank == len(lead.names):
            return lead
        if rank == 0:
            return Lead((), None, "()")
        names = lead.names[len(lead.names) - rank:]
        return Lead(names, lead.mask, f"({','.join(names)}|{lead.mask})")

    def make_lead(self, names, mask) -> Lead:
        return Lead(tuple(names), mask, f"({','.join(names)}|{mask})")

    # ------------------------------------------------------------------ values
    def tensor_name(self, v: Value) -> str:
        return self.names[v]

    def stride(self, v: Value, k: int) -> str:
        return f"{self.tensor_name(v)}_s{k}"

    def is_memory(self, v: Value) -> bool:
        return v in self.params

    def scalar(self, v: Value) -> Reg:
        if v in self.consts:
            lit = self.consts[v]
            if v.type.dtype.is_float:
                return Reg(f32_literal(lit), "f32")
            return Reg(str(int(lit)), v.type.dtype.name)
        if v in self.params:
            return Reg(self.tensor_name(v), "f32" if v.type.dtype.is_float else v.type.dtype.name)
        raise self.unsupported(self.producer.get(v), f"scalar {v.name} is not a parameter")

    def address(self, v: Value, lead: Lead, cols: Cols) -> str:
        ptr = f"{self.tensor_name(v)}_ptr"
        terms = [ptr] + [f"{i} * {self.stride(v, k)}" for k, i in enumerate(lead.names)]
        if cols.var != "0":
            terms.append(cols.var)
        return " + ".join(terms)

    def load(self, v: Value, lead: Lead, cols: Cols, hint: str = "") -> Reg:
        """Load a kernel input at (lead, cols); floats widen exactly to fp32."""
        t = v.type
        if len(lead.names) != t.rank - 1:
            raise AssertionError(f"lead rank mismatch for {v.name}: {lead.names} vs {t}")
        _, _, kind = STORAGE[t.dtype.name]
        mask = self.and_mask(lead.mask, cols.mask)
        args = f", mask={mask}, other=0" if mask else ""
        raw = f"tl.load({self.address(v, lead, cols)}{args})"
        name = t.dtype.name
        if name == "bf16":
            return Reg(self.let(hint or v.name, f"{self.lib('qft_bf16_to_f32')}({raw})"), "f32")
        if name == "f16":
            return Reg(self.let(hint or v.name, f"{raw}.to(tl.float32)"), "f32")
        return Reg(self.let(hint or v.name, raw), kind)

    def value_at(self, v: Value, lead: Lead, cols: Cols) -> Reg:
        if isinstance(v.type, ScalarType):
            return self.scalar(v)
        key = (v, lead.key, cols.key)
        if key in self.memo:
            return self.memo[key]
        call = self.producer.get(v)
        if call is None:
            if v not in self.params:
                raise self.unsupported(None, f"value {v.name} has no producer in this kernel")
            reg = self.load(v, lead, cols)
        else:
            fn = RENDER.get(call.stage)
            if fn is None:
                raise self.unsupported(call, "this stage has no value form in the "
                                             f"{self.space} space")
            which = result_name(call, v)
            reg = fn(self, call, which, lead, cols)
        self.memo[key] = reg
        return reg

    def element(self, v: Value, idx: tuple, mask: Optional[str]) -> Reg:
        """``v[idx]`` with one index variable per dim (e.g. ``pos[t]``, ``ids[m, k]``)."""
        lead = self.make_lead(idx[:-1], mask)
        return self.value_at(v, lead, Cols(idx[-1], None, f"at[{idx[-1]}]"))

    def operand_at(self, v: Value, out_lead: Lead, cols: Cols) -> Reg:
        """An elementwise operand at the output's position (scalar / [N] / same shape)."""
        if isinstance(v.type, ScalarType):
            return self.scalar(v)
        return self.value_at(v, self.sub_lead(out_lead, v.type.rank - 1), cols)

    def f32(self, reg: Reg) -> str:
        if reg.kind != "f32":
            raise AssertionError(f"expected an fp32 register, got {reg}")
        return reg.var

    def memo_get(self, key, make):
        if key not in self.memo:
            self.memo[key] = make()
        return self.memo[key]



def result_name(call: StageCall, v: Value) -> str:
    i = next(k for k, r in enumerate(call.results) if r is v)
    names = list(call.result_names or [])
    if i < len(names):
        return names[i].rstrip("?")
    return "out" if i == 0 else f"result{i}"
