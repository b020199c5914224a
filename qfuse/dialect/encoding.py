"""How qfuse values, options and source positions are spelled in MLIR.

One place for every encoding the builder writes and the reader and the verifiers read:

* **Types.** A ``TensorType`` becomes ``tensor<...>`` of its dtype's ``.mlir`` spelling; a
  symbolic dim is dynamic (``?``), a constant dim static. A ``ScalarType`` is the bare
  element type (``f32``, ``i32``). MLIR forgets the dim *names*; the builder keeps them
  for parameters in the ``qf.dims`` argument attribute (``["M", 128]``).
* **Options** (compile-time stage choices) are op attributes: enum and dtype options a
  ``StringAttr`` (``"per_token"``, ``"fp8_e4m3fn"``: the DSL spelling), float options an
  ``f64`` ``FloatAttr`` (exact Python value), int options an ``i64`` ``IntegerAttr``, bool
  options an ``i1`` ``IntegerAttr`` (prints ``true``/``false``; ``dialects.ext`` cannot
  constrain ``BoolAttr``). An option whose name collides with an operand, a result or a
  member of ``OpView`` is stored as ``<name>_opt`` (today: ``cache_write``'s ``x``).
* **Locations.** Every op carries ``loc("file":line:col)`` from its DSL node; ops and
  constants that define named values wrap it in a name location,
  ``loc("y"("file":line:col))``, several results joined by commas (``"y,h"``). The
  reader uses the names to give values back their DSL names.
* **Function attributes.** ``qf.name`` (arg / result name), ``qf.dims`` (arg dims),
  ``qf.default`` (default of a scalar arg), ``qf.kernel`` (unit attribute of an
  outlined fused kernel: a private ``func.func`` called with ``func.call``), with
  ``qf.space`` (its iteration space) and ``qf.reason`` (why the kernel boundary before
  it exists).
* **Facts between kernels.** ``qf.scale_of = {x = 1 : i64, granularity = "per_tensor",
  dtype_max = 448.0 : f64}`` on a kernel argument: an earlier kernel computed this
  argument as the dynamic scale of the kernel's argument number ``x``
  (:class:`~qfuse.dialect.typed.ScaleOf`). ``qf-fuse`` writes it; backends read it.
"""
from __future__ import annotations

import re
import struct
from typing import Any, Callable, Optional

from ..errors import SourceLoc
from .mlir import ir
from .stages import OptionSpec, Stage, StageError
from .types import MLIR_TO_DTYPE, DType, Dim, ScalarType, TensorType, ValueType

__all__ = ["NAME_ATTR", "DIMS_ATTR", "DEFAULT_ATTR", "KERNEL_ATTR", "SPACE_ATTR", "REASON_ATTR",
           "SCALE_OF_ATTR", "scale_of_attr", "scale_of_value", "UnknownDim",
           "mlir_type", "element_dtype", "value_type", "dims_attr", "dims_from_attr",
           "attr_name", "option_attr", "option_value", "literal_attr", "literal_value",
           "default_attr", "default_value", "location", "source_loc", "location_names"]

NAME_ATTR = "qf.name"
DIMS_ATTR = "qf.dims"
DEFAULT_ATTR = "qf.default"
KERNEL_ATTR = "qf.kernel"
SPACE_ATTR = "qf.space"
REASON_ATTR = "qf.reason"
SCALE_OF_ATTR = "qf.scale_of"


# ------------------------------------------------------------------------- dims
class UnknownDim(Dim):
    """A dim whose size the verifier cannot know: equal to every dim.

    ``value`` is only for messages: ``"?"``, the ``qf.dims`` name of the dim (``"M"``), or
    an expression over unknown dims (``cdiv_dim`` and friends keep the class). Verifiers
    use it so that only provable mismatches (two different constants) are reported; it
    never leaves the verifier.
    """

    def __init__(self, value="?"):
        super().__init__(value)

    def __eq__(self, other):
        return isinstance(other, Dim)

    def __ne__(self, other):
        return not isinstance(other, Dim)

    __hash__ = object.__hash__


def _dim_text(d: Dim) -> str:
    v = d.value
    if isinstance(v, (int, str)):
        return str(v)
    op, a, b = v
    return f"{op}({_dim_text(a)},{_dim_text(b)})"


_DIM_TOKEN = re.compile(r"\s*(\w+|[(),])")


def _parse_dim(text: str) -> Dim:
    """Inverse of ``_dim_text``: ``M``, ``128`` or ``cdiv(N,32)`` (nested)."""
    tokens = _DIM_TOKEN.findall(text)

    def parse(i: int) -> tuple:
        tok, i = tokens[i], i + 1
        if i < len(tokens) and tokens[i] == "(":
            a, i = parse(i + 1)                 # after "("
            b, i = parse(i + 1)                 # after ","
            return Dim((tok, a, b)), i + 1      # after ")"
        return (Dim(int(tok)) if tok.lstrip("-").isdigit() else Dim(tok)), i

    return parse(0)[0]


