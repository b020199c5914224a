"""The ROCDL backend behind the :class:`~qfuse.backends.base.Backend` seam.

* compile: a kernel function of the fused module -> :class:`~.artifact.RocdlKernel`,
  from its functions after the lowering passes ``qf-lower-loops`` / ``qf-map-gpu``
  (which the runtime runs; :mod:`.lowering` is the kernel lowering they look up:
  ``kernel.py`` renders it at the loop level and mapped onto the ``gpu`` dialect);
* binaries: AMDGCN text and a linked hsaco for ``hip:gfx942`` / ``hip:gfx950``, PTX and
  a cubin for ``cuda:sm_90`` (the NVVM twin), built on the CPU (``lower.py``);
* run: :class:`~.runner.RocdlRunner`: the CPU twin on CPU tensors, the NVVM twin on
  CUDA tensors, the HIP launcher on AMD tensors;
* store: :mod:`.artifact` (the IR, the ABI and, for a GPU target, the code objects, so a
  stored kernel launches with torch and the driver bindings alone).

Compiling for a GPU target builds its code objects at once (a fraction of a second per
kernel; skipped where flydsl or the linker is not installed), so that a cache entry
holds them; for no target in particular (a bundle) the ``gpu`` form of every GPU target
is rendered and the bundle builder asks for the binaries of each ``--target``.
"""
from __future__ import annotations

from typing import Optional

from ...errors import QfuseError
from ..base import Backend, Target, parse_target
from . import artifact
from .artifact import RocdlKernel
from .lowering import HOST_SPACES, SPACES

__all__ = ["RocdlBackend", "GPU_TARGETS", "BINARY_EXT"]

#: the GPU targets this backend builds code objects for
GPU_TARGETS = ("hip:gfx942", "hip:gfx950", "cuda:sm_90")
BINARY_EXT = {"hip": ("amdgcn", "hsaco"), "cuda": ("ptx", "cubin")}
class RocdlBackend(Backend):
    name = "rocdl"
    version = "1"

    def supports(self, target: Target) -> bool:
        return str(target) in GPU_TARGETS or str(target) == "cpu:interp"

    def target_for(self, device: Target) -> Target:
        """On the CPU the backend runs its CPU twin (``cpu:interp``)."""
        return device

    def toolchain(self) -> dict:
        from .toolchain import versions
        return versions()

    def unsupported(self, kernel, space: str) -> Optional[str]:
        try:
            self.compile_kernel(kernel, space, None)
        except QfuseError as e:
            return e.message
        return None

    def lowering_targets(self, target: Optional[Target]) -> list:
        """The GPU targets whose ``gpu`` form a compile for ``target`` needs: itself, none
        on the CPU, every GPU target for no target in particular (a bundle build)."""
        if target is None:
            return [parse_target(t) for t in GPU_TARGETS]
        return [target] if target.is_gpu else []

    def compile_kernel(self, kernel, space: str, target: Optional[Target],
                       lowered: Optional[dict] = None) -> Optional[RocdlKernel]:
        """The kernel's RocdlKernel; None for a host step (nothing is lowered: the runner
        runs it between the kernels). ``lowered``: the kernel's functions from the
        lowering passes (``{"loops": text, "gpu": {target: text}}``,
        :func:`qfuse.runtime.lowering.lowered_kernels`), which the runtime runs; without
        it the kernel is lowered here by the same lowering (``unsupported``, tests)."""
        from .kernel import rows_param, signature
        from .lowering import check_space, lower_kernel
        from .mapping import Gpu, Loops
        check_space(kernel, space)
        if space in HOST_SPACES:
            return None
        targets = self.lowering_targets(target)
        if lowered is None:
            lowered = {"loops": lower_kernel(kernel, space)["text"],
                       "gpu": {str(t): lower_kernel(kernel, space, str(t))["text"]
                               for t in targets}}
        loops = Loops().module([lowered["loops"]])
        gpu = {str(t): Gpu(t).module([lowered["gpu"][str(t)]]) for t in targets}
        k = RocdlKernel(kernel.name, space, signature(kernel), loops, gpu, SPACES[space],
                        rows_param(kernel))
        if target is not None and target.is_gpu:
            from .toolchain import ToolMissing
            try:
                self.binaries(k, target, {})
            except ToolMissing:      # no flydsl / linker here (qfuse ir --emit gpu): the
                pass                 # launcher builds them, or says what is missing
        return k

    def binaries(self, artifact: RocdlKernel, target: Target, dims: dict) -> dict:
        """``{ext: text or bytes}``: amdgcn + hsaco (HIP), ptx + cubin (CUDA); none for a
        host step (all_reduce)."""
        if artifact is None:
            return {}
        from .lower import build_binaries
        return build_binaries(artifact, target)

    source_suffix = ".mlir"

    def artifact_schema(self, s):
        return artifact.schema(s)

    def dump_artifact(self, kernel: RocdlKernel) -> dict:
        return artifact.dump(kernel)

    def load_artifact(self, data: dict) -> RocdlKernel:
        return artifact.load(data)

    def runner(self, compiled, aliases: dict):
        from .runner import RocdlRunner
        return RocdlRunner(compiled, aliases)
