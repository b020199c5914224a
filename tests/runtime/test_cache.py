"""The on-disk cache: atomic, concurrent-safe, self-checking."""
import json
import multiprocessing as mp
import os
import warnings
from pathlib import Path

import pytest

from qfuse.runtime.cache import CacheCorruptionWarning, KernelCache, cache_key


def _payload(key: str) -> dict:
    # deterministic content per key, large enough that a torn write would show
    return {"k.mlir": (key * 2000).encode(), "k.json": json.dumps({"key": key}).encode(),
            "k0.py": f"# kernel for {key}\n".encode() * 500}


def _writer(root: str, keys: list, rounds: int) -> None:
    cache = KernelCache(root)
    for _ in range(rounds):
        for key in keys:
            if cache.get(key, "k") is None:
                cache.put(key, "k", _payload(key))


def test_eight_processes_same_and_different_keys(tmp_path):
    keys = [cache_key("pipeline", str(i)) for i in range(4)]
    ctx = mp.get_context("spawn")
    # every process writes the shared keys, and one private key each
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), keys + [cache_key("own", str(i))], 3))
             for i in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    cache = KernelCache(tmp_path)
    for key in keys + [cache_key("own", str(i)) for i in range(8)]:
        got = cache.get(key, "k")
        assert got == {k: v for k, v in _payload(key).items()}
    assert len(cache.entries()) == 12
    leftovers = [p for p in tmp_path.rglob("*.tmp")]
    assert leftovers == []


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_corruption_is_detected_reported_once_and_rebuilt(tmp_path, damage):
    cache = KernelCache(tmp_path)
    key = cache_key("x")
    d = cache.put(key, "k", _payload(key))
    victim = d / "k0.py"
    raw = bytearray(victim.read_bytes())
    if damage == "flip":
        raw[100] ^= 0x01
        victim.write_bytes(bytes(raw))
    elif damage == "truncate":
        victim.write_bytes(bytes(raw[: len(raw) // 2]))
    else:
        victim.unlink()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert cache.get(key, "k") is None
        assert cache.get(key, "k") is None           # already removed: a plain miss
    assert sum(issubclass(x.category, CacheCorruptionWarning) for x in w) == 1
    cache.put(key, "k", _payload(key))
    assert cache.get(key, "k") == _payload(key)


def _contend(root: str, keys: list, start: int, go, queue) -> None:
    """get-or-put every key, starting at ``start`` so that neighbours meet on the same
    keys at about the same time; reports (crash or None, corruption warnings seen)."""
    cache = KernelCache(root)
    order = keys[start:] + keys[:start]
    queue.put("ready")
    go.wait(60)                              # all start together, after their imports
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        try:
            for key in order:
                if cache.get(key, "k") is None:
                    cache.put(key, "k", _many_files(key))
        except Exception as e:               # reported, so the test names what crashed
            queue.put((repr(e), 0))
            return
    queue.put((None, sum(issubclass(w.category, CacheCorruptionWarning) for w in seen)))


def _many_files(key: str) -> dict:
    # several files per entry widen the window between a writer's first file and its
    # group file, where a reader used to take the entry for damaged and delete it
    return {f"f{i}.py": key.encode() * 40 for i in range(6)}


def test_concurrent_readers_and_writers_never_take_a_valid_entry_for_damaged(tmp_path):
    """8 processes x 120 shared keys, get-or-put: no crash, no false corruption (the
    cache once deleted entries whose group file appeared between two of its checks, and
    the writers then failed with FileNotFoundError). Scaled down from 64 processes."""
    keys = [cache_key("contend", str(i)) for i in range(120)]
    ctx = mp.get_context("spawn")
    queue, go = ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_contend, args=(str(tmp_path), keys, 7 * i, go, queue))
             for i in range(8)]
    for p in procs:
        p.start()
    assert [queue.get(timeout=120) for _ in procs] == ["ready"] * 8
    go.set()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    assert results == [(None, 0)] * 8
    cache = KernelCache(tmp_path)
    assert all(cache.get(k, "k") == _many_files(k) for k in keys)
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_group_file_appearing_during_a_read_is_a_miss_not_damage(tmp_path, monkeypatch):
    """The interleaving behind the false deletions, forced: a reader finds no group file,
    then a writer completes the entry before the reader looks again."""
    cache = KernelCache(tmp_path)
    key = cache_key("appears")
    real_read = Path.read_bytes
    raced = []

    def read_while_a_writer_finishes(self):
        if self.name == "__grp__k.json" and not raced:
            raced.append(self)
            cache.put(key, "k", _payload(key))          # the writer finishes now ...
            raise FileNotFoundError(2, "No such file", str(self))   # ... after the miss
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", read_while_a_writer_finishes)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheCorruptionWarning)
        assert cache.get(key, "k") is None
        assert raced
        assert cache.get(key, "k") == _payload(key)     # the writer's entry survived


def test_a_damaged_entry_is_counted(tmp_path):
    cache = KernelCache(tmp_path)
    key = cache_key("counted")
    d = cache.put(key, "k", _payload(key))
    (d / "k.json").write_bytes(b"{}")
    before = KernelCache.stats["damaged"]
    with pytest.warns(CacheCorruptionWarning):
        assert cache.get(key, "k") is None
    assert KernelCache.stats["damaged"] == before + 1


def test_stale_temporary_files_of_a_killed_writer_are_swept(tmp_path):
    cache = KernelCache(tmp_path)
    key = cache_key("swept")
    d = cache.put(key, "k", _payload(key))
    old, fresh = d / ".k0.py.4242.deadbeef.tmp", d / ".k0.py.4343.feedbeef.tmp"
    old.write_bytes(b"half a file")
    fresh.write_bytes(b"a live writer's file")
    os.utime(old, (1, 1))
    cache.put(key, "k", _payload(key))
    assert not old.exists() and fresh.exists()      # a live writer's file is left alone
    cache.clear()
    assert not list(tmp_path.rglob("*.tmp"))


def test_missing_group_file_is_a_miss(tmp_path):
    cache = KernelCache(tmp_path)
    key = cache_key("y")
    d = cache.put(key, "k", _payload(key))
    (d / "__grp__k.json").unlink()
    assert cache.get(key, "k") is None


def test_cache_key_separates_parts():
    assert cache_key("ab", "c") != cache_key("a", "bc")
    assert cache_key("a") == cache_key("a")


def test_clear_older_than(tmp_path):
    cache = KernelCache(tmp_path)
    old, new = cache_key("old"), cache_key("new")
    d_old = cache.put(old, "k", {"a": b"1"})
    cache.put(new, "k", {"a": b"2"})
    for f in d_old.iterdir():
        os.utime(f, (1, 1))
    assert cache.clear(older_than_s=3600) == 1
    assert cache.get(old, "k") is None and cache.get(new, "k") == {"a": b"2"}
    assert cache.clear() == 1
