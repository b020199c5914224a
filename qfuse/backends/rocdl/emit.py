"""``Emitter``: writes MLIR text in upstream dialects, one SSA value per call.

The ROCDL backend renders each kernel function of the fused module as MLIR text
(``arith`` / ``math`` / ``memref`` / ``scf``, then ``gpu``), which the MLIR bindings
parse, verify and lower. Text keeps the lowering readable (``qfuse ir --emit loops``
prints exactly this) and lets one renderer serve the CPU loops and the GPU mapping.

Constants go to a prologue at the top of the function (they dominate every region);
everything else is written at the current indentation, in order.
"""
from __future__ import annotations

import struct
from contextlib import contextmanager
from typing import Iterator

__all__ = ["Emitter", "f32_bits", "f32_hex"]


def f32_bits(value: float) -> int:
    """The fp32 bit pattern of ``value`` rounded to fp32 (RNE), as an unsigned int."""
    return struct.unpack("<I", struct.pack("<f", float(value)))[0]


def f32_hex(value: float) -> str:
    """An fp32 literal by its bits (``0x3F800000``): exact, NaN and inf included."""
    return f"0x{f32_bits(value):08X}"


class Emitter:
    """Collects the lines of one function body."""

    def __init__(self, indent: int = 2):
        self.lines: list = []
        self.prologue: list = []
        self._consts: dict = {}
        self._n = 0
        self._indent = indent

    # ----------------------------------------------------------------- plumbing
    def fresh(self, hint: str = "v") -> str:
        self._n += 1
        return f"%{hint}{self._n}"

    def line(self, text: str) -> None:
        self.lines.append("  " * self._indent + text)

    def op(self, text: str, hint: str = "v") -> str:
        """``%name = text``; returns the name."""
        name = self.fresh(hint)
        self.line(f"{name} = {text}")
        return name

    @contextmanager
    def block(self, head: str, tail: str = "}") -> Iterator[None]:
        """``head {`` ... ``tail``, the body indented."""
        self.line(head)
        self._indent += 1
        try:
            yield
        finally:
            self._indent -= 1
            self.line(tail)

    def if_else(self, cond: str, then, default, type_: str) -> str:
        """``scf.if cond -> type_``: ``then()`` (which writes the ops of the taken branch and
        returns its value) or ``default`` (a value, or a function writing the other
        branch). What a branch computes stays inside its region: a guarded load (an index
        read from data) touches memory only when ``cond`` holds."""
        res = self.fresh("g")
        self.line(f"{res} = scf.if {cond} -> ({type_}) {{")
        self._indent += 1
        v = then()
        self.line(f"scf.yield {v} : {type_}")
        self._indent -= 1
        self.line("} else {")
        self._indent += 1
        other = default() if callable(default) else default
        self.line(f"scf.yield {other} : {type_}")
        self._indent -= 1
        self.line("}")
        return res

    def const(self, value, type_: str) -> str:
        """A constant of ``type_`` (``index``, ``i32``, ``i8``, ``f32``), defined once in
        the prologue; floats are written by their fp32 bits."""
        key = (type_, f32_bits(value) if type_ == "f32" else int(value))
        name = self._consts.get(key)
        if name is None:
            name = self._consts[key] = self.fresh("c")
            lit = f32_hex(value) if type_ == "f32" else str(int(value))
            self.prologue.append(f"{name} = arith.constant {lit} : {type_}")
        return name

    def text(self, indent: int) -> str:
        pad = "  " * indent
        return "\n".join([pad + p for p in self.prologue] + self.lines)

    # -------------------------------------------------------------- shorthands
    def idx(self, n: int) -> str:
        return self.const(n, "index")

    def i32(self, n: int) -> str:
        """An i32 constant; ``n`` may be given unsigned (``0xFF800000``)."""
        n &= 0xFFFFFFFF
        return self.const(n - (1 << 32) if n >= 1 << 31 else n, "i32")

    def f32(self, x: float) -> str:
        return self.const(x, "f32")

    def bin(self, opname: str, a: str, b: str, type_: str) -> str:
        return self.op(f"arith.{opname} {a}, {b} : {type_}")

    def cmpi(self, pred: str, a: str, b: str, type_: str = "i32") -> str:
        return self.op(f"arith.cmpi {pred}, {a}, {b} : {type_}", "p")

    def cmpf(self, pred: str, a: str, b: str) -> str:
        return self.op(f"arith.cmpf {pred}, {a}, {b} : f32", "p")

    def select(self, cond: str, a: str, b: str, type_: str) -> str:
        return self.op(f"arith.select {cond}, {a}, {b} : {type_}")

    def bitcast(self, v: str, src: str, dst: str) -> str:
        return self.op(f"arith.bitcast {v} : {src} to {dst}")

    def cast(self, opname: str, v: str, src: str, dst: str) -> str:
        return self.op(f"arith.{opname} {v} : {src} to {dst}")
