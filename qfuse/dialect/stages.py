"""The stage catalog: the one declaration of every qfuse stage.

Each :class:`Stage` names its DSL call, its ``qf`` op, its operands, its options (with
choices and defaults) and a shape/dtype rule. The DSL checker, the ``qf`` dialect
(op classes and verifiers), the reference backend and the Triton backend all read
this table, so a stage is declared exactly once. It imports neither lark nor MLIR.

The shape/dtype rules live in ``stage_rules.py``, the bind-time shape requirements and
data indices in ``requirements.py``, the option values (enums) and the constants that go
with them in ``options.py``; the formulas live in the reference backend
(``qfuse/backends/reference``), one docstring per stage; ``Stage.doc`` is the one-line
summary used in errors and in the README table. What other layers need to know about a
stage is a field here (see :class:`Stage`), so no other module compares stage names or
option strings (``tests/test_stage_knowledge.py``).

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

from .options import MRope
from .options import (DEFAULT_AMAX_FLOOR, DEFAULT_EPS, Act, BlockRequant, CacheFloor,
                      CacheLayout, CacheQuant, E8M0Mode, FloatDType, GeluApprox, Granularity,
                      NormKind, PackOrder, QuantTarget, Recip,
                      ResidualSum, RopeStyle, RoundMode, ScaleLayout, ZeroPolicy)
from .options import WORLD_GROUP, ReduceOp, ReduceOrder
from .stage_rules import (StageError, infer_act_mul, infer_cache_write, infer_cast,
                          infer_elementwise, infer_flatten, infer_gather, infer_norm, infer_pack,
                          infer_reduce, infer_rope, infer_round, infer_scale, infer_shuffle,
                          infer_smooth, infer_unary, default_dtype_max)
from .stage_rules import infer_all_reduce
from .stage_rules import infer_dequant, infer_unpack
from .types import F32_MAX, I64_MAX, I64_MIN, TensorType, dtype, fits_f32

__all__ = ["StageError", "OperandSpec", "OptionSpec", "Stage", "STAGES", "stage",
           "resolve_options", "infer_results", "default_dtype_max", "iteration_space",
           "call_space", "remapped_operand", "layout_operand", "made_here"]


@dataclass(frozen=True)
class OperandSpec:
    name: str
    kind: str = "tensor"          # "tensor" | "scalar"
    optional: bool = False
    doc: str = ""
    default: Optional[float] = None   # scalar: its value when a call leaves it out
    min: Optional[float] = None       # scalar: the smallest value a call may pass
    literal: bool = False             # a number may stand for it (an f32 constant)
    subscript: str = ""               # the DSL's ``s[ids]`` gives this operand and that one
    made_by: str = ""                 # the stage that usually computes it in a pipeline
    inherits: bool = False            # the call takes its granularity (and dtype_max, where
                                      # it has that option) from that call when made_by
                                      # computed it (round's and dequant's scale)
    layout_of: bool = False           # the call is a store layout of made_by's result: when
                                      # made_by computed it here, the call joins that kernel
    positive: bool = False            # a scale the caller gives: positive values
    rows_via: str = ""                # its rows are read through this index operand (when
                                      # the call has it), not at the rows a program owns


@dataclass(frozen=True)
class OptionSpec:
    name: str
    type: str                      # "enum" | "dtype" | "float" | "int" | "bool"
    choices: tuple = ()
    default: Any = None            # None: resolved from context (see resolve_options)
    doc: str = ""
    bounds: tuple = ()             # (low, high), inclusive, for int and float options
    enum: Optional[type] = None    # "enum" / "dtype": the OptionEnum of its values

    @staticmethod
    def of(name: str, enum: type, default: Any = None, doc: str = "",
           type: str = "enum") -> "OptionSpec":
        """An option whose values are the members of ``enum`` (an OptionEnum);
        ``type="dtype"`` also accepts the DSL's dtype aliases (``int8`` for ``i8``)."""
        return OptionSpec(name, type, tuple(enum), default, doc, enum=enum)

    def check(self, value: Any) -> Any:
        """Validate one user-supplied value; return it normalised (an enum or dtype option
        as its member). Raises StageError."""
        t = self.type
        if t in ("enum", "dtype"):
            if t == "dtype":
                try:
                    value = dtype(value).name
                except (KeyError, TypeError):
                    pass
            if not isinstance(value, str) or value not in self.choices:
                raise StageError(f"option {self.name}={value!r} is not one of "
                                 f"{', '.join(map(str, self.choices))}", self.name)
            return self.enum(value)
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
            return self._in_bounds(value, self.bounds or (I64_MIN, I64_MAX))
        if t == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise StageError(f"option {self.name} takes a number, got {value!r}", self.name)
            if not fits_f32(float(value)):
                raise StageError(f"option {self.name}={value!r} does not fit in f32 (|x| <= "
                                 f"{F32_MAX:.7g}): stage arithmetic is fp32", self.name)
            return self._in_bounds(float(value), self.bounds)
        if t == "name":
            return _check_name(self.name, value)
        raise AssertionError(t)

    def _in_bounds(self, value, bounds: tuple):
        """``value`` when inside the inclusive ``(low, high)`` bounds (if any)."""
        if bounds and not bounds[0] <= value <= bounds[1]:
            low, high = (f"{b:g}" if isinstance(b, float) else str(b) for b in bounds)
            raise StageError(f"option {self.name}={value!r} is out of range ({low}..{high})",
                             self.name)
        return value


