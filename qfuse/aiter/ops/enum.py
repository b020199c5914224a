"""``aiter.ops.enum``: ``QuantType`` and ``ActivationType`` (see ``qfuse.aiter.enum``)."""
from ..enum import ActivationType, QuantType

__all__ = ["QuantType", "ActivationType"]
