"""The lowering of each stage to upstream dialects, registered per stage in ``HANDLERS``.

A handler takes the :class:`~.kernel.Renderer` and one stage call and returns one
:class:`~.kernel.Val` per result; the formulas are docs/semantics.md's, step by step in
fp32 with the code conversions of :mod:`.numerics`. What a handler does not lower yet
it refuses through ``Renderer.refuse``, naming the stage and the option.
"""
from __future__ import annotations

from ...dialect.stages import STAGES
from ...dialect.options import (Act, E8M0Mode, FloatDType, GeluApprox, Granularity, NormKind,
                                PackOrder, QuantTarget, Recip, ResidualSum, RoundMode,
                                ZeroPolicy)
from . import numerics as nx
from .values import Scope, Val

__all__ = ["HANDLERS", "lowers", "code_fn", "elementwise_inputs"]

HANDLERS: dict = {}


def lowers(*options: str):
    """Marks a stage's lowering with the options it lowers: a call that gives any other
    option a value but its catalog default is refused, naming it (so an option added to
    the catalog is refused here until its lowering is written)."""
    def mark(fn):
        fn.options = frozenset(options)
        return fn
    return mark


# (``r`` below is the kernel's Renderer, .kernel; not imported: the renderer imports us)


def _deeper(*vals) -> str:
    order = ("scalar", "row", "group", "elem")
    return max((v.level for v in vals), key=order.index)


def _map(r, vals: list, fn, type_: str = "f32") -> Val:
    """A Val computing ``fn(*ssa)`` from ``vals`` at the deepest of their levels."""
    def get(s: Scope) -> str:
        return fn(*[r.at(s, v) for v in vals])
    return Val(_deeper(*vals), type_, get, width=_width(vals))


def _width(vals) -> str:
    """The columns a value made of ``vals`` is defined over (its elem operands')."""
    return next((v.width for v in vals if v.width is not None), None)


def _operand(r, value) -> Val:
    return r.val(value)


def elementwise_inputs(r, v):
    """The kernel inputs ``v`` is made of when it is an input or made from inputs by
    elementwise stages only (the catalog's ``Stage.elementwise``: it may then be computed
    at any row, e.g. a row of a 128x128 tile or of a flattened ``[M, A, B]``); else None."""
    producer = {out: c for c in r.kernel.calls for out in c.results}
    todo, found = [v], []
    while todo:
        w = todo.pop()
        call = producer.get(w)
        if call is None:
            found.append(w)
        elif STAGES[call.stage].elementwise(call.options, call.operands):
            todo += [o for o in call.operands.values()
                     if hasattr(getattr(o, "type", None), "shape")]
        else:
            return None
    return found


def _round_float(r, v: str, dt) -> str:
    """fp32 -> fp32 on the bf16 / f16 grid (RNE), or v itself for f32."""
    e = r.e
    if dt == FloatDType.BF16 or dt == "bf16":
        b = e.bin("shli", e.cast("extui", nx.round_bf16_bits(e, v), "i16", "i32"), e.i32(16),
                  "i32")
        return nx.f32_of(e, b)
    if dt == FloatDType.F16 or dt == "f16":
        h = e.bitcast(nx.round_f16_bits(e, v), "i16", "f16")
        return e.cast("extf", h, "f16", "f32")
    return v


# ------------------------------------------------------------------ glue
@lowers()
def lower_add(r, call) -> list:
    """``a + b`` in fp32 (b a scalar, a [N] vector or the same shape)."""
    a, b = _operand(r, call.operands["a"]), _operand(r, call.operands["b"])
    return [_map(r, [a, b], lambda x, y: r.e.bin("addf", x, y, "f32"))]


@lowers()
def lower_mul(r, call) -> list:
    """``a * b`` in fp32."""
    a, b = _operand(r, call.operands["a"]), _operand(r, call.operands["b"])
    return [_map(r, [a, b], lambda x, y: r.e.bin("mulf", x, y, "f32"))]


