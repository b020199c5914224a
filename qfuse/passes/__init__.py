"""qfuse passes over the ``qf`` dialect.

Each pass lives in ``qfuse/passes/<snake>.py`` as ``<Camel>Pass`` with a kebab-case
``name``; :func:`get_all_passes` imports them lazily. Named pipelines list passes in
order; ``qfuse ir --print-after-all`` prints the module after each one.
"""
from __future__ import annotations

import importlib

__all__ = ["get_all_passes", "get_pass", "PIPELINES", "run_passes"]

# pass name -> (module, class)
_REGISTRY = {
    "qf-verify": ("verify", "VerifyPass"),
    "qf-legalize": ("legalize", "LegalizePass"),
    "qf-dce": ("cleanup", "DeadStagePass"),
    "qf-cse": ("cleanup", "CSEPass"),
    "qf-fuse": ("fuse", "FusePass"),
}

PIPELINES = {
    # parse -> verified qf module (what the reference backend interprets)
    "frontend": ["qf-verify"],
    # the full compile: dead stages and duplicates out, kernels fused, granularity legalised
    # to block shapes (after fusion, so the attributes live in the kernel bodies)
    "default": ["qf-verify", "qf-dce", "qf-cse", "qf-fuse", "qf-legalize", "qf-verify"],
}


def get_all_passes() -> dict:
    """``{name: pass class}`` for every registered pass (imported on demand)."""
    return {name: get_pass(name) for name in _REGISTRY}


def get_pass(name: str):
    if name not in _REGISTRY:
        from ..errors import QfuseError
        raise QfuseError(f"unknown pass {name!r}; passes: {', '.join(_REGISTRY)}")
    mod, cls = _REGISTRY[name]
    return getattr(importlib.import_module(f"{__name__}.{mod}"), cls)


def run_passes(module, pipeline="default", *, print_after_all=False, out=None):
    from .manager import run_pipeline
    return run_pipeline(module, pipeline, print_after_all=print_after_all, out=out)
