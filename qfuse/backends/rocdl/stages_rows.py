"""The stages that read other rows or columns than the one they write: split-K
``reduce``, ``flatten``, the row ``gather``, the expert-indexed ``smooth``, ``rope``,
``unpack`` and the ``shuffle`` store layout (registered in ``HANDLERS`` next to
:mod:`.stages`).

A row index that comes from data (a gather index, an expert id, a rope position) is read
as a signed ``index`` (never narrowed) and checked against the size it indexes; the read
it guards is in an ``scf.if`` (:meth:`~.emit.Emitter.if_else`), so memory outside a
tensor is never touched, and the result outside the range is the reference's (a zero
row, a NaN rotation; docs/semantics.md "Shapes and indices from data").
"""
from __future__ import annotations

from ...dialect.options import MRope, PackOrder, QuantTarget, RopeStyle
from .stages import HANDLERS, _map, _operand, elementwise_inputs, lowers
from .values import Scope, Val

__all__ = ["lower_reduce", "lower_flatten", "lower_gather", "lower_smooth", "lower_rope",
           "lower_shuffle"]

_NAN = float("nan")


def _param(r, call, name: str, why: str):
    """The operand ``name`` of ``call``, which must be a kernel parameter (``why`` says
    what reads it)."""
    v = call.operands[name]
    if v not in r.args:
        r.refuse(call, f"{name} computed in the same kernel ({why}: it must be a kernel "
                       f"input)")
    return v


def _zero(val_type: str, e) -> str:
    return e.f32(0.0) if val_type == "f32" else e.i32(0)


# ------------------------------------------------------------------ split-K reduce
@lowers()
def lower_reduce(r, call) -> list:
    """``((x[0] + x[1]) + x[2]) + ...`` over dim 0 in order, fp32: a fold from ``-0.0``
    (``-0.0 + a == a`` for every a, so the first step is exact and the sum is the
    reference's ``x[0] + ...``, signed zeros included)."""
    x = _param(r, call, "x", "the partials are read once per split, in order")
    e, rank = r.e, x.type.rank
    splits = r.dim(x, 0)

    def get(s: Scope) -> str:
        k, acc, res = e.fresh("split"), e.fresh("acc"), e.fresh("sum")
        with e.block(f"{res} = scf.for {k} = {e.idx(0)} to {splits} step {e.idx(1)} "
                     f"iter_args({acc} = {e.f32(-0.0)}) -> (f32) {{"):
            part = r.load_at(x, [k] + s.suffix(rank - 2) + [s.col])
            e.line(f"scf.yield {e.bin('addf', acc, part, 'f32')} : f32")
        return res
    return [Val("elem", "f32", get, width=r.cols)]


# ------------------------------------------------------------------ flatten
@lowers()
def lower_flatten(r, call) -> list:
    """``[M, A, B] -> [M, A*B]``: output column ``c`` is ``x[m, c / B, c % B]`` (x an input,
    strided or not, or elementwise in inputs, computed there)."""
    xv = call.operands["x"]
    srcs = elementwise_inputs(r, xv)
    src = next((v for v in srcs or () if v.type.rank == 3), None)
    if src is None:
        r.refuse(call, "flatten of a value that is not elementwise in the kernel's inputs")
    x = _operand(r, xv)
    e = r.e
    b = r.dim(src, 2)
    width = e.bin("muli", r.dim(src, 1), b, "index")
    r.cols = width

    def get(s: Scope) -> str:
        a = e.bin("divui", s.col, b, "index")
        inner = s.elsewhere(lead=tuple(s.lead) + (a,), col=e.bin("remui", s.col, b, "index"))
        return r.at(inner, x)
    return [Val("elem", x.type, get, width=width)]


