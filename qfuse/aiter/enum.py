"""AITER's enums (``aiter/ops/enum.py``): the members and integer values of
``csrc/include/aiter_enum.h``, so ``QuantType(2)`` and ``QuantType.per_Token.value``
mean what they mean in AITER."""
from __future__ import annotations

from enum import IntEnum

__all__ = ["QuantType", "ActivationType"]


class QuantType(IntEnum):
    No = 0
    per_Tensor = 1
    per_Token = 2
    per_1x32 = 3
    per_1x128 = 4
    per_128x128 = 5
    per_256x128 = 6
    per_1024x128 = 7


class ActivationType(IntEnum):
    No = -1
    Silu = 0
    Gelu = 1
    Swiglu = 2
