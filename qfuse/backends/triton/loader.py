"""Loading generated kernels: write the text to a ``.py`` file, import it with importlib.

``@triton.jit`` needs real source (``inspect.getsource``), so ``exec()`` of a string does
not work. Files live in ``$QFUSE_CACHE_DIR/triton_src`` (default ``~/.cache/qfuse``), named
by the content hash, written atomically (temp file + ``os.replace``), so concurrent
processes agree.

:func:`interpreting` runs a ``@triton.jit`` kernel in the CPU interpreter in this process,
whatever ``TRITON_INTERPRET`` was at import: while it is active, every JITFunction in
``triton.language.*`` (``tl.max``, ``tl.sum``, ...) and in the modules the kernel reaches
(the generated module, ``numerics``, ``lib``) is replaced by an ``InterpretedFunction``
twin, the way ``TRITON_INTERPRET=1`` would have decorated them. (Swapping only the
kernel's own globals is not enough: ``tl.max`` is itself a JITFunction.) The interpreter
patches ``triton.language`` while it runs and, for nested calls, never undoes the patch
of a helper's module (``tl.core`` for ``tl.max``): the attributes of every
``triton.language`` module and class it touches are snapshot and restored, so the same
process can cross-compile afterwards.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import tempfile
import threading

__all__ = ["source_dir", "load_module", "load_kernel", "interpreting"]

_LOCK = threading.RLock()
_MODULES: dict = {}


def source_dir() -> str:
    root = os.environ.get("QFUSE_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache",
                                                              "qfuse")
    path = os.path.join(root, "triton_src")
    os.makedirs(path, exist_ok=True)
    return path


def load_module(text: str, name: str, key: str):
    """Import generated module text (cached per content key)."""
    with _LOCK:
        if key in _MODULES:
            return _MODULES[key]
        modname = f"qfuse_gen_{name}_{key}"
        path = os.path.join(source_dir(), modname + ".py")
        if not os.path.exists(path) or open(path).read() != text:
            fd, tmp = tempfile.mkstemp(prefix=f".{modname}.", suffix=".tmp", dir=os.path.dirname(path))
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, path)
        spec = importlib.util.spec_from_file_location(modname, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[modname] = mod
        spec.loader.exec_module(mod)
        _MODULES[key] = mod
        return mod


def load_kernel(source):
    """The ``@triton.jit`` kernel object of a :class:`KernelSource`."""
    return getattr(load_module(source.text, source.name, source.key), source.name)


def _prepare() -> None:
    # imports that triton performs lazily on the first launch (gluon checks that the
    # tl.standard functions are JITFunctions): do them before anything is swapped
    for mod in ("triton.experimental.gluon",):
        with contextlib.suppress(Exception):
            importlib.import_module(mod)


@contextlib.contextmanager
def interpreting(kernel):
    """``with interpreting(k) as ik: ik[grid](*args)``: run ``k`` in the interpreter."""
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction
    if isinstance(kernel, InterpretedFunction):      # decorated under TRITON_INTERPRET=1
        yield kernel
        return
    _prepare()
    with _LOCK:
        mods = [m for n, m in list(sys.modules.items())
                if m is not None and (n == "triton.language" or n.startswith("triton.language."))]
        todo, seen = [sys.modules[kernel.fn.__module__]], set()
        while todo:
            m = todo.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            mods.append(m)
            for val in list(vars(m).values()):
                if isinstance(val, JITFunction):
                    owner = sys.modules.get(val.fn.__module__)
                    if owner is not None and id(owner) not in seen:
                        todo.append(owner)
        snap = _snapshot()
        twins, undo = {}, []
        for m in mods:
            for k, val in list(vars(m).items()):
                if isinstance(val, JITFunction):
                    twin = twins.setdefault(id(val), InterpretedFunction(val.fn))
                    undo.append((m, k, val))
                    setattr(m, k, twin)
        try:
            yield twins[id(kernel)]
        finally:
            for m, k, val in reversed(undo):
                setattr(m, k, val)
            _restore(snap)


def _patched_objects() -> list:
    import triton.language as tl
    objs = [m for n, m in list(sys.modules.items())
            if m is not None and (n == "triton.language" or n.startswith("triton.language."))]
    for name in ("tensor", "dtype", "condition", "tensor_descriptor_base", "constexpr"):
        cls = getattr(tl.core, name, None)
        if isinstance(cls, type):
            objs.append(cls)
    return objs


def _snapshot() -> list:
    return [(o, dict(vars(o))) for o in _patched_objects()]


def _restore(snap: list) -> None:
    for obj, saved in snap:
        now = vars(obj)
        # names the interpreter adds to a module's globals (interpreter_semantic, ...) are
        # used by its cached rewritten functions: keep them; undo additions to classes
        for k in [k for k in now if k not in saved and isinstance(obj, type)]:
            with contextlib.suppress(AttributeError, TypeError):
                delattr(obj, k)
        for k, v in saved.items():
            if now.get(k, _MISSING) is not v:
                with contextlib.suppress(AttributeError, TypeError):
                    setattr(obj, k, v)


_MISSING = object()
