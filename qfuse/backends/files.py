"""Files qfuse writes and later trusts: how they are written, named and found.

The kernel cache, bundles and the directory of generated Triton modules need the same
guarantees, so they share these helpers rather than each having its own version (the
generated-module writer once created its files 0600, which broke a cache shared by two
users). The module lives in the backends layer because the kernel loader, the lowest
layer that writes files, uses it; it needs the standard library only.

* :func:`atomic_write`: a reader never sees a torn file. The data goes to a temporary
  file in the same directory (``.<name>.<pid>.<random>.tmp``) and is renamed into place;
  the file gets the ordinary mode (0666 less the umask); a directory where the file
  belongs (damage) is removed first.
* :func:`confine`: a relative path taken from data (a manifest, a cache group file, a
  kernel name) resolves inside its root or is refused: no absolute path, no ``..``, no
  symbolic link that leads out.
* :func:`safe_component`: any name -> one file-name component (ordinary names unchanged).
* :func:`sweep_stale`: temporary files and trash that a killed writer left behind are
  removed once they are older than any live write could be.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import time
import uuid
from pathlib import Path, PurePosixPath

from ..errors import QfuseError

__all__ = ["UnsafePathError", "default_cache_dir", "atomic_write", "confine", "is_safe_relpath",
           "safe_component", "remove_tree", "sweep_stale", "TMP_SUFFIX", "STALE_AFTER_S"]

TMP_SUFFIX = ".tmp"
TRASH_PREFIX = ".trash."
STALE_AFTER_S = 3600.0          # a write takes milliseconds; an hour-old temp file is an orphan
COMPONENT_LIMIT = 150           # file systems allow 255 bytes; leave room for prefixes/suffixes
_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


class UnsafePathError(QfuseError):
    """A path taken from data would leave the directory it must stay in."""


def default_cache_dir() -> Path:
    """``$QFUSE_CACHE_DIR``, else ``$XDG_CACHE_HOME/qfuse``, else ``~/.cache/qfuse``."""
    env = os.environ.get("QFUSE_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "qfuse"


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")


def atomic_write(path: os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, whole.

    Raises ``OSError`` when the directory cannot be written (callers decide whether that
    is fatal: the cache carries on without caching).
    """
    path = Path(path)
    tmp = _tmp_name(path)
    try:
        # os.open's mode is filtered by the umask, as for any ordinary file (mkstemp
        # would force 0600 and lock other users of a shared cache out)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        # no fsync: it cost 3 ms a file, and what a power loss could leave behind (an
        # empty or partial file) fails the checksum every reader of these files verifies
        _replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _replace(tmp: Path, path: Path) -> None:
    try:
        os.replace(tmp, path)
    except IsADirectoryError:          # a damaged entry: a directory where the file belongs
        remove_tree(path)
        os.replace(tmp, path)


def remove_tree(path: os.PathLike) -> None:
    """Remove a file or directory tree; concurrent removers and readers are safe.

    A directory is first renamed to a hidden trash name (one atomic step, so nobody sees
    it half removed), then deleted; a leftover is swept by :func:`sweep_stale`.
    """
    path = Path(path)
    if not path.is_dir() or path.is_symlink():
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    trash = path.with_name(f"{TRASH_PREFIX}{path.name}.{uuid.uuid4().hex[:8]}")
    try:
        os.replace(path, trash)
    except FileNotFoundError:           # someone else removed it first
        return
    shutil.rmtree(trash, ignore_errors=True)


def is_safe_relpath(rel: object) -> bool:
    """A non-empty relative POSIX path without ``..``, empty parts, backslashes or NUL."""
    if not isinstance(rel, str) or not rel or "\x00" in rel or "\\" in rel:
        return False
    p = PurePosixPath(rel)
    return not p.is_absolute() and all(part not in ("", ".", "..") for part in rel.split("/"))


def confine(root: os.PathLike, rel: object, what: str = "path") -> Path:
    """``root / rel``, refused (:class:`UnsafePathError`) unless it stays inside ``root``.

    Checked twice: the text (no absolute path, no ``..``), then the real location after
    symbolic links are followed, so a link inside ``root`` cannot point out of it.
    """
    if not is_safe_relpath(rel):
        raise UnsafePathError(f"{what} {rel!r} is not a plain relative path inside {root} "
                              f"(absolute paths and '..' are refused)")
    full = Path(root) / str(rel)
    real_root = os.path.realpath(root)
    real = os.path.realpath(full)
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise UnsafePathError(f"{what} {rel!r} leads out of {root} (to {real}) through a "
                              f"symbolic link")
    return full


def safe_component(name: str) -> str:
    """One file-name component for ``name``: ordinary names (letters, digits, ``_.-``, not
    starting with a dot, at most 150 characters) are kept; any other name becomes its
    plain characters plus a hash of the whole, so distinct names never collide."""
    if _PLAIN.fullmatch(name) and len(name) <= COMPONENT_LIMIT:
        return name
    plain = re.sub(r"[^A-Za-z0-9_.\-]", "_", name).lstrip(".")[:COMPONENT_LIMIT - 17]
    return f"{plain}-{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}"


def _is_leftover(name: str) -> bool:
    return name.startswith(".") and (name.endswith(TMP_SUFFIX) or name.startswith(TRASH_PREFIX))


def sweep_stale(directory: os.PathLike, older_than_s: float = STALE_AFTER_S) -> int:
    """Remove temporary files and trash older than ``older_than_s`` in ``directory``
    (not recursive); returns how many went. Errors are ignored: sweeping is best effort."""
    now, removed = time.time(), 0
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0
    for e in entries:
        if not _is_leftover(e.name):
            continue
        with contextlib.suppress(OSError):
            if now - e.stat(follow_symlinks=False).st_mtime >= older_than_s:
                remove_tree(e.path)
                removed += 1
    return removed