@lowers("dtype")
def lower_cast(r, call) -> list:
    """RNE to bf16 / f16 (kept in fp32 on that grid), or f32 unchanged."""
    x = _operand(r, call.operands["x"])
    dt = call.options["dtype"]
    return [_map(r, [x], lambda v: _round_float(r, v, dt))]


# ------------------------------------------------------------------ activations
_LOG2E = 1.4426950408889634
_SQRT_2_OVER_PI = 0.7978845608028654


def _exp(r, v: str) -> str:
    """``exp(v)`` as ``exp2(v * log2 e)`` (``exp2`` is native on both GPUs: ``v_exp_f32``,
    ``ex2.approx``; libm's on the CPU): a few ulp, as docs/semantics.md allows silu and
    gelu; overflow gives inf and underflow 0, as exp's."""
    return r.math("exp2", r.e.bin("mulf", v, r.e.f32(_LOG2E), "f32"))


def _silu(r, x: str) -> str:
    """``x / (1 + exp(-x))`` in sigmoid's stable form (the Triton backend's):
    ``t = exp(-|x|)``, ``(x < 0 ? x * t : x) / (1 + t)``; NaN stays NaN."""
    e = r.e
    t = _exp(r, e.bin("subf", e.f32(0.0), nx.abs_f32(e, x), "f32"))
    num = e.select(e.cmpf("olt", x, e.f32(0.0)), e.bin("mulf", x, t, "f32"), x, "f32")
    return e.bin("divf", num, e.bin("addf", e.f32(1.0), t, "f32"), "f32")


def _gelu_tanh(r, x: str) -> str:
    """``(0.5 x) (1 + tanh(z))``, ``z = sqrt(2/pi) (x + 0.044715 (x x) x)``, with
    ``1 + tanh(z)`` as ``2 / (1 + exp(-2z))`` (no cancellation near tanh = -1: the Triton
    backend's form, docs/semantics.md)."""
    e = r.e
    cube = e.bin("mulf", e.bin("mulf", x, x, "f32"), x, "f32")
    inner = e.bin("addf", x, e.bin("mulf", e.f32(0.044715), cube, "f32"), "f32")
    z = e.bin("mulf", e.f32(_SQRT_2_OVER_PI), inner, "f32")
    t = _exp(r, e.bin("mulf", e.f32(-2.0), z, "f32"))
    one_tanh = e.bin("divf", e.f32(2.0), e.bin("addf", e.f32(1.0), t, "f32"), "f32")
    return e.bin("mulf", e.bin("mulf", e.f32(0.5), x, "f32"), one_tanh, "f32")


#: Norbert Juffa's faithfully rounded erff (max error < 1 ulp; the form of CUDA's erff,
#: MLX's and PyTorch MPS's erf): |x| > 475/512 ...
_ERF_BIG = (-1.72853470e-5, 3.83197126e-4, -3.88396438e-3, 2.42546219e-2, -1.06777877e-1,
            -6.34846687e-1, -1.28717512e-1)
#: ... and |x| <= 475/512
_ERF_SMALL = (-5.96761703e-4, 4.99119423e-3, -2.67681349e-2, 1.12819925e-1, -3.76125336e-1,
              1.28379166e-1)
_SQRT2 = 1.4142135623730951


