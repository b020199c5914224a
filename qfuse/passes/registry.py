"""The pass registry: every pass by name, and the named pass pipelines.

Each pass lives in ``qfuse/passes/<snake>.py`` as ``<Camel>Pass`` with a kebab-case
``name``; :func:`get_pass` imports it on first use. The pass manager
(:mod:`qfuse.passes.manager`) resolves pipelines through this module, which imports
no other pass module (so the manager and the package import it without a cycle).
"""
from __future__ import annotations

import importlib

__all__ = ["PIPELINES", "get_all_passes", "get_pass"]

# pass name -> (module, class)
_REGISTRY = {
    "qf-verify": ("verify", "VerifyPass"),
    "qf-legalize": ("legalize", "LegalizePass"),
    "qf-dce": ("cleanup", "DeadStagePass"),
    "qf-cse": ("cleanup", "CSEPass"),
    "qf-fuse": ("fuse", "FusePass"),
    # the lowering (the kernel lowerings come from qfuse.passes.lowering's table)
    "qf-lower-loops": ("lower_loops", "LowerLoopsPass"),
    "qf-map-gpu": ("map_gpu", "MapGpuPass"),
}

PIPELINES = {
    # parse -> verified qf module (what the reference backend interprets)
    "frontend": ["qf-verify"],
    # the full compile: dead stages and duplicates out, kernels fused, then the static
    # shape rules checked on the fused IR
    "default": ["qf-verify", "qf-dce", "qf-cse", "qf-fuse", "qf-legalize", "qf-verify"],
}


def get_all_passes() -> dict:
    """``{name: pass class}`` for every registered pass (imported on demand)."""
    return {name: get_pass(name) for name in _REGISTRY}


def get_pass(name: str):
    """The pass class registered as ``name``; a QfuseError lists the known names."""
    if name not in _REGISTRY:
        from ..errors import QfuseError
        raise QfuseError(f"unknown pass {name!r}; passes: {', '.join(_REGISTRY)}")
    mod, cls = _REGISTRY[name]
    return getattr(importlib.import_module(f"{__package__}.{mod}"), cls)