# ------------------------------------------------------------------ gather
@lowers("packed_ids", "topk")
def lower_gather(r, call) -> list:
    """``out[i] = x[t]``, ``t = idx[i]`` (``& 0xFFFFFF`` with ``packed_ids``); with
    ``topk > 1`` (AITER's MoE-sort ids ``token | slot << 24``) ``t = (id & 0xFFFFFF) * topk
    + slot``, ``slot = id >> 24`` (arithmetic: the id's sign). ``t`` outside ``[0, M)`` or
    a slot outside ``[0, topk)`` gives a zero row (x's dtype: the value is x's, exact)."""
    xv = _param(r, call, "x", "a gather reads rows other programs own")
    iv = call.operands["idx"]
    e = r.e
    rows = r.dim(xv, 0)
    packed, topk = call.options["packed_ids"], int(call.options.get("topk", 1))
    vtype = "f32" if xv.type.dtype.is_float else "i32"

    def get(s: Scope) -> str:
        raw = r.load_index(iv, s.suffix(iv.type.rank))
        t = e.bin("andi", raw, e.idx(0xFFFFFF), "index") if packed else raw
        ok = None
        if topk > 1:
            k = e.bin("shrsi", raw, e.idx(24), "index")
            ok = r.in_range(k, e.idx(topk))
            k = e.bin("minsi", e.bin("maxsi", k, e.idx(0), "index"), e.idx(topk - 1), "index")
            t = e.bin("addi", e.bin("muli", t, e.idx(topk), "index"), k, "index")
        ok = r.in_range(t, rows) if ok is None else e.bin("andi", ok, r.in_range(t, rows), "i1")
        tail = s.suffix(xv.type.rank - 2) if xv.type.rank > 2 else []
        return e.if_else(ok, lambda: r.load_at(xv, [t] + tail + [s.col]), _zero(vtype, e),
                         vtype)
    return [Val("elem", vtype, get, width=r.cols)]


# ------------------------------------------------------------------ smooth
@lowers()
def lower_smooth(r, call) -> list:
    """SmoothQuant ``y = x * s[col]``; expert-indexed (``ids [M, K]``, ``s [E, N]``):
    ``y[m, k, c] = x[m, c] * s[ids[m, k], c]``, a zero row for an id outside ``[0, E)``."""
    ids = call.operands.get("ids")
    if ids is None:
        x, s = _operand(r, call.operands["x"]), _operand(r, call.operands["s"])
        return [_map(r, [x, s], lambda a, b: r.e.bin("mulf", a, b, "f32"))]
    xv = _param(r, call, "x", "an expert-indexed smooth reads x at the token's row")
    sv = _param(r, call, "s", "the expert's scale row is read through its id")
    e = r.e
    experts = r.dim(sv, 0)

    def get(sc: Scope) -> str:
        eid = r.load_index(ids, sc.suffix(ids.type.rank))

        def then() -> str:
            xval = r.load_at(xv, list(sc.lead[: xv.type.rank - 1]) + [sc.col])
            return e.bin("mulf", xval, r.load_at(sv, [eid, sc.col]), "f32")
        return e.if_else(r.in_range(eid, experts), then, e.f32(0.0), "f32")
    return [Val("elem", "f32", get, width=r.cols)]


# ------------------------------------------------------------------ rope
def _mrope_row(r, kind, i: str, half: str, h: int, w: int) -> str:
    """The positions row (0 t, 1 h, 2 w) rotary frequency ``i`` reads (the reference's
    ``mrope_rows``): chunked ``(i >= s_t) + (i >= s_t + h)``, ``s_t = R/2 - h - w``;
    interleaved ``1`` where ``i % 3 == 1 and i < 3h``, ``2`` where ``i % 3 == 2 and i < 3w``,
    else 0 (signed compares: a negative ``s_t`` counts as one)."""
    e = r.e
    one, two = e.idx(1), e.idx(2)
    if kind is MRope.CHUNKED:
        st = e.bin("subi", half, e.idx(h + w), "index")
        a = e.select(e.cmpi("sge", i, st, "index"), one, e.idx(0), "index")
        b = e.select(e.cmpi("sge", i, e.bin("addi", st, e.idx(h), "index"), "index"), one,
                     e.idx(0), "index")
        return e.bin("addi", a, b, "index")
    m3 = e.bin("remui", i, e.idx(3), "index")
    is1 = e.bin("andi", e.cmpi("eq", m3, one, "index"), e.cmpi("ult", i, e.idx(3 * h), "index"),
                "i1")
    is2 = e.bin("andi", e.cmpi("eq", m3, two, "index"), e.cmpi("ult", i, e.idx(3 * w), "index"),
                "i1")
    return e.select(is1, one, e.select(is2, two, e.idx(0), "index"), "index")