def _erf(r, a: str) -> str:
    """``erf(a)`` without a device library: Juffa's erff, both branches computed and one
    selected (``t = |a|``, ``s = a a``): ``t > 475/512``:
    ``copysign(1 - exp(fma(P(t, s), t, -t)), a)``; else ``fma(Q(s), a, a)``, each step a
    ``math.fma`` (``llvm.fma``: ``v_fma_f32``, ``fma.rn.f32``, ``vfmadd`` or libm's fmaf),
    exp as :func:`_exp`. NaN stays NaN, ``erf(+-inf) = +-1``."""
    e = r.e

    def fma(x, y, z):
        return e.op(f"math.fma {x}, {y}, {z} : f32")
    t = nx.abs_f32(e, a)
    s = e.bin("mulf", a, a, "f32")
    b = [e.f32(c) for c in _ERF_BIG]
    p = fma(fma(b[0], t, b[1]), s, fma(b[2], t, b[3]))
    for c in b[4:]:
        p = fma(p, t, c)
    p = fma(p, t, e.bin("subf", e.f32(0.0), t, "f32"))
    big = e.bin("subf", e.f32(1.0), _exp(r, p), "f32")
    sign = e.bin("andi", nx.bits_of(e, a), e.i32(0x80000000), "i32")
    big = nx.f32_of(e, e.bin("ori", e.bin("andi", nx.bits_of(e, big), e.i32(0x7FFFFFFF), "i32"),
                             sign, "i32"))
    q = e.f32(_ERF_SMALL[0])
    for c in _ERF_SMALL[1:]:
        q = fma(q, s, e.f32(c))
    q = fma(q, a, a)
    return e.select(e.cmpf("ogt", t, e.f32(475 / 512)), big, q, "f32")


def _gelu_erf(r, x: str) -> str:
    """``(0.5 x) (1 + erf(x / sqrt 2))`` (the division by fp32 sqrt 2 correctly rounded)."""
    e = r.e
    z = e.bin("divf", x, e.f32(_SQRT2), "f32")
    one_erf = e.bin("addf", e.f32(1.0), _erf(r, z), "f32")
    return e.bin("mulf", e.bin("mulf", e.f32(0.5), x, "f32"), one_erf, "f32")


def _act(r, call, act: Act):
    """The activation as a function of one SSA value (``act_mul``'s choices; the silu and
    gelu stages are the same functions)."""
    if act is Act.SILU:
        return lambda v: _silu(r, v)
    if act is Act.GELU_TANH:
        return lambda v: _gelu_tanh(r, v)
    if act is Act.GELU:
        return lambda v: _gelu_erf(r, v)
    r.refuse(call, f"act={act}")


@lowers()
def lower_silu(r, call) -> list:
    """``silu(x) = x / (1 + exp(-x))``."""
    x = _operand(r, call.operands["x"])
    return [_map(r, [x], _act(r, call, Act.SILU))]


@lowers("approx")
def lower_gelu(r, call) -> list:
    """``gelu(x)``: with erf (``approx=none``) or the tanh approximation (``approx=tanh``)."""
    x = _operand(r, call.operands["x"])
    act = Act.GELU_TANH if call.options["approx"] == GeluApprox.TANH else Act.GELU
    return [_map(r, [x], _act(r, call, act))]


@lowers("act")
def lower_act_mul(r, call) -> list:
    """``act(x[..., :N/2]) * x[..., N/2:]``: the kernel's columns become the N/2 outputs;
    each reads x at ``c`` and at ``c + N/2`` (x a parameter or any per-element value: the
    second read computes it at the partner column, row-level values such as a norm's
    statistics, made over the full width, are shared)."""
    x = _operand(r, call.operands["x"])
    if x.level != "elem":
        r.refuse(call, "act_mul of a value that is not per element")
    fn = _act(r, call, Act(call.options["act"]))
    e = r.e
    half = e.bin("divui", x.width or r.cols, e.idx(2), "index")
    r.cols = half

    def get(s: Scope) -> str:
        up = s.sibling(col=e.bin("addi", s.col, half, "index"))
        return e.bin("mulf", fn(r.at(s, x)), r.at(up, x), "f32")
    return [Val("elem", "f32", get, width=half)]


