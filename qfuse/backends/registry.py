"""The backends qfuse knows, by name: the only place that maps a name to an implementation.

``get_backend("triton")`` imports the backend's module on first use (so a bundle that
runs on the reference backend never imports Triton) and returns its one instance.
"""
from __future__ import annotations

import importlib

from ..errors import UnsupportedError
from .base import Backend

__all__ = ["get_backend", "backend_names", "NAMES"]

# name -> (module, class); modules import only qfuse.backends.base, never this registry
NAMES = {
    "triton": ("qfuse.backends.triton.backend", "TritonBackend"),
    "reference": ("qfuse.backends.reference.backend", "ReferenceBackend"),
}
PLANNED = ("rocdl",)
_INSTANCES: dict = {}


def backend_names() -> tuple:
    return tuple(NAMES)


def get_backend(name: str) -> Backend:
    """The backend called ``name``; an UnsupportedError lists the available ones."""
    inst = _INSTANCES.get(name)
    if inst is not None:
        return inst
    if name not in NAMES:
        planned = f" ({', '.join(PLANNED)}: planned)" if PLANNED else ""
        raise UnsupportedError(f"unknown backend {name!r}; available: "
                               f"{', '.join(NAMES)}{planned}")
    module, cls = NAMES[name]
    inst = _INSTANCES[name] = getattr(importlib.import_module(module), cls)()
    return inst
