"""Argument binding shared by the fused FP8 and MXFP4 wrappers: the norm inputs (``x``,
its weight and epsilon, the optional residual and second input) as pipeline arguments,
flags and dtype substitutions, with AITER-style errors."""
from __future__ import annotations

import math

import torch

from .. import _args as A

__all__ = ["Binding", "scale_layout"]


class Binding:
    """Accumulates one call's pipeline arguments (in parameter order), ``#if`` flags and
    ``$`` substitutions while the wrapper checks AITER's arguments."""

    def __init__(self, func: str):
        self.func = func
        self.args: list = []
        self.flags: set = set()
        self.subs: dict = {}

    def rows(self, name: str, t, sub: str, *, split: bool = False, m=None, n=None):
        """A ``[M, N]`` input (``[S, M, N]`` when ``split``): checked, its dtype bound to
        ``sub``, its last dim made contiguous. Returns the tensor as passed on."""
        dims = (3,) if split else (2,)
        A.tensor(self.func, name, t, dims=dims)
        self.subs[sub] = A.float_dsl(self.func, name, t)
        if m is not None:
            A.need(t.shape[-2] == m, self.func, f"{name} must have {m} rows like the first "
                   f"input, got shape {tuple(t.shape)}")
        if n is not None:
            A.need(t.shape[-1] == n, self.func, f"{name} must have {n} columns, got shape "
                   f"{tuple(t.shape)}")
        t = t if t.stride(-1) == 1 or t.shape[-1] <= 1 else t.contiguous()
        self.args.append(t)
        return t

    def vector(self, name: str, t, n: int, sub: str) -> None:
        """A norm weight ``[n]``."""
        A.tensor(self.func, name, t)
        A.need(t.numel() == n and t.shape[-1] == n, self.func, f"{name} must be [{n}], got "
               f"shape {tuple(t.shape)}")
        self.subs[sub] = A.float_dsl(self.func, name, t)
        self.args.append(t.reshape(n) if t.is_contiguous() else t.reshape(n).contiguous())

    def scalar(self, name: str, v) -> None:
        """A float scalar argument (an epsilon): a finite number, not None."""
        try:
            f = float(v)
        except (TypeError, ValueError):
            f = math.nan
        A.need(math.isfinite(f) and f >= 0, self.func,
               f"{name} must be a finite non-negative float, got {v!r}")
        self.args.append(f)

    def norm_input(self, x, w, eps, *, split: bool = False, prefix: str = "inp1"):
        """``x``, its weight and epsilon (AITER's ``inp1``, ``inp1_weight``,
        ``inp1_epsilon``); returns ``(M, N)``."""
        t = self.rows(prefix, x, "X", split=split)
        m, n = t.shape[-2], t.shape[-1]
        self.vector(f"{prefix}_weight", w, n, "W")
        self.scalar(f"{prefix}_epsilon", eps)
        return m, n

    def split_k(self, name: str, t) -> bool:
        """Whether ``t`` holds split-K partials ``[SPK, M, N]`` (``SPK > 1``, flag SPLIT)
        rather than rows ``[M, N]``."""
        A.tensor(self.func, name, t, dims=(2, 3))
        if t.dim() == 2:
            return False
        A.need(t.shape[0] > 1, self.func, f"the split-K dim of {name} (its dim 0) must be "
               f"larger than 1, got shape {tuple(t.shape)}")
        self.flag("SPLIT")
        return True

    def flag(self, name: str) -> None:
        self.flags.add(name)

    def run(self, template: str, pipe: str, kind: str) -> dict:
        """Call the pipeline; its outputs by return name."""
        from .._pipes import pipeline
        same = {f"arg{i}": a for i, a in enumerate(self.args) if isinstance(a, torch.Tensor)}
        A.same_device(self.func, **same)
        run = pipeline(template, pipe, kind, flags=frozenset(self.flags), **self.subs)
        return run(*self.args, _as_dict=True)


def scale_layout(s: torch.Tensor, transpose_scale: bool, strided: bool) -> torch.Tensor:
    """AITER's ``transpose_scale`` presentations of an ``[M, G]`` group scale: the same
    values stored column-major, shown as a contiguous ``[M, G]`` view of those bytes
    (default) or as the strided ``[M, G]`` view with strides ``(1, M)``
    (``is_x_scale_strided``)."""
    if not transpose_scale:
        return s
    col = s.t().contiguous()
    return col.t() if strided else col.view(s.shape)
