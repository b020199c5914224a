"""The ROCDL backend's toolchain, found in one place: every tool it runs and its version.

* torch-mlir's MLIR (``qfuse.dialect.mlir``: parse, verify, the upstream conversion
  passes) and its ExecutionEngine (the CPU twin);
* flydsl's MLIR, the registry's MLIR built with the AMDGPU and NVPTX targets, for
  ``gpu-module-to-binary`` (AMDGCN text, PTX). torch-mlir's LLVM has neither target, so
  the lowered ``gpu.module`` is handed over as generic-form text in this process
  (``shared/spec/probe-mlir-bindings.md``);
* ``ld.lld`` from the ``ziglang`` wheel to link the hsaco (no ROCm install);
* ``ptxas`` from the ``triton`` wheel for the cubin (no CUDA toolkit).

qfuse's rule is that ``qfuse/dialect/mlir.py`` is the one module that imports the MLIR
wheel (``tests/test_layering.py``). The ExecutionEngine and flydsl are not exported
there yet, so this module loads them by name, here and nowhere else, until
``dialect/mlir.py`` exports them (asked of its owner).
"""
from __future__ import annotations

import functools
import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ...errors import UnsupportedError

__all__ = ["execution_engine", "flydsl_mlir", "importlib_module", "ld_lld", "ptxas", "versions",
           "ToolError", "ToolMissing"]


class ToolError(UnsupportedError):
    """A tool of the ROCDL path is missing or failed (names the tool and how to get it)."""


class ToolMissing(ToolError):
    """A tool of the ROCDL path is not installed here (not: it ran and failed)."""


def importlib_module(name: str):
    """A module of the toolchain by name (flydsl's dialect modules)."""
    return _module(name, "AMDGCN and PTX", "flydsl (pip install qfuse[compiler])")


def _module(name: str, what: str, pip: str):
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise ToolMissing(f"rocdl backend: {what} needs {pip} ({e})") from None


@functools.lru_cache(maxsize=None)
def execution_engine():
    """``(ExecutionEngine class, ...)``: torch-mlir's CPU JIT, the CPU twin's runner."""
    return _module("torch_mlir.execution_engine", "the CPU twin",
                   "torch-mlir (pip install qfuse[compiler])").ExecutionEngine


@functools.lru_cache(maxsize=None)
def flydsl_mlir():
    """``(ir, PassManager)`` of flydsl's MLIR (AMDGPU and NVPTX targets)."""
    ir = _module("flydsl._mlir.ir", "AMDGCN and PTX", "flydsl (pip install qfuse[compiler])")
    pm = _module("flydsl._mlir.passmanager", "AMDGCN and PTX", "flydsl")
    return ir, pm.PassManager


def ld_lld() -> list:
    """The command that runs ``ld.lld``: the ``ziglang`` wheel's (LLD 22), else one on PATH."""
    try:
        importlib.import_module("ziglang")
        return [sys.executable, "-m", "ziglang", "ld.lld"]
    except ImportError:
        found = shutil.which("ld.lld")
        if found:
            return [found]
    raise ToolMissing("rocdl backend: linking an hsaco needs ld.lld: pip install ziglang "
                    "(qfuse[compiler])")


def ptxas() -> str:
    """The ``ptxas`` that ships in the triton wheel (else ``$QFUSE_PTXAS`` or PATH)."""
    env = os.environ.get("QFUSE_PTXAS")
    if env:
        return env
    try:
        triton = importlib.import_module("triton")
        p = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"
        if p.exists():
            return str(p)
    except ImportError:
        pass
    found = shutil.which("ptxas")
    if found:
        return found
    raise ToolMissing("rocdl backend: a cubin needs ptxas (the triton wheel ships one)")


def _dist(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(name)
    except PackageNotFoundError:
        return "absent"


@functools.lru_cache(maxsize=1)
def versions() -> dict:
    """What changes this backend's output: the two MLIRs (torch-mlir, flydsl), the
    linker (the ziglang wheel and ``ld.lld --version``) and ptxas (the triton wheel's).
    Part of :meth:`~.backend.RocdlBackend.hash`, so every runtime cache key of a rocdl
    pipeline changes with any of them."""
    out = {"torch-mlir": _dist("torch-mlir"), "flydsl": _dist("flydsl"),
           "ziglang": _dist("ziglang"), "triton (ptxas)": _dist("triton")}
    try:
        run = subprocess.run(ld_lld() + ["--version"], capture_output=True, text=True,
                             timeout=60)
        out["ld.lld"] = run.stdout.strip()
    except (ToolError, OSError, subprocess.SubprocessError):
        out["ld.lld"] = "absent"
    return out
