"""Ahead-of-time bundles: ``qfuse build`` writes them, ``qfuse.load`` runs them.

A bundle directory holds ``manifest.json`` and, per pipeline, ``<name>.json`` (the
compiled pipeline: checked program, fused IR, Triton kernel sources with launch rules),
``<name>.mlir`` (fused IR, for reading) and ``kernels/<kernel>.py`` (the sources; the
ROCDL backend's loop-level IR: ``kernels/<kernel>.mlir``), plus
``binaries/<target>/<kernel>.<ext>`` when the build was given shapes to specialise
(cubin/ptx for CUDA, hsaco/amdgcn for HIP: proof that the kernel compiles for that
target, and artefacts for AOT consumers), and ``autotune.json`` when a tuning table was
shipped. The manifest records the format, the qfuse, Triton and MLIR versions of the
builder, the targets, each pipeline's signature and the sha256 of every file.

Loading needs torch and what the bundle's backend runs with: no lark, no MLIR bindings.
Triton kernels launch through the local Triton's JIT from the bundled source, so a GPU
box whose Triton differs from the builder's (3.6 vs 3.9) still runs them; ROCDL kernels
carry their code objects in the compiled pipeline (hsaco, cubin: base64) and load
through the driver bindings (hip-python, cuda-bindings); on the CPU their loop-level IR
runs on the CPU twin (which needs torch-mlir's ExecutionEngine, not the passes). A bundle of another qfuse format/version,
or one without the caller's target, is refused with :class:`BundleError`; the caller can
then fall back to JIT compilation (``load(..., fallback="jit")`` does that per pipeline).

What loading verifies (anything else is a :class:`BundleError` saying what and how to
fix it, never a raw exception): the manifest against :data:`MANIFEST_SCHEMA` (``targets`` is a
list, every path a plain relative path), every file the loader reads (each compiled
pipeline and ``autotune.json``) against its sha256 in the manifest (with ``verify=True``,
the default) and against its schema, every path confined to the bundle directory (no
``..``, no absolute path, no symbolic link out), and each pipeline's artifact holding
that pipeline. A bundle is code: its kernels are Python/Triton source that is imported
and run. Checksums detect damage, not malice; load bundles from trusted sources only.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

from ..backends.files import UnsafePathError, atomic_write, confine, is_safe_relpath
from ..errors import QfuseError
from .artifact import FORMAT_VERSION, CompiledPipeline
from .tuning import read_tuning
from .schema import (IDENT, SHA256, ListOf, MapOf, Obj, Opt, SchemaError, Where, check,
                     load_json)

__all__ = ["BundleError", "Bundle", "load", "write_bundle_files", "read_tuning", "MANIFEST",
           "BUNDLE_FORMAT", "MANIFEST_SCHEMA"]

MANIFEST = "manifest.json"
BUNDLE_FORMAT = 1

RELPATH = Where(str, is_safe_relpath, "a relative path inside the bundle (no '..', not absolute)")
_KERNEL = Obj({"name": IDENT, "source": RELPATH}, {"space": str, "reason": str})
_PIPELINE = Obj({"artifact": RELPATH},
                {"kernels": ListOf(_KERNEL), "binaries": MapOf(MapOf(ListOf(RELPATH))),
                 "signature": ListOf(Obj({"name": IDENT, "type": str})),
                 "returns": ListOf(str), "source_file": str})
# enough to tell which qfuse wrote the bundle: checked before the rest, whose shape
# another format may change
_HEADER = Obj({"bundle_format": int, "format": int, "versions": Obj({"qfuse": str})})
MANIFEST_SCHEMA = Obj({**_HEADER.required, "targets": ListOf(str),
                       "pipelines": MapOf(_PIPELINE, key=IDENT),
                       "files": MapOf(SHA256, key=RELPATH)},
                      {"autotune": Opt(RELPATH), "backend": str, "shapes": MapOf(int),
                       "failed": ListOf(Obj({"pipeline": str, "error": str}))})


class BundleError(QfuseError):
    """A bundle cannot be used here (version, target, damage); says why and what to do."""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _rebuild(path) -> str:
    return f"rebuild the bundle (qfuse build ... -o {path})"


def write_bundle_files(out: Path, manifest: dict, files: dict) -> None:
    """Write ``files`` ({relative path: bytes|str}) and the manifest (last) under ``out``.

    The manifest is checked against :data:`MANIFEST_SCHEMA` first, so a bundle this
    writes is one :func:`load` accepts. Raises ``OSError`` when ``out`` cannot be written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sums = {}
    for rel, data in sorted(files.items()):
        raw = data.encode() if isinstance(data, str) else bytes(data)
        p = confine(out, rel, "bundle file")
        p.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(p, raw)
        sums[rel] = _sha(raw)
    manifest = dict(manifest, files=sums)
    check(manifest, MANIFEST_SCHEMA, MANIFEST)
    atomic_write(out / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())


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


def _read_manifest(root: Path) -> dict:
    """The manifest's JSON, its header checked (the rest is checked by :func:`load`)."""
    p = root / MANIFEST
    if not p.is_file() and not p.is_dir():
        raise BundleError(f"{root} is not a qfuse bundle (no {MANIFEST}); build one with "
                          f"`qfuse build FILE.qp --target ... -o {root}`")
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise BundleError(f"cannot read {p}: {e.strerror or e}; {_rebuild(root)}") from None
    try:
        return load_json(raw, _HEADER, str(p))
    except SchemaError as e:
        raise BundleError(f"{e}: the manifest is damaged; {_rebuild(root)}") from None


