"""``aiter.utility.mx_types``: AITER's MX enums, with its integer values.

``MxScaleRoundMode`` names how a block amax becomes an E8M0 scale (qfuse's ``E8M0Mode``:
RoundDown = floor, RoundUp = roundup, Even = even, Ceil = ceil); ``MxDtype`` the MX
element formats ``f32_to_mx_e8m0_scale`` knows.
"""
from __future__ import annotations

import enum

__all__ = ["MxScaleRoundMode", "MxDtype"]


class MxScaleRoundMode(enum.IntEnum):
    RoundDown = 0
    RoundUp = 1
    Even = 2
    Ceil = 3


class MxDtype(enum.IntEnum):
    FP4_E2M1 = 0
    FP8_E4M3 = 1
    FP8_E4M3_FNUZ = 2
