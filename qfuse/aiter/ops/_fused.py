"""Argument binding shared by the fused, norm and cache wrappers: AITER's arguments
checked (AITER-style errors) and bound to the pipeline's parameters by name, with the
``$`` substitutions (dtypes) that pick the template rendering."""
from __future__ import annotations

import math

import torch

from ...dialect.options import Act
from .. import _args as A
from .._errors import AiterArgumentError

__all__ = ["Binding", "scale_layout", "into"]


class Binding:
    """One call's pipeline arguments (by parameter name; flags are bools) and ``$``
    substitutions, accumulated while the wrapper checks AITER's arguments."""

    def __init__(self, func: str):
        self.func = func
        self.kw: dict = {}
        self.subs: dict = {}

    def rows(self, name: str, t, sub: str, param: str, *, split: bool = False, m=None,
             n=None, rank: int = 2, as_splits: bool = False):
        """A ``[M, N]`` input (``[S, M, N]`` when ``split``; ``rank`` dims otherwise):
        checked, its dtype bound to ``sub``, its last dim made contiguous, passed as
        ``param`` (``as_splits``: a 2-D input as one split ``[1, M, N]``)."""
        A.tensor(self.func, name, t, dims=(3,) if split else (rank,))
        self.subs[sub] = A.float_dsl(self.func, name, t)
        if m is not None:
            A.need(t.shape[-2] == m, self.func, f"{name} must have {m} rows like the first "
                   f"input, got shape {tuple(t.shape)}")
        if n is not None:
            A.need(t.shape[-1] == n, self.func, f"{name} must have {n} columns, got shape "
                   f"{tuple(t.shape)}")
        t = t if t.stride(-1) == 1 or t.shape[-1] <= 1 else t.contiguous()
        self.kw[param] = t.unsqueeze(0) if as_splits and not split else t
        return t

    def vector(self, name: str, t, n: int, sub: str, param: str) -> None:
        """A vector ``[n]`` (a norm weight, a bias, a channel scale)."""
        A.tensor(self.func, name, t)
        A.need(t.numel() == n and t.shape[-1] == n, self.func, f"{name} must be [{n}], got "
               f"shape {tuple(t.shape)}")
        self.subs[sub] = A.float_dsl(self.func, name, t)
        self.kw[param] = t.reshape(n) if t.is_contiguous() else t.reshape(n).contiguous()

    def scalar(self, name: str, v, param: str) -> None:
        """A float scalar argument (an epsilon): a finite number, not None."""
        try:
            f = float(v)
        except (TypeError, ValueError):
            f = math.nan
        A.need(math.isfinite(f) and f >= 0, self.func,
               f"{name} must be a finite non-negative float, got {v!r}")
        self.kw[param] = f

    def norm_input(self, x, w, eps, *, split: bool = False, prefix: str = "inp1",
                   as_splits: bool = False):
        """``x``, its weight and epsilon (AITER's ``inp1``, ``inp1_weight``,
        ``inp1_epsilon``) as ``x``, ``w``, ``eps``; returns ``(M, N)``."""
        t = self.rows(prefix, x, "X", "x", split=split, as_splits=as_splits)
        m, n = t.shape[-2], t.shape[-1]
        self.vector(f"{prefix}_weight", w, n, "W", "w")
        self.scalar(f"{prefix}_epsilon", eps, "eps")
        return m, n

    def split_k(self, name: str, t) -> bool:
        """Whether ``t`` holds split-K partials ``[SPK, M, N]`` (``SPK > 1``) rather than
        rows ``[M, N]``."""
        A.tensor(self.func, name, t, dims=(2, 3))
        if t.dim() == 2:
            return False
        A.need(t.shape[0] > 1, self.func, f"the split-K dim of {name} (its dim 0) must be "
               f"larger than 1, got shape {tuple(t.shape)}")
        return True

    def residual(self, res1, inp1, m: int, n: int) -> None:
        """AITER's ``res1`` (added to ``inp1`` before the norm), as ``res``."""
        if res1 is None:
            return
        A.tensor(self.func, "res1", res1)
        A.need(res1.dtype == inp1.dtype, self.func, f"res1 must have inp1's dtype "
               f"{inp1.dtype}, got {res1.dtype}")
        self.rows("res1", res1, "X", "res", m=m, n=n)

    def second_input(self, inp2, w2, eps2, m: int, *, split: bool = False,
                     names=("inp2", "inp2_weight", "inp2_epsilon"), spk=None,
                     as_splits: bool = False) -> None:
        """AITER's second input, RMS-normalised alone (``x2``, ``w2``, ``eps2``):
        ``[M, N2]``, or ``[SPK, M, N2]`` partials when the first input is split-K."""
        if inp2 is None:
            return
        if split:
            A.tensor(self.func, names[0], inp2, dims=(3,))
            A.need(inp2.shape[0] == spk, self.func, f"{names[0]} must be [{spk}, {m}, N2] "
                   f"like the first input, got shape {tuple(inp2.shape)}")
        n2 = self.rows(names[0], inp2, "X2", "x2", split=split, m=m,
                       as_splits=as_splits).shape[-1]
        self.vector(names[1], w2, n2, "W2", "w2")
        self.scalar(names[2], eps2, "eps2")

    def summed_input(self, name: str, t, spk: int, m: int) -> None:
        """A ``[SPK, M, N3]`` input that is only summed over the splits (``x3``)."""
        if t is None:
            return
        A.tensor(self.func, name, t, dims=(3,))
        A.need(t.shape[0] == spk and t.shape[1] == m, self.func, f"{name} must be [{spk}, "
               f"{m}, N3], got shape {tuple(t.shape)}")
        self.rows(name, t, "X3", "x3", split=True)

    def out_dtype(self, name: str, dt) -> None:
        """The dtype of the unquantised outputs (``OD``): bf16, f16 or f32."""
        A.need(dt in A.FLOAT_DSL, self.func, f"{name} must be torch.bfloat16, torch.float16 "
               f"or torch.float32, got {dt}")
        self.subs["OD"] = A.FLOAT_DSL[dt]

    def activation(self, activation) -> None:
        """``ACT``: silu, gelu or gelu_tanh."""
        try:
            self.subs["ACT"] = str(Act(activation))
        except ValueError:
            raise AiterArgumentError(f"{self.func}: activation must be one of "
                                     f"{', '.join(Act)}, got {activation!r}") from None

    def flag(self, param: str, value=True) -> None:
        """A flag parameter of the pipeline (an optional output, a numerics choice)."""
        self.kw[param] = bool(value)

    def run(self, template: str, pipe: str, kind: str) -> dict:
        """Call the pipeline; every output of its definition by return name (None where
        this call's variant has none)."""
        from .._pipes import pipeline
        A.same_device(self.func, **{k: v for k, v in self.kw.items()
                                    if isinstance(v, torch.Tensor)})
        return pipeline(template, pipe, kind, **self.subs)(**self.kw, _as_dict=True)


def into(func: str, got, out):
    """``got`` copied into the caller's ``out`` when one was given (AITER's ``out3``)."""
    if got is None or out is None:
        return got
    A.tensor(func, "out3", out)
    A.need(out.shape == got.shape, func, f"out3 must be {list(got.shape)}, got shape "
           f"{tuple(out.shape)}")
    out.copy_(got)
    return out


def scale_layout(s: torch.Tensor, transpose_scale: bool, strided: bool) -> torch.Tensor:
    """AITER's ``transpose_scale`` presentations of an ``[M, G]`` group scale: the same
    values stored column-major, shown as a contiguous ``[M, G]`` view of those bytes
    (default) or as the strided ``[M, G]`` view with strides ``(1, M)``
    (``is_x_scale_strided``)."""
    if not transpose_scale:
        return s
    col = s.t().contiguous()
    return col.t() if strided else col.view(s.shape)
