"""Argument binding shared by the fused FP8 and MXFP4 wrappers: the norm inputs (``x``,
its weight and epsilon, the optional residual and second input) as pipeline arguments,
flags and dtype substitutions, with AITER-style errors."""
from __future__ import annotations

import math

import torch

from ...dialect.options import Act
from .. import _args as A
from .._errors import AiterArgumentError

__all__ = ["Binding", "scale_layout", "into"]


class Binding:
    """Accumulates one call's pipeline arguments (in parameter order), ``#if`` flags and
    ``$`` substitutions while the wrapper checks AITER's arguments."""

    def __init__(self, func: str):
        self.func = func
        self.args: list = []
        self.flags: set = set()
        self.subs: dict = {}

    def rows(self, name: str, t, sub: str, *, split: bool = False, m=None, n=None,
             rank: int = 2):
        """A ``[M, N]`` input (``[S, M, N]`` when ``split``; ``rank`` dims otherwise):
        checked, its dtype bound to ``sub``, its last dim made contiguous. Returns the
        tensor as passed on."""
        A.tensor(self.func, name, t, dims=(3,) if split else (rank,))
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

    def residual(self, res1, inp1, m: int, n: int) -> None:
        """AITER's ``res1`` (added to ``inp1`` before the norm; flag RES)."""
        if res1 is None:
            return
        A.tensor(self.func, "res1", res1)
        A.need(res1.dtype == inp1.dtype, self.func, f"res1 must have inp1's dtype "
               f"{inp1.dtype}, got {res1.dtype}")
        self.rows("res1", res1, "X", m=m, n=n)
        self.flag("RES")

    def second_input(self, inp2, w2, eps2, m: int, *, split: bool = False,
                     names=("inp2", "inp2_weight", "inp2_epsilon"), spk=None) -> None:
        """AITER's second input, RMS-normalised alone (flag X2): ``[M, N2]``, or
        ``[SPK, M, N2]`` partials when the first input is split-K."""
        if inp2 is None:
            return
        if split:
            A.tensor(self.func, names[0], inp2, dims=(3,))
            A.need(inp2.shape[0] == spk, self.func, f"{names[0]} must be [{spk}, {m}, N2] "
                   f"like the first input, got shape {tuple(inp2.shape)}")
        n2 = self.rows(names[0], inp2, "X2", split=split, m=m).shape[-1]
        self.vector(names[1], w2, n2, "W2")
        self.scalar(names[2], eps2)
        self.flag("X2")

    def summed_input(self, name: str, t, spk: int, m: int) -> None:
        """A ``[SPK, M, N3]`` input that is only summed over the splits (flag X3)."""
        if t is None:
            return
        A.tensor(self.func, name, t, dims=(3,))
        A.need(t.shape[0] == spk and t.shape[1] == m, self.func, f"{name} must be [{spk}, "
               f"{m}, N3], got shape {tuple(t.shape)}")
        self.rows(name, t, "X3", split=True)
        self.flag("X3")

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

    def flag(self, name: str) -> None:
        self.flags.add(name)

    def run(self, template: str, pipe: str, kind: str) -> dict:
        """Call the pipeline; its outputs by return name."""
        from .._pipes import pipeline
        same = {f"arg{i}": a for i, a in enumerate(self.args) if isinstance(a, torch.Tensor)}
        A.same_device(self.func, **same)
        run = pipeline(template, pipe, kind, flags=frozenset(self.flags), **self.subs)
        return run(*self.args, _as_dict=True)


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