# ------------------------------------------------------------------ norm
@lowers("kind", "gemma", "residual_sum", "dtype")
def lower_norm(r, call) -> list:
    """RMSNorm / LayerNorm over the row, all fp32 (docs/semantics.md, ``norm``):

    residual: ``h = x + residual``, ``residual_out = round(x.dtype, h)``, ``u = h`` (fp32) or
    ``f32(residual_out)`` (rounded); rms: ``inv = 1 / sqrt((sum u*u) / N + eps)``,
    ``y = (u * inv) * w'``; layer: ``mean = (sum u) / N``, ``d = u - mean``,
    ``inv = 1 / sqrt((sum d*d) / N + eps)``, ``y = (d * inv) * w' + b``; ``w' = w`` or
    ``1 + w`` (gemma); ``dtype`` rounds y. The sums are parallel reductions (the one
    order-dependent step, docs/semantics.md "Agreement")."""
    e, ops, opt = r.e, call.operands, call.options
    x = _operand(r, ops["x"])
    results = []
    if ops.get("residual") is not None:
        res = _operand(r, ops["residual"])
        h = _map(r, [x, res], lambda a, b: e.bin("addf", a, b, "f32"))
        res_out = _map(r, [h], lambda v: _round_float(r, v, ops["x"].type.dtype.name))
        u = h if opt["residual_sum"] == ResidualSum.FP32 else res_out
        results_tail = [res_out]
    else:
        u, results_tail = x, []
    eps = _operand(r, ops["eps"])
    cols = r.cols
    n = Val("row", "f32", lambda s: r.f32_of_index(cols))
    one = e.f32(1.0)

    def inv_of(total_sq: Val) -> Val:
        def get(s: Scope) -> str:
            ms = e.bin("divf", r.at(s, total_sq), r.at(s, n), "f32")
            root = r.math("sqrt", e.bin("addf", ms, r.at(s, eps), "f32"))
            return e.bin("divf", one, root, "f32")
        return Val("row", "f32", get)

    if NormKind(opt["kind"]) not in (NormKind.RMS, NormKind.LAYER):
        r.refuse(call, f"kind={opt['kind']}")
    if opt["kind"] == NormKind.RMS:
        sq = Val("row", "f32", lambda s: r.reduce_cols(
            s, lambda c: _sq(e, r.at(c, u)), "addf", ub=cols))
        r.forced.append(sq)
        inv = inv_of(sq)
        centred = u
    else:
        total = Val("row", "f32", lambda s: r.reduce_cols(s, lambda c: r.at(c, u), "addf",
                                                          ub=cols))
        r.forced.append(total)
        mean = Val("row", "f32", lambda s: e.bin("divf", r.at(s, total), r.at(s, n), "f32"))
        centred = _map(r, [u, mean], lambda a, b: e.bin("subf", a, b, "f32"))
        sq = Val("row", "f32", lambda s: r.reduce_cols(
            s, lambda c: _sq(e, r.at(c, centred)), "addf", ub=cols))
        r.forced.append(sq)
        inv = inv_of(sq)
    r.forced.append(inv)
    y = _map(r, [centred, inv], lambda a, b: e.bin("mulf", a, b, "f32"))
    if ops.get("w") is not None:
        w = _operand(r, ops["w"])
        if opt["gemma"]:
            w = _map(r, [w], lambda v: e.bin("addf", one, v, "f32"))
        y = _map(r, [y, w], lambda a, b: e.bin("mulf", a, b, "f32"))
    if ops.get("b") is not None:
        b = _operand(r, ops["b"])
        y = _map(r, [y, b], lambda a, c: e.bin("addf", a, c, "f32"))
    y = _map(r, [y], lambda v: _round_float(r, v, opt["dtype"]))
    results = [y] + results_tail
    return results


def _sq(e, v: str) -> str:
    return e.bin("mulf", v, v, "f32")


# ------------------------------------------------------------------ scale / round
#: rows and columns of a ``per_128x128`` tile
TILE = 128


def _group(r, call, gran: Granularity) -> None:
    """The kernel's groups along a row: K of per_1xK / mx, or the 128 columns of a tile."""
    k = gran.group_size or (TILE if gran == Granularity.PER_128X128 else None)
    if r.group_size not in (None, k):
        r.refuse(call, f"granularity={gran} next to groups of {r.group_size} in one kernel")
    r.group_size = k


