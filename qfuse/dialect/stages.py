"""The stage catalog: the one declaration of every qfuse stage.

Each :class:`Stage` names its DSL call, its ``qf`` op, its operands, its options (with
choices and defaults) and a shape/dtype rule. The DSL checker, the ``qf`` dialect
(op classes and verifiers), the reference backend and the Triton backend all read
this table, so a stage is declared exactly once. It imports neither lark nor MLIR.

The formulas themselves live in the reference backend (``qfuse/backends/reference``),
one docstring per stage; ``Stage.doc`` is the one-line summary used in errors and
in the README table.

Conventions shared by all stages:

* Arithmetic is fp32. Float results of norm/smooth/glue stages are ``f32`` unless a
  ``cast`` rounds them (RNE) to bf16/f16.
* Stages work on the last dimension ("row" = last-dim vector); leading dims are rows.
* Options are compile-time (they become MLIR attributes); scalars such as ``eps`` are
  operands (a DSL literal becomes a constant).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from .types import (DType, Dim, ScalarType, TensorType, ValueType, cdiv_dim, div_dim,
                    dtype, mul_dim, round_up_dim)

__all__ = ["StageError", "OperandSpec", "OptionSpec", "Stage", "STAGES", "stage",
           "QUANT_TARGETS", "GRANULARITIES", "GROUP_SIZES", "E8M0_MODES", "ZERO_POLICIES",
           "resolve_options", "infer_results", "default_dtype_max"]


class StageError(Exception):
    """A stage was used wrongly. ``arg`` names the operand or option at fault (for locations)."""

    def __init__(self, message: str, arg: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.arg = arg


@dataclass(frozen=True)
class OperandSpec:
    name: str
    kind: str = "tensor"          # "tensor" | "scalar"
    optional: bool = False
    doc: str = ""


@dataclass(frozen=True)
class OptionSpec:
    name: str
    type: str                      # "enum" | "dtype" | "float" | "int" | "bool"
    choices: tuple = ()
    default: Any = None            # None: resolved from context (see resolve_options)
    doc: str = ""

    def check(self, value: Any) -> Any:
        """Validate one user-supplied value; return it normalised. Raises StageError."""
        t = self.type
        if t in ("enum", "dtype"):
            if t == "dtype":
                try:
                    value = dtype(value).name
                except KeyError:
                    pass
            if value not in self.choices:
                raise StageError(f"option {self.name}={value!r} is not one of "
                                 f"{', '.join(map(str, self.choices))}", self.name)
            return value
        if t == "bool":
            if not isinstance(value, bool):
                raise StageError(f"option {self.name} takes true or false, got {value!r}", self.name)
            return value
        if t == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise StageError(f"option {self.name} takes an integer, got {value!r}", self.name)
            if self.choices and value not in self.choices:
                raise StageError(f"option {self.name}={value} is not one of "
                                 f"{', '.join(map(str, self.choices))}", self.name)
            return value
        if t == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise StageError(f"option {self.name} takes a number, got {value!r}", self.name)
            return float(value)
        raise AssertionError(t)


@dataclass(frozen=True)
class Stage:
    name: str                      # DSL call name; op is "qf.<name>"
    operands: tuple                # OperandSpec...
    options: tuple                 # OptionSpec...
    positional: tuple              # names (operands or options) bindable by position
    results: tuple                 # result names (optional ones end with "?")
    space: str                     # iteration space: "row" | "tensor" | "tile" | "scatter" | "layout"
    doc: str
    infer: Callable = field(repr=False, compare=False, default=None)

    @property
    def op_name(self) -> str:
        return f"qf.{self.name}"

    def operand(self, name: str) -> Optional[OperandSpec]:
        return next((o for o in self.operands if o.name == name), None)

    def option(self, name: str) -> Optional[OptionSpec]:
        return next((o for o in self.options if o.name == name), None)


# --------------------------------------------------------------------------- domains
QUANT_TARGETS = ("fp8_e4m3fn", "fp8_e4m3fnuz", "i8", "fp4_e2m1", "int4")
GRANULARITIES = ("per_tensor", "per_token", "per_1x32", "per_1x64", "per_1x128",
                 "per_128x128", "mx")
GROUP_SIZES = {"per_1x32": 32, "per_1x64": 64, "per_1x128": 128, "mx": 32}
E8M0_MODES = ("roundup", "even", "rne_legacy", "floor", "ceil")
ZERO_POLICIES = ("one", "floor", "zero")
FLOAT_OUT = ("bf16", "f16", "f32")
CACHE_LAYOUTS = ("key", "value", "value_asm", "flash")


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
def _infer_elementwise(args, opts):
    a = args["a"]
    b = args["b"]
    if isinstance(a, ScalarType):
        a, b = b, a
    if not isinstance(a, TensorType):
        raise StageError("at least one operand must be a tensor", "a")
    return [("out", _f32(_broadcast_shape(a, b, "b")))]


def _infer_unary(args, opts):
    x = _tensor(args, "x", floats_only=True)
    return [("out", _f32(x.shape))]


def _infer_act_mul(args, opts):
    x = _tensor(args, "x", floats_only=True)
    last = x.shape[-1]
    if last.is_const and last.value % 2:
        raise StageError(f"act_mul needs an even last dim, got {last}", "x")
    return [("out", _f32(x.shape[:-1] + (div_dim(last, 2),)))]


def _infer_cast(args, opts):
    x = _tensor(args, "x", floats_only=True)
    return [("out", TensorType(dtype(opts["dtype"]), x.shape))]


def _infer_norm(args, opts):
    x = _tensor(args, "x", floats_only=True)
    n = x.shape[-1]
    for vec in ("w", "b"):
        v = args.get(vec)
        if v is not None:
            v = _tensor(args, vec, floats_only=True)
            if v.rank != 1:
                raise StageError(f"norm {vec} must be a vector [{n}], got {v}", vec)
            _same_dim(n, v.shape[0], f"norm {vec} length must equal the last dim of x", vec)
    if args.get("b") is not None and opts["kind"] != "layer":
        raise StageError("a bias b is only defined for kind=layer", "b")
    if not isinstance(args.get("eps"), ScalarType):
        raise StageError("eps must be a scalar", "eps")
    out = [("out", TensorType(dtype(opts["dtype"]), x.shape))]
    r = args.get("residual")
    if r is not None:
        r = _tensor(args, "residual", floats_only=True)
        if r.shape != x.shape:
            raise StageError(f"residual must have the shape of x ({x} vs {r})", "residual")
        out.append(("residual_out", TensorType(x.dtype, x.shape)))
    return out


def _infer_smooth(args, opts):
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
    if x.rank != 2 or ids.rank != 2:
        raise StageError("expert-indexed smooth takes x [M, N] and ids [M, topk]", "ids")
    _same_dim(x.shape[0], ids.shape[0], "ids rows must equal x rows", "ids")
    return [("out", _f32((x.shape[0], ids.shape[1], n)))]


def _scale_shape(x: TensorType, gran: str) -> tuple:
    lead, n = x.shape[:-1], x.shape[-1]
    if gran == "per_tensor":
        return (Dim(1),)
    if gran == "per_token":
        return lead + (Dim(1),)
    if gran in GROUP_SIZES:
        return lead + (cdiv_dim(n, GROUP_SIZES[gran]),)
    if gran == "per_128x128":
        if x.rank != 2:
            raise StageError("per_128x128 needs a 2-D x [M, N]", "x")
        return (cdiv_dim(x.shape[0], 128), cdiv_dim(n, 128))
    raise AssertionError(gran)


def _check_target_granularity(target: str, gran: str) -> None:
    if target in ("fp4_e2m1",) and gran != "mx":
        raise StageError(f"{target} needs granularity mx (1x32 blocks with E8M0 scales); "
                         f"got {gran}", "granularity")
    if gran == "mx" and target not in ("fp4_e2m1", "fp8_e4m3fn", "fp8_e4m3fnuz"):
        raise StageError(f"mx granularity quantises to fp4_e2m1 or fp8 (MXFP8), not {target}",
                         "dtype")


def _infer_scale(args, opts):
    x = _tensor(args, "x", floats_only=True)
    target, gran = opts["dtype"], opts["granularity"]
    _check_target_granularity(target, gran)
    shape = _scale_shape(x, gran)
    sdt = dtype("e8m0") if gran == "mx" else dtype("f32")
    static = args.get("static")
    if static is not None:
        if gran != "per_tensor":
            raise StageError("a static (given) scale is supported for per_tensor only "
                             "(AITER has no static per-token/group quant)", "static")
        st = _tensor(args, "static")
        if st.dtype.name != "f32" or st.rank != 1 or not (st.shape[0] == Dim(1)):
            raise StageError(f"static per-tensor scale must be f32[1], got {st}", "static")
    return [("out", TensorType(sdt, shape))]


def _infer_round(args, opts):
    x = _tensor(args, "x", floats_only=True)
    s = _tensor(args, "s")
    target, gran = opts["dtype"], opts["granularity"]
    _check_target_granularity(target, gran)
    want = TensorType(dtype("e8m0") if gran == "mx" else dtype("f32"), _scale_shape(x, gran))
    if s.dtype != want.dtype or s.rank != want.rank or (gran != "per_tensor" and s.shape != want.shape):
        raise StageError(f"scale for {gran} {target} must be {want}, got {s}", "s")
    return [("out", TensorType(dtype(target), x.shape))]


def _infer_pack(args, opts):
    x = _tensor(args, "x")
    if x.dtype.name not in ("fp4_e2m1", "int4"):
        raise StageError(f"pack takes fp4_e2m1 or int4 codes, got {x.dtype.name}", "x")
    n = x.shape[-1]
    if n.is_const and n.value % 2:
        raise StageError(f"pack needs an even last dim, got {n}", "x")
    return [("out", TensorType(dtype("u8"), x.shape[:-1] + (div_dim(n, 2),)))]


def _infer_shuffle(args, opts):
    s = _tensor(args, "s")
    if s.dtype.name != "e8m0" or s.rank != 2:
        raise StageError(f"shuffle takes a 2-D e8m0 scale [M, N/32], got {s}", "s")
    return [("out", TensorType(s.dtype, (round_up_dim(s.shape[0], 256),
                                         round_up_dim(s.shape[1], 8))))]


def _infer_reduce(args, opts):
    x = _tensor(args, "x", floats_only=True)
    if x.rank < 2:
        raise StageError(f"reduce takes split-K partials [S, ..., N], got {x}", "x")
    return [("out", _f32(x.shape[1:]))]


def _infer_flatten(args, opts):
    x = _tensor(args, "x", floats_only=True)
    if x.rank != 3:
        raise StageError(f"flatten takes a 3-D x [M, A, B], got {x}", "x")
    return [("out", TensorType(x.dtype, (x.shape[0], mul_dim(x.shape[1], x.shape[2]))))]


def _infer_rope(args, opts):
    x = _tensor(args, "x", floats_only=True)
    cos, sin = _tensor(args, "cos", floats_only=True), _tensor(args, "sin", floats_only=True)
    pos = _tensor(args, "pos")
    if x.rank != 3:
        raise StageError(f"rope takes x [T, H, D], got {x}", "x")
    if pos.dtype.name not in ("i32", "i64") or pos.rank != 1:
        raise StageError(f"rope positions must be i32/i64 [T], got {pos}", "pos")
    _same_dim(x.shape[0], pos.shape[0], "positions length must equal tokens of x", "pos")
    half = div_dim(x.shape[2], 2)
    for nm, t in (("cos", cos), ("sin", sin)):
        if t.rank != 2:
            raise StageError(f"rope {nm} cache must be [P, D/2], got {t}", nm)
        if t.shape[1] != half and not (t.shape[1].is_symbol or half.is_symbol):
            raise StageError(f"rope {nm} cache last dim must be D/2 = {half}, got {t.shape[1]}", nm)
    return [("out", _f32(x.shape))]


def _infer_gather(args, opts):
    x = _tensor(args, "x")
    idx = _tensor(args, "idx")
    if idx.dtype.name not in ("i32", "i64") or idx.rank != 1:
        raise StageError(f"gather indices must be i32/i64 [R], got {idx}", "idx")
    return [("out", TensorType(x.dtype, (idx.shape[0],) + x.shape[1:]))]


def _cache_block_dims(layout: str, cache: TensorType, x: TensorType):
    need = {"key": 5, "value": 4, "value_asm": 5, "flash": 4}[layout]
    if cache.rank != need:
        raise StageError(f"{layout} cache must be {need}-D, got {cache}", "cache")


def _infer_cache_write(args, opts):
    x = _tensor(args, "x")
    cache = _tensor(args, "cache")
    slots = _tensor(args, "slots")
    if x.rank != 3:
        raise StageError(f"cache_write takes x [T, H, D], got {x}", "x")
    if slots.dtype.name not in ("i32", "i64") or slots.rank != 1:
        raise StageError(f"slot_mapping must be i32/i64 [T], got {slots}", "slots")
    _same_dim(x.shape[0], slots.shape[0], "slot_mapping length must equal tokens of x", "slots")
    _cache_block_dims(opts["layout"], cache, x)
    quant, scales = opts["quant"], args.get("scales")
    if quant == "none":
        if cache.dtype != x.dtype and not (x.dtype.is_float and cache.dtype.is_float):
            raise StageError(f"quant=none copies x into the cache: x is {x.dtype.name} but the "
                             f"cache is {cache.dtype.name} (use quant=static/per_token/per_block)",
                             "cache")
        if scales is not None:
            raise StageError("quant=none takes no scales", "scales")
        return [("out", cache)]
    if cache.dtype.name not in ("fp8_e4m3fn", "fp8_e4m3fnuz", "i8"):
        raise StageError(f"quantised cache must be fp8_e4m3fn, fp8_e4m3fnuz or i8, got "
                         f"{cache.dtype.name}", "cache")
    if not x.dtype.is_float:
        raise StageError(f"quant={quant} takes float x, got {x.dtype.name}", "x")
    if scales is None:
        raise StageError(f"quant={quant} needs scales=", "scales")
    scales = _tensor(args, "scales")
    if scales.dtype.name != "f32":
        raise StageError(f"cache scales must be f32, got {scales.dtype.name}", "scales")
    if quant == "static":
        return [("out", cache)]
    want = 3 if (quant == "per_token" and opts["scale_layout"] == "asm") else 2
    if scales.rank != want:
        raise StageError(f"{quant} scales with scale_layout={opts['scale_layout']} must be "
                         f"{want}-D, got {scales}", "scales")
    return [("out", cache), ("scales_out", scales)]


# ---------------------------------------------------------------------- the table
def _o(name, kind="tensor", optional=False, doc=""):
    return OperandSpec(name, kind, optional, doc)


_X = _o("x", doc="input tensor")
_DTYPE_MAX = OptionSpec("dtype_max", "float", (), None,
                        "largest magnitude: default 448 (e4m3fn), 240 (e4m3fnuz), 127 (i8), "
                        "6 (E2M1), 7 (int4); vLLM's fnuz value is 224")

STAGES: dict[str, Stage] = {s.name: s for s in [
    Stage("add", (_o("a"), _o("b")), (), ("a", "b"), ("out",), "row",
          "elementwise a + b in fp32 (b: scalar, [N] or same shape)", _infer_elementwise),
    Stage("mul", (_o("a"), _o("b")), (), ("a", "b"), ("out",), "row",
          "elementwise a * b in fp32", _infer_elementwise),
    Stage("silu", (_X,), (), ("x",), ("out",), "row", "x / (1 + exp(-x)) in fp32", _infer_unary),
    Stage("gelu", (_X,), (OptionSpec("approx", "enum", ("none", "tanh"), "none"),),
          ("x",), ("out",), "row", "GELU (erf, or tanh approximation) in fp32", _infer_unary),
    Stage("act_mul", (_X,), (OptionSpec("act", "enum", ("silu", "gelu", "gelu_tanh"), "silu"),),
          ("x", "act"), ("out",), "row",
          "act(x[..., :N/2]) * x[..., N/2:] (SwiGLU/GeGLU gate-up)", _infer_act_mul),
    Stage("cast", (_X,), (OptionSpec("dtype", "dtype", FLOAT_OUT),), ("x", "dtype"),
          ("out",), "row", "round to bf16/f16 (RNE) or widen to f32", _infer_cast),
    Stage("norm", (_X, _o("w", optional=True), _o("eps", "scalar"), _o("b", optional=True),
                   _o("residual", optional=True)),
          (OptionSpec("kind", "enum", ("rms", "layer"), "rms"),
           OptionSpec("gemma", "bool", (), False, "scale by (1 + w) instead of w"),
           OptionSpec("residual_sum", "enum", ("fp32", "rounded"), "fp32",
                      "normalise the fp32 sum x + residual (fused kernels) or the sum rounded "
                      "to x's dtype (AITER torch reference)"),
           OptionSpec("dtype", "dtype", FLOAT_OUT, "f32",
                      "result dtype: f32 keeps the value unrounded for the quantiser")),
          ("x", "w", "eps"), ("out", "residual_out?"), "row",
          "RMSNorm / LayerNorm over the last dim, optional residual add", _infer_norm),
    Stage("smooth", (_X, _o("s"), _o("ids", optional=True)), (), ("x", "s"), ("out",), "row",
          "SmoothQuant channel scale x * s (or x * s[ids] per expert)", _infer_smooth),
    Stage("scale", (_X, _o("static", optional=True)),
          (OptionSpec("dtype", "dtype", QUANT_TARGETS),
           OptionSpec("granularity", "enum", GRANULARITIES),
           _DTYPE_MAX,
           OptionSpec("zero", "enum", ZERO_POLICIES, None,
                      "all-zero row/group: one (scale 1: torch per-token/group ref, the default "
                      "except per_tensor), floor (amax floored at amax_floor: HIP, Triton group), "
                      "zero (scale 0 and codes 0: opus; the per_tensor default, where the torch "
                      "ref stores 0 and produces NaN codes, AITER defect #4288)"),
           OptionSpec("amax_floor", "float", (), 1e-10, "floor for zero=floor"),
           OptionSpec("e8m0", "enum", E8M0_MODES, "roundup",
                      "E8M0 rounding for mx: roundup (AITER HEAD default), even (AITER Triton), "
                      "rne_legacy (<= v0.1.15), floor (OCP), ceil")),
          ("x", "dtype", "granularity"), ("out",), "row",
          "dynamic scale from amax (or a given static per-tensor scale)", _infer_scale),
    Stage("round", (_X, _o("s")),
          (OptionSpec("dtype", "dtype", QUANT_TARGETS),
           OptionSpec("granularity", "enum", GRANULARITIES, None,
                      "taken from the scale stage; give it for a static scale parameter"),
           _DTYPE_MAX,
           OptionSpec("mode", "enum", ("rne", "trunc"), None,
                      "int8/int4 rounding: trunc (AITER torch ref, CK; the i8 default) or rne "
                      "(vLLM, opus); fp8/fp4 always RNE"),
           OptionSpec("sat", "bool", (), True, "clamp to +-dtype_max before the cast"),
           OptionSpec("recip", "enum", ("div", "mul_rcp"), "div",
                      "x / s (torch ref) or x * (1 / s) (AITER Triton/HIP)")),
          ("x", "s", "dtype"), ("out",), "row",
          "quantise x with scale s to fp8/int8/fp4/int4 codes", _infer_round),
    Stage("pack", (_X,), (), ("x",), ("out",), "row",
          "two 4-bit codes per byte, element 2j in the low nibble", _infer_pack),
    Stage("shuffle", (_o("s"),), (OptionSpec("pad", "int", (), 0, "byte for padding entries"),),
          ("s",), ("out",), "layout",
          "E8M0 preshuffle: pad to (256, 8) multiples, permute 32x8 tiles", _infer_shuffle),
    Stage("reduce", (_X,), (), ("x",), ("out",), "row",
          "split-K reduce: sum over dim 0 in order, fp32", _infer_reduce),
    Stage("flatten", (_X,), (), ("x",), ("out",), "row",
          "[M, A, B] -> [M, A*B] (strided input allowed)", _infer_flatten),
    Stage("rope", (_X, _o("cos"), _o("sin"), _o("pos")),
          (OptionSpec("style", "enum", ("neox", "gptj"), "neox"),),
          ("x", "cos", "sin", "pos"), ("out",), "row",
          "rotary embedding of x [T, H, D] at positions pos", _infer_rope),
    Stage("gather", (_X, _o("idx")),
          (OptionSpec("packed_ids", "bool", (), False,
                      "MoE sorted ids: row = id & 0xFFFFFF; rows >= M read as zeros"),),
          ("x", "idx"), ("out",), "row",
          "row gather out[i] = x[idx[i]] (idx < 0 or >= M gives a zero row)", _infer_gather),
    Stage("cache_write", (_X, _o("cache"), _o("slots"), _o("scales", optional=True)),
          (OptionSpec("layout", "enum", CACHE_LAYOUTS, "key"),
           OptionSpec("quant", "enum", ("none", "static", "per_token", "per_block"), "none"),
           OptionSpec("scale_layout", "enum", ("default", "asm"), "default"),
           _DTYPE_MAX,
           OptionSpec("mode", "enum", ("rne", "trunc"), "trunc", "int8 cache rounding"),
           OptionSpec("vec", "int", (), None, "vector width X of the key and value_asm layouts: "
                                                 "16 / element bytes")),
          ("x", "cache", "slots"), ("out", "scales_out?"), "scatter",
          "paged KV-cache write with slot_mapping (slot < 0 skips the token)",
          _infer_cache_write),
]}


def stage(name: str) -> Stage:
    return STAGES[name]


# ------------------------------------------------------------- option resolution
def resolve_options(st: Stage, args: dict, opts: dict) -> dict:
    """Validate user options and fill every default, including the context-dependent ones.

    Returns a complete dict (one entry per option) so the IR states every numeric choice.
    Raises StageError for an unknown option, a bad value or a missing required option.
    """
    out = {}
    for name, value in opts.items():
        spec = st.option(name)
        if spec is None:
            known = ", ".join(o.name for o in st.options) or "none"
            raise StageError(f"unknown option {name!r} for {st.name} (options: {known})", name)
        out[name] = spec.check(value)
    for spec in st.options:
        if spec.name in out:
            continue
        if spec.default is not None:
            out[spec.name] = spec.default
    target = out.get("dtype")
    if st.name in ("scale", "round"):
        if "dtype" not in out:
            raise StageError(f"{st.name} needs a target dtype ({', '.join(QUANT_TARGETS)})", "dtype")
        if "granularity" not in out:
            raise StageError(f"{st.name} needs a granularity ({', '.join(GRANULARITIES)})",
                             "granularity")
        out.setdefault("dtype_max", default_dtype_max(target))
        if out["dtype_max"] <= 0:
            raise StageError("dtype_max must be positive", "dtype_max")
    if st.name == "scale":
        out.setdefault("zero", "zero" if out["granularity"] == "per_tensor" else "one")
    if st.name == "round":
        out.setdefault("mode", "trunc" if target in ("i8", "int4") else "rne")
        if out["mode"] == "trunc" and target not in ("i8", "int4"):
            raise StageError(f"mode=trunc applies to i8/int4 only; {target} rounds to nearest even",
                             "mode")
    if st.name == "cache_write":
        cache = args.get("cache")
        cdt = cache.dtype if isinstance(cache, TensorType) else None
        if "vec" not in out:
            out["vec"] = 16 // max(1, (cdt.bits // 8 if cdt else 1))
        if "dtype_max" not in out:
            out["dtype_max"] = cdt.max if (cdt and cdt.max) else 0.0
    return out


def infer_results(st: Stage, args: dict, opts: dict) -> list:
    """``[(result_name, ValueType), ...]`` for resolved options; raises StageError."""
    for spec in st.operands:
        if not spec.optional and args.get(spec.name) is None:
            raise StageError(f"{st.name} is missing its operand {spec.name!r}", spec.name)
    return st.infer(args, opts)
