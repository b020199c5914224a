"""``qfuse.backends.base.Target`` -> Triton's ``GPUTarget`` (the only target conversion).

qfuse spells targets one way (``cuda:sm_90``, ``hip:gfx942``: ``backends.base.Target``);
Triton's cross-compiler wants ``GPUTarget(backend, arch, warp_size)``, with the CUDA arch
as the integer capability.
"""
from __future__ import annotations

from ...errors import UnsupportedError
from ..base import Target, parse_target
from .triton_adapter import GPUTarget

__all__ = ["gpu_target"]


def gpu_target(spec) -> GPUTarget:
    """``"cuda:sm_90"`` / ``Target`` -> ``GPUTarget("cuda", 90, 32)``; ``hip:gfx942`` ->
    ``GPUTarget("hip", "gfx942", 64)`` (64-wide waves on CDNA, 32 on RDNA)."""
    if isinstance(spec, GPUTarget):
        return spec
    t: Target = parse_target(spec)
    if not t.is_gpu:
        raise UnsupportedError(f"cannot cross-compile for {t}: a GPU target is cuda:sm_NN or "
                               f"hip:gfxNNN")
    arch = t.capability if t.platform == "cuda" else t.arch
    return GPUTarget(t.platform, arch, t.warp_size)
