"""Compare two backends' outputs the way docs/semantics.md ("Agreement") defines it.

Exact formats (codes, scale bytes, integer outputs) and every output of a pipeline
without inexact stages must match bit for bit. The inexact stages are the fp32 sums
whose order is free (``norm``'s statistics, ``reduce`` of inexact values) and the
libm functions (``exp``, ``erf``, ``tanh`` in ``silu``, ``gelu``, ``act_mul``): the
catalog's ``Stage.inexact`` and ``Stage.sums``. With ``k`` of them in the program:

* a float output element ``a`` agrees with ``b`` when
  ``|a - b| <= 4 k eps max(|b|, r)``, where ``eps`` is the output dtype's unit roundoff
  (2**-23 fp32, 2**-7 bf16, 2**-10 f16) and ``r`` the largest ``|b|`` in its row (the last
  dim). The row term is there because these stages are accurate relative to the
  magnitudes they combine, not to a result that cancels (``1 + tanh(z)`` near
  ``z = -inf``, a normalised row's smallest entries): an error of a few ulp of the row's
  scale is what two correct libms leave;
* a code may land one step away across a rounding boundary, for at most one element in
  a thousand.
"""
from __future__ import annotations

import torch

from ..dialect.stages import STAGES

__all__ = ["compare_outputs", "tolerant_stages", "float_tolerance"]

EPS = {torch.float32: 2.0 ** -23, torch.bfloat16: 2.0 ** -7, torch.float16: 2.0 ** -10}


def tolerant_stages(program) -> int:
    """``k``: the inexact stages of ``program`` (0: every output must be bit-exact). A
    ``reduce`` counts only after another inexact stage (in order, a sum is exact)."""
    k = sum(STAGES[c.stage].inexact for c in program.calls)
    return k + (k and sum(STAGES[c.stage].sums for c in program.calls))


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.uint8) if t.element_size() == 1 else t.contiguous()


def float_tolerance(want: torch.Tensor, k: int) -> torch.Tensor:
    """The allowed ``|a - b|`` per element of a float output ``want`` (see the module)."""
    w = want.float().abs().nan_to_num(0.0, posinf=0.0, neginf=0.0)
    row = w.amax(dim=-1, keepdim=True) if w.dim() and w.shape[-1] else w
    return 4 * k * EPS[want.dtype] * torch.maximum(w, row)


def _compare_floats(name: str, g: torch.Tensor, w: torch.Tensor, k: int) -> tuple:
    gf, wf = g.float(), w.float()
    same = (gf == wf) | (gf.isnan() & wf.isnan())
    if bool(same.all()):
        return True, None
    err = (gf - wf).abs()
    good = k > 0 and bool((same | (err <= float_tolerance(w, k))).all())
    ulps = (err / (wf.abs() * EPS[w.dtype]).clamp_min(1e-38))[~same].max()
    return good, f"{name}: {int((~same).sum())} values within {float(ulps):.1f} ulp"


def _compare_codes(name: str, g: torch.Tensor, w: torch.Tensor, k: int) -> tuple:
    a, b = _bits(g).int(), _bits(w).int()
    diff = a != b
    n = int(diff.sum())
    if n == 0:
        return True, None
    da, db = a[diff], b[diff]
    step_byte = ((da - db) % 256 == 1) | ((db - da) % 256 == 1)      # int8 -1 next to 0 too
    lo, hi = (da - db) % 16, ((da >> 4) - (db >> 4)) % 16
    step_nib = ((lo <= 1) | (lo == 15)) & ((hi <= 1) | (hi == 15))   # packed 4-bit codes
    one_step = bool(step_byte.all()) or bool(step_nib.all())
    good = k > 0 and one_step and n <= max(1, diff.numel() // 1000)
    return good, f"{name}: {n}/{diff.numel()} codes differ{' by one step' if one_step else ''}"


def compare_outputs(got: dict, want: dict, tolerant) -> tuple:
    """``(ok, text)``: ``exact``, or what differs and whether the rule allows it.
    ``tolerant``: ``k`` (tolerant_stages; True counts as 1, False as 0)."""
    k = int(tolerant)
    notes, ok = [], True
    for name, w in want.items():
        g = got[name]
        if g.shape != w.shape or g.dtype != w.dtype:
            return False, f"{name}: {tuple(g.shape)}/{g.dtype} vs {tuple(w.shape)}/{w.dtype}"
        floats = w.element_size() > 1 and w.is_floating_point()
        good, note = (_compare_floats if floats else _compare_codes)(name, g, w, k)
        ok &= good
        if note:
            notes.append(note)
    return ok, ("exact" if not notes else "; ".join(notes))
