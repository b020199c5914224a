"""The errors ``qfuse.aiter`` raises: qfuse errors that are also the Python exceptions
AITER raises for the same mistake, so ``except ValueError`` / ``except
NotImplementedError`` written against AITER keeps working."""
from __future__ import annotations

from ..errors import InputError, UnsupportedError

__all__ = ["AiterArgumentError", "AiterUnsupportedError"]


class AiterArgumentError(InputError, ValueError):
    """A bad argument: says which one, what was expected and what was given."""


class AiterUnsupportedError(UnsupportedError, NotImplementedError):
    """An AITER variant qfuse does not provide: names the argument and says why."""
