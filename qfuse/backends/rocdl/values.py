"""The values a kernel lowering computes, and the scopes it computes them in.

A :class:`Val` is known at one level: ``scalar`` (an argument or a constant), ``row``
(once per row), ``group`` (once per 1xK group of a row) or ``elem`` (once per column). A
:class:`Scope` is a place in the loop nest (its leading indices, group and column) with
the values already computed there; nested scopes see their parents' values, siblings
(the next column of a pair, the partner column of an act_mul or a rope) do not see each
other's. A row is one index per leading dim of the kernel's domain (``lead``: ``(m,)``
for ``[M, N]``, ``(t, h)`` for ``[T, H, D]``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

__all__ = ["Val", "Scope"]


@dataclass(eq=False)
class Val:
    """A value of the kernel at one level (see the module docstring). ``get(scope)``
    writes the ops that compute it in ``scope`` and returns the SSA name (``type``: f32,
    or i32 for codes and bytes). ``pair``: a packed byte reads columns c and c + 1.
    ``width``: the SSA name of the column count a value is defined over (the kernel's
    columns when it was made). ``store``: a store rule of its own (``fn(scope, out
    index)``, called where a value of its level is stored: the shuffled scale), None for
    the plain one."""
    level: str
    type: str
    get: Callable
    pair: bool = False
    width: Optional[str] = None
    store: Optional[Callable] = None


@dataclass(eq=False)
class Scope:
    """Where values are being computed: the leading indices (``lead``), group and column
    known there, and the values already computed there or in an enclosing scope."""
    lead: tuple = ()
    group: Optional[str] = None
    col: Optional[str] = None
    parent: Optional["Scope"] = None
    memo: dict = field(default_factory=dict)

    @property
    def row(self) -> Optional[str]:
        """The first leading index (the row of a ``[rows, cols]`` kernel), None outside."""
        return self.lead[0] if self.lead else None

    def suffix(self, n: int) -> list:
        """The last ``n`` leading indices (a tensor of fewer dims broadcasts, numpy's rule)."""
        if n > len(self.lead):
            raise AssertionError(f"{n} leading indices asked of {self.lead}")
        return list(self.lead[len(self.lead) - n:]) if n else []

    def child(self, **kw) -> "Scope":
        base = dict(lead=self.lead, group=self.group, col=self.col)
        base.update(kw)
        return Scope(parent=self, **base)

    def sibling(self, **kw) -> "Scope":
        """Another column (or group) under the same parent: nothing computed for this
        scope's own index carries over."""
        base = dict(lead=self.lead, group=self.group, col=self.col)
        base.update(kw)
        return Scope(parent=self.parent, **base)

    def elsewhere(self, **kw) -> "Scope":
        """Other leading indices (a row read through an index): nothing carries over."""
        base = dict(lead=self.lead, group=self.group, col=self.col)
        base.update(kw)
        return Scope(**base)

    def lookup(self, val: Val) -> Optional[str]:
        s = self
        while s is not None:
            if id(val) in s.memo:
                return s.memo[id(val)]
            s = s.parent
        return None


