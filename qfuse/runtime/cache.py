"""Content-addressed on-disk kernel cache (after Triton's ``FileCacheManager``).

Layout: ``$QFUSE_CACHE_DIR/<key>/`` holds one file per artifact of an entry
(``<name>.mlir``, ``<name>.json``, ``<kernel>.py``, binaries ...) and, written last,
``__grp__<name>.json``: the entry's key and name and every file with its sha256. No
group file means a miss.

What a reader can rely on:

* Every write goes through :func:`~qfuse.backends.files.atomic_write` (temporary file in
  the same directory, renamed into place, ordinary permissions), so readers never see a
  torn file, and many processes filling one key at once leave one complete entry (the
  content is a function of the key). A group file that is absent is a miss, whenever it
  appears: only a group that is present and disagrees with the files is damage.
* An entry is used only if its group file parses against :data:`GROUP`, names this key
  and this name (an entry copied or moved under another key is refused), and every
  listed file exists, stays inside the entry directory and matches its sha256.
* A damaged entry (flipped byte, truncated or missing file, a directory where a file
  belongs, unreadable file, a group of the wrong shape) is a miss: it is counted
  (``KernelCache.stats``), logged, reported once per process as a
  :class:`CacheCorruptionWarning`, its group file is removed and the caller rebuilds it.
  It is never used.
* A cache that cannot be written (read-only, full, its root a file) costs only the
  caching: ``put`` warns once (:class:`CacheWriteWarning`) and the caller goes on with
  what it compiled.
* Temporary files of a killed writer are removed by a later ``put`` in that entry (and
  by ``clear``) once they are an hour old.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from ..backends.files import (STALE_AFTER_S, UnsafePathError, atomic_write, confine,
                              default_cache_dir, remove_tree, safe_component, sweep_stale)
from .schema import SHA256, MapOf, Obj, SchemaError, Where, load_json

__all__ = ["CacheCorruptionWarning", "CacheWriteWarning", "KernelCache", "default_cache_dir",
           "cache_key", "CacheEntryInfo", "GROUP"]

log = logging.getLogger("qfuse.cache")

GROUP_PREFIX = "__grp__"
READ_ATTEMPTS = 3               # a group that disagrees with its files is re-read this often
RETRY_S = 0.02                  # (a writer of other content may be between files and group)
PUT_ATTEMPTS = 3                # a put whose entry directory vanished (clear) starts over

GROUP = Obj({"name": str, "key": Where(str, lambda k: len(k) == 64, "a 64-character key"),
             "files": MapOf(SHA256), "created": float})


class CacheCorruptionWarning(UserWarning):
    """A cache entry is damaged; it is not used and is being rebuilt."""


class CacheWriteWarning(UserWarning):
    """The cache cannot be written; qfuse goes on compiling without caching."""


class _Damaged(Exception):
    """An entry on disk that must not be used (the message says why)."""


def cache_key(*parts: str) -> str:
    """sha256 over the parts (joined with a separator that cannot occur in them unescaped)."""
    h = hashlib.sha256()
    for p in parts:
        data = p.encode()
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def _dir_name(key: str) -> str:
    return base64.b32encode(bytes.fromhex(key)).decode().rstrip("=")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _group_file(name: str) -> str:
    return f"{GROUP_PREFIX}{safe_component(name)}.json"


@dataclass
class CacheEntryInfo:
    key_dir: str
    name: str
    files: int
    bytes: int
    mtime: float
    problem: str = ""           # why the entry is damaged ("" for a sound group file)


class KernelCache:
    """``get(key, name)`` -> dict of file name -> bytes, or None; ``put`` writes an entry.

    ``stats`` counts, for this process, damaged entries found and writes that failed.
    """

    _reported: set = set()
    stats = {"damaged": 0, "write_failed": 0}

    def __init__(self, root: Optional[os.PathLike] = None):
        self.root = Path(root) if root is not None else default_cache_dir()

    def entry_dir(self, key: str) -> Path:
        return self.root / _dir_name(key)

    # ----------------------------------------------------------------- write
    def put(self, key: str, name: str, files: dict) -> Optional[Path]:
        """Write ``files`` ({file name: bytes|str}) under ``key``; the group file goes last.

        Returns the entry directory, or None when the cache cannot be written (warned
        once per cache root; the caller's result is simply not cached).
        """
        raw = {fname: data.encode() if isinstance(data, str) else bytes(data)
               for fname, data in files.items()}
        for attempt in range(PUT_ATTEMPTS):
            try:
                return self._write_entry(key, name, raw)
            except FileNotFoundError as e:   # the entry was removed under us: write again
                if attempt + 1 == PUT_ATTEMPTS:
                    self._write_failed(e)
            except OSError as e:
                self._write_failed(e)
                return None
        return None

    def _write_entry(self, key: str, name: str, raw: dict) -> Path:
        d = self.entry_dir(key)
        if d.exists() and not d.is_dir():     # damage: a file where the entry belongs
            remove_tree(d)
        d.mkdir(parents=True, exist_ok=True)
        sweep_stale(d)
        for fname, data in raw.items():
            atomic_write(d / safe_component(fname), data)
        group = {"name": name, "key": key, "created": time.time(),
                 "files": {fname: _sha(data) for fname, data in raw.items()}}
        atomic_write(d / _group_file(name), json.dumps(group, sort_keys=True, indent=1).encode())
        return d

    def _write_failed(self, err: OSError) -> None:
        KernelCache.stats["write_failed"] += 1
        log.info("qfuse cache %s: write failed: %s", self.root, err)
        if ("write", str(self.root)) not in self._reported:
            self._reported.add(("write", str(self.root)))
            warnings.warn(f"qfuse cache {self.root} cannot be written ({err}); compiling "
                          f"without caching. Set QFUSE_CACHE_DIR to a writable directory to "
                          f"keep compiled kernels", CacheWriteWarning, stacklevel=4)

    # ----------------------------------------------------------------- read
    def get(self, key: str, name: str) -> Optional[dict]:
        """The entry's files ({file name: bytes}), or None on a miss. A damaged entry is
        counted, reported, removed and answered as a miss."""
        d = self.entry_dir(key)
        try:
            return self._read_entry(d, key, name)
        except _Damaged as e:
            self._damaged(d, key, name, str(e))
            return None

    def _read_entry(self, d: Path, key: str, name: str) -> Optional[dict]:
        problem = ""
        for attempt in range(READ_ATTEMPTS):
            group = self._read_group(d, name)
            if group is None:
                return None
            try:
                return self._read_files(d, group, key, name)
            except _Damaged as e:
                problem = str(e)
            if attempt + 1 < READ_ATTEMPTS:
                time.sleep(RETRY_S)
        raise _Damaged(problem)

    def _read_group(self, d: Path, name: str) -> Optional[dict]:
        """The parsed group file, None when there is none (a miss); raises _Damaged."""
        if not self.root.is_dir():
            return None                        # no cache (or its root is not a directory)
        grp = d / _group_file(name)
        try:
            raw = grp.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:                   # a directory where the group belongs, ...
            raise _Damaged(f"cannot read {grp.name}: {e.strerror or e}") from None
        try:
            return load_json(raw, GROUP, grp.name)
        except SchemaError as e:
            raise _Damaged(str(e)) from None

    @staticmethod
    def _read_files(d: Path, group: dict, key: str, name: str) -> dict:
        if group["key"] != key or group["name"] != name:
            raise _Damaged(f"the group file is for {group['name']!r} under key "
                           f"{group['key'][:16]}..., not {name!r} under {key[:16]}...")
        files = {}
        for fname, want in group["files"].items():
            try:
                raw = confine(d, safe_component(fname), "cached file").read_bytes()
            except (OSError, UnsafePathError) as e:
                raise _Damaged(f"cannot read {fname}: {getattr(e, 'strerror', None) or e}") \
                    from None
            if _sha(raw) != want:
                raise _Damaged(f"checksum mismatch in {fname}")
            files[fname] = raw
        return files

    def discard(self, key: str, name: str, why: str) -> None:
        """Treat the entry as damaged (a reader found its content unusable)."""
        self._damaged(self.entry_dir(key), key, name, why)

    def load(self, key: str, name: str, fname: str, parse: Callable[[bytes, str], Any]):
        """``parse(content of fname, fname)`` for a sound entry, or None on a miss.

        ``parse`` raises :class:`~qfuse.runtime.schema.SchemaError` for content it cannot
        use; the entry then counts as damaged, exactly like a failed checksum.
        """
        files = self.get(key, name)
        if files is None:
            return None
        try:
            if fname not in files:
                raise SchemaError(f"the entry has no {fname}")
            return parse(files[fname], fname)
        except SchemaError as e:
            self.discard(key, name, str(e))
            return None

    def _damaged(self, d: Path, key: str, name: str, why: str) -> None:
        KernelCache.stats["damaged"] += 1
        log.info("qfuse cache entry %s (%s) is damaged: %s", d, name, why)
        if (str(self.root), key, name) not in self._reported:
            self._reported.add((str(self.root), key, name))
            warnings.warn(f"qfuse cache entry {d} ({name}) is damaged ({why}); not using it, "
                          f"rebuilding it", CacheCorruptionWarning, stacklevel=4)
        # only the group goes: that makes the entry a miss in one atomic step, and the
        # rebuild replaces every file, so a concurrent writer never loses its directory
        with contextlib.suppress(OSError):
            if d.is_dir():
                remove_tree(d / _group_file(name))
            elif d.exists():
                remove_tree(d)

    # ----------------------------------------------------------------- admin
    def _entry_dirs(self) -> list:
        try:
            return sorted(p for p in self.root.iterdir()
                          if p.is_dir() and not p.name.startswith("."))
        except OSError:                       # no cache yet, or its root is not a directory
            return []

    def entries(self) -> list:
        """One :class:`CacheEntryInfo` per group file; damaged ones say why in ``problem``."""
        out = []
        for d in self._entry_dirs():
            with contextlib.suppress(OSError):
                for grp in sorted(d.glob(f"{GROUP_PREFIX}*.json")):
                    out.append(self._entry_info(d, grp))
        return out

    @staticmethod
    def _entry_info(d: Path, grp: Path) -> CacheEntryInfo:
        try:
            mtime = grp.stat().st_mtime
            group = load_json(grp.read_bytes(), GROUP, grp.name)
        except (OSError, SchemaError) as e:
            name = grp.name[len(GROUP_PREFIX):-len(".json")]
            return CacheEntryInfo(d.name, name, 0, 0, 0.0, str(e))
        size = 0
        for fname in group["files"]:
            with contextlib.suppress(OSError):
                size += (d / safe_component(fname)).stat().st_size
        return CacheEntryInfo(d.name, group["name"], len(group["files"]), size, mtime)

    def clear(self, older_than_s: Optional[float] = None) -> int:
        """Remove entries (all, or those last written more than ``older_than_s`` ago),
        damaged ones included; leftovers of killed writers go too. Returns the count."""
        removed = 0
        now = time.time()
        for d in self._entry_dirs():
            if older_than_s is not None and now - _newest_mtime(d) < older_than_s:
                sweep_stale(d)
                continue
            remove_tree(d)
            removed += 1
        sweep_stale(self.root, 0 if older_than_s is None else STALE_AFTER_S)
        return removed


def _newest_mtime(d: Path) -> float:
    stamps = [0.0]
    with contextlib.suppress(OSError):
        for p in d.iterdir():
            with contextlib.suppress(OSError):
                stamps.append(p.lstat().st_mtime)
    return max(stamps)