def _nonmx_scale(r, amax: str, opt) -> str:
    """``s = amax / dtype_max`` with the zero policy (one: 0 -> 1; floor: max(amax,
    amax_floor) first; zero: s stays 0), then rounded up to a power of two with ``pow2``
    (the reference's ``pow2_ceil``)."""
    e = r.e
    dm = e.f32(opt["dtype_max"])
    if opt["zero"] == ZeroPolicy.FLOOR:
        amax = e.bin("maximumf", amax, e.f32(opt["amax_floor"]), "f32")
    s = e.bin("divf", amax, dm, "f32")
    if opt["zero"] == ZeroPolicy.ONE:
        s = e.select(e.cmpf("oeq", s, e.f32(0.0)), e.f32(1.0), s, "f32")
    return nx.pow2_ceil(e, s) if opt.get("pow2") else s


@lowers("dtype", "granularity", "dtype_max", "zero", "amax_floor", "e8m0", "pow2")
def lower_scale(r, call) -> list:
    """Dynamic scale from amax (docs/semantics.md, ``scale``): per_token over the row,
    per_1xK / mx over each group of the row (mx: the E8M0 byte of its mode), per_tensor
    over the whole tensor (the ``tensor_amax`` kernel); a static scale is returned as
    given. per_128x128 tiles are not lowered yet."""
    e, opt = r.e, call.options
    gran = Granularity(opt["granularity"])
    if call.operands.get("static") is not None:
        return [_operand(r, call.operands["static"])]
    x = _operand(r, call.operands["x"])
    absx = lambda c: nx.abs_f32(e, r.at(c, x))       # noqa: E731
    cols = r.cols
    if gran == Granularity.PER_TOKEN:
        amax = Val("row", "f32", lambda s: r.reduce_cols(s, absx, "maximumf", ub=cols))
        return [Val("row", "f32", lambda s: _nonmx_scale(r, r.at(s, amax), opt))]
    if gran.group_size:
        _group(r, call, gran)

        def group_amax(s: Scope) -> str:
            lb, ub = r.group_range(s, cols)
            return r.reduce_cols(s, absx, "maximumf", lb, ub, parallel=False)
        amax = Val("group", "f32", group_amax)
        if gran == Granularity.MX:
            target = QuantTarget(opt["dtype"])
            if E8M0Mode(opt["e8m0"]) not in nx.E8M0_MODES:
                r.refuse(call, f"e8m0={opt['e8m0']}")
            return [Val("group", "i32",
                        lambda s: nx.e8m0_byte(e, r.at(s, amax), opt["e8m0"], target),
                        width=cols)]
        return [Val("group", "f32", lambda s: _nonmx_scale(r, r.at(s, amax), opt),
                    width=cols)]
    if gran == Granularity.PER_128X128:
        return [_tile_scale(r, call, x, opt, cols)]
    if gran == Granularity.PER_TENSOR and r.space == "tensor_amax":
        amax = Val("scalar", "f32", lambda s: (_ for _ in ()).throw(
            AssertionError("the tensor amax is set by the kernel")))
        r.tensor_amax_body = x
        r.tensor_amax_input = amax
        return [Val("scalar", "f32", lambda s: _nonmx_scale(r, r.at(s, amax), opt))]
    r.refuse(call, f"granularity={gran}")


def _tile_scale(r, call, x: Val, opt, cols: str) -> Val:
    """per_128x128: ``s = amax / dtype_max`` (zero policy as the others) over the tile of
    the row's 128 rows and the group's 128 columns (partial at the edges), a group value
    of every row (each row reads its whole tile: correct, not fast), stored once per tile
    by its first row at ``[row / 128, group]``. x must be elementwise in the inputs (it is
    computed at the tile's other rows)."""
    if r.space != "tile" or not elementwise_inputs(r, call.operands["x"]):
        r.refuse(call, "granularity=per_128x128 of a value that is not elementwise in the "
                       "kernel's inputs")
    _group(r, call, Granularity.PER_128X128)
    e = r.e
    rows = r.rows_count

    def amax(s: Scope) -> str:
        r0 = e.bin("muli", e.bin("divui", s.row, e.idx(TILE), "index"), e.idx(TILE), "index")
        r1 = e.bin("minui", e.bin("addi", r0, e.idx(TILE), "index"), rows, "index")
        lb, ub = r.group_range(s, cols)
        row, acc, res = e.fresh("trow"), e.fresh("acc"), e.fresh("tile")
        with e.block(f"{res} = scf.for {row} = {r0} to {r1} step {e.idx(1)} "
                     f"iter_args({acc} = {e.f32(0.0)}) -> (f32) {{"):
            part = r.reduce_cols(s.elsewhere(lead=(row,), group=s.group),
                                 lambda c: nx.abs_f32(e, r.at(c, x)), "maximumf", lb, ub,
                                 parallel=False)
            e.line(f"scf.yield {e.bin('maximumf', acc, part, 'f32')} : f32")
        return _nonmx_scale(r, res, opt)

    def place(s: Scope, out: int) -> None:
        first = e.cmpi("eq", e.bin("remui", s.row, e.idx(TILE), "index"), e.idx(0), "index")
        with e.block(f"scf.if {first} {{"):
            r.store(s, out, scale, [e.bin("divui", s.row, e.idx(TILE), "index"), s.group])
    scale = Val("group", "f32", amax, width=cols, store=place)
    return scale


