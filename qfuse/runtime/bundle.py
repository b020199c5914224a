"""Ahead-of-time bundles: ``qfuse build`` writes them, ``qfuse.load`` runs them.

A bundle directory holds ``manifest.json`` and, per pipeline, ``<name>.json`` (the
compiled pipeline: checked program, fused IR, Triton kernel sources with launch rules),
``<name>.mlir`` (fused IR, for reading) and ``kernels/<kernel>.py`` (the sources), plus
``binaries/<target>/<kernel>.<ext>`` when the build was given shapes to specialise
(cubin/ptx for CUDA, hsaco/amdgcn for HIP: proof that the kernel compiles for that
target, and artefacts for AOT consumers). The manifest records the format, the qfuse,
Triton and MLIR versions of the builder, the targets, each pipeline's signature and the
sha256 of every file.

Loading needs torch and triton only: no lark, no MLIR bindings. Kernels launch through
the local Triton's JIT from the bundled source, so a GPU box whose Triton differs from
the builder's (3.6 vs 3.9) still runs them. A bundle of another qfuse format/version,
or one without the caller's target, is refused with :class:`BundleError`; the caller can
then fall back to JIT compilation (``load(..., fallback="jit")`` does that per pipeline).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

from ..errors import QfuseError
from .artifact import FORMAT_VERSION, CompiledPipeline

__all__ = ["BundleError", "Bundle", "load", "write_bundle_files", "MANIFEST", "BUNDLE_FORMAT"]

MANIFEST = "manifest.json"
BUNDLE_FORMAT = 1


class BundleError(QfuseError):
    """A bundle cannot be used here (version, target, damage); says why and what to do."""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_bundle_files(out: Path, manifest: dict, files: dict) -> None:
    """Write ``files`` ({relative path: bytes|str}) and the manifest (last) under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    sums = {}
    for rel, data in sorted(files.items()):
        raw = data.encode() if isinstance(data, str) else bytes(data)
        p = out / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(raw)
        sums[rel] = _sha(raw)
    manifest = dict(manifest, files=sums)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))


def _local_target(target: Optional[str]) -> str:
    if target:
        return target
    import torch
    if torch.cuda.is_available():
        from .pipeline import device_target
        return device_target(torch.device("cuda"))
    return "cpu:interp"


class Bundle(dict):
    """``{pipeline name: QuantPipeline}`` plus the manifest; attribute access works too."""

    def __init__(self, path: Path, manifest: dict, pipes: dict):
        super().__init__(pipes)
        self.path, self.manifest = path, manifest

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def load(path, *, target: Optional[str] = None, verify: bool = True,
         fallback: Optional[str] = None) -> Bundle:
    """Load a bundle built by ``qfuse build``; returns the pipelines as callables.

    ``target`` defaults to the local GPU (``cuda:sm_90``, ``hip:gfx942``) or ``cpu:interp``
    (Triton's interpreter, which runs any bundle's sources). ``fallback="jit"`` compiles a
    pipeline locally (needs the compiler extras) instead of refusing a mismatched bundle.
    """
    from .pipeline import QuantPipeline
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise BundleError(f"{path} is not a qfuse bundle (no {MANIFEST}); build one with "
                          f"`qfuse build FILE.qp --target ... -o {path}`") from None
    except json.JSONDecodeError as e:
        raise BundleError(f"{path / MANIFEST} is damaged ({e}); rebuild the bundle") from None
    problems = []
    if manifest.get("bundle_format") != BUNDLE_FORMAT or manifest.get("format") != FORMAT_VERSION:
        problems.append(f"it has format {manifest.get('bundle_format')}/{manifest.get('format')}, "
                        f"this qfuse reads {BUNDLE_FORMAT}/{FORMAT_VERSION}")
    from .compiler import QFUSE_VERSION
    built_by = manifest.get("versions", {}).get("qfuse")
    if built_by != QFUSE_VERSION:
        problems.append(f"it was built by qfuse {built_by}, this is qfuse {QFUSE_VERSION}")
    tgt = _local_target(target)
    targets = manifest.get("targets", [])
    if tgt != "cpu:interp" and tgt not in targets:
        problems.append(f"it has no kernels for {tgt} (it was built for {', '.join(targets)}); "
                        f"rebuild with --target {tgt}")
    if problems and fallback != "jit":
        raise BundleError(f"cannot use bundle {path}: " + "; ".join(problems) +
                          " (or load it with fallback='jit' where the compiler is installed)")
    pipes = {}
    for name, entry in manifest.get("pipelines", {}).items():
        raw = (path / entry["artifact"]).read_bytes()
        if verify and manifest["files"].get(entry["artifact"]) != _sha(raw):
            raise BundleError(f"{path / entry['artifact']} does not match its checksum in the "
                              f"manifest (damaged or edited); rebuild the bundle")
        cp = CompiledPipeline.from_json(json.loads(raw))
        prebuilt = {} if problems else {("triton", tgt): cp}
        pipes[name] = QuantPipeline(cp.program, backend="triton" if tgt != "cpu:ref" else None,
                                    prebuilt=prebuilt, allow_jit=bool(problems))
    if manifest.get("autotune"):
        from .autotune import TuningTable
        table = TuningTable.loads((path / manifest["autotune"]).read_text())
        for qp in pipes.values():
            qp.use_tuning(table)
    return Bundle(path, manifest, pipes)