def _check_name(option: str, value: Any) -> str:
    """A ``name`` option: an identifier (``world``, ``tp``) that the runtime resolves at
    call time (all_reduce's process group, :mod:`qfuse.distributed`)."""
    if not isinstance(value, str) or not value.isidentifier():
        raise StageError(f"option {option} takes a name (an identifier such as world or tp), "
                         f"got {value!r}", option)
    return value


def _never(options: dict, operands: dict) -> bool:
    return False


def _always(options: dict, operands: dict) -> bool:
    return True


@dataclass(frozen=True)
class Stage:
    """One stage. Besides its signature, the facts every layer asks about it:

    * ``infix``: the DSL operator that spells it (``a + b`` is ``add``);
    * ``in_place``: ``(operand, result)`` pairs: the result is the operand's tensor,
      updated in place (its parameter belongs to the call, the runtime hands it back);
    * ``whole_rows(options, operands)``: a program needs whole rows (a reduction over
      the row, or a row written as a unit), so a kernel holding it cannot split columns;
    * ``elementwise(options, operands)``: each result element reads only the operands'
      elements at its own position;
    * ``inexact``: its fp32 result may differ by a few ulp between correct backends (sums
      whose order is free, libm functions); ``sums``: an ordered sum, exact on exact
      inputs but adding up the differences of inexact ones (``runtime/compare.py``).
    """
    name: str                      # DSL call name; op is "qf.<name>"
    operands: tuple                # OperandSpec...
    options: tuple                 # OptionSpec...
    positional: tuple              # names (operands or options) bindable by position
    results: tuple                 # result names (optional ones end with "?")
    space: str                     # iteration space: "row" | "tensor" | "tile" | "scatter" | "layout"
    doc: str
    infer: Callable = field(repr=False, compare=False, default=None)
    rows: str = "out"              # the tensor whose leading dims are the rows it iterates over
    infix: str = ""
    in_place: tuple = ()
    whole_rows: Callable = field(repr=False, compare=False, default=_never)
    elementwise: Callable = field(repr=False, compare=False, default=_never)
    inexact: bool = False
    sums: bool = False

    @property
    def op_name(self) -> str:
        return f"qf.{self.name}"

    def operand(self, name: str) -> Optional[OperandSpec]:
        return next((o for o in self.operands if o.name == name), None)

    def option(self, name: str) -> Optional[OptionSpec]:
        return next((o for o in self.options if o.name == name), None)




# ---------------------------------------------------------------------- the table
def _o(name, kind="tensor", optional=False, doc="", **facts):
    return OperandSpec(name, kind, optional, doc, **facts)


def _whole_row_scale(options: dict, operands: dict) -> bool:
    """A dynamic per_token / per_tensor scale: its amax spans whole rows."""
    return operands.get("static") is None and Granularity(options["granularity"]).whole_rows


def _dequant_elementwise(options: dict, operands: dict) -> bool:
    """dequant without a scale, or with a per_tensor one, reads only its own element."""
    return operands.get("s") is None or options.get("granularity") == Granularity.PER_TENSOR


def _unindexed(options: dict, operands: dict) -> bool:
    """smooth without expert ids (with them, a row reads the scale row its id picks)."""
    return operands.get("ids") is None