def dims_attr(shape: tuple) -> ir.ArrayAttr:
    """``qf.dims``: an ``i64`` per constant dim, a string per symbolic dim."""
    i64 = ir.IntegerType.get_signless(64)
    return ir.ArrayAttr.get([ir.IntegerAttr.get(i64, d.value) if d.is_const
                             else ir.StringAttr.get(_dim_text(d)) for d in shape])


def dims_from_attr(attr) -> tuple:
    """Inverse of :func:`dims_attr`; StageError for anything but integers and strings."""
    out = []
    for a in attr:
        if isinstance(a, ir.IntegerAttr):
            out.append(Dim(a.value))
        elif isinstance(a, ir.StringAttr):
            out.append(_parse_dim(a.value))
        else:
            raise StageError(f"{DIMS_ATTR} holds integers and strings, got {a}")
    return tuple(out)


# ------------------------------------------------------------------------ types
def mlir_type(vt: ValueType) -> ir.Type:
    """The MLIR type of a qfuse value type (needs an active Context)."""
    elem = ir.Type.parse(vt.dtype.mlir)
    if isinstance(vt, ScalarType):
        return elem
    dyn = ir.ShapedType.get_dynamic_size()
    return ir.RankedTensorType.get([d.value if d.is_const else dyn for d in vt.shape], elem)


def element_dtype(t: ir.Type, arg: Optional[str] = None) -> DType:
    """The qfuse dtype of an MLIR element type; StageError when qfuse has none."""
    found = MLIR_TO_DTYPE.get(str(t))
    if found is None:
        raise StageError(f"element type {t} is not a qfuse dtype", arg)
    return found


def value_type(t: ir.Type, dims: Optional[tuple] = None,
               fresh: Callable[[], Dim] = UnknownDim, arg: Optional[str] = None) -> ValueType:
    """A qfuse type for an MLIR type. ``dims`` (from ``qf.dims``) names the dims when its
    length matches; otherwise static dims become constants and ``?`` becomes ``fresh()``."""
    if isinstance(t, ir.RankedTensorType):
        shape = t.shape
        if dims is not None and len(dims) == len(shape):
            out = tuple(dims)
        else:
            out = tuple(Dim(n) if not t.is_dynamic_dim(i) else fresh() for i, n in enumerate(shape))
        return TensorType(element_dtype(t.element_type, arg), out)
    if isinstance(t, ir.ShapedType):
        raise StageError(f"{t} is not a ranked tensor", arg)
    return ScalarType(element_dtype(t, arg))


# ---------------------------------------------------------------------- options
_RESERVED = {n for n in dir(ir.OpView) if not n.startswith("_")} | {"loc", "ip", "self"}


def attr_name(st: Stage, option: str) -> str:
    """The attribute that holds ``option`` on ``qf.<stage>`` (see the module docstring)."""
    taken = {o.name for o in st.operands} | {r.rstrip("?") for r in st.results} | _RESERVED
    return f"{option}_opt" if option in taken else option


def option_attr(spec: OptionSpec, value: Any) -> ir.Attribute:
    """Encode one resolved option value."""
    if spec.type in ("enum", "dtype", "name"):
        return ir.StringAttr.get(str(value))
    if spec.type == "float":
        return ir.FloatAttr.get(ir.F64Type.get(), float(value))
    if spec.type == "int":
        return ir.IntegerAttr.get(ir.IntegerType.get_signless(64), int(value))
    if spec.type == "bool":
        return ir.IntegerAttr.get(ir.IntegerType.get_signless(1), int(bool(value)))
    raise AssertionError(spec.type)


def option_value(spec: OptionSpec, attr: ir.Attribute) -> Any:
    """Decode one option attribute to its Python value; StageError on a wrong kind."""
    t = spec.type
    if t in ("enum", "dtype", "name") and isinstance(attr, ir.StringAttr):
        return attr.value
    if t == "float" and isinstance(attr, ir.FloatAttr):
        return attr.value
    if isinstance(attr, ir.BoolAttr) and t == "bool":
        return attr.value
    if isinstance(attr, ir.IntegerAttr):
        width = ir.IntegerType(attr.type).width
        if t == "bool" and width == 1:
            return bool(attr.value)
        if t == "int" and width > 1:
            return attr.value
    want = {"enum": "a string", "dtype": "a string", "name": "a string", "float": "a float (f64)",
            "int": "an integer (i64)", "bool": "an i1 (true/false)"}[t]
    raise StageError(f"option {spec.name} must be {want}, got {attr}", spec.name)