def _version_problems(manifest: dict) -> list:
    """Why this qfuse cannot read the bundle's kernels ([] when it can)."""
    from .compiler import QFUSE_VERSION
    problems = []
    if manifest["bundle_format"] != BUNDLE_FORMAT or manifest["format"] != FORMAT_VERSION:
        problems.append(f"it has format {manifest['bundle_format']}/{manifest['format']}, "
                        f"this qfuse reads {BUNDLE_FORMAT}/{FORMAT_VERSION}")
    built_by = manifest["versions"]["qfuse"]
    if built_by != QFUSE_VERSION:
        problems.append(f"it was built by qfuse {built_by}, this is qfuse {QFUSE_VERSION}")
    return problems


def _check_manifest(root: Path, manifest: dict, problems: list) -> None:
    """The whole manifest against :data:`MANIFEST_SCHEMA`; a failure is reported as the
    version difference when there is one (the likely cause), else as damage."""
    try:
        check(manifest, MANIFEST_SCHEMA, f"{root / MANIFEST}: $")
    except SchemaError as e:
        cause = "; ".join(problems) if problems else "the manifest is damaged"
        raise BundleError(f"cannot use bundle {root}: {cause} ({e}); {_rebuild(root)}") \
            from None


class _BundleFiles:
    """Reads the bundle's files: each path confined to the bundle, listed in the
    manifest and (with ``verify``) matching its sha256."""

    def __init__(self, root: Path, manifest: dict, verify: bool):
        self.root, self.sums, self.verify = root, manifest["files"], verify

    def read(self, rel: str, what: str) -> bytes:
        try:
            p = confine(self.root, rel, what)
        except UnsafePathError as e:
            raise BundleError(f"{e}; the bundle is damaged or not from a trusted source") from None
        if self.verify and rel not in self.sums:
            raise BundleError(f"{what} {rel} has no checksum in the manifest; "
                              f"{_rebuild(self.root)}")
        try:
            raw = p.read_bytes()
        except OSError as e:
            raise BundleError(f"cannot read {what} {p}: {e.strerror or e}; the bundle is "
                              f"incomplete or damaged; {_rebuild(self.root)}") from None
        if self.verify and _sha(raw) != self.sums[rel]:
            raise BundleError(f"{p} does not match its checksum in the manifest (damaged or "
                              f"edited); {_rebuild(self.root)}")
        return raw

    def json(self, rel: str, what: str, parse):
        """``parse(raw, name of the file)``, its SchemaError turned into a BundleError."""
        raw = self.read(rel, what)
        try:
            return parse(raw, str(self.root / rel))
        except SchemaError as e:
            raise BundleError(f"{e}; {_rebuild(self.root)}") from None


def load(path, *, target: Optional[str] = None, verify: bool = True,
         fallback: Optional[str] = None) -> Bundle:
    """Load a bundle built by ``qfuse build``; returns the pipelines as callables.

    ``target`` defaults to the local GPU (``cuda:sm_90``, ``hip:gfx942``) or ``cpu:interp``
    (Triton's interpreter, which runs any bundle's sources). ``fallback="jit"`` compiles a
    pipeline locally (needs the compiler extras) instead of refusing a mismatched bundle.
    ``verify=False`` skips the checksums (the schema and path checks stay).
    """
    root = Path(path)
    manifest = _read_manifest(root)
    problems = _version_problems(manifest)
    _check_manifest(root, manifest, problems)
    tgt = _local_target(target)
    if tgt != "cpu:interp" and tgt not in manifest["targets"]:
        problems.append(f"it has no kernels for {tgt} (it was built for "
                        f"{', '.join(manifest['targets'])}); rebuild with --target {tgt}")
    if problems and fallback != "jit":
        raise BundleError(f"cannot use bundle {root}: " + "; ".join(problems) +
                          " (or load it with fallback='jit' where the compiler is installed)")
    files = _BundleFiles(root, manifest, verify)
    # every file is read and checked before any pipeline is made from it
    compiled = {name: files.json(entry["artifact"], f"pipeline {name}", _artifact_of(name))
                for name, entry in manifest["pipelines"].items()}
    table = (files.json(manifest["autotune"], "tuning table", read_tuning)
             if manifest.get("autotune") else None)
    pipes = {name: _pipeline(cp, tgt, bool(problems)) for name, cp in compiled.items()}
    if table is not None:
        for qp in pipes.values():
            qp.use_tuning(table)
    return Bundle(root, manifest, pipes)


def _artifact_of(name: str):
    """The parser of pipeline ``name``'s compiled form (another pipeline's is refused)."""
    return lambda raw, what: CompiledPipeline.loads(raw, what, name)


def _pipeline(cp: CompiledPipeline, tgt: str, jit: bool):
    """The callable of ``cp``: its bundled kernels, or (``jit``) compiled here."""
    from .pipeline import QuantPipeline
    from ..backends.base import parse_target
    from ..backends.registry import get_backend
    # a target the bundle's backend does not serve (cpu:ref): the device's default backend
    backend = cp.backend if get_backend(cp.backend).supports(parse_target(tgt)) else None
    prebuilt = {} if jit or backend is None else {(backend, tgt): cp}
    return QuantPipeline(cp.program, backend=backend, prebuilt=prebuilt, allow_jit=jit)
