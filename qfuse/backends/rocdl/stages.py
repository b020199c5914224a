"""The lowering of each stage to upstream dialects, registered per stage in ``HANDLERS``.

A handler takes the :class:`~.kernel.Renderer` and one stage call and returns one
:class:`~.kernel.Val` per result; the formulas are docs/semantics.md's, step by step in
fp32 with the code conversions of :mod:`.numerics`. What a handler does not lower yet
it refuses through ``Renderer.refuse``, naming the stage and the option.
"""
from __future__ import annotations

from ...dialect.options import (Act, E8M0Mode, FloatDType, GeluApprox, Granularity, NormKind,
                                QuantTarget, Recip, ResidualSum, RoundMode, ZeroPolicy)
from . import numerics as nx
from .values import Scope, Val

__all__ = ["HANDLERS"]

HANDLERS: dict = {}


# (``r`` below is the kernel's Renderer, .kernel; not imported: the renderer imports us)


def _deeper(*vals) -> str:
    order = ("scalar", "row", "group", "elem")
    return max((v.level for v in vals), key=order.index)


def _map(r, vals: list, fn, type_: str = "f32") -> Val:
    """A Val computing ``fn(*ssa)`` from ``vals`` at the deepest of their levels."""
    def get(s: Scope) -> str:
        return fn(*[r.at(s, v) for v in vals])
    return Val(_deeper(*vals), type_, get)


def _operand(r, value) -> Val:
    return r.val(value)


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
def lower_add(r, call) -> list:
    """``a + b`` in fp32 (b a scalar, a [N] vector or the same shape)."""
    a, b = _operand(r, call.operands["a"]), _operand(r, call.operands["b"])
    return [_map(r, [a, b], lambda x, y: r.e.bin("addf", x, y, "f32"))]


def lower_mul(r, call) -> list:
    """``a * b`` in fp32."""
    a, b = _operand(r, call.operands["a"]), _operand(r, call.operands["b"])
    return [_map(r, [a, b], lambda x, y: r.e.bin("mulf", x, y, "f32"))]


def lower_cast(r, call) -> list:
    """RNE to bf16 / f16 (kept in fp32 on that grid), or f32 unchanged."""
    x = _operand(r, call.operands["x"])
    dt = call.options["dtype"]
    return [_map(r, [x], lambda v: _round_float(r, v, dt))]


def lower_smooth(r, call) -> list:
    """``y = x * s[col]`` (SmoothQuant); the expert-indexed form is not lowered yet."""
    if call.operands.get("ids") is not None:
        r.refuse(call, "smooth(x, s[ids]) (expert-indexed rows)")
    x, s = _operand(r, call.operands["x"]), _operand(r, call.operands["s"])
    return [_map(r, [x, s], lambda a, b: r.e.bin("mulf", a, b, "f32"))]


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


def _act(r, call, act: Act):
    """The activation as a function of one SSA value (``act_mul``'s choices; the silu and
    gelu stages are the same functions)."""
    if act is Act.SILU:
        return lambda v: _silu(r, v)
    if act is Act.GELU_TANH:
        return lambda v: _gelu_tanh(r, v)
    r.refuse(call, "gelu with erf (approx=none; erf has no exact GPU lowering without "
                   "ROCm's device libraries yet)")


def lower_silu(r, call) -> list:
    """``silu(x) = x / (1 + exp(-x))``."""
    x = _operand(r, call.operands["x"])
    return [_map(r, [x], _act(r, call, Act.SILU))]


def lower_gelu(r, call) -> list:
    """``gelu(x)``: the tanh approximation (``approx=tanh``); erf is not lowered yet."""
    x = _operand(r, call.operands["x"])
    act = Act.GELU_TANH if call.options["approx"] == GeluApprox.TANH else Act.GELU
    return [_map(r, [x], _act(r, call, act))]


def lower_act_mul(r, call) -> list:
    """``act(x[..., :N/2]) * x[..., N/2:]``: the kernel's columns are the N/2 outputs;
    each reads x at ``c`` and ``c + N/2`` (x must be a parameter of the kernel)."""
    value = call.operands["x"]
    if value not in r.args or r.forced:
        r.refuse(call, "act_mul of a computed value or after a row reduction")
    fn = _act(r, call, Act(call.options["act"]))
    e = r.e
    full = r.cols
    half = e.bin("divui", full, e.idx(2), "index")
    r.cols = half
    gate = r.load(value, lambda s: [s.row, s.col], "elem")
    up = r.load(value, lambda s: [s.row, e.bin("addi", s.col, half, "index")], "elem")
    return [_map(r, [gate, up], lambda g, u: e.bin("mulf", fn(g), u, "f32"))]


