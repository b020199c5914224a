"""What every qfuse backend provides (after Triton's backend plugins and tinygrad's renderers).

A backend turns the kernels of a fused pipeline into something that runs. It declares
which targets it serves, what it can compile, and a hash of everything about itself
that changes its output (so the runtime cache can key on it). Backends import only
``qfuse.dialect``, ``qfuse.backends.base`` and their own toolchain.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from ..errors import UnsupportedError

__all__ = ["Target", "parse_target", "Backend", "BACKENDS", "get_backend"]


@dataclass(frozen=True)
class Target:
    """Where a kernel runs: ``cuda:sm_90``, ``hip:gfx942``, ``hip:gfx950`` or ``cpu``."""

    platform: str       # "cuda" | "hip" | "cpu"
    arch: str           # "sm_90", "gfx942", ... ("interp" for the CPU interpreter)

    def __str__(self) -> str:
        return f"{self.platform}:{self.arch}"

    @property
    def fp8_native_fnuz(self) -> bool:
        return self.platform == "hip" and self.arch == "gfx942"


KNOWN_TARGETS = ("cuda:sm_80", "cuda:sm_89", "cuda:sm_90", "cuda:sm_100",
                 "hip:gfx942", "hip:gfx950", "cpu:interp")


def parse_target(text: str) -> Target:
    """``"cuda:sm_90"`` -> Target; a clear error lists the known spellings."""
    platform, _, arch = text.partition(":")
    if platform not in ("cuda", "hip", "cpu") or not arch:
        raise UnsupportedError(f"unknown target {text!r}; use one of {', '.join(KNOWN_TARGETS)}")
    if platform == "cuda" and not (arch.startswith("sm_") and arch[3:].rstrip("a").isdigit()):
        raise UnsupportedError(f"CUDA targets are spelled cuda:sm_NN (e.g. cuda:sm_90), got {text!r}")
    if platform == "hip" and not arch.startswith("gfx"):
        raise UnsupportedError(f"HIP targets are spelled hip:gfxNNN (e.g. hip:gfx942), got {text!r}")
    return Target(platform, arch)


class Backend:
    """Base class: capability flags as class attributes, behaviour as methods."""

    name: str = "base"
    platforms: tuple = ()
    version: str = "0"

    def supports(self, target: Target) -> bool:
        return target.platform in self.platforms

    def hash(self, target: Target) -> str:
        """Everything about this backend that changes its output for ``target``."""
        return hashlib.sha256(f"{self.name}|{self.version}|{target}".encode()).hexdigest()

    def parse_options(self, options: dict) -> dict:
        return dict(options)

    def supported(self, kernel: Any) -> None:
        """Raise UnsupportedError naming the stage and its location if ``kernel`` can't be built."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


BACKENDS: dict = {}


def register(backend_cls):
    BACKENDS[backend_cls.name] = backend_cls
    return backend_cls


def get_backend(name: str) -> Backend:
    if name not in BACKENDS:
        # backends register on import; import the known ones lazily
        if name == "triton":
            from .triton import backend as _  # noqa: F401
        elif name == "reference":
            from .reference import backend as _  # noqa: F401
    if name not in BACKENDS:
        raise UnsupportedError(f"unknown backend {name!r}; available: reference, triton "
                               f"(rocdl is planned)")
    return BACKENDS[name]()
