"""Damaged, foreign, unwritable and shared caches: a miss and a rebuild, never a crash,
never a wrong entry; and the generated Triton modules the cache holds."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import multiprocessing as mp
import os
import py_compile
import shutil
import stat
import sys
import tempfile
import warnings
from pathlib import Path

import pytest

from qfuse.backends.triton.launch import loader
from qfuse.cli import main
from qfuse.dsl import load_source
from qfuse.errors import QfuseError
from qfuse.runtime.cache import CacheCorruptionWarning, CacheWriteWarning, KernelCache, cache_key
from qfuse.runtime.compiler import cached_compile, compile_key

NOBODY = 65534


def _payload(key: str) -> dict:
    return {"k.json": json.dumps({"key": key}).encode(), "k0.py": f"# {key}\n".encode() * 50}


# ---------------------------------------------------------------- a second user
@pytest.fixture
def shared(tmp_path):
    """A directory a second user can reach (pytest's own tmp_path is private, 0700)."""
    d = Path(tempfile.mkdtemp(prefix="qfuse-shared-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def as_other_user(fn, *args):
    """``fn(*args)`` in a forked child as a second user of the files: as root, file modes
    stop nothing, so the child drops to uid/gid 65534; otherwise it keeps its own user
    (for whom modes apply as they are). Returns fn's (picklable) result."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue()

    def child():
        try:
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            queue.put(("ok", fn(*args)))
        except BaseException as e:      # reported to the parent, which fails the test
            queue.put(("error", f"{type(e).__name__}: {e}"))

    p = ctx.Process(target=child)
    p.start()
    status, value = queue.get(timeout=300)
    p.join(60)
    assert status == "ok", f"as a second user: {value}"
    return value


def _deny(path: Path, mode: int) -> None:
    """Take rights away from a second user (as root) or from ourselves (otherwise)."""
    path.chmod(mode)


# ---------------------------------------------------------------- damaged entries
def _file_is_a_directory(d: Path) -> None:
    (d / "k0.py").unlink()
    (d / "k0.py").mkdir()
    (d / "k0.py" / "inner").write_text("x")


def _group_is_a_directory(d: Path) -> None:
    (d / "__grp__k.json").unlink()
    (d / "__grp__k.json").mkdir()


def _entry_is_a_file(d: Path) -> None:
    shutil.rmtree(d)
    d.write_text("not a directory")


def _group(d: Path, change) -> None:
    g = json.loads((d / "__grp__k.json").read_text())
    (d / "__grp__k.json").write_text(json.dumps(change(g)))


def _escape_through_group(d: Path) -> None:
    """The group lists '../outside' with the checksum of a real file out there."""
    outside = d.parent / "outside"
    outside.write_bytes(b"secret")
    _group(d, lambda g: dict(g, files={"../outside": hashlib.sha256(b"secret").hexdigest()}))


def _symlink_out(d: Path) -> None:
    """k0.py becomes a link to an identical file outside the entry."""
    outside = d.parent / "outside.py"
    outside.write_bytes((d / "k0.py").read_bytes())
    (d / "k0.py").unlink()
    (d / "k0.py").symlink_to(outside)


DAMAGE = {
    "file_is_a_directory": _file_is_a_directory,
    "group_is_a_directory": _group_is_a_directory,
    "entry_is_a_file": _entry_is_a_file,
    "group_is_a_list": lambda d: (d / "__grp__k.json").write_text("[1, 2]"),
    "files_is_a_list": lambda d: _group(d, lambda g: dict(g, files=list(g["files"]))),
    "checksum_is_a_number": lambda d: _group(d, lambda g: dict(g, files={"k0.py": 7})),
    "group_not_json": lambda d: (d / "__grp__k.json").write_bytes(b"{\"name\": "),
    "group_not_utf8": lambda d: (d / "__grp__k.json").write_bytes(b"\xff\xfe{}"),
    "group_without_key": lambda d: _group(d, lambda g: {k: v for k, v in g.items() if k != "key"}),
    "path_out_of_the_entry": _escape_through_group,
    "symlink_out_of_the_entry": _symlink_out,
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_entry_is_a_miss_and_is_rebuilt(tmp_path, damage):
    cache = KernelCache(tmp_path / "cache")
    key = cache_key("damaged", damage)
    d = cache.put(key, "k", _payload(key))
    DAMAGE[damage](d)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert cache.get(key, "k") is None
    assert [w.category for w in seen] == [CacheCorruptionWarning], [str(w.message) for w in seen]
    assert cache.put(key, "k", _payload(key)) is not None     # whatever is in the way goes
    assert cache.get(key, "k") == _payload(key)


def test_an_entry_moved_under_another_key_or_name_is_not_used(tmp_path):
    cache = KernelCache(tmp_path)
    a, b = cache_key("a"), cache_key("b")
    shutil.copytree(cache.put(a, "k", _payload(a)), cache.entry_dir(b))
    with pytest.warns(CacheCorruptionWarning, match="under key"):
        assert cache.get(b, "k") is None
    d = cache.entry_dir(a)
    (d / "__grp__k.json").rename(d / "__grp__other.json")
    with pytest.warns(CacheCorruptionWarning, match="'k'"):
        assert cache.get(a, "other") is None


SAME_NAME = """
def quant(x: bf16[M, N]):
    s = scale(x, fp8_e4m3fn, {granularity})
    return round(x, s, fp8_e4m3fn), s
"""


def _quant(granularity: str):
    return load_source(SAME_NAME.format(granularity=granularity), "q.qp")["quant"]


def _granularity(cp) -> str:
    return next(c.options["granularity"] for c in cp.program.calls if c.stage == "scale")


def test_a_compiled_entry_moved_to_another_pipelines_key_is_rebuilt(tmp_path):
    """Two pipelines of one name: per_tensor's entry copied under per_token's key must
    not give per_token per_tensor's kernels."""
    cache = KernelCache(tmp_path)
    token, tensor = _quant("per_token"), _quant("per_tensor")
    cached_compile(tensor, "triton", "cuda:sm_90", cache)
    token_dir = cache.entry_dir(compile_key(token, "triton", "cuda:sm_90"))
    shutil.copytree(cache.entry_dir(compile_key(tensor, "triton", "cuda:sm_90")), token_dir)
    with pytest.warns(CacheCorruptionWarning):
        cp = cached_compile(token, "triton", "cuda:sm_90", cache)
    assert _granularity(cp) == "per_token"


@pytest.mark.parametrize("content", [b"[]", b"{\"format\": 1, \"name\": 3}", b"\xff\xfe"])
def test_a_compiled_pipeline_of_the_wrong_shape_is_rebuilt(tmp_path, content):
    """Checksums that match (written through the cache) but JSON that is not a compiled
    pipeline: a rebuild, not an AttributeError."""
    cache = KernelCache(tmp_path)
    tp = _quant("per_token")
    key = compile_key(tp, "triton", "cuda:sm_90")
    cache.put(key, "quant", {"quant.json": content})
    with pytest.warns(CacheCorruptionWarning):
        cp = cached_compile(tp, "triton", "cuda:sm_90", cache)
    assert _granularity(cp) == "per_token"
    assert cached_compile(tp, "triton", "cuda:sm_90", cache).name == "quant"   # now cached


# ---------------------------------------------------------------- unusable caches
def test_a_cache_root_that_is_a_file_compiles_without_caching(tmp_path):
    root = tmp_path / "cache"
    root.write_text("not a directory")
    cache = KernelCache(root)
    key = cache_key("rootfile")
    with pytest.warns(CacheWriteWarning, match="compiling without caching"):
        assert cache.put(key, "k", _payload(key)) is None
    assert cache.get(key, "k") is None
    assert cache.entries() == [] and cache.clear() == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheWriteWarning)
        assert _granularity(cached_compile(_quant("per_token"), "triton", "cuda:sm_90",
                                           cache)) == "per_token"


def _compile_in(root: str) -> tuple:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        cp = cached_compile(_quant("per_token"), "triton", "cuda:sm_90", KernelCache(root))
    return _granularity(cp), sorted({w.category.__name__ for w in seen})


def test_a_read_only_cache_compiles_without_caching(shared, tmp_path):
    _compile_in(str(tmp_path))      # every module the compile needs imported before the fork
    root = shared / "cache"
    root.mkdir()
    _deny(root, 0o555)
    granularity, warned = as_other_user(_compile_in, str(root))
    assert granularity == "per_token" and warned == ["CacheWriteWarning"]


def _get_and_rebuild(root: str, key: str) -> tuple:
    cache = KernelCache(root)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        got = cache.get(key, "k")
        cache.put(key, "k", _payload(key))
    return got, sorted({w.category.__name__ for w in seen})


def test_an_unreadable_file_is_damage_not_a_crash(shared):
    root = shared / "cache"
    cache = KernelCache(root)
    key = cache_key("unreadable")
    d = cache.put(key, "k", _payload(key))
    _deny(d / "k0.py", 0o000)
    for p in (root, d):                        # and the entry cannot be rewritten either
        _deny(p, 0o555)
    got, warned = as_other_user(_get_and_rebuild, str(root), key)
    assert got is None and warned == ["CacheCorruptionWarning", "CacheWriteWarning"]


def _read_entry(root: str, key: str):
    return KernelCache(root).get(key, "k")


def test_cache_files_are_readable_by_a_second_user(shared):
    old = os.umask(0o022)
    try:
        cache = KernelCache(shared / "cache")
        key = cache_key("shared")
        d = cache.put(key, "k", _payload(key))
    finally:
        os.umask(old)
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in d.iterdir())
    assert as_other_user(_read_entry, str(shared / "cache"), key) == _payload(key)


# ---------------------------------------------------------------- qfuse cache info | ls
def test_cache_info_and_ls_report_a_damaged_group(tmp_path, capsys):
    cache = KernelCache(tmp_path)
    good, bad = cache_key("good"), cache_key("bad")
    cache.put(good, "k", _payload(good))
    d = cache.put(bad, "k", _payload(bad))
    (d / "__grp__k.json").write_text('["a list where an object belongs"]')
    assert main(["cache", "info", "--dir", str(tmp_path)]) == 0
    assert "entries:   2 (1 damaged" in capsys.readouterr().out
    assert main(["cache", "ls", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "DAMAGED" in out and out.count("files") == 1
    assert main(["cache", "clear", "--dir", str(tmp_path)]) == 0
    assert cache.entries() == []


def test_cache_commands_on_a_root_that_is_a_file(tmp_path, capsys):
    root = tmp_path / "cache"
    root.write_text("not a directory")
    for action in ("info", "ls", "clear"):
        assert main(["cache", action, "--dir", str(root)]) == 0
    assert "not a directory" in capsys.readouterr().out


# ---------------------------------------------------------------- generated modules
TEXT = "def kern():\n    return 42\n"
KEY = hashlib.sha256(TEXT.encode()).hexdigest()[:16]


@pytest.fixture
def fresh_modules(monkeypatch, tmp_path):
    """A private module directory and no module of TEXT imported yet."""
    monkeypatch.setenv("QFUSE_CACHE_DIR", str(tmp_path / "cache"))

    def forget():
        loader._MODULES.pop(KEY, None)
        sys.modules.pop(f"qfuse_gen_kern_{KEY}", None)
    forget()
    yield forget
    forget()


def test_a_truncated_pyc_next_to_a_module_is_ignored(fresh_modules):
    path = loader.load_module(TEXT, "kern", KEY).__file__
    fresh_modules()
    pyc = importlib.util.cache_from_source(path)
    py_compile.compile(path, cfile=pyc)           # a valid header for this source ...
    data = Path(pyc).read_bytes()
    Path(pyc).write_bytes(data[: len(data) - 12])  # ... and a cut-off body
    assert loader.load_module(TEXT, "kern", KEY).kern() == 42


def test_a_kernel_name_with_a_path_writes_and_imports_nothing(fresh_modules, tmp_path):
    src = Path(loader.source_dir())
    (src / "qfuse_gen_x").mkdir()                 # so that x/../.. would resolve
    before = set(tmp_path.rglob("*"))
    with pytest.raises(QfuseError, match="not a Python identifier"):
        loader.load_module("y = 1\n", "x/../../escape", KEY)
    assert set(tmp_path.rglob("*")) == before


def _load_module_in(cache: str) -> tuple:
    os.environ["QFUSE_CACHE_DIR"] = cache
    loader._PRIVATE.clear()                       # this child has no fallback directory yet
    loader._MODULES.pop(KEY, None)
    sys.modules.pop(f"qfuse_gen_kern_{KEY}", None)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        got = loader.load_module(TEXT, "kern", KEY).kern()
    return got, [str(w.message) for w in seen]


def test_generated_modules_are_shared_with_a_second_user(fresh_modules, shared):
    old = os.umask(0o022)
    try:
        os.environ["QFUSE_CACHE_DIR"] = str(shared / "cache")
        path = Path(loader.load_module(TEXT, "kern", KEY).__file__)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert as_other_user(_load_module_in, str(shared / "cache")) == (42, [])


def test_generated_modules_of_a_read_only_cache_go_to_a_private_directory(shared):
    (shared / "cache").mkdir()
    _deny(shared / "cache", 0o555)
    got, warned = as_other_user(_load_module_in, str(shared / "cache"))
    assert got == 42 and len(warned) == 1 and "cannot be written" in warned[0]