# ------------------------------------------------------------------ norm
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
    n = Val("row", "f32", lambda s: r.f32_of_index(r.cols))
    one = e.f32(1.0)

    def inv_of(total_sq: Val) -> Val:
        def get(s: Scope) -> str:
            ms = e.bin("divf", r.at(s, total_sq), r.at(s, n), "f32")
            root = r.math("sqrt", e.bin("addf", ms, r.at(s, eps), "f32"))
            return e.bin("divf", one, root, "f32")
        return Val("row", "f32", get)

    if opt["kind"] == NormKind.RMS:
        sq = Val("row", "f32", lambda s: r.reduce_cols(
            s, lambda c: _sq(e, r.at(c, u)), "addf"))
        r.forced.append(sq)
        inv = inv_of(sq)
        centred = u
    else:
        total = Val("row", "f32", lambda s: r.reduce_cols(s, lambda c: r.at(c, u), "addf"))
        r.forced.append(total)
        mean = Val("row", "f32", lambda s: e.bin("divf", r.at(s, total), r.at(s, n), "f32"))
        centred = _map(r, [u, mean], lambda a, b: e.bin("subf", a, b, "f32"))
        sq = Val("row", "f32", lambda s: r.reduce_cols(
            s, lambda c: _sq(e, r.at(c, centred)), "addf"))
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
def _group(r, call, gran: Granularity) -> None:
    k = gran.group_size
    if r.group_size not in (None, k):
        r.refuse(call, f"granularity={gran} next to groups of {r.group_size} in one kernel")
    r.group_size = k


def _nonmx_scale(r, amax: str, opt) -> str:
    """``s = amax / dtype_max`` with the zero policy (one: 0 -> 1; floor: max(amax,
    amax_floor) first; zero: s stays 0)."""
    e = r.e
    dm = e.f32(opt["dtype_max"])
    if opt["zero"] == ZeroPolicy.FLOOR:
        amax = e.bin("maximumf", amax, e.f32(opt["amax_floor"]), "f32")
    s = e.bin("divf", amax, dm, "f32")
    if opt["zero"] == ZeroPolicy.ONE:
        s = e.select(e.cmpf("oeq", s, e.f32(0.0)), e.f32(1.0), s, "f32")
    return s


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
    if gran == Granularity.PER_TOKEN:
        amax = Val("row", "f32", lambda s: r.reduce_cols(s, absx, "maximumf"))
        return [Val("row", "f32", lambda s: _nonmx_scale(r, r.at(s, amax), opt))]
    if gran.group_size:
        _group(r, call, gran)

        def group_amax(s: Scope) -> str:
            lb, ub = r.group_range(s)
            return r.reduce_cols(s, absx, "maximumf", lb, ub, parallel=False)
        amax = Val("group", "f32", group_amax)
        if gran == Granularity.MX:
            target = QuantTarget(opt["dtype"])
            if E8M0Mode(opt["e8m0"]) not in nx.E8M0_MODES:
                r.refuse(call, f"e8m0={opt['e8m0']}")
            return [Val("group", "i32",
                        lambda s: nx.e8m0_byte(e, r.at(s, amax), opt["e8m0"], target))]
        return [Val("group", "f32", lambda s: _nonmx_scale(r, r.at(s, amax), opt))]
    if gran == Granularity.PER_TENSOR and r.space == "tensor_amax":
        amax = Val("scalar", "f32", lambda s: (_ for _ in ()).throw(
            AssertionError("the tensor amax is set by the kernel")))
        r.tensor_amax_body = x
        r.tensor_amax_input = amax
        return [Val("scalar", "f32", lambda s: _nonmx_scale(r, r.at(s, amax), opt))]
    r.refuse(call, f"granularity={gran}")


def _scale_operand(r, call, gran: Granularity) -> Val:
    """round's ``s``: a Val of this kernel, or a parameter read at the granularity's
    place (``[1]``: once; ``[rows, 1]``: per row; ``[rows, groups]``: per group)."""
    value = call.operands["s"]
    if gran.group_size:
        _group(r, call, gran)
    if value in r.args and gran.group_size:
        return r.load(value, lambda s: [s.row, s.group], "group")
    if gran == Granularity.PER_128X128:
        r.refuse(call, f"granularity={gran}")
    return _operand(r, value)


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
    if mode not in ((RoundMode.TRUNC, RoundMode.RNE) if target.is_int else (RoundMode.RNE,)):
        r.refuse(call, f"mode={mode} for {target}")
    native = r.native_fp8(target)
    if target.is_fp8:
        code = lambda a: nx.fp8_code(e, a, target, opt["dtype_max"], opt["sat"], native)  # noqa
    elif target.is_int:
        lo, hi = target.int_bounds(opt["dtype_max"], opt["sat"])
        code = lambda a: nx.int_code(e, a, mode, lo, hi, r.math)   # noqa: E731
    else:
        fp4 = r.native_fp4()
        code = lambda a: nx.e2m1_code(e, a, fp4)                     # noqa: E731
    return [_map(r, [v], code, "i32")]


def lower_pack(r, call) -> list:
    """Two 4-bit codes per byte: ``byte[j] = (q[2j] & 0xF) | (q[2j+1] & 0xF) << 4``."""
    e = r.e
    q = _operand(r, call.operands["x"])

    def get(s: Scope) -> str:
        nxt = s.sibling(col=e.bin("addi", s.col, e.idx(1), "index"))
        lo = e.bin("andi", r.at(s, q), e.i32(0xF), "i32")
        hi = e.bin("andi", r.at(nxt, q), e.i32(0xF), "i32")
        return e.bin("ori", lo, e.bin("shli", hi, e.i32(4), "i32"), "i32")
    return [Val("elem", "i32", get, pair=True)]


HANDLERS.update({
    "add": lower_add, "mul": lower_mul, "cast": lower_cast, "smooth": lower_smooth,
    "norm": lower_norm, "scale": lower_scale, "round": lower_round, "pack": lower_pack,
    "silu": lower_silu, "gelu": lower_gelu, "act_mul": lower_act_mul,
})
