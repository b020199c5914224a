"""The values a kernel lowering computes, and the scopes it computes them in.

A :class:`Val` is known at one level: ``scalar`` (an argument or a constant), ``row``
(once per row), ``group`` (once per 1xK group of a row) or ``elem`` (once per column). A
:class:`Scope` is a place in the loop nest (its row, group and column indices) with the
values already computed there; nested scopes see their parents' values, siblings (the
next column of a pair) do not see each other's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

__all__ = ["Val", "Scope"]


@dataclass(eq=False)
class Val:
    """A value of the kernel at one level (see the module docstring). ``get(scope)``
    writes the ops that compute it in ``scope`` and returns the SSA name (``type``: f32,
    or i32 for codes and bytes). ``pair``: a packed byte reads columns c and c + 1."""
    level: str
    type: str
    get: Callable
    pair: bool = False


@dataclass(eq=False)
class Scope:
    """Where values are being computed: the row, group and column indices known there,
    and the values already computed there or in an enclosing scope."""
    row: Optional[str] = None
    group: Optional[str] = None
    col: Optional[str] = None
    parent: Optional["Scope"] = None
    memo: dict = field(default_factory=dict)

    def child(self, **kw) -> "Scope":
        base = dict(row=self.row, group=self.group, col=self.col)
        base.update(kw)
        return Scope(parent=self, **base)

    def sibling(self, **kw) -> "Scope":
        """Another column (or group) under the same parent: nothing computed for this
        scope's own index carries over."""
        base = dict(row=self.row, group=self.group, col=self.col)
        base.update(kw)
        return Scope(parent=self.parent, **base)

    def lookup(self, val: Val) -> Optional[str]:
        s = self
        while s is not None:
            if id(val) in s.memo:
                return s.memo[id(val)]
            s = s.parent
        return None


