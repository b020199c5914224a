"""Element types and symbolic shapes, independent of MLIR.

This module is the one table that maps qfuse dtype names (as written in the DSL) to
MLIR element types, torch storage dtypes and numeric limits. The DSL checker, the MLIR
builder, the reference backend and the runtime all read it; it imports nothing heavy.

Storage conventions (what a torch tensor of that qfuse dtype holds):

* ``fp8_e4m3fn`` / ``fp8_e4m3fnuz``: ``torch.float8_e4m3fn`` / ``torch.float8_e4m3fnuz``.
* ``fp4_e2m1``: unpacked E2M1 codes, one per ``uint8`` (0..15, bit 3 = sign).
* ``int4``: unpacked signed 4-bit values, one per ``int8`` (-8..7).
* ``e8m0``: E8M0 scale bytes in ``uint8`` (value ``2**(b-127)``, 0xFF = NaN); an input may
  also be ``torch.float8_e8m0fnu`` (AITER's ``dtypes.fp8_e8m0``), the same bytes
  (``DType.also``: viewed as ``uint8`` when bound, :meth:`DType.storage`).
* packed outputs (``pack``) are ``u8``.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Optional, Union

__all__ = ["DType", "DTYPES", "dtype", "Dim", "Shape", "TensorType", "ScalarType",
           "ValueType", "cdiv_dim", "mul_dim", "div_dim", "round_up_dim", "F32_MAX",
           "I64_MIN", "I64_MAX", "fits_f32"]

#: Largest finite f32: stage arithmetic is fp32, so constants and float options fit it.
F32_MAX = 3.4028234663852886e38
#: Integer options and literals are 64-bit (MLIR attributes and torch scalars are).
I64_MIN, I64_MAX = -2**63, 2**63 - 1


def fits_f32(value: float) -> bool:
    """Finite and inside the f32 range after rounding (what the fp32 math will see)."""
    try:
        rounded = struct.unpack("f", struct.pack("f", value))[0]
    except (OverflowError, struct.error):     # far out of range: pack refuses it
        return False
    return math.isfinite(rounded)             # just out of range: pack gives inf


@dataclass(frozen=True)
class DType:
    name: str            # DSL spelling
    mlir: str            # MLIR element type spelling
    torch: str           # attribute of the torch module used for storage
    bits: int            # logical bits per element
    kind: str            # "float" | "int" | "quant" (fp8/fp4/int4 codes) | "scale" (e8m0)
    max: Optional[float] = None   # largest finite magnitude (quant targets)
    also: tuple = ()     # other torch dtypes (attribute names) an input may have: same bytes

    @property
    def is_float(self) -> bool:
        return self.kind == "float"

    def torch_dtype(self):
        import torch
        return getattr(torch, self.torch)

    def accepts(self, torch_dtype) -> bool:
        """Whether an input tensor of ``torch_dtype`` holds values of this dtype: its
        storage dtype, or one of ``also`` (where this torch has it)."""
        import torch
        return torch_dtype == self.torch_dtype() or any(
            getattr(torch, name, None) == torch_dtype for name in self.also)

    def storage(self, t):
        """``t`` (an accepted input) as its storage dtype: a view, no copy."""
        want = self.torch_dtype()
        return t if t.dtype == want else t.view(want)

    def torch_names(self) -> str:
        """The torch dtypes an input may have, for messages (``uint8 or float8_e8m0fnu``)."""
        return " or ".join((self.torch,) + self.also)

    def __str__(self) -> str:
        return self.name


DTYPES: dict[str, DType] = {d.name: d for d in [
    DType("bf16", "bf16", "bfloat16", 16, "float"),
    DType("f16", "f16", "float16", 16, "float"),
    DType("f32", "f32", "float32", 32, "float"),
    DType("i32", "i32", "int32", 32, "int"),
    DType("i64", "i64", "int64", 64, "int"),
    DType("u8", "ui8", "uint8", 8, "int"),
    DType("i8", "i8", "int8", 8, "quant", 127.0),
    DType("fp8_e4m3fn", "f8E4M3FN", "float8_e4m3fn", 8, "quant", 448.0),
    DType("fp8_e4m3fnuz", "f8E4M3FNUZ", "float8_e4m3fnuz", 8, "quant", 240.0),
    DType("fp4_e2m1", "f4E2M1FN", "uint8", 4, "quant", 6.0),
    DType("int4", "i4", "int8", 4, "quant", 7.0),
    DType("e8m0", "f8E8M0FNU", "uint8", 8, "scale", also=("float8_e8m0fnu",)),
]}

# Accepted alternative spellings in the DSL.
DTYPE_ALIASES = {"int8": "i8", "float32": "f32", "bfloat16": "bf16", "float16": "f16",
                 "fp4": "fp4_e2m1", "uint8": "u8", "int32": "i32", "int64": "i64"}

MLIR_TO_DTYPE = {d.mlir: d for d in DTYPES.values()}


def dtype(name: Union[str, DType]) -> DType:
    """Look up a dtype by DSL name, alias or MLIR spelling."""
    if isinstance(name, DType):
        return name
    key = DTYPE_ALIASES.get(name, name)
    if key in DTYPES:
        return DTYPES[key]
    if key in MLIR_TO_DTYPE:
        return MLIR_TO_DTYPE[key]
    raise KeyError(name)


@dataclass(frozen=True)
class Dim:
    """A tensor dimension: a constant, a symbol (``M``), or ``op(a, b)`` of two dims.

    ``op`` is one of ``cdiv`` (ceil division), ``mul``, ``div`` (exact division) or
    ``round_up`` (``cdiv(a, b) * b``). ``eval`` resolves it against symbol bindings.
    """

    value: Union[int, str, tuple]

    _INFIX = {"mul": "*", "div": "/"}

    @staticmethod
    def of(v: Union["Dim", int, str]) -> "Dim":
        return v if isinstance(v, Dim) else Dim(v)

    @property
    def is_const(self) -> bool:
        return isinstance(self.value, int)

    @property
    def is_symbol(self) -> bool:
        return isinstance(self.value, str)

    def eval(self, env: dict[str, int]) -> int:
        v = self.value
        if isinstance(v, int):
            return v
        if isinstance(v, str):
            return env[v]
        op, a, b = v
        a, b = a.eval(env), b.eval(env)
        if op == "cdiv":
            return -(-a // b)
        if op == "mul":
            return a * b
        if op == "div":
            return a // b
        if op == "round_up":
            return -(-a // b) * b
        raise ValueError(op)

    def symbols(self) -> set[str]:
        v = self.value
        if isinstance(v, int):
            return set()
        if isinstance(v, str):
            return {v}
        return v[1].symbols() | v[2].symbols()

    def __str__(self) -> str:
        v = self.value
        if isinstance(v, (int, str)):
            return str(v)
        op, a, b = v
        if op in self._INFIX:     # one string per level: a dict of every spelling was 3**depth
            return f"{a}{self._INFIX[op]}{b}"
        return f"{op}({a}, {b})"


def _fold(op: str, a: Dim, b: Dim) -> Dim:
    if a.is_const and b.is_const:
        return Dim(Dim((op, a, b)).eval({}))
    # A Dim subclass operand (the verifier's UnknownDim) gives its class to the result.
    cls = type(a) if type(a) is not Dim else type(b)
    return cls((op, a, b))


def cdiv_dim(a, b) -> Dim:
    return _fold("cdiv", Dim.of(a), Dim.of(b))


def mul_dim(a, b) -> Dim:
    return _fold("mul", Dim.of(a), Dim.of(b))


def div_dim(a, b) -> Dim:
    return _fold("div", Dim.of(a), Dim.of(b))


def round_up_dim(a, b) -> Dim:
    return _fold("round_up", Dim.of(a), Dim.of(b))


Shape = tuple  # tuple[Dim, ...]


@dataclass(frozen=True)
class TensorType:
    dtype: DType
    shape: tuple  # of Dim

    @property
    def rank(self) -> int:
        return len(self.shape)

    def __str__(self) -> str:
        return f"{self.dtype.name}[{', '.join(str(d) for d in self.shape)}]"


@dataclass(frozen=True)
class ScalarType:
    dtype: DType

    def __str__(self) -> str:
        return self.dtype.name


ValueType = Union[TensorType, ScalarType]