_X = _o("x", doc="input tensor")
_LIT = {"literal": True}
_DTYPE_MAX = OptionSpec("dtype_max", "float", (), None,
                        "largest magnitude: default 448 (e4m3fn), 240 (e4m3fnuz), 127 (i8), "
                        "6 (E2M1), 7 (int4); vLLM's fnuz value is 224")

STAGES: dict[str, Stage] = {s.name: s for s in [
    Stage("add", (_o("a", **_LIT), _o("b", **_LIT)), (), ("a", "b"), ("out",), "row",
          "elementwise a + b in fp32 (b: scalar, [N] or same shape)", infer_elementwise,
          infix="+", elementwise=_always),
    Stage("mul", (_o("a", **_LIT), _o("b", **_LIT)), (), ("a", "b"), ("out",), "row",
          "elementwise a * b in fp32", infer_elementwise, infix="*", elementwise=_always),
    Stage("silu", (_X,), (), ("x",), ("out",), "row", "x / (1 + exp(-x)) in fp32", infer_unary,
          elementwise=_always, inexact=True),
    Stage("gelu", (_X,), (OptionSpec.of("approx", GeluApprox, GeluApprox.NONE),),
          ("x",), ("out",), "row", "GELU (erf, or tanh approximation) in fp32", infer_unary,
          elementwise=_always, inexact=True),
    Stage("act_mul", (_X,), (OptionSpec.of("act", Act, Act.SILU),),
          ("x", "act"), ("out",), "row",
          "act(x[..., :N/2]) * x[..., N/2:] (SwiGLU/GeGLU gate-up)", infer_act_mul,
          inexact=True),
    Stage("cast", (_X,), (OptionSpec.of("dtype", FloatDType, type="dtype"),), ("x", "dtype"),
          ("out",), "row", "round to bf16/f16 (RNE) or widen to f32", infer_cast,
          elementwise=_always),
    Stage("norm", (_X, _o("w", optional=True), _o("eps", "scalar", default=DEFAULT_EPS, min=0.0),
                   _o("b", optional=True), _o("residual", optional=True)),
          (OptionSpec.of("kind", NormKind, NormKind.RMS),
           OptionSpec("gemma", "bool", (), False, "scale by (1 + w) instead of w"),
           OptionSpec.of("residual_sum", ResidualSum, ResidualSum.FP32,
                         "normalise the fp32 sum x + residual (fused kernels) or the sum "
                         "rounded to x's dtype (AITER torch reference)"),
           OptionSpec.of("dtype", FloatDType, FloatDType.F32,
                         "result dtype: f32 keeps the value unrounded for the quantiser",
                         type="dtype")),
          ("x", "w", "eps"), ("out", "residual_out?"), "row",
          "RMSNorm / LayerNorm over the last dim, optional residual add", infer_norm,
          whole_rows=_always, inexact=True),
    Stage("smooth", (_o("x", doc="input tensor", rows_via="ids"), _o("s", subscript="ids"),
                     _o("ids", optional=True)), (), ("x", "s"),
          ("out",), "row", "SmoothQuant channel scale x * s (or x * s[ids] per expert)",
          infer_smooth, elementwise=_unindexed),
    Stage("scale", (_X, _o("static", optional=True, positive=True)),
          (OptionSpec.of("dtype", QuantTarget, type="dtype"),
           OptionSpec.of("granularity", Granularity),
           _DTYPE_MAX,
           OptionSpec.of("zero", ZeroPolicy, None,
                         "all-zero row/group: one (scale 1: torch per-token/group ref, the "
                         "default except per_tensor), floor (amax floored at amax_floor: HIP, "
                         "Triton group), zero (scale 0 and codes 0: opus; the per_tensor "
                         "default, where the torch ref stores 0 and produces NaN codes, AITER "
                         "defect #4288)"),
           OptionSpec("amax_floor", "float", (), DEFAULT_AMAX_FLOOR, "floor for zero=floor",
                      (2.0**-149, F32_MAX)),
           OptionSpec.of("e8m0", E8M0Mode, E8M0Mode.ROUNDUP,
                         "E8M0 rounding for mx: roundup (AITER HEAD default), even (AITER "
                         "Triton), rne_legacy (<= v0.1.15), floor (OCP), ceil"),
           OptionSpec("pow2", "bool", (), False,
                      "non-mx: round the fp32 scale up to a power of two (ue8m0 scales, "
                      "DeepGEMM / AITER's e8m0 group scales), stored as fp32")),
          ("x", "dtype", "granularity"), ("out",), "row",
          "dynamic scale from amax (or a given static per-tensor scale)", infer_scale, "x",
          whole_rows=_whole_row_scale),
    Stage("round", (_X, _o("s", made_by="scale", inherits=True)),
          (OptionSpec.of("dtype", QuantTarget, type="dtype"),
           OptionSpec.of("granularity", Granularity, None,
                         "taken from the scale stage; give it for a static scale parameter"),
           _DTYPE_MAX,
           OptionSpec.of("mode", RoundMode, None,
                         "int8/int4 rounding: trunc (AITER torch ref, CK; the i8 default) or "
                         "rne (vLLM, opus); fp8 RNE; fp4_e2m1 rne (default) or half_up "
                         "(AITER's MoE-sort MXFP4 kernel: ties away from zero)"),
           OptionSpec("sat", "bool", (), True, "clamp to +-dtype_max before the cast"),
           OptionSpec.of("recip", Recip, Recip.DIV,
                         "x / s (torch ref) or x * (1 / s) (AITER Triton/HIP)")),
          ("x", "s", "dtype"), ("out",), "row",
          "quantise x with scale s to fp8/int8/fp4/int4 codes", infer_round, "x"),
    Stage("pack", (_X,), (OptionSpec.of("order", PackOrder, PackOrder.LINEAR,
                                        "linear (byte j: codes 2j | 2j+1 << 4) or even_odd "
                                        "(AITER's rearrange_4bit_elements: per 8 codes, "
                                        "the even ones in the low 16 bits)"),),
          ("x",), ("out",), "row",
          "two 4-bit codes per byte, element 2j in the low nibble", infer_pack),
    Stage("dequant", (_o("q", doc="codes: fp8, i8, int4 (one per int8), fp4_e2m1 (one per "
                                  "byte)"),
                      _o("s", optional=True, made_by="scale", inherits=True,
                         doc="scale: f32 per_tensor / per_token / per_1xK, e8m0 for mx; "
                             "absent: 1; computed by scale(...) here: its granularity")),
          (OptionSpec.of("granularity", Granularity, None,
                         "what one scale covers; an e8m0 scale is mx, an absent one needs none"),
           OptionSpec.of("dtype", FloatDType, FloatDType.F32,
                         "result dtype (RNE from the fp32 product)", type="dtype"),
           OptionSpec.of("codes", QuantTarget, None,
                         "the code format of q: taken from its type (int4 and i8 share "
                         "int8 storage)", type="dtype")),
          ("q", "s"), ("out",), "row",
          "codes + scales -> float: decode(q) * s in fp32", infer_dequant,
          elementwise=_dequant_elementwise),
    Stage("unpack", (_o("x", doc="packed bytes u8 [..., B] (two 4-bit codes each)"),),
          (OptionSpec.of("dtype", QuantTarget, None, "the codes: fp4_e2m1 or int4",
                         type="dtype"),
           OptionSpec.of("order", PackOrder, PackOrder.LINEAR,
                         "the order pack wrote them in (even_odd: AITER's "
                         "rearrange_4bit_elements)")),
          ("x", "dtype"), ("out",), "row",
          "4-bit codes from bytes (the inverse of pack): [..., B] -> [..., 2B]", infer_unpack),
    Stage("shuffle", (_o("s", made_by="scale", layout_of=True,
                         doc="E8M0 scale bytes [M, G]: a scale(..., mx) of this pipeline (the "
                             "shuffle is then its store layout) or a parameter (a layout "
                             "kernel of its own, AITER's e8m0_shuffle)"),),
          (OptionSpec("pad", "int", (), 0, "byte for padding entries", (0, 255)),),
          ("s",), ("out",), "layout",
          "E8M0 preshuffle: pad to (256, 8) multiples, permute 32x8 tiles", infer_shuffle, "s"),
    Stage("reduce", (_X,), (), ("x",), ("out",), "row",
          "split-K reduce: sum over dim 0 in order, fp32", infer_reduce, sums=True),
    Stage("flatten", (_X,), (), ("x",), ("out",), "row",
          "[M, A, B] -> [M, A*B] (strided input allowed)", infer_flatten),
    Stage("rope", (_X, _o("cos"), _o("sin"), _o("pos")),
          (OptionSpec.of("style", RopeStyle, RopeStyle.NEOX),
           OptionSpec.of("mrope", MRope, MRope.NONE,
                         "multi-section RoPE: positions [3, T], each frequency reads the "
                         "row of its section (chunked: Qwen2-VL; interleaved: Qwen3-VL)"),
           OptionSpec("mrope_h", "int", (), 0, "mrope: frequencies of the h section",
                      (0, 2**31 - 1)),
           OptionSpec("mrope_w", "int", (), 0, "mrope: frequencies of the w section",
                      (0, 2**31 - 1))),
          ("x", "cos", "sin", "pos"), ("out",), "row",
          "rotary embedding of x [T, H, D] at positions pos", infer_rope),
    Stage("gather", (_o("x", doc="input tensor", rows_via="idx"), _o("idx")),
          (OptionSpec("packed_ids", "bool", (), False,
                      "MoE sorted ids: row = id & 0xFFFFFF; rows >= M read as zeros"),
           OptionSpec("topk", "int", (), 1,
                      "packed ids of x [T * topk, N]: row = (id & 0xFFFFFF) * topk + "
                      "(id >> 24), the slot outside [0, topk) a zero row", (1, 255))),
          ("x", "idx"), ("out",), "row",
          "row gather out[i] = x[idx[i]] (idx < 0 or >= M gives a zero row)", infer_gather),
    Stage("cache_write", (_X, _o("cache"), _o("slots"),
                          _o("scales", optional=True, positive=True)),
          (OptionSpec.of("layout", CacheLayout, CacheLayout.KEY),
           OptionSpec.of("quant", CacheQuant, CacheQuant.NONE),
           OptionSpec.of("scale_layout", ScaleLayout, ScaleLayout.DEFAULT),
           _DTYPE_MAX,
           OptionSpec.of("mode", RoundMode, RoundMode.TRUNC, "int8 cache rounding"),
           OptionSpec("vec", "int", (), None, "vector width X of the key and value_asm layouts: "
                                                 "16 / element bytes", (1, 2**31 - 1)),
           OptionSpec.of("zero", ZeroPolicy, ZeroPolicy.ZERO,
                         "a zero per_token / per_block scale is stored as 0 (zero: HIP) or 1 "
                         "(one: AITER's torch reference); its codes are 0 either way"),
           OptionSpec.of("floor", CacheFloor, CacheFloor.FLOOR,
                         "floor (HIP: quotient scale max(s, 1e-12) per token, block amax "
                         ">= 1e-6) or none (torch reference: the scale as computed)"),
           OptionSpec.of("recip", Recip, Recip.MUL_RCP,
                         "x * (1 / s) (HIP) or x / s (torch reference)"),
           OptionSpec.of("requant", BlockRequant, BlockRequant.GROW,
                         "per_block: re-quantise the block's earlier entries when its scale "
                         "grows (grow: HIP) or the whole block on every write (always: torch "
                         "reference)"),
           OptionSpec("scale_block", "int", (), 0,
                      "per_block: tokens per scale (a multiple of the cache block size; 0: "
                      "one cache block; AITER's asm paged attention: 128 or 256)",
                      (0, 2**31 - 1)),
           OptionSpec("amax_floor", "float", (), 0.0,
                      "per_token: s = max(amax, amax_floor) / dtype_max (AITER's indexer: "
                      "1e-4; 0: none)", (0.0, F32_MAX)),
           OptionSpec("pow2", "bool", (), False,
                      "per_token: s rounded up to a power of two (AITER's ue8m0 scales)")),
          ("x", "cache", "slots"), ("out", "scales_out?"), "scatter",
          "paged KV-cache write with slot_mapping (slot < 0 skips the token)",
          infer_cache_write, "x", in_place=(("cache", "out"), ("scales", "scales_out")),
          whole_rows=_always),
    Stage("all_reduce", (_X,),
          (OptionSpec("group", "name", (), WORLD_GROUP,
                      "process group, by name: world (torch.distributed's default group) or "
                      "a name bound at call time (qfuse.distributed.use_group)"),
           OptionSpec.of("op", ReduceOp, ReduceOp.SUM, "the reduction (sum only)"),
           OptionSpec.of("order", ReduceOrder, ReduceOrder.RANK,
                         "rank: x_0 + x_1 + ... in fp32, every rank the same bits; native: "
                         "the collective's own order and precision"),
           OptionSpec.of("dtype", FloatDType, None, "result dtype: x's (default) or f32 "
                         "(the fp32 sum unrounded)", type="dtype")),
          ("x", "group"), ("out",), "collective",
          "all-reduce over a process group (a host step between kernels): out = x_0 + x_1 + "
          "... + x_{W-1} in fp32 in rank order, rounded (RNE) to dtype", infer_all_reduce,
          "x", sums=True),
]}


