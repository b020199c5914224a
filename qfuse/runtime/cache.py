"""Content-addressed on-disk kernel cache (after Triton's ``FileCacheManager``).

Layout: ``$QFUSE_CACHE_DIR/<key>/`` holds one file per artifact of an entry
(``<name>.mlir``, ``<name>.json``, ``<kernel>.py``, binaries ...) and, written last,
``__grp__<name>.json`` listing every file with its sha256. No group file means a miss.

* Every write goes to a temporary file in the same directory (pid + random suffix)
  and is renamed into place with ``os.replace``, so readers never see a torn file, and
  many processes filling the same key at once leave one complete, identical entry
  (the content is a function of the key).
* Reads verify each file's checksum. A flipped byte or a truncated file is detected,
  reported once per process (a :class:`CacheCorruptionWarning`), the entry is removed,
  and the caller rebuilds it.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

__all__ = ["CacheCorruptionWarning", "KernelCache", "default_cache_dir", "cache_key",
           "CacheEntryInfo"]

NAME_LIMIT = 150


class CacheCorruptionWarning(UserWarning):
    """A cache entry failed its checksum and is being rebuilt."""


def default_cache_dir() -> Path:
    env = os.environ.get("QFUSE_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "qfuse"


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


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass
class CacheEntryInfo:
    key_dir: str
    name: str
    files: int
    bytes: int
    mtime: float


class KernelCache:
    """``get(key, name)`` -> dict of file name -> bytes, or None; ``put`` writes an entry."""

    _reported: set = set()

    def __init__(self, root: Optional[os.PathLike] = None):
        self.root = Path(root) if root is not None else default_cache_dir()

    def entry_dir(self, key: str) -> Path:
        return self.root / _dir_name(key)

    @staticmethod
    def _safe(name: str) -> str:
        name = name.replace(os.sep, "_")
        return name[:NAME_LIMIT]

    def put(self, key: str, name: str, files: dict) -> Path:
        """Write ``files`` ({file name: bytes|str}) under ``key``; the group file goes last."""
        d = self.entry_dir(key)
        d.mkdir(parents=True, exist_ok=True)
        sums = {}
        for fname, data in files.items():
            fname = self._safe(fname)
            raw = data.encode() if isinstance(data, str) else bytes(data)
            _atomic_write(d / fname, raw)
            sums[fname] = _sha(raw)
        group = {"name": name, "key": key, "files": sums, "created": time.time()}
        _atomic_write(d / f"__grp__{self._safe(name)}.json",
                      json.dumps(group, sort_keys=True, indent=1).encode())
        return d

    def get(self, key: str, name: str) -> Optional[dict]:
        """The entry's files, or None on a miss. A corrupted entry is reported and removed."""
        d = self.entry_dir(key)
        grp = d / f"__grp__{self._safe(name)}.json"
        try:
            group = json.loads(grp.read_bytes())
            files = {}
            for fname, want in group["files"].items():
                raw = (d / fname).read_bytes()
                if _sha(raw) != want:
                    raise ValueError(f"checksum mismatch in {fname}")
                files[fname] = raw
            return files
        except FileNotFoundError:
            if grp.exists():        # group present, a listed file missing: corrupted
                self._corrupt(d, key, "a listed file is missing")
            return None
        except (ValueError, KeyError, json.JSONDecodeError, UnicodeDecodeError) as e:
            self._corrupt(d, key, str(e))
            return None

    def _corrupt(self, d: Path, key: str, why: str) -> None:
        if (str(self.root), key) not in self._reported:
            self._reported.add((str(self.root), key))
            warnings.warn(f"qfuse cache entry {d} is corrupted ({why}); rebuilding it",
                          CacheCorruptionWarning, stacklevel=3)
        trash = d.with_name(f".trash.{d.name}.{uuid.uuid4().hex[:8]}")
        try:
            os.replace(d, trash)
            shutil.rmtree(trash, ignore_errors=True)
        except OSError:
            pass

    # ----------------------------------------------------------------- admin
    def entries(self) -> list:
        out = []
        if not self.root.exists():
            return out
        for d in sorted(self.root.iterdir()):
            if not d.is_dir() or d.name.startswith("."):
                continue
            for grp in d.glob("__grp__*.json"):
                try:
                    group = json.loads(grp.read_bytes())
                except (OSError, json.JSONDecodeError):
                    continue
                size = sum((d / f).stat().st_size for f in group["files"] if (d / f).exists())
                out.append(CacheEntryInfo(d.name, group.get("name", "?"), len(group["files"]),
                                          size, grp.stat().st_mtime))
        return out

    def clear(self, older_than_s: Optional[float] = None) -> int:
        """Remove entries (all, or those last written more than ``older_than_s`` ago)."""
        removed = 0
        if not self.root.exists():
            return 0
        now = time.time()
        for d in list(self.root.iterdir()):
            if not d.is_dir():
                continue
            if older_than_s is not None:
                stamps = [p.stat().st_mtime for p in d.iterdir()] or [0]
                if now - max(stamps) < older_than_s:
                    continue
            shutil.rmtree(d, ignore_errors=True)
            removed += 1
        return removed
