"""Shared pieces of the qfuse.aiter tests: inputs with AITER's awkward rows, running a
function on both backends, and bit-level comparisons."""
from __future__ import annotations

import pytest
import torch

import qfuse.aiter as aiter
from aiter_oracles import bits
from qfuse.runtime.compare import compare_outputs

BACKENDS = ("reference", "triton")
backends = pytest.mark.parametrize("backend", BACKENDS)


def edge_rows(m: int, n: int, dtype=torch.bfloat16, *, seed: int = 0, nan: bool = True,
              scale: float = 1.0) -> torch.Tensor:
    """Random rows plus the rows AITER's tests never exercise: all-zero, one huge value,
    a subnormal-only row, a row with ties (equal magnitudes of both signs) and, with
    ``nan``, a row with NaN and one with +-inf."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, n, generator=g) * scale
    special = [torch.zeros(n)]
    huge = torch.randn(n, generator=g) * 1e-3
    huge[n // 3] = 3.0e4 if dtype == torch.float16 else 1.0e30
    special.append(huge)
    tiny = torch.finfo(dtype).tiny
    special.append(torch.randn(n, generator=g).sign() * tiny / 4)
    ties = torch.full((n,), 2.0)
    ties[1::2] = -2.0
    special.append(ties)
    if nan:
        bad = torch.randn(n, generator=g)
        bad[n // 2] = float("nan")
        special.append(bad)
        inf = torch.randn(n, generator=g)
        inf[1], inf[n - 1] = float("inf"), float("-inf")
        special.append(inf)
    rows = torch.cat([x, torch.stack(special)])
    return rows.to(dtype)


def on(backend: str, fn, *args, **kwargs):
    with aiter.use_backend(backend):
        return fn(*args, **kwargs)


def same_bits(got, want, what: str = "") -> None:
    """Equal bytes (shape and dtype too); NaN payloads of floats compare as NaN."""
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} vs {tuple(want.shape)}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} vs {want.dtype}"
    if got.is_floating_point() and got.element_size() > 1:
        g, w = got.float(), want.float()
        ok = (bits(got) == bits(want)) | (g.isnan() & w.isnan())
    else:
        ok = bits(got) == bits(want)
    bad = (~ok).nonzero()
    assert bool(ok.all()), f"{what}: {len(bad)} differ, first at {bad[0].tolist()}: " \
        f"{got[tuple(bad[0])]} vs {want[tuple(bad[0])]}"


def agree(got: dict, want: dict, k: int = 1) -> None:
    """The agreement rule of docs/semantics.md with ``k`` inexact stages (0: exact)."""
    ok, text = compare_outputs({n: g for n, g in got.items() if n in want}, want, k)
    assert ok, text