def _scale_operand(r, call, gran: Granularity) -> Val:
    """round's ``s``: a Val of this kernel, or a parameter read at the granularity's
    place (``[1]``: once; ``[..., 1]``: per row; ``[..., groups]``: per group;
    ``[tile rows, tile columns]``: per 128x128 tile)."""
    value = call.operands["s"]
    tiled = gran == Granularity.PER_128X128
    if gran.group_size or tiled:
        _group(r, call, gran)
    if value in r.args and tiled:
        if r.space != "tile":
            r.refuse(call, f"granularity={gran} outside the tile space")
        return r.load(value, lambda s: [r.e.bin("divui", s.row, r.e.idx(TILE), "index"),
                                        s.group], "group")
    if value in r.args and gran.group_size:
        rank = value.type.rank
        return r.load(value, lambda s: s.suffix(rank - 1) + [s.group], "group")
    return _operand(r, value)


@lowers("dtype", "granularity", "dtype_max", "mode", "sat", "recip")
def lower_round(r, call) -> list:
    """Quantise ``x`` with ``s`` (docs/semantics.md, ``round``): ``v = x / s`` (div) or
    ``x * (1 / s)`` (mul_rcp), 0 where ``s == 0``; mx: ``v = x / 2^(b - 127)``; then the
    target's code (fp8 / i8 / int4 / E2M1)."""
    e, opt = r.e, call.options
    gran = Granularity(opt["granularity"])
    target = QuantTarget(opt["dtype"])
    x = _operand(r, call.operands["x"])
    s = _scale_operand(r, call, gran)
    if gran == Granularity.MX:
        v = _map(r, [x, s], lambda a, b: e.bin("divf", a, nx.e8m0_value(e, b), "f32"))
    else:
        if opt["recip"] == Recip.MUL_RCP:
            rcp = _map(r, [s], lambda b: e.bin("divf", e.f32(1.0), b, "f32"))
            q = _map(r, [x, rcp], lambda a, b: e.bin("mulf", a, b, "f32"))
        else:
            q = _map(r, [x, s], lambda a, b: e.bin("divf", a, b, "f32"))
        v = _map(r, [q, s], lambda a, b: e.select(e.cmpf("oeq", b, e.f32(0.0)), e.f32(0.0),
                                                  a, "f32"))
    mode = RoundMode(opt["mode"])
    if mode.check(target):                  # the catalog's rule; resolve_options refuses too
        r.refuse(call, f"mode={mode} for {target}")
    return [_map(r, [v], code_fn(r, target, opt["dtype_max"], opt["sat"], mode), "i32")]


def code_fn(r, target: QuantTarget, dtype_max: float, sat: bool, mode: RoundMode):
    """fp32 SSA -> the target's code (i32): fp8 (the chip's convert where it has one), i8 /
    int4 by ``mode`` within the target's bounds, E2M1 by ``mode`` (round's "then, by
    target" step; the reference's ``quantize``)."""
    e = r.e
    if target.is_fp8:
        native = r.native_fp8(target)
        return lambda a: nx.fp8_code(e, a, target, dtype_max, sat, native)
    if target.is_int:
        lo, hi = target.int_bounds(dtype_max, sat)
        return lambda a: nx.int_code(e, a, mode, lo, hi, r.math)
    fp4 = r.native_fp4()
    return lambda a: nx.e2m1_code(e, a, fp4, mode)