# ------------------------------------------------------------------------- facts
def scale_of_attr(x_arg: int, granularity: str, dtype_max: float) -> ir.DictAttr:
    """``qf.scale_of``: the argument holds the dynamic scale of argument ``x_arg``."""
    return ir.DictAttr.get({
        "x": ir.IntegerAttr.get(ir.IntegerType.get_signless(64), x_arg),
        "granularity": ir.StringAttr.get(granularity),
        "dtype_max": ir.FloatAttr.get(ir.F64Type.get(), float(dtype_max))})


def scale_of_value(attr) -> tuple:
    """Inverse of :func:`scale_of_attr`: ``(x argument number, granularity, dtype_max)``;
    StageError for any other shape."""
    try:
        d = ir.DictAttr(attr)
        x, gran, dmax = d["x"], d["granularity"], d["dtype_max"]
        if isinstance(x, ir.IntegerAttr) and isinstance(gran, ir.StringAttr) \
                and isinstance(dmax, ir.FloatAttr):
            return x.value, gran.value, dmax.value
    except (ValueError, KeyError, TypeError):
        pass
    raise StageError(f"{SCALE_OF_ATTR} is {{x = <argument number>, granularity = <string>, "
                     f"dtype_max = <f64>}}, got {attr}")


# ----------------------------------------------------------------------- scalars
def literal_attr(dt: DType, literal) -> ir.Attribute:
    """The ``arith.constant`` value of a DSL literal of scalar dtype ``dt``."""
    t = ir.Type.parse(dt.mlir)
    if isinstance(t, ir.FloatType):
        return ir.FloatAttr.get(t, float(literal))
    return ir.IntegerAttr.get(t, int(literal))


def _shortest_f32(x: float) -> float:
    """The shortest decimal that rounds to the same f32 (``1e-06`` for f32(1e-6))."""
    try:
        bits = struct.pack("f", x)
        for digits in range(1, 18):
            y = float(f"{x:.{digits}g}")
            if struct.pack("f", y) == bits:
                return y
    except (OverflowError, struct.error):
        pass
    return x


def literal_value(attr: ir.Attribute):
    """Python literal of an ``arith.constant`` value (f32 constants: shortest decimal)."""
    if isinstance(attr, ir.FloatAttr):
        return _shortest_f32(attr.value) if isinstance(attr.type, ir.F32Type) else attr.value
    if isinstance(attr, ir.IntegerAttr):
        return attr.value
    raise StageError(f"unsupported constant {attr}")


def default_attr(value) -> ir.Attribute:
    """``qf.default``: bool -> ``true``, int -> ``i64``, float -> ``f64`` (exact)."""
    if isinstance(value, bool):
        return ir.BoolAttr.get(value)
    if isinstance(value, int):
        return ir.IntegerAttr.get(ir.IntegerType.get_signless(64), value)
    return ir.FloatAttr.get(ir.F64Type.get(), float(value))


def default_value(attr: ir.Attribute):
    """Inverse of :func:`default_attr`."""
    return attr.value


# --------------------------------------------------------------------- locations
def location(loc: Optional[SourceLoc], names: Optional[list] = None) -> ir.Location:
    """``loc("file":line:col)``, wrapped in a name location when ``names`` is given."""
    base = ir.Location.file(loc.file, loc.line, loc.col) if loc else ir.Location.unknown()
    if names:
        return ir.Location.name(",".join(names), childLoc=base)
    return base


_FILE_LOC = re.compile(r'"((?:[^"\\]|\\.)*)":(\d+):(\d+)')


def source_loc(loc) -> Optional[SourceLoc]:
    """The first file position inside an MLIR location (name, fused and call-site
    locations are searched), or None for ``loc(unknown)``."""
    if isinstance(loc, ir.FileLineColLoc):
        return SourceLoc(loc.filename, loc.start_line, loc.start_col)
    if isinstance(loc, ir.NameLoc):
        return source_loc(loc.child_loc)
    if isinstance(loc, ir.FusedLoc):
        return next(filter(None, (source_loc(x) for x in loc.locations)), None)
    if isinstance(loc, ir.CallSiteLoc):
        return source_loc(loc.callee) or source_loc(loc.caller)
    m = _FILE_LOC.search(str(loc))          # any other location kind: read its text
    if m:
        file = m.group(1).replace('\\"', '"').replace("\\\\", "\\")
        return SourceLoc(file, int(m.group(2)), int(m.group(3)))
    return None


def location_names(loc) -> list:
    """Value names stored by :func:`location` (``[]`` when the location has none)."""
    if isinstance(loc, ir.NameLoc):
        return loc.name_str.split(",")
    if isinstance(loc, ir.FusedLoc):          # e.g. constants merged by canonicalize/cse
        return next(filter(None, (location_names(x) for x in loc.locations)), [])
    return []
