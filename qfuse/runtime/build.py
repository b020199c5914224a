"""``qfuse build``: compile .qp files into a bundle on any machine (no GPU needed).

For every pipeline: the passes and Triton rendering run once (the sources do not depend
on the target); then each kernel is cross-compiled for every ``--target`` with the block
sizes of ``--shapes`` (symbols not given default to 64), and the binaries are stored.
A pipeline that fails is reported with its error and skipped; the rest are still built,
and the command exits non-zero at the end.
"""
from __future__ import annotations

import traceback
from pathlib import Path
from typing import Iterable, Optional

from ..errors import QfuseError
from .artifact import FORMAT_VERSION
from .bundle import BUNDLE_FORMAT, write_bundle_files

__all__ = ["build_bundle", "BuildReport"]

DEFAULT_SYMBOL = 64


class BuildReport:
    def __init__(self):
        self.built: list = []
        self.failed: list = []          # (pipeline, message)

    @property
    def ok(self) -> bool:
        return not self.failed


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), transient=False)


def build_bundle(files: Iterable[str], targets: list, out: str, *, backend: str = "triton",
                 shapes: Optional[dict] = None, progress: bool = True,
                 tuning: Optional[str] = None) -> BuildReport:
    """Build ``files`` for ``targets`` into directory ``out``; returns what built and failed."""
    from ..backends.base import parse_target
    from ..backends.registry import get_backend
    from ..dsl import load_file
    from .compiler import _versions, compile_pipeline
    b = get_backend(backend)
    for t in targets:
        b.check_target(parse_target(t))
    table = _read_tuning_file(tuning) if tuning else None     # bad input fails before work
    report = BuildReport()
    jobs = []
    seen: dict = {}
    for f in files:
        try:
            for tp in load_file(f).values():
                if tp.name in seen:
                    report.failed.append((tp.name, f"{f}: a pipeline named {tp.name} is already "
                                                   f"defined in {seen[tp.name]}; names in a "
                                                   f"bundle must be unique"))
                    continue
                seen[tp.name] = f
                jobs.append((f, tp))
        except QfuseError as e:
            report.failed.append((f, str(e)))
    payload, pipelines = {}, {}
    prog = _progress() if progress else None
    if prog:
        prog.start()
        task = prog.add_task("building", total=len(jobs) * (1 + len(targets)))
    try:
        for f, tp in jobs:
            if prog:
                prog.update(task, description=f"{tp.name}: passes + codegen")
            try:
                cp = compile_pipeline(tp, backend, "any")
                entry = _entry(cp, f)
                payload[f"{tp.name}.mlir"] = cp.fused_ir
                for k, text in cp.sources().items():
                    payload[f"kernels/{k}{cp.source_suffix}"] = text
                if prog:
                    prog.advance(task)
                for t in targets:
                    if prog:
                        prog.update(task, description=f"{tp.name}: compile for {t}")
                    entry["binaries"][t] = _compile_binaries(b, cp, t, shapes or {}, payload)
                    if prog:
                        prog.advance(task)
                # last: a backend whose artifact keeps the binaries (rocdl) stores them
                payload[f"{tp.name}.json"] = cp.dumps()
                pipelines[tp.name] = entry
                report.built.append(tp.name)
            except Exception as e:        # one pipeline failing must not stop the build
                msg = str(e) if isinstance(e, QfuseError) else \
                    f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}"
                report.failed.append((tp.name, msg))
                for rel in [k for k in payload if k.startswith(f"{tp.name}.")]:
                    payload.pop(rel)
    finally:
        if prog:
            prog.stop()
    if table is not None:               # autotune results (qfuse.runtime.autotune) to ship
        payload["autotune.json"] = table.dumps()
    manifest = {"bundle_format": BUNDLE_FORMAT, "autotune": "autotune.json" if tuning else None,
                "format": FORMAT_VERSION, "backend": backend,
                "targets": list(targets), "versions": _versions(backend), "shapes": shapes or {},
                "pipelines": pipelines,
                "failed": [{"pipeline": n, "error": m} for n, m in report.failed]}
    try:
        write_bundle_files(Path(out), manifest, payload)
    except OSError as e:
        raise QfuseError(f"cannot write the bundle to {out}: {e.strerror or e}; choose a "
                         f"writable directory with -o") from None
    return report


def _read_tuning_file(path: str):
    """The tuning table to ship, checked like the one a bundle loads."""
    from .tuning import read_tuning
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise QfuseError(f"cannot read --tuning {path}: {e.strerror or e}") from None
    try:
        return read_tuning(raw, path)
    except QfuseError as e:
        raise QfuseError(f"--tuning {path} is not a tuning table ({e}); write it with "
                         f"QuantPipeline.autotune(...).dumps()") from None


def _entry(cp, source_file: str) -> dict:
    prog = cp.program
    return {"artifact": f"{cp.name}.json", "source_file": str(source_file),
            "signature": [{"name": p.value.name, "type": str(p.value.type),
                           "default": p.default} for p in prog.params],
            "returns": [n for n, _ in cp.returns],
            "kernels": [{"name": s.name, "space": s.space, "reason": s.reason,
                         "source": f"kernels/{s.name}{cp.source_suffix}"} for s in cp.steps],
            "binaries": {}}


def _compile_binaries(backend, cp, target: str, shapes: dict, payload: dict) -> dict:
    """Each kernel of ``cp`` built for ``target`` by ``backend`` into ``payload``;
    ``{kernel: [relative paths]}``. Symbols not given in ``shapes`` are 64 (small
    constexprs: a split-K count is unrolled, and a 4096-wide block for every dim would
    only make the compile slow)."""
    from ..backends.base import parse_target
    tgt = parse_target(target)
    out = {}
    for step in cp.steps:
        dims = {s: shapes.get(s, DEFAULT_SYMBOL) for s in getattr(step.source, "symbols", ())}
        names = []
        for ext, data in backend.binaries(step.source, tgt, dims).items():
            rel = f"binaries/{target.replace(':', '_')}/{step.name}.{ext}"
            payload[rel] = data
            names.append(rel)
        out[step.name] = names
    return out
