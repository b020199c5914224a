"""Compare two backends' outputs the way docs/semantics.md defines agreement.

Exact formats must match bit for bit. When a pipeline sums in fp32 (norm) or uses
exp/erf/tanh (silu, gelu, act_mul), backends may order the sum differently or use
another libm, so a code may land one step away across a rounding boundary and float
outputs may differ in the last ulps; ``compare_outputs`` reports those differences and
accepts them only within that rule.
"""
from __future__ import annotations

import torch

__all__ = ["compare_outputs", "tolerant_stages"]

TOLERANT = {"norm", "silu", "gelu", "act_mul"}


def tolerant_stages(program) -> bool:
    return any(c.stage in TOLERANT for c in program.calls)


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.uint8) if t.element_size() == 1 else t.contiguous()


def compare_outputs(got: dict, want: dict, tolerant: bool) -> tuple:
    """``(ok, text)``: ``exact``, or what differs and whether the rule allows it."""
    notes, ok = [], True
    for name, w in want.items():
        g = got[name]
        if g.shape != w.shape or g.dtype != w.dtype:
            return False, f"{name}: {tuple(g.shape)}/{g.dtype} vs {tuple(w.shape)}/{w.dtype}"
        if w.element_size() > 1 and w.is_floating_point():
            gf, wf = g.float(), w.float()
            same = (gf == wf) | (gf.isnan() & wf.isnan())
            if bool(same.all()):
                continue
            ulps = ((gf - wf).abs() / (wf.abs() * 2.0 ** -23).clamp_min(1e-38))[~same].max()
            good = tolerant and bool(ulps <= 4 * (2 ** 16 if w.dtype != torch.float32 else 1))
            ok &= good
            notes.append(f"{name}: {int((~same).sum())} values within {float(ulps):.1f} ulp")
            continue
        a, b = _bits(g).int(), _bits(w).int()
        diff = a != b
        n = int(diff.sum())
        if n == 0:
            continue
        da, db = a[diff], b[diff]
        step_byte = ((da - db) % 256 == 1) | ((db - da) % 256 == 1)      # int8 -1 next to 0 too
        lo, hi = (da - db) % 16, ((da >> 4) - (db >> 4)) % 16
        step_nib = ((lo <= 1) | (lo == 15)) & ((hi <= 1) | (hi == 15))   # packed 4-bit codes
        one_step = bool(step_byte.all()) or bool(step_nib.all())
        good = tolerant and one_step and n <= max(1, diff.numel() // 1000)
        ok &= good
        notes.append(f"{name}: {n}/{diff.numel()} codes differ{' by one step' if one_step else ''}")
    return ok, ("exact" if not notes else "; ".join(notes))