@lowers("granularity", "dtype", "codes")
def lower_dequant(r, call) -> list:
    """``y = decode(q) * s`` in fp32 (one correctly rounded multiply), then RNE to ``dtype``
    (docs/semantics.md, ``dequant``); ``s`` read at the granularity's place as round's (mx:
    the E8M0 factor ``2^(b - 127)``); no ``s``: the decoded value."""
    e, opt = r.e, call.options
    target = QuantTarget(opt["codes"])
    q = _operand(r, call.operands["q"])
    v = _map(r, [q], lambda c: nx.decode_code(e, c, target))
    if call.operands.get("s") is not None:
        gran = Granularity(opt["granularity"])
        if gran == Granularity.PER_128X128:
            r.refuse(call, f"granularity={gran}")
        s = _scale_operand(r, call, gran)
        factor = (lambda b: nx.e8m0_value(e, b)) if gran == Granularity.MX else (lambda b: b)
        v = _map(r, [v, s], lambda a, b: e.bin("mulf", a, factor(b), "f32"))
    return [_map(r, [v], lambda a: _round_float(r, a, opt["dtype"]))]


@lowers("order")
def lower_pack(r, call) -> list:
    """Two 4-bit codes per byte: ``byte[j] = (p[2j] & 0xF) | (p[2j+1] & 0xF) << 4`` with
    ``p = q`` (``linear``) or, ``even_odd``, each word of 8 codes permuted to
    ``q0 q2 q4 q6 q1 q3 q5 q7`` (AITER's ``rearrange_4bit_elements``): byte ``k`` of a word
    holds codes ``(k % 2) * 4 + k / 2`` and that plus 2."""
    e = r.e
    order = PackOrder(call.options["order"])
    if order not in (PackOrder.LINEAR, PackOrder.EVEN_ODD):
        r.refuse(call, f"order={order}")
    q = _operand(r, call.operands["x"])
    if q.level != "elem":
        r.refuse(call, "pack of a value that is not per element")
    width = q.width or r.cols

    def get(s: Scope) -> str:
        lo_s, nxt = s, s.sibling(col=e.bin("addi", s.col, e.idx(1), "index"))
        if order.word > 1:        # the codes of this byte (the last column: no read past it)
            k = e.bin("remui", e.bin("divui", s.col, e.idx(2), "index"), e.idx(4), "index")
            base = e.bin("muli", e.bin("divui", s.col, e.idx(8), "index"), e.idx(8), "index")
            lo = e.bin("addi", base, e.bin("addi", e.bin(
                "muli", e.bin("remui", k, e.idx(2), "index"), e.idx(4), "index"),
                e.bin("divui", k, e.idx(2), "index"), "index"), "index")
            last = e.bin("subi", width, e.idx(1), "index")
            lo_s = s.sibling(col=e.bin("minui", lo, last, "index"))
            nxt = s.sibling(col=e.bin("minui", e.bin("addi", lo, e.idx(2), "index"), last,
                                      "index"))
        lo = e.bin("andi", r.at(lo_s, q), e.i32(0xF), "i32")
        hi = e.bin("andi", r.at(nxt, q), e.i32(0xF), "i32")
        return e.bin("ori", lo, e.bin("shli", hi, e.i32(4), "i32"), "i32")
    return [Val("elem", "i32", get, pair=True, width=q.width)]


HANDLERS.update({
    "add": lower_add, "mul": lower_mul, "cast": lower_cast,
    "norm": lower_norm, "scale": lower_scale, "round": lower_round, "pack": lower_pack,
    "silu": lower_silu, "gelu": lower_gelu, "act_mul": lower_act_mul, "dequant": lower_dequant,
})
