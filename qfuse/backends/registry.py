"""The backends qfuse knows, by name: the only place that maps a name to an implementation.

``get_backend("triton")`` imports the backend's module on first use (so a bundle that
runs on the reference backend never imports Triton) and returns its one instance.
"""
from __future__ import annotations

import importlib

from ..errors import UnsupportedError
from .base import Backend

__all__ = ["get_backend", "backend_names", "check_name", "default_backend", "NAMES"]

# name -> (module, class); modules import only qfuse.backends.base, never this registry
NAMES = {
    "triton": ("qfuse.backends.triton.backend", "TritonBackend"),
    "reference": ("qfuse.backends.reference.backend", "ReferenceBackend"),
    "rocdl": ("qfuse.backends.rocdl.backend", "RocdlBackend"),
}
PLANNED: tuple = ()
_INSTANCES: dict = {}


# the backend a call runs on when none is asked for, by the torch device type of its inputs
DEFAULT_FOR_DEVICE = {"cuda": "triton"}
DEFAULT = "reference"


def backend_names() -> tuple:
    return tuple(NAMES)


def check_name(name: str) -> str:
    """``name`` if it names a backend (without importing it), else an UnsupportedError."""
    if name not in NAMES:
        planned = f" ({', '.join(PLANNED)}: planned)" if PLANNED else ""
        raise UnsupportedError(f"backend={name!r} is not a backend; choose one of "
                               f"{', '.join(NAMES)}{planned}")
    return name


def default_backend(device_type: str) -> str:
    """The backend for inputs on a torch device of this type (``cuda``: Triton; the CPU:
    the reference; ``backend="triton"`` runs Triton's interpreter there)."""
    return DEFAULT_FOR_DEVICE.get(device_type, DEFAULT)


def get_backend(name: str) -> Backend:
    """The backend called ``name``; an UnsupportedError lists the available ones."""
    inst = _INSTANCES.get(name)
    if inst is not None:
        return inst
    module, cls = NAMES[check_name(name)]
    inst = _INSTANCES[name] = getattr(importlib.import_module(module), cls)()
    return inst
