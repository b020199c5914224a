"""Shape and dtype rules of the stage catalog, and the value domains they check.

Each ``infer_<stage>(args, opts)`` takes the operand types (``TensorType`` /
``ScalarType`` by operand name) and the resolved options, and returns
``[(result name, type), ...]`` or raises :class:`StageError` naming the operand or
option at fault. ``qfuse.dialect.stages`` attaches them to the catalog entries.
"""
from __future__ import annotations

from typing import Optional

from .options import (CacheLayout, CacheQuant, Granularity, MRope, NormKind, QuantTarget,
                      ScaleLayout)
from .types import (Dim, ScalarType, TensorType, ValueType, cdiv_dim, div_dim, dtype,
                    mul_dim, round_up_dim)


class StageError(Exception):
    """A stage was used wrongly. ``arg`` names the operand or option at fault (for locations)."""

    def __init__(self, message: str, arg: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.arg = arg



def default_dtype_max(target: str) -> float:
    """Largest magnitude a target holds: fp8 e4m3fn 448, e4m3fnuz 240, int8 127, E2M1 6, int4 7."""
    return dtype(target).max


# ----------------------------------------------------------------------- helpers
def _tensor(args, name, *, floats_only=False) -> TensorType:
    t = args.get(name)
    if not isinstance(t, TensorType):
        raise StageError(f"{name} must be a tensor, got {t}", name)
    if floats_only and not t.dtype.is_float:
        raise StageError(f"{name} must be bf16, f16 or f32, got {t.dtype.name}", name)
    return t


def _same_dim(a: Dim, b: Dim, what: str, arg: str) -> None:
    if a != b:
        raise StageError(f"mismatched dims: {what} ({b} vs {a})", arg)


def _f32(shape) -> TensorType:
    return TensorType(dtype("f32"), tuple(shape))


def _broadcast_shape(a: TensorType, b: ValueType, arg: str) -> tuple:
    """Elementwise rule: b is a scalar, a vector over the last dim, or a same-shape tensor."""
    if isinstance(b, ScalarType):
        return a.shape
    if b.rank == 1 and a.rank >= 1 and b.shape[0] == a.shape[-1]:
        return a.shape
    if a.rank == 1 and b.rank >= 1 and a.shape[0] == b.shape[-1]:
        return b.shape
    if a.shape == b.shape:
        return a.shape
    raise StageError(f"cannot broadcast {b} against {a}: use a scalar, a [{a.shape[-1]}] "
                     f"vector or the same shape", arg)


# ------------------------------------------------------------------ shape rules
def _float_value(args, name) -> ValueType:
    """An operand that fp32 arithmetic reads: a bf16/f16/f32 tensor or scalar."""
    t = args[name]
    if not t.dtype.is_float:
        kind = "tensor" if isinstance(t, TensorType) else "scalar"
        raise StageError(f"{name} must be a bf16, f16 or f32 {kind}, got {t} (cast or "
                         f"dequantise it first)", name)
    return t


def infer_elementwise(args, opts):
    a = _float_value(args, "a")
    b = _float_value(args, "b")
    if isinstance(a, ScalarType):
        a, b = b, a
    if not isinstance(a, TensorType):
        raise StageError("at least one operand must be a tensor", "a")
    return [("out", _f32(_broadcast_shape(a, b, "b")))]


def infer_unary(args, opts):
    x = _tensor(args, "x", floats_only=True)
    return [("out", _f32(x.shape))]


def infer_act_mul(args, opts):
    x = _tensor(args, "x", floats_only=True)
    last = x.shape[-1]
    if last.is_const and last.value % 2:
        raise StageError(f"act_mul needs an even last dim, got {last}", "x")
    return [("out", _f32(x.shape[:-1] + (div_dim(last, 2),)))]


def infer_cast(args, opts):
    x = _tensor(args, "x", floats_only=True)
    return [("out", TensorType(dtype(opts["dtype"]), x.shape))]


def infer_norm(args, opts):
    x = _tensor(args, "x", floats_only=True)
    n = x.shape[-1]
    for vec in ("w", "b"):
        v = args.get(vec)
        if v is not None:
            v = _tensor(args, vec, floats_only=True)
            if v.rank != 1:
                raise StageError(f"norm {vec} must be a vector [{n}], got {v}", vec)
            _same_dim(n, v.shape[0], f"norm {vec} length must equal the last dim of x", vec)
    if args.get("b") is not None and opts["kind"] != NormKind.LAYER:
        raise StageError("a bias b is only defined for kind=layer", "b")
    if not isinstance(args.get("eps"), ScalarType):
        raise StageError("eps must be a scalar", "eps")
    _float_value(args, "eps")
    out = [("out", TensorType(dtype(opts["dtype"]), x.shape))]
    r = args.get("residual")
    if r is not None:
        r = _tensor(args, "residual", floats_only=True)
        if r.shape != x.shape:
            raise StageError(f"residual must have the shape of x ({x} vs {r})", "residual")
        out.append(("residual_out", TensorType(x.dtype, x.shape)))
    return out


def infer_smooth(args, opts):
    x = _tensor(args, "x", floats_only=True)
    s = _tensor(args, "s", floats_only=True)
    ids = args.get("ids")
    n = x.shape[-1]
    if ids is None:
        if s.rank != 1:
            raise StageError(f"smooth scale must be [{n}] (or index it by expert ids: s[ids])", "s")
        _same_dim(n, s.shape[0], "smooth scale length must equal the last dim of x", "s")
        return [("out", _f32(x.shape))]
    ids = _tensor(args, "ids")
    if ids.dtype.name not in ("i32", "i64"):
        raise StageError(f"expert ids must be i32 or i64, got {ids.dtype.name}", "ids")
    if s.rank != 2:
        raise StageError(f"expert-indexed smooth scale must be [E, {n}], got {s}", "s")
    _same_dim(n, s.shape[1], "smooth scale row length must equal the last dim of x", "s")
    if x.rank not in (2, 3) or ids.rank != 2:
        raise StageError("expert-indexed smooth takes x [M, N] (or one row per slot, "
                         "[M, topk, N]) and ids [M, topk]", "ids")
    _same_dim(x.shape[0], ids.shape[0], "ids rows must equal x rows", "ids")
    if x.rank == 3:
        _same_dim(x.shape[1], ids.shape[1], "ids columns must equal x's slots (dim 1)", "ids")
    return [("out", _f32((x.shape[0], ids.shape[1], n)))]


def _scale_shape(x: TensorType, gran: Granularity) -> tuple:
    lead, n = x.shape[:-1], x.shape[-1]
    if gran == Granularity.PER_TENSOR:
        return (Dim(1),)
    if gran == Granularity.PER_TOKEN:
        return lead + (Dim(1),)
    if gran.group_size:
        return lead + (cdiv_dim(n, gran.group_size),)
    if gran == Granularity.PER_128X128:
        if x.rank != 2:
            raise StageError("per_128x128 needs a 2-D x [M, N]", "x")
        if any(_is_derived(d) for d in x.shape):
            raise StageError(f"per_128x128 tiles need x's dims to be pipeline dims (a name or "
                             f"a number), got {x}: the tile kernel cannot size a derived dim",
                             "x")
        return (cdiv_dim(x.shape[0], 128), cdiv_dim(n, 128))
    raise AssertionError(gran)


def _is_derived(d: Dim) -> bool:
    """An expression over dims (``A*B``, ``N/2``). A subclass of Dim (the verifier's
    unknown dim) says nothing about the DSL-level dim, so it is never called derived."""
    return type(d) is Dim and isinstance(d.value, tuple)


def _check_target_granularity(target: QuantTarget, gran: Granularity) -> None:
    if target.needs_mx and gran != Granularity.MX:
        raise StageError(f"{target} needs granularity mx (1x32 blocks with E8M0 scales); "
                         f"got {gran}", "granularity")
    if gran == Granularity.MX and target.e8m0 is None:
        raise StageError(f"mx granularity quantises to fp4_e2m1 or fp8 (MXFP8), not {target}",
                         "dtype")


def infer_scale(args, opts):
    x = _tensor(args, "x", floats_only=True)
    target, gran = opts["dtype"], opts["granularity"]
    _check_target_granularity(target, gran)
    shape = _scale_shape(x, gran)
    sdt = dtype("e8m0") if gran == Granularity.MX else dtype("f32")
    static = args.get("static")
    if opts.get("pow2") and (static is not None or gran == Granularity.MX):
        raise StageError("pow2 rounds a dynamic fp32 scale up to a power of two; an mx scale "
                         "is one already and a static scale is used as given", "pow2")
    if static is not None:
        if gran != Granularity.PER_TENSOR:
            raise StageError("a static (given) scale is supported for per_tensor only "
                             "(AITER has no static per-token/group quant)", "static")
        st = _tensor(args, "static")
        if st.dtype.name != "f32" or st.rank != 1 or not (st.shape[0] == Dim(1)):
            raise StageError(f"static per-tensor scale must be f32[1], got {st}", "static")
    return [("out", TensorType(sdt, shape))]


def infer_round(args, opts):
    x = _tensor(args, "x", floats_only=True)
    s = _tensor(args, "s")
    target, gran = opts["dtype"], opts["granularity"]
    _check_target_granularity(target, gran)
    want = TensorType(dtype("e8m0") if gran == Granularity.MX else dtype("f32"),
                      _scale_shape(x, gran))
    if s.dtype != want.dtype or s.shape != want.shape:     # per_tensor: one value, f32[1]
        raise StageError(f"scale for {gran} {target} must be {want}, got {s}", "s")
    return [("out", TensorType(dtype(target), x.shape))]


def infer_pack(args, opts):
    x = _tensor(args, "x")
    if x.dtype.name not in (QuantTarget.FP4_E2M1, QuantTarget.INT4):
        raise StageError(f"pack takes fp4_e2m1 or int4 codes, got {x.dtype.name}", "x")
    n = x.shape[-1]
    if n.is_const and n.value % 2:
        raise StageError(f"pack needs an even last dim, got {n}", "x")
    word = opts["order"].word
    if word > 1 and n.is_const and n.value % word:
        raise StageError(f"pack(order={opts['order']}) permutes words of {word} codes: the "
                         f"last dim must be a multiple of {word}, got {n}", "x")
    return [("out", TensorType(dtype("u8"), x.shape[:-1] + (div_dim(n, 2),)))]


def infer_dequant(args, opts):
    """``dequant(q, s)``: codes of a quantisation target, an optional scale laid out as
    ``scale`` would give it for ``q``'s shape; the result has q's shape in ``dtype``."""
    q = _tensor(args, "q")
    try:
        target = QuantTarget(q.dtype.name)
    except ValueError:
        raise StageError(f"dequant takes codes ({', '.join(QuantTarget)}), got "
                         f"{q.dtype.name}", "q") from None
    s = args.get("s")
    if s is not None:
        s = _tensor(args, "s")
        gran = opts["granularity"]
        if gran == Granularity.PER_128X128:
            raise StageError("dequant takes per_tensor, per_token, per_1xK and mx scales; "
                             "per_128x128 is not supported", "granularity")
        _check_target_granularity(target, gran)
        want = TensorType(dtype("e8m0") if gran == Granularity.MX else dtype("f32"),
                          _scale_shape(q, gran))
        if s.dtype != want.dtype or s.shape != want.shape:
            raise StageError(f"scale for {gran} {target} codes must be {want}, got {s}", "s")
    return [("out", TensorType(dtype(opts["dtype"]), q.shape))]


def infer_shuffle(args, opts):
    s = _tensor(args, "s")
    if s.dtype.name != "e8m0" or s.rank != 2:
        raise StageError(f"shuffle takes a 2-D e8m0 scale [M, N/32], got {s}", "s")
    return [("out", TensorType(s.dtype, (round_up_dim(s.shape[0], 256),
                                         round_up_dim(s.shape[1], 8))))]


def infer_unpack(args, opts):
    """``unpack(x, dtype, order)``: bytes ``[..., B]`` -> 4-bit codes ``[..., 2B]``."""
    x = _tensor(args, "x")
    if x.dtype.name != "u8":
        raise StageError(f"unpack takes packed bytes u8, got {x.dtype.name}", "x")
    target = opts["dtype"]
    if target not in (QuantTarget.FP4_E2M1, QuantTarget.INT4):
        raise StageError(f"unpack gives 4-bit codes (fp4_e2m1 or int4), not {target}", "dtype")
    n = x.shape[-1]
    word = opts["order"].word // 2
    if word > 1 and n.is_const and n.value % word:
        raise StageError(f"unpack(order={opts['order']}) reads words of {word} bytes: the last "
                         f"dim must be a multiple of {word}, got {n}", "x")
    return [("out", TensorType(dtype(target), x.shape[:-1] + (mul_dim(n, Dim(2)),)))]


def infer_reduce(args, opts):
    x = _tensor(args, "x", floats_only=True)
    if x.rank < 2:
        raise StageError(f"reduce takes split-K partials [S, ..., N], got {x}", "x")
    return [("out", _f32(x.shape[1:]))]


def infer_flatten(args, opts):
    x = _tensor(args, "x", floats_only=True)
    if x.rank != 3:
        raise StageError(f"flatten takes a 3-D x [M, A, B], got {x}", "x")
    return [("out", TensorType(x.dtype, (x.shape[0], mul_dim(x.shape[1], x.shape[2]))))]


def _index_vector(t, what: str, dim: str, operand: str) -> None:
    """An index operand: a 1-D i32/i64 tensor (e.g. rope positions [T])."""
    if t.dtype.name not in ("i32", "i64") or t.rank != 1:
        raise StageError(f"{what} must be i32/i64 [{dim}], got {t}", operand)


def infer_rope(args, opts):
    x = _tensor(args, "x", floats_only=True)
    cos, sin = _tensor(args, "cos", floats_only=True), _tensor(args, "sin", floats_only=True)
    pos = _tensor(args, "pos")
    if x.rank != 3:
        raise StageError(f"rope takes x [T, H, D], got {x}", "x")
    if MRope(opts["mrope"]) == MRope.NONE:
        _index_vector(pos, "rope positions", "T", "pos")
    elif pos.dtype.name not in ("i32", "i64") or pos.rank != 2:
        raise StageError(f"mrope positions must be i32/i64 [3, T], got {pos}", "pos")
    _same_dim(x.shape[0], pos.shape[-1], "positions length must equal tokens of x", "pos")
    half = div_dim(x.shape[2], 2)
    for nm, t in (("cos", cos), ("sin", sin)):
        if t.rank != 2:
            raise StageError(f"rope {nm} cache must be [P, D/2], got {t}", nm)
        if t.shape[1] != half and not (t.shape[1].is_symbol or half.is_symbol):
            raise StageError(f"rope {nm} cache last dim must be D/2 = {half}, got {t.shape[1]}", nm)
    return [("out", _f32(x.shape))]


def infer_gather(args, opts):
    x = _tensor(args, "x")
    idx = _tensor(args, "idx")
    _index_vector(idx, "gather indices", "R", "idx")
    return [("out", TensorType(x.dtype, (idx.shape[0],) + x.shape[1:]))]


def _cache_block_dims(layout: CacheLayout, cache: TensorType, x: TensorType):
    need = layout.rank
    if cache.rank != need:
        raise StageError(f"{layout} cache must be {need}-D, got {cache}", "cache")


def infer_cache_write(args, opts):
    x = _tensor(args, "x")
    cache = _tensor(args, "cache")
    slots = _tensor(args, "slots")
    if x.rank != 3:
        raise StageError(f"cache_write takes x [T, H, D], got {x}", "x")
    _index_vector(slots, "slot_mapping", "T", "slots")
    _same_dim(x.shape[0], slots.shape[0], "slot_mapping length must equal tokens of x", "slots")
    _cache_block_dims(opts["layout"], cache, x)
    quant, scales = opts["quant"], args.get("scales")
    if quant == CacheQuant.NONE:
        if cache.dtype != x.dtype and not (x.dtype.is_float and cache.dtype.is_float):
            raise StageError(f"quant=none copies x into the cache: x is {x.dtype.name} but the "
                             f"cache is {cache.dtype.name} (use quant=static/per_token/per_block)",
                             "cache")
        if scales is not None:
            raise StageError("quant=none takes no scales", "scales")
        return [("out", cache)]
    if cache.dtype.name not in (QuantTarget.FP8_E4M3FN, QuantTarget.FP8_E4M3FNUZ, QuantTarget.I8):
        raise StageError(f"quantised cache must be fp8_e4m3fn, fp8_e4m3fnuz or i8, got "
                         f"{cache.dtype.name}", "cache")
    if not x.dtype.is_float:
        raise StageError(f"quant={quant} takes float x, got {x.dtype.name}", "x")
    if scales is None:
        raise StageError(f"quant={quant} needs scales=", "scales")
    scales = _tensor(args, "scales")
    if scales.dtype.name != "f32":
        raise StageError(f"cache scales must be f32, got {scales.dtype.name}", "scales")
    if quant == CacheQuant.STATIC:
        if scales.rank != 1 or scales.shape[0] != Dim(1):
            raise StageError(f"quant=static takes one scale, scales f32[1], got {scales}",
                             "scales")
        return [("out", cache)]
    want = 3 if (quant == CacheQuant.PER_TOKEN and opts["scale_layout"] != ScaleLayout.DEFAULT) \
        else 2
    if scales.rank != want:
        raise StageError(f"{quant} scales with scale_layout={opts['scale_layout']} must be "
                         f"{want}-D, got {scales}", "scales")
    return [("out", cache), ("scales_out", scales)]


def infer_all_reduce(args, opts):
    """``out``: x's shape, the ``dtype`` option's float type (x's dtype by default)."""
    x = _tensor(args, "x", floats_only=True)
    return [("out", TensorType(dtype(opts["dtype"]), x.shape))]
