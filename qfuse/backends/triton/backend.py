"""The Triton backend behind the :class:`~qfuse.backends.base.Backend` seam.

* compile: a kernel function of the fused module -> :class:`KernelSource` (``codegen/``),
  the same text for every target;
* binaries: cross-compiled ptx / cubin (CUDA) or amdgcn / hsaco (HIP) of one kernel for
  a bundle (``launch/cross_compile.py``), no GPU needed;
* run: :class:`~.runner.TritonRunner` (``launch/``), the interpreter for CPU tensors.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from ...errors import QfuseError
from ..base import Backend, Target, from_asdict
from .codegen import render_kernel
from .runner import TritonRunner

__all__ = ["TritonBackend", "BINARY_EXT"]

BINARY_EXT = {"cuda": ("ptx", "cubin"), "hip": ("amdgcn", "hsaco")}


class TritonBackend(Backend):
    name = "triton"
    version = "1"
    tunable = True

    def supports(self, target: Target) -> bool:
        return target.platform in ("cuda", "hip") or str(target) == "cpu:interp"

    def toolchain(self) -> dict:
        from .triton_adapter import version_text
        return {"triton": version_text()}

    def unsupported(self, kernel, space: str) -> Optional[str]:
        try:
            render_kernel(kernel, space)
        except QfuseError as e:
            return e.message
        return None

    def compile_kernel(self, kernel, space: str, target: Target):
        return render_kernel(kernel, space)

    def binaries(self, source, target: Target, dims: dict) -> dict:
        """``{extension: asm text or bytes}`` of ``source``'s kernel cross-compiled for
        ``target`` with the block constexprs of ``dims``."""
        if source is None:
            return {}                     # a host step (all_reduce) has no binary
        from .launch import TritonKernel
        asm = TritonKernel(source).compile(str(target), dims)
        return {ext: asm[ext] for ext in BINARY_EXT.get(target.platform, ()) if ext in asm}

    source_suffix = ".py"

    def artifact_schema(self, s):
        """A KernelSource, checked against its own fields."""
        from .kernel import KernelArg, KernelSource, ScalarSpec, TensorSpec
        return s.dataclass_spec(KernelSource, {
            "name": s.IDENT,
            "args": s.ListOf(s.dataclass_spec(KernelArg)),
            "tensors": s.ListOf(s.dataclass_spec(TensorSpec)),
            "scalars": s.ListOf(s.dataclass_spec(ScalarSpec)),
            "phases": s.ListOf(s.TupleOf(s.IDENT, s.ListOf(str))),  # (kernel fn, grid rules)
        })

    def dump_artifact(self, source) -> dict:
        return dataclasses.asdict(source)

    def load_artifact(self, data: dict):
        from .kernel import KernelArg, KernelSource, ScalarSpec, TensorSpec
        return from_asdict(KernelSource, data, {"args": KernelArg, "tensors": TensorSpec,
                                                "scalars": ScalarSpec})

    def runner(self, compiled, aliases: dict) -> TritonRunner:
        return TritonRunner(compiled, aliases)
