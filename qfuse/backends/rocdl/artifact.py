"""``RocdlKernel``: what the ROCDL backend compiles one kernel function into, and its
stored form (the disk cache, bundles).

It holds the kernel's ABI (:func:`~.kernel.signature`), its launch rule, and its IR at
the two levels every target starts from: the loop form (the CPU twin runs it) and the
``gpu`` form (``convert-gpu-to-rocdl`` / ``-nvvm`` lower it). Binaries for a GPU target
are built from the ``gpu`` form (:mod:`.lower`) when the kernel is compiled for that
target or a bundle is built, and kept in ``binaries``; a stored kernel carries them, so
a GPU launcher loads a stored kernel with torch and the driver bindings alone (no MLIR).
``text`` is what the cache and bundles show a human next to the compiled pipeline.

Stored form (JSON, :func:`dump` / :func:`load`, schema :func:`schema`): the fields
below, with ``args`` as ``ArgSpec`` objects and ``binaries`` as ``{target: {ext: str}}``,
text formats (``amdgcn``, ``ptx``) as they are and code objects (``hsaco``, ``cubin``)
in base64. Loading checks what a schema cannot: the grid rule, the rows argument, the
targets, that every code object decodes and is an ELF file, and that an hsaco is for its
chip (``EF_AMDGPU_MACH``) and holds this kernel's descriptor.
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
from dataclasses import dataclass, field

from ..base import ArtifactError, from_asdict, parse_target
from ...errors import UnsupportedError

__all__ = ["RocdlKernel", "GRIDS", "TEXT_EXT", "CODE_EXT", "schema", "dump", "load"]

#: launch rules: one block per row of the rows argument; ``blocks``: a grid-wide amax,
#: ``mapping.grid_blocks(rows)`` blocks and a zeroed workspace appended to the arguments
GRIDS = ("rows", "blocks")
#: binary kinds per platform: (text, code object)
TEXT_EXT = {"hip": "amdgcn", "cuda": "ptx"}
CODE_EXT = {"hip": "hsaco", "cuda": "cubin"}


@dataclass
class RocdlKernel:
    name: str
    space: str
    args: list                  # [ArgSpec]: parameters, then outputs
    loops: str                  # loop-level module (func.func, C interface)
    gpu: dict                   # target -> gpu-level module text (native converts differ)
    grid: str                   # "rows": one block per row; "blocks": a grid-wide amax
    rows_arg: int               # the argument whose dim 0 counts the rows
    binaries: dict = field(default_factory=dict)   # target -> {ext: text or bytes}

    @property
    def text(self) -> str:
        return self.loops

    @property
    def gpu_args(self) -> list:
        """The GPU function's arguments: the ABI's, and for a grid-wide amax its
        workspace (``mapping.WORKSPACE_WORDS`` zeroed ``i32``, rank 1)."""
        if self.grid != "blocks":
            return list(self.args)
        from .kernel import ArgSpec
        return list(self.args) + [ArgSpec("workspace", "i32", 1, output=True)]

    def code_object(self, target) -> bytes:
        """The loadable code object for ``target`` (hsaco / cubin): the stored one, else
        built here from the ``gpu`` form (which needs the compiler's toolchain)."""
        ext = CODE_EXT[target.platform]
        got = self.binaries.get(str(target), {}).get(ext)
        if got is not None:
            return got
        if str(target) not in self.gpu:
            raise UnsupportedError(
                f"rocdl backend: kernel {self.name} has no code object for {target} (it "
                f"was built for {', '.join(sorted(self.gpu)) or 'the CPU twin only'}); "
                f"rebuild the bundle with --target {target}")
        from .lower import build_binaries
        return build_binaries(self, target)[ext]


# ------------------------------------------------------------------ stored form
def schema(s):
    """The stored form's schema, from the runtime's combinators ``s``."""
    from .kernel import ArgSpec
    return s.dataclass_spec(RocdlKernel, {
        "name": s.IDENT,
        "args": s.ListOf(s.dataclass_spec(ArgSpec, {"name": s.IDENT})),
        "gpu": s.MapOf(str),
        "binaries": s.MapOf(s.MapOf(str)),
    })


def dump(k: RocdlKernel) -> dict:
    out = dataclasses.asdict(k)
    out["binaries"] = {t: {ext: _encode(data) for ext, data in files.items()}
                       for t, files in k.binaries.items()}
    return out


def _encode(data) -> str:
    return data if isinstance(data, str) else base64.b64encode(data).decode("ascii")


def load(d: dict) -> RocdlKernel:
    from .kernel import ArgSpec, storage_type
    k = from_asdict(RocdlKernel, d, {"args": ArgSpec})
    k.args, k.gpu = list(k.args), dict(d["gpu"])
    where = f"kernel {k.name}"
    if k.grid not in GRIDS:
        raise ArtifactError(f"{where}: grid {k.grid!r:.40}, expected one of {', '.join(GRIDS)}")
    if not 0 <= k.rows_arg < len(k.args) or not k.args[k.rows_arg].rank:
        raise ArtifactError(f"{where}: rows argument {k.rows_arg} is not one of its "
                            f"{len(k.args)} tensor arguments")
    for a in k.args:
        try:
            storage_type(a.dtype)
        except KeyError:
            raise ArtifactError(f"{where}: argument {a.name} has unknown dtype "
                                f"{a.dtype!r:.40}") from None
    k.binaries = {t: _load_files(k.name, t, files) for t, files in d["binaries"].items()}
    for t in k.gpu:
        _target(where, t)
    return k


def _target(where: str, text: str):
    try:
        t = parse_target(text)
    except UnsupportedError as e:
        raise ArtifactError(f"{where}: {e.message}") from None
    if t.platform not in CODE_EXT:
        raise ArtifactError(f"{where}: {text} is not a GPU target")
    return t


def _load_files(name: str, tname: str, files: dict) -> dict:
    from .codeobj import MACH, read_code_object
    where = f"kernel {name}"
    t = _target(where, tname)
    out = {}
    for ext, data in files.items():
        if ext == TEXT_EXT[t.platform]:
            out[ext] = data
            continue
        if ext != CODE_EXT[t.platform]:
            raise ArtifactError(f"{where}: {tname} has a {ext!r:.20} file; expected "
                                f"{TEXT_EXT[t.platform]} and {CODE_EXT[t.platform]}")
        try:
            raw = base64.b64decode(data.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise ArtifactError(f"{where}: its {tname} {ext} is not base64") from None
        if raw[:4] != b"\x7fELF":
            raise ArtifactError(f"{where}: its {tname} {ext} is not an ELF code object")
        if ext == "hsaco":
            try:
                co = read_code_object(raw)
            except ValueError as e:
                raise ArtifactError(f"{where}: its {tname} hsaco cannot be read ({e})") \
                    from None
            if co.mach != MACH.get(t.arch) or f"{name}.kd" not in co.kernel_descriptors:
                raise ArtifactError(f"{where}: its {tname} hsaco is not this kernel for "
                                    f"{t.arch}")
        out[ext] = raw
    return out
