"""``aiter.utility``: ``dtypes``, ``fp4_utils`` and ``mx_types``."""
from .. import dtypes
from . import fp4_utils, mx_types

__all__ = ["dtypes", "fp4_utils", "mx_types"]
