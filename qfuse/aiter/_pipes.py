"""The qfuse pipelines behind ``qfuse.aiter``: loaded once from the ``.qp`` templates in
``qfuse/aiter/pipelines/``, compiled through the runtime cache, cached per variant.

A template is a ``.qp`` file whose dtypes and numeric options may be ``$NAME``
placeholders (``string.Template``): ``$X`` the input dtype, ``$Q`` the quantisation target,
``$DMAX`` its dtype_max, ... Lines between ``#if FLAG`` (or ``#if not FLAG``), ``#else``
and ``#endif`` are kept or dropped by the flags a call passes: which of AITER's optional
inputs and outputs it has (the DSL reads those directives as comments; optional
parameters in the language itself will replace them). A wrapper asks for
``pipeline("quant", "per_token", "hip", X="bf16", Q="i8", ...)``: the file is rendered
with those values, checked by the DSL front end once per rendering (every pipeline of the
file at once), and each pipeline becomes a
:class:`~qfuse.runtime.pipeline.QuantPipeline` per backend, kept for the process. A
later call of the same variant costs one dict lookup, then the pipeline's own seen-call
path.

Which backend runs (docs/aiter.md, "Backends"): the AITER entry point's kind decides,

* ``torch`` (AITER's torch references): the ``reference`` backend, on any device;
* ``triton`` (AITER's Triton kernels): ``triton`` (Triton's interpreter for CPU tensors);
* ``hip`` (AITER's HIP / CK / asm kernels): the ROCDL backend on AMD once it exists;
  until then, and on NVIDIA, ``triton``.

:func:`use_backend` overrides that for a block of code (the tests run every function on
both backends this way).
"""
from __future__ import annotations

import contextlib
import contextvars
import string
import threading
from pathlib import Path
from typing import Iterator, Optional

__all__ = ["pipeline", "backend_for", "use_backend", "render"]

_DIR = Path(__file__).resolve().parent / "pipelines"
_KIND_BACKEND = {"torch": "reference", "triton": "triton", "hip": "triton"}
_lock = threading.Lock()
_texts: dict = {}          # template name -> (text, default substitutions)
_checked: dict = {}        # rendered text -> {pipeline name: TypedPipeline}
_pipes: dict = {}          # (template, name, backend, substitutions) -> QuantPipeline
_forced: contextvars.ContextVar = contextvars.ContextVar("qfuse_aiter_backend", default=None)


def backend_for(kind: str) -> str:
    """The backend an entry point of ``kind`` (``torch``, ``triton``, ``hip``) runs on now."""
    return _forced.get() or _KIND_BACKEND[kind]


@contextlib.contextmanager
def use_backend(name: Optional[str]) -> Iterator[None]:
    """Run every ``qfuse.aiter`` function in the block (this thread or task) on backend
    ``name`` (``reference`` or ``triton``); ``None``: each entry point's own choice."""
    if name is not None:
        from ..backends.registry import check_name
        check_name(name)
    token = _forced.set(name)
    try:
        yield
    finally:
        _forced.reset(token)


def render(template: str, subs: dict, flags=frozenset()) -> str:
    """The text of ``pipelines/<template>.qp`` for ``flags`` (its ``#if`` blocks) with
    ``$NAME`` placeholders filled in: from ``subs``, else from the template's
    ``#!defaults: NAME=value; ...`` line (values only some of its pipelines read, so a call
    names just what its pipeline needs)."""
    got = _texts.get(template)
    if got is None:
        text = (_DIR / f"{template}.qp").read_text()
        got = _texts[template] = (text, _defaults(text))
    return string.Template(_select(got[0], flags)).substitute({**got[1], **subs})


def _select(text: str, flags) -> str:
    """``text`` without its ``#if`` / ``#else`` / ``#endif`` lines and the blocks whose
    condition is false (removed, not blanked: a block may sit inside a ``\\``
    continuation, where an empty line would end the statement)."""
    out, keep = [], [True]
    for line in text.splitlines(keepends=True):
        word = line.strip().split()
        head = word[0] if word else ""
        if head == "#if":
            cond = word[-1] in flags
            keep.append(keep[-1] and (cond != (len(word) == 3 and word[1] == "not")))
        elif head == "#else":
            keep[-1] = not keep[-1] and keep[-2]
        elif head == "#endif":
            keep.pop()
        elif keep[-1]:
            out.append(line)
    return "".join(out)


def _defaults(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        if line.startswith("#!defaults:"):
            for item in line.split(":", 1)[1].split(";"):
                if item.strip():
                    k, v = item.split("=")
                    out[k.strip()] = v.strip()
    return out


def pipeline(template: str, name: str, kind: str, flags=frozenset(), **subs):
    """The callable pipeline ``name`` of ``template`` rendered with ``subs`` and ``flags``
    (a frozenset of the ``#if`` names that hold), on the backend of ``kind``
    (:func:`backend_for`)."""
    backend = _forced.get() or _KIND_BACKEND[kind]
    key = (template, name, backend, flags, tuple(sorted(subs.items())))
    qp = _pipes.get(key)
    if qp is None:
        qp = _make(key, template, name, backend, subs, flags)
    return qp


def _make(key, template, name, backend, subs, flags):
    from ..dsl import load_source
    from ..runtime.pipeline import QuantPipeline
    with _lock:
        qp = _pipes.get(key)
        if qp is None:
            text = render(template, subs, flags)
            progs = _checked.get(text)
            if progs is None:
                label = f"qfuse/aiter/pipelines/{template}.qp[{_label(subs, flags)}]"
                progs = _checked[text] = load_source(text, label)
            qp = _pipes[key] = QuantPipeline(progs[name], backend=backend)
    return qp


def _label(subs: dict, flags) -> str:
    return ",".join([f"{k}={v}" for k, v in sorted(subs.items())] + sorted(flags))
