"""``aiter.utility.dtypes``: the same module object as ``qfuse.aiter.dtypes`` (AITER has
one dtypes module under both paths)."""
import sys

from .. import dtypes as _dtypes

sys.modules[__name__] = _dtypes
