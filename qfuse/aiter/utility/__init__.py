"""``aiter.utility``: ``dtypes`` and ``fp4_utils``."""
from .. import dtypes
from . import fp4_utils

__all__ = ["dtypes", "fp4_utils"]
