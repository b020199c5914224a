"""Loading generated kernels: write the text to a ``.py`` file, import it with importlib.

``@triton.jit`` needs real source (``inspect.getsource``), so ``exec()`` of a string does
not work. Files live in ``$QFUSE_CACHE_DIR/triton_src`` (default ``~/.cache/qfuse``), named
``qfuse_gen_<kernel>_<content hash>.py`` and written with
:func:`~qfuse.backends.files.atomic_write` (readable by other users of a shared cache), so
concurrent processes agree. What comes from data is checked before it touches the file
system: the kernel name must be a Python identifier and the hash hexadecimal, so a
damaged or crafted name (``../x``) can neither write nor import a file outside the
directory. The module is compiled from the text in memory, never from a ``.pyc`` (a
truncated one in a shared cache used to break the import), and a cache that cannot be
written costs nothing but the sharing: the modules go to a private temporary directory.
(To run a loaded kernel in the CPU interpreter: ``triton_adapter.interpreting``.)
"""
from __future__ import annotations

import atexit
import importlib.machinery
import importlib.util
import os
import re
import shutil
import sys
import tempfile
import threading
import warnings

from ....errors import QfuseError
from ...files import atomic_write, confine, default_cache_dir, sweep_stale

__all__ = ["source_dir", "load_module", "load_kernel"]

_LOCK = threading.RLock()
_MODULES: dict = {}
_PRIVATE: list = []             # the fallback directory, once one was needed
_HEX = re.compile(r"[0-9a-f]{1,64}")


def source_dir() -> str:
    """``<cache>/triton_src``, created on first use."""
    path = os.path.join(default_cache_dir(), "triton_src")
    os.makedirs(path, exist_ok=True)
    return path


def _private_dir() -> str:
    if not _PRIVATE:
        _PRIVATE.append(tempfile.mkdtemp(prefix="qfuse-triton-src-"))
        atexit.register(shutil.rmtree, _PRIVATE[0], True)     # nobody else can use it
    return _PRIVATE[0]


def _module_name(name: str, key: str) -> str:
    if not (isinstance(name, str) and name.isidentifier()):
        raise QfuseError(f"generated kernel name {name!r:.80} is not a Python identifier: the "
                         f"compiled pipeline it comes from is damaged; rebuild it (qfuse cache "
                         f"clear, or rebuild the bundle)")
    if not (isinstance(key, str) and _HEX.fullmatch(key)):
        raise QfuseError(f"kernel {name}: content hash {key!r:.80} is not hexadecimal")
    return f"qfuse_gen_{name}_{key}"


def _same_text(path: str, data: bytes) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read() == data
    except OSError:                  # missing, a directory, unreadable: write it anew
        return False


def _write_in(directory: str, modname: str, data: bytes) -> str:
    """``<directory>/<modname>.py`` holding ``data`` (written unless it already does)."""
    path = confine(directory, modname + ".py", "generated module")
    if not _same_text(path, data):
        sweep_stale(directory)
        atomic_write(path, data)
    return str(path)


def _write_source(modname: str, text: str) -> str:
    """The path of ``<modname>.py`` holding ``text``: in the cache, or, where the cache
    cannot be written, in a private temporary directory (warned once)."""
    data = text.encode()
    try:
        return _write_in(source_dir(), modname, data)
    except OSError as e:
        if not _PRIVATE:
            warnings.warn(f"qfuse cache {default_cache_dir()} cannot be written ({e}); "
                          f"generated kernels go to a private temporary directory",
                          stacklevel=3)
    try:
        return _write_in(_private_dir(), modname, data)
    except OSError as e:
        raise QfuseError(f"cannot write the generated kernel module {modname}.py, neither "
                         f"in the cache {default_cache_dir()} nor in a temporary directory "
                         f"({e.strerror or e}); set QFUSE_CACHE_DIR to a writable "
                         f"directory") from None


class _TextLoader(importlib.machinery.SourceFileLoader):
    """Compiles the module from the text qfuse holds, never from a ``.pyc``: a stale or
    truncated bytecode file in a shared cache cannot break or change the import."""

    def __init__(self, fullname: str, path: str, text: str):
        super().__init__(fullname, path)
        self._text = text

    def get_source(self, fullname):
        return self._text

    def get_code(self, fullname):
        return compile(self._text, self.path, "exec", dont_inherit=True)


def load_module(text: str, name: str, key: str):
    """Import generated module text (cached per content key)."""
    with _LOCK:
        if key in _MODULES:
            return _MODULES[key]
        modname = _module_name(name, key)
        path = _write_source(modname, text)
        loader = _TextLoader(modname, path, text)
        spec = importlib.util.spec_from_file_location(modname, path, loader=loader)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[modname] = mod
        try:
            loader.exec_module(mod)
        except BaseException:
            sys.modules.pop(modname, None)
            raise
        _MODULES[key] = mod
        return mod


def load_kernel(source):
    """The ``@triton.jit`` kernel object of a :class:`KernelSource`."""
    return getattr(load_module(source.text, source.name, source.key), source.name)
