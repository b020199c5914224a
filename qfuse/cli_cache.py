"""``qfuse cache info | ls | clear [--older-than 7d]``."""
from __future__ import annotations

import re
import time

from .errors import QfuseError

__all__ = ["register", "parse_age"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """``"7d"``, ``"12h"``, ``"30m"``, ``"90s"`` or plain seconds -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not m:
        raise QfuseError(f"bad --older-than {text!r}: use a number with s, m, h, d or w (e.g. 7d)")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _info(cache) -> None:
    entries = cache.entries()
    damaged = [e for e in entries if e.problem]
    print(f"cache dir: {cache.root}" + ("" if cache.root.is_dir() or not cache.root.exists()
                                        else " (not a directory: nothing is cached)"))
    print(f"entries:   {len(entries)}" + (f" ({len(damaged)} damaged: rebuilt on next use, "
                                            f"or `qfuse cache clear`)" if damaged else ""))
    print(f"size:      {_human(sum(e.bytes for e in entries))}")


def _ls(cache) -> None:
    now = time.time()
    for e in cache.entries():
        if e.problem:
            print(f"{e.key_dir[:16]}  {e.name:40s} DAMAGED: {e.problem}")
            continue
        print(f"{e.key_dir[:16]}  {e.name:40s} {e.files:3d} files  {_human(e.bytes):>10s}  "
              f"{(now - e.mtime) / 3600:7.1f} h old")


def cmd_cache(args) -> int:
    from .runtime.cache import KernelCache
    cache = KernelCache(args.dir)
    if args.action == "info":
        _info(cache)
    elif args.action == "ls":
        _ls(cache)
    else:
        older = parse_age(args.older_than) if args.older_than else None
        n = cache.clear(older)
        print(f"removed {n} entr{'y' if n == 1 else 'ies'} from {cache.root}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("cache", help="inspect or clear the kernel cache")
    p.add_argument("action", choices=("info", "ls", "clear"))
    p.add_argument("--older-than", help="with clear: only entries older than this (e.g. 7d)")
    p.add_argument("--dir", help="cache directory (default: $QFUSE_CACHE_DIR or ~/.cache/qfuse)")
    p.set_defaults(fn=cmd_cache)
