"""qfuse passes over the ``qf`` dialect.

Each pass lives in ``qfuse/passes/<snake>.py`` as ``<Camel>Pass`` with a kebab-case
``name`` and ``run(module) -> module`` (every pass rewrites the module in place);
:mod:`~qfuse.passes.registry` names them and the pipelines, and
:mod:`~qfuse.passes.manager` runs them in order (``qfuse ir --print-after-all`` prints
the module after each one).
"""
from __future__ import annotations

from .manager import run_passes
from .registry import PIPELINES, get_all_passes, get_pass

__all__ = ["get_all_passes", "get_pass", "PIPELINES", "run_passes"]