@lowers("style", "mrope", "mrope_h", "mrope_w")
def lower_rope(r, call) -> list:
    """Rotary embedding of ``x [T, H, D]`` at ``pos [T]`` (docs/semantics.md, ``rope``):
    rotary dim ``R = 2 * cos.shape[1]``; neox pairs ``(i, i + R/2)``, gptj ``(2i, 2i + 1)``;
    ``o1 = x1 c - x2 s``, ``o2 = x2 c + x1 s`` with ``c = cos[pos[t], i]``,
    ``s = sin[pos[t], i]`` (each product rounded); columns ``>= R`` pass x through; a
    position outside ``[0, P)`` rotates by NaN. x may be computed in the kernel (its value
    at the partner column is computed there). ``mrope`` (chunked / interleaved): ``pos
    [3, T]``, frequency ``i`` reads row :func:`_mrope_row` of it."""
    x = _operand(r, call.operands["x"])
    cos = _param(r, call, "cos", "the tables are read at the position's row")
    sin = _param(r, call, "sin", "the tables are read at the position's row")
    pos = call.operands["pos"]
    if x.level != "elem":
        r.refuse(call, "rope of a value that is not per element")
    e = r.e
    rh, table_rows = r.dim(cos, 1), r.dim(cos, 0)
    rdim = e.bin("muli", rh, e.idx(2), "index")
    style = RopeStyle(call.options["style"])
    if style not in (RopeStyle.NEOX, RopeStyle.GPTJ):
        r.refuse(call, f"style={style}")
    neox = style is RopeStyle.NEOX
    mrope = MRope(call.options.get("mrope", MRope.NONE))
    if mrope not in (MRope.NONE, MRope.CHUNKED, MRope.INTERLEAVED):
        r.refuse(call, f"mrope={mrope}")
    sections = int(call.options.get("mrope_h", 0)), int(call.options.get("mrope_w", 0))

    def get(s: Scope) -> str:
        c = s.col
        if neox:
            first = e.cmpi("ult", c, rh, "index")
            i = e.select(first, c, e.bin("subi", c, rh, "index"), "index")
            partner = e.select(first, e.bin("addi", c, rh, "index"),
                               e.bin("subi", c, rh, "index"), "index")
        else:
            first = e.cmpi("eq", e.bin("remui", c, e.idx(2), "index"), e.idx(0), "index")
            i = e.bin("divui", c, e.idx(2), "index")
            partner = e.select(first, e.bin("addi", c, e.idx(1), "index"),
                               e.bin("subi", c, e.idx(1), "index"), "index")
        rot = e.cmpi("ult", c, rdim, "index")
        partner = e.select(rot, partner, c, "index")       # in range where nothing rotates
        if mrope is MRope.NONE:
            p = r.load_index(pos, [s.lead[0]])
        else:
            p = r.load_index(pos, [_mrope_row(r, mrope, i, rh, *sections), s.lead[0]])
        ok = e.bin("andi", r.in_range(p, table_rows), rot, "i1")
        cs = e.if_else(ok, lambda: r.load_at(cos, [p, i]), e.f32(_NAN), "f32")
        sn = e.if_else(ok, lambda: r.load_at(sin, [p, i]), e.f32(_NAN), "f32")
        xc = r.at(s, x)
        xp = r.at(s.sibling(col=partner), x)
        a = e.bin("mulf", xc, cs, "f32")
        b = e.bin("mulf", xp, sn, "f32")
        o = e.select(first, e.bin("subf", a, b, "f32"), e.bin("addf", a, b, "f32"), "f32")
        return e.select(rot, o, xc, "f32")
    return [Val("elem", "f32", get, width=x.width)]


# ------------------------------------------------------------------ unpack
@lowers("dtype", "order")
def lower_unpack(r, call) -> list:
    """The inverse of ``pack``: code ``c`` of bytes ``x [..., B]`` is nibble ``c % 2`` (low
    first) of byte ``c / 2`` (``linear``), or, ``even_odd``, code ``i`` of each word of 8 at
    permuted place ``i / 2`` (even ``i``) or ``4 + i / 2`` (odd); ``int4``: the nibble's
    two's-complement value ``(v ^ 8) - 8``, ``fp4_e2m1``: the code 0..15."""
    xv = _param(r, call, "x", "the bytes are read at other columns than the codes")
    order = PackOrder(call.options["order"])
    if order not in (PackOrder.LINEAR, PackOrder.EVEN_ODD):
        r.refuse(call, f"order={order}")
    signed = QuantTarget(call.options["dtype"]) is QuantTarget.INT4
    e = r.e
    nbytes = r.once((xv, "bytes"), lambda: r.dim(xv, xv.type.rank - 1))
    width = r.once((xv, "codes"), lambda: e.bin("muli", nbytes, e.idx(2), "index"))
    r.cols = width

    def get(s: Scope) -> str:
        place = s.col
        if order.word > 1:
            i = e.bin("remui", s.col, e.idx(8), "index")
            half = e.bin("divui", i, e.idx(2), "index")
            odd = e.cmpi("ne", e.bin("remui", i, e.idx(2), "index"), e.idx(0), "index")
            t = e.select(odd, e.bin("addi", half, e.idx(4), "index"), half, "index")
            place = e.bin("addi", e.bin("subi", s.col, i, "index"), t, "index")
        byte = e.bin("minui", e.bin("divui", place, e.idx(2), "index"),
                     e.bin("subi", nbytes, e.idx(1), "index"), "index")
        shift = e.cast("index_cast", e.bin("muli", e.bin("remui", place, e.idx(2), "index"),
                                           e.idx(4), "index"), "index", "i32")
        v = r.load_at(xv, s.suffix(xv.type.rank - 1) + [byte])
        v = e.bin("andi", e.bin("shrui", v, shift, "i32"), e.i32(0xF), "i32")
        if signed:
            v = e.bin("subi", e.bin("xori", v, e.i32(8), "i32"), e.i32(8), "i32")
        return v
    return [Val("elem", "i32", get, width=width)]