def stage(name: str) -> Stage:
    return STAGES[name]


# -------------------------------------------------------------- iteration space
def iteration_space(stage_name: str, options: dict, operands) -> str:
    """The kernel iteration space one call of a stage needs on its own.

    ``options``: its resolved options; ``operands``: the names of the operands it was
    given (optional ones may be absent). The one answer the fusion planner and the
    backends share:

    * ``tensor_amax``: a dynamic ``scale(per_tensor)`` (the amax of the whole tensor);
    * ``tile``: ``scale`` / ``round`` over ``per_128x128`` tiles;
    * ``cache_block``: ``cache_write(quant=per_block)`` (a scale per cache block);
    * ``collective``: ``all_reduce``, a host step between kernels (no kernel space);
    * ``row``: everything else (whole rows, or column chunks, per program).
    """
    if STAGES[stage_name].space == "collective":
        return "collective"
    gran = options.get("granularity")
    if stage_name == "scale" and gran == Granularity.PER_TENSOR and "static" not in operands:
        return "tensor_amax"
    if stage_name in ("scale", "round") and gran == Granularity.PER_128X128:
        return "tile"
    if stage_name == "cache_write" and options.get("quant") == CacheQuant.PER_BLOCK:
        return "cache_block"
    return "row"


def call_space(call) -> str:
    """:func:`iteration_space` of a stage call (anything with ``stage``, ``options`` and
    ``operands``, an absent optional operand None)."""
    return iteration_space(call.stage, call.options,
                           [n for n, v in call.operands.items() if v is not None])


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
            raise StageError(f"{st.name} needs a target dtype ({', '.join(QuantTarget)})", "dtype")
        if "granularity" not in out:
            raise StageError(f"{st.name} needs a granularity ({', '.join(Granularity)})",
                             "granularity")
        out.setdefault("dtype_max", default_dtype_max(target))
        _check_dtype_max(out["dtype_max"], target)
    if st.name == "scale":
        out.setdefault("zero", ZeroPolicy.ZERO if out["granularity"] == Granularity.PER_TENSOR
                       else ZeroPolicy.ONE)
    if st.name == "round":
        out.setdefault("mode", RoundMode.TRUNC if target.is_int else RoundMode.RNE)
        why = out["mode"].check(target)
        if why:
            raise StageError(why, "mode")
    if st.name == "dequant":
        _dequant_codes(args, out)
    if st.name == "dequant" and "granularity" not in out:
        s = args.get("s")
        if s is None:
            out["granularity"] = Granularity.PER_TENSOR      # no scale: the value 1
        elif isinstance(s, TensorType) and s.dtype.name == "e8m0":
            out["granularity"] = Granularity.MX
        else:
            raise StageError("dequant with an f32 scale needs granularity= (per_tensor, "
                             "per_token, per_1x32, per_1x64, per_1x128)", "granularity")
    if st.name == "gather" and out["topk"] > 1 and not out["packed_ids"]:
        raise StageError("topk > 1 reads the slot from packed ids: give packed_ids=true",
                         "topk")
    if st.name == "cache_write":
        cache = args.get("cache")
        cdt = cache.dtype if isinstance(cache, TensorType) else None
        if "vec" not in out:
            out["vec"] = 16 // max(1, (cdt.bits // 8 if cdt else 1))
        if "dtype_max" not in out:
            out["dtype_max"] = cdt.max if (cdt and cdt.max) else 0.0
        elif out["quant"] != CacheQuant.NONE and cdt is not None:
            _check_dtype_max(out["dtype_max"], cdt.name)
        if out["mode"] == RoundMode.HALF_UP:
            raise StageError("mode=half_up applies to fp4_e2m1 codes only; a cache rounds "
                             "by rne or trunc", "mode")
        if out["zero"] == ZeroPolicy.FLOOR:
            raise StageError("cache_write takes zero=zero or zero=one (its floors are the "
                             "option floor=)", "zero")
        if out["scale_block"] and out["quant"] != CacheQuant.PER_BLOCK:
            raise StageError("scale_block applies to quant=per_block only", "scale_block")
        for name in ("amax_floor", "pow2"):
            if out[name] and out["quant"] != CacheQuant.PER_TOKEN:
                raise StageError(f"{name} applies to quant=per_token only", name)
        if out["scale_layout"] == ScaleLayout.TOKEN and out["quant"] != CacheQuant.PER_TOKEN:
            raise StageError("scale_layout=token applies to quant=per_token only",
                             "scale_layout")
    if st.name == "all_reduce" and "dtype" not in out:
        x = args.get("x")
        if isinstance(x, TensorType):
            out["dtype"] = FloatDType(x.dtype.name) if x.dtype.is_float else FloatDType.F32
    missing = [spec.name for spec in st.options if spec.name not in out]
    if missing:
        raise StageError(f"{st.name} needs option {missing[0]}{_choices(st.option(missing[0]))}",
                         missing[0])
    return out


