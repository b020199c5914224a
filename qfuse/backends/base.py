"""The seam every qfuse backend implements (after Triton's backend plugins and tinygrad's
renderers), and the one ``Target`` type.

A backend turns the kernel functions of a fused module into something that runs, and
the runtime drives every backend through this interface alone (``qfuse.backends.registry``
finds them by name; nothing else compares backend names):

* ``supports(target)``: whether it builds for a :class:`Target`;
* ``hash(target)``: everything about itself that changes its output for that target
  (its version, its toolchain's versions), folded into the runtime cache key;
* ``unsupported(kernel, space)``: why it cannot build a kernel, or None;
* ``compile_kernel(kernel, space, target)``: the artifact that runs one kernel function
  (Triton: a ``KernelSource``; the reference backend needs none). What earlier kernels
  computed for its inputs is in the kernel itself (argument attributes the fusion pass
  writes, read into its parameters);
* ``binaries(artifact, target, dims)``: what a bundle ships for one kernel on a target
  (cross-compiled here, no hardware needed);
* ``runner(compiled, aliases)``: an object that runs a compiled pipeline's kernels on
  tensors (``run(inputs)``, and ``run_seen(key, inputs)`` for a call signature it bound
  before);
* the stored form of an artifact (the disk cache, bundles): ``artifact_schema(s)`` (its
  JSON's schema, built from the combinators the runtime hands in as ``s``),
  ``dump_artifact`` / ``load_artifact`` (JSON data <-> artifact; the loader raises
  :class:`ArtifactError` for what a schema cannot see) and ``source_suffix`` (the file
  suffix of the artifact's ``text``, stored next to it for humans). Loading a stored
  artifact must need no compiler: only what running it needs.

Backends import only ``qfuse.dialect``, ``qfuse.errors``, this module and their own
toolchain.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Optional, Union

from ..errors import QfuseError, UnsupportedError

__all__ = ["Target", "parse_target", "Backend", "KNOWN_TARGETS", "ArtifactError", "from_asdict"]

KNOWN_TARGETS = ("cuda:sm_80", "cuda:sm_89", "cuda:sm_90", "cuda:sm_100",
                 "hip:gfx942", "hip:gfx950", "cpu:interp", "cpu:ref")


@dataclass(frozen=True)
class Target:
    """Where a kernel runs: ``cuda:sm_90``, ``hip:gfx942``, ``hip:gfx950``, ``cpu:interp``
    (Triton's interpreter) or ``cpu:ref`` (the reference backend on any torch device)."""

    platform: str       # "cuda" | "hip" | "cpu"
    arch: str           # "sm_90", "gfx942", "interp", "ref"

    def __str__(self) -> str:
        return f"{self.platform}:{self.arch}"

    @property
    def is_gpu(self) -> bool:
        return self.platform in ("cuda", "hip")

    @property
    def capability(self) -> int:
        """The CUDA compute capability (``sm_90a`` -> 90); 0 for other platforms."""
        return int(self.arch[3:].rstrip("a")) if self.platform == "cuda" else 0

    @property
    def warp_size(self) -> int:
        """Threads per warp / wavefront: 64 on CDNA (gfx9), 32 on NVIDIA and RDNA."""
        if self.platform == "hip":
            return 64 if self.arch.startswith("gfx9") else 32
        return 32 if self.platform == "cuda" else 1

    @property
    def fp8_native_fnuz(self) -> bool:
        return self.platform == "hip" and self.arch == "gfx942"


def parse_target(text: Union[str, Target]) -> Target:
    """``"cuda:sm_90"`` -> Target; a clear error lists the known spellings."""
    if isinstance(text, Target):
        return text
    platform, _, arch = str(text).strip().partition(":")
    if platform not in ("cuda", "hip", "cpu") or not arch:
        raise UnsupportedError(f"unknown target {text!r}; use one of {', '.join(KNOWN_TARGETS)}")
    if platform == "cuda" and not (arch.startswith("sm_") and arch[3:].rstrip("a").isdigit()):
        raise UnsupportedError(f"CUDA targets are spelled cuda:sm_NN (e.g. cuda:sm_90), got {text!r}")
    if platform == "hip" and not (arch.startswith("gfx") and arch[3:].isalnum()):
        raise UnsupportedError(f"HIP targets are spelled hip:gfxNNN (e.g. hip:gfx942), got {text!r}")
    if platform == "cpu" and arch not in ("interp", "ref"):
        raise UnsupportedError(f"CPU targets are cpu:interp (Triton's interpreter) and cpu:ref "
                               f"(the reference backend), got {text!r}")
    return Target(platform, arch)


class ArtifactError(QfuseError):
    """A stored artifact that passed its schema but cannot be used (the message says
    where and why); the runtime treats it as damage."""


def _tup(x):
    return tuple(_tup(i) for i in x) if isinstance(x, list) else x


def from_asdict(cls, d: dict, nested: Optional[dict] = None):
    """The inverse of ``dataclasses.asdict`` on checked JSON: lists become tuples, nested
    dataclass lists are rebuilt (``nested``: field -> class), keys ``cls`` lacks are
    dropped (a newer writer's extra fields)."""
    nested = nested or {}
    kw = {}
    for f in dataclasses.fields(cls):
        if f.name in d:
            v = d[f.name]
            kw[f.name] = (tuple(from_asdict(nested[f.name], i) for i in v)
                          if f.name in nested else _tup(v))
    return cls(**kw)


class Backend:
    """Base class: a backend sets ``name`` and ``version`` and overrides the methods."""

    name: str = "base"
    version: str = "0"
    tunable: bool = False            # launch configs to autotune (qfuse.runtime.autotune)
    runs_uncompiled: bool = False    # can run a checked program without the compiler

    def supports(self, target: Target) -> bool:
        raise NotImplementedError

    def target_for(self, device: Target) -> Target:
        """The target this backend compiles for to run on ``device`` (the device's own
        target: ``cuda:sm_90``, ``hip:gfx942``, ``cpu:interp``)."""
        return device

    def toolchain(self) -> dict:
        """``{tool: version}`` of what this backend builds with (part of :meth:`hash`)."""
        return {}

    def hash(self, target: Target) -> str:
        """Everything about this backend that changes its output for ``target``."""
        text = json.dumps([self.name, self.version, self.toolchain(), str(target)],
                          sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def check_target(self, target: Target) -> None:
        if not self.supports(target):
            raise UnsupportedError(f"the {self.name} backend does not build for {target}")

    def unsupported(self, kernel: Any, space: str) -> Optional[str]:
        """Why ``kernel`` (a kernel function of the fused module) cannot be built, or None."""
        return None

    def lowering_targets(self, target: Optional[Target]) -> Optional[list]:
        """For a backend that compiles from the lowering passes (``qf-lower-loops``,
        ``qf-map-gpu``): the GPU targets whose ``gpu`` form a compile for ``target`` needs
        (the runtime runs the passes and hands ``compile_kernel`` their output as
        ``lowered``). None: the backend lowers the fused kernel functions itself."""
        return None

    def compile_kernel(self, kernel: Any, space: str, target: Target) -> Any:
        """The artifact that runs ``kernel`` (a kernel function of the fused module, read
        by the reader) on ``target``."""
        raise NotImplementedError

    def binaries(self, artifact: Any, target: Target, dims: dict) -> dict:
        """``{extension: bytes or text}`` a bundle ships for one kernel on ``target``,
        built here without the target's hardware (``dims``: sizes for the constexprs)."""
        return {}

    # ------------------------------------------------------------ stored form
    #: suffix of the file holding an artifact's ``text`` in cache entries and bundles
    source_suffix = ".txt"

    def artifact_schema(self, s: Any) -> Any:
        """The schema of :meth:`dump_artifact`'s JSON, built from the combinators of ``s``
        (``qfuse.runtime.schema``, handed in: a backend does not import the runtime);
        None when the backend stores no artifact (a step's ``source`` is then null)."""
        return None

    def dump_artifact(self, artifact: Any) -> Any:
        """``artifact`` as JSON data (dicts, lists, strings, numbers)."""
        return None

    def load_artifact(self, data: Any) -> Any:
        """The artifact from JSON data that passed :meth:`artifact_schema`; raises
        :class:`ArtifactError` for damage a schema cannot see. Needs no compiler."""
        return None

    def runner(self, compiled: Any, aliases: dict) -> Any:
        """Runs ``compiled`` (a ``CompiledPipeline`` of this backend) on tensors:
        ``run(inputs, key, config, interpret)`` for a validated call (``key``: its
        signature, to bind it for later calls), ``has(key)`` / ``run_seen(key, inputs)``
        for a signature bound before, ``set_configs(lookup)`` for tuned launch configs,
        ``needs_contiguous``: whether inputs must be dense in their last dim."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