# ------------------------------------------------------------------ shuffle
def _shuffle_index(e, row: str, col: str, sn: str) -> str:
    """AITER's ``e8m0_shuffle`` position of scale ``(row, col)`` in a buffer of ``sn``
    columns: ``(r/32)*32*sn + (c/8)*256 + (c%4)*64 + (r%16)*4 + ((c%8)/4)*2 + (r%32)/16``."""
    def t(a, op, k):
        return e.bin(op, a, e.idx(k), "index")
    terms = [e.bin("muli", t(t(row, "divui", 32), "muli", 32), sn, "index"),
             t(t(col, "divui", 8), "muli", 256), t(t(col, "remui", 4), "muli", 64),
             t(t(row, "remui", 16), "muli", 4), t(t(t(col, "remui", 8), "divui", 4), "muli", 2),
             t(t(row, "remui", 32), "divui", 16)]
    out = terms[0]
    for term in terms[1:]:
        out = e.bin("addi", out, term, "index")
    return out


@lowers("pad")
def lower_shuffle(r, call) -> list:
    """The E8M0 preshuffle: scale ``(m, g)`` goes to :func:`_shuffle_index` of the
    ``[round_up(M, 256), round_up(G, 8)]`` buffer; every other byte is ``pad``. Of this
    kernel's mx scale it is the scale's store layout (``g``: the group); of a scale given
    as a parameter ``[M, G]`` a layout kernel of its own (``g``: the column). Row m writes
    its own scales, the pad bytes of its columns ``G..``, and the pad rows ``M + m,
    2M + m, ...`` below M, so the kernel writes every byte of the buffer once (no fill
    launch)."""
    s = _operand(r, call.operands["s"])
    given = call.operands["s"] in r.args
    if s.level != ("elem" if given else "group") or call.operands["s"].type.rank != 2:
        r.refuse(call, "shuffle of a value that is not a [M, G] scale")
    e = r.e
    pad = e.const(int(call.options["pad"]), "i8")
    width = r.cols

    def place(scope: Scope, out: int) -> None:
        sn = r.out_dim(out, 1)
        flat = _shuffle_index(e, scope.row, scope.col if given else scope.group, sn)
        _store_byte(r, out, e.cast("trunci", r.at(scope, s), "i32", "i8"), flat, sn)

    def pad_tail(scope: Scope) -> None:
        out = next(i for i, v in enumerate(r.kernel.returns) if r.vals.get(v) is val)
        sm, sn = r.out_dim(out, 0), r.out_dim(out, 1)
        groups = width if given else e.bin("ceildivui", width, e.idx(r.group_size), "index")
        start, step = r.m.par_bounds(e, groups, 1)
        col = e.fresh("pc")
        with e.block(f"scf.for {col} = {start} to {sn} step {step} {{"):
            _store_byte(r, out, pad, _shuffle_index(e, scope.row, col, sn), sn)
        prow = e.fresh("pr")
        first = e.bin("addi", r.lead_sizes[0], scope.row, "index")
        with e.block(f"scf.for {prow} = {first} to {sm} step {r.lead_sizes[0]} {{"):
            start, step = r.m.par_bounds(e, e.idx(0), 1)
            col = e.fresh("pc")
            with e.block(f"scf.for {col} = {start} to {sn} step {step} {{"):
                _store_byte(r, out, pad, _shuffle_index(e, prow, col, sn), sn)

    val = Val(s.level, "i32", s.get, width=s.width, store=place)
    r.row_tails.append(pad_tail)
    return [val]


def _store_byte(r, out: int, byte: str, flat: str, sn: str) -> None:
    """``byte`` at flat position ``flat`` of a ``[*, sn]`` output (row-major)."""
    e = r.e
    r.store_raw(out, byte, [e.bin("divui", flat, sn, "index"), e.bin("remui", flat, sn, "index")])


HANDLERS.update({
    "reduce": lower_reduce, "flatten": lower_flatten, "gather": lower_gather,
    "smooth": lower_smooth, "rope": lower_rope, "shuffle": lower_shuffle,
    "unpack": lower_unpack,
})