def _dequant_codes(args: dict, out: dict) -> None:
    """dequant's ``codes``: q's dtype (a given value must name the same format)."""
    q = args.get("q")
    if not isinstance(q, TensorType):
        return
    try:
        fmt = QuantTarget(q.dtype.name)
    except ValueError:
        raise StageError(f"dequant takes codes ({', '.join(QuantTarget)}), got "
                         f"{q.dtype.name}", "q") from None
    if out.setdefault("codes", fmt) != fmt:
        raise StageError(f"codes={out['codes']} but q holds {fmt} codes", "codes")


def _choices(spec: OptionSpec) -> str:
    return f" ({', '.join(map(str, spec.choices))})" if spec.choices else ""


def _check_dtype_max(value: float, target: str) -> None:
    """dtype_max is positive, and for fp8 at most the format's largest finite value:
    there is no fp8 code beyond it (e4m3fn's next code is NaN, e4m3fnuz has none).
    Integer and E2M1 targets clamp their codes, so a larger bound is meaningful there."""
    if value <= 0:
        raise StageError("dtype_max must be positive", "dtype_max")
    fmt = dtype(target)
    if fmt.name.startswith("fp8") and value > fmt.max:
        raise StageError(f"dtype_max={value:g} is above the largest {fmt.name} value "
                         f"({fmt.max:g})", "dtype_max")


