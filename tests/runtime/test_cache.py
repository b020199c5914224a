"""The on-disk cache: atomic, concurrent-safe, self-checking."""
import json
import multiprocessing as mp
import os
import warnings

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
