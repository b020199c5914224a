"""Runs a list of passes over a module, optionally printing the IR after each.

Passes are Python objects with ``name`` and ``run(module) -> module``; every qfuse pass
rewrites the module in place and returns it. A pass with options (the fields of its
frozen dataclass besides ``name``) is spelt as in mlir-opt: ``qf-map-gpu{target=hip:gfx950}``.
"""
from __future__ import annotations

import dataclasses
import re
import sys
from typing import Iterable, Union

from .registry import PIPELINES, get_pass

__all__ = ["run_passes", "resolve_pipeline", "make_pass", "pass_label"]

_SPEC = re.compile(r"^([\w-]+)(?:\{(.*)\})?$", re.DOTALL)


def make_pass(spec: str):
    """The pass of ``spec``: its name, optionally with options (``name{key=value ...}``)."""
    from ..errors import QfuseError
    m = _SPEC.match(spec.strip())
    if m is None:
        raise QfuseError(f"bad pass {spec!r}: write name or name{{option=value ...}}")
    cls = get_pass(m.group(1))
    known = [f.name for f in dataclasses.fields(cls) if f.name != "name"]
    opts = {}
    for item in (m.group(2) or "").split():
        key, eq, value = item.partition("=")
        if not eq or key not in known:
            raise QfuseError(f"{m.group(1)}: unknown option {item!r} (options: "
                             f"{', '.join(known) or 'none'})")
        opts[key] = value
    return cls(**opts)


def pass_label(p) -> str:
    """``name`` or ``name{option=value ...}`` of a pass object (what --print-after-all
    prints and make_pass reads back)."""
    opts = [f"{f.name}={getattr(p, f.name)}" for f in dataclasses.fields(p) if f.name != "name"]
    return p.name + ("{" + " ".join(opts) + "}" if opts else "")


def _split(text: str) -> list:
    """Comma-separated pass specs (a comma inside ``{...}`` belongs to the options)."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "{") - (ch == "}")
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return [s.strip() for s in out + [cur] if s.strip()]


def resolve_pipeline(pipeline: Union[str, Iterable[str]]) -> list:
    """A pipeline name (``default``), a comma-separated list of pass specs, or a list."""
    if isinstance(pipeline, str):
        names = PIPELINES.get(pipeline) or _split(pipeline)
    else:
        names = list(pipeline)
    return [make_pass(n) for n in names]


def run_passes(module, pipeline="default", *, print_after_all=False, out=None):
    """Run the passes in order; with ``print_after_all`` dump the IR after each one."""
    from ..dialect.text import print_module
    out = out or sys.stdout
    for p in resolve_pipeline(pipeline):
        module = p.run(module) or module
        if print_after_all:
            out.write(f"// -----// IR Dump After {pass_label(p)} //----- //\n")
            out.write(print_module(module))
            out.write("\n")
    return module
