"""Print, parse and verify ``qf`` modules, with MLIR diagnostics turned into QfuseErrors.

``qf`` ops print in MLIR's generic form (``"qf.norm"(%0, ...) {...} : (...) -> ...``),
which parses back unchanged. With ``debug_info=True`` every location is printed, so a
module read back from text still reports errors at DSL ``file:line:col``.
"""
from __future__ import annotations

from typing import Optional

from ..errors import QfuseError, SourceLoc
from .encoding import source_loc
from .mlir import MLIRError, ir

__all__ = ["IRError", "print_module", "parse_module", "verify", "error_from_mlir"]


class IRError(QfuseError):
    """MLIR text that does not parse, or a ``qf`` module that does not verify."""


def print_module(module: ir.Module, debug_info: bool = False) -> str:
    """The module's text; ``debug_info`` adds ``loc(...)`` to every op and argument."""
    return module.operation.get_asm(enable_debug_info=debug_info)


def parse_module(text: str, ctx: Optional[ir.Context] = None,
                 source: str = "<mlir>") -> ir.Module:
    """Parse (and verify) MLIR text. ``ctx`` needs ``qf`` loaded; a fresh one is made when
    None. Errors become :class:`IRError` at the DSL position of the op at fault, or at
    ``source:line:col`` of the text for a syntax error."""
    if ctx is None:
        from .ops import make_context
        ctx = make_context()
    from .ops import shared_inference
    with ctx, shared_inference():
        try:
            return ir.Module.parse(text)
        except MLIRError as e:
            raise error_from_mlir(e, source) from None


def verify(module: ir.Module) -> None:
    """Run every verifier (``qf`` ops included); raise :class:`IRError` on failure.

    The ``qf`` verifiers share one memo of inferred types, so this is linear in the
    number of ops."""
    from .ops import shared_inference
    with shared_inference():
        try:
            module.operation.verify()
        except MLIRError as e:
            raise error_from_mlir(e) from None


def error_from_mlir(err: MLIRError, source: str = "<mlir>") -> IRError:
    """The first error diagnostic of ``err`` as an IRError (its notes and any further
    errors are kept in the hint). A location in the parsed text itself (``"-"``) is
    reported under ``source``."""
    diags = list(err.error_diagnostics)
    if not diags:
        return IRError(f"MLIR error: {err.message}")
    first = diags[0]
    loc = source_loc(first.location)
    if loc is not None and loc.file == "-":
        loc = SourceLoc(source, loc.line, loc.col)
    extra = [n.message for n in first.notes] + [
        f"{source_loc(d.location) or 'unknown'}: {d.message}" for d in diags[1:]]
    return IRError(first.message, loc, hint="; ".join(extra) or None)