def infer_results(st: Stage, args: dict, opts: dict) -> list:
    """``[(result_name, ValueType), ...]`` for resolved options; raises StageError."""
    for spec in st.operands:
        if not spec.optional and args.get(spec.name) is None:
            raise StageError(f"{st.name} is missing its operand {spec.name!r}", spec.name)
    results = st.infer(args, opts)
    if st.space == "row":
        _check_rows(st, args, dict(results))
    return results


def _check_rows(st: Stage, args: dict, results: dict) -> None:
    """A row stage runs one program row per leading index: its rows tensor (``Stage.rows``)
    needs a row dim before the last one, so a 1-D tensor is refused here."""
    t = args.get(st.rows) if st.rows in args else results.get(st.rows)
    if isinstance(t, TensorType) and t.rank < 2:
        arg = st.rows if st.rows in args else st.positional[0]
        what = "its input" if st.rows in args else "its result"
        raise StageError(f"{st.name} works row by row and {what} would be 1-D ({t}): give "
                         f"it at least [rows, N]", arg)


def remapped_operand(stage_name: str, present: set) -> Optional[str]:
    """The operand a call of ``stage_name`` reads at rows other than the ones its programs
    own (through an index it has: ``present`` names its given operands), or None. Such an
    input must come from memory: another program computed those rows."""
    for spec in STAGES[stage_name].operands:
        if spec.rows_via and spec.rows_via in present:
            return spec.name
    return None


def layout_operand(stage_name: str) -> Optional[OperandSpec]:
    """The operand a call of ``stage_name`` is a store layout of (shuffle's scale): when its
    ``made_by`` stage computed it in the same pipeline, the call joins that kernel (its
    bytes are stored once, in the laid-out order); given as a parameter, the call is a
    layout kernel of its own. None for other stages."""
    return next((o for o in STAGES[stage_name].operands if o.layout_of), None)


#: The name this function had while a layout operand had to be computed in its pipeline.
made_here = layout_operand
