"""Bundles: build on the CPU, load with lark and MLIR blocked, run, refuse what doesn't fit."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from qfuse.runtime.build import build_bundle
from qfuse.runtime.bundle import BundleError, load

ROOT = Path(__file__).resolve().parents[2]

SRC = """
def rms_fp8(x: bf16[M, N], w: bf16[N], eps: f32 = 1e-6):
    y = norm(x, w, eps)
    s = scale(y, fp8_e4m3fn, per_token)
    return round(y, s, fp8_e4m3fn), s

def mxfp4(x: bf16[M, N]):
    s = scale(x, fp4_e2m1, mx, e8m0=even)
    return pack(round(x, s, fp4_e2m1)), s

def bad_static_kv(k: bf16[T, H, 12], c: bf16[B, H, DX, BS, 8], sl: i64[T]):
    return cache_write(k, c, sl, layout=key)
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    d = tmp_path_factory.mktemp("b")
    qp = d / "p.qp"
    qp.write_text(SRC)
    report = build_bundle([str(qp)], ["cuda:sm_90", "hip:gfx942"], str(d / "bundle"),
                          shapes={"N": 256}, progress=False)
    return d / "bundle", report


def test_build_reports_the_failing_pipeline_and_builds_the_rest(bundle):
    path, report = bundle
    assert sorted(report.built) == ["mxfp4", "rms_fp8"]
    assert [n for n, _ in report.failed] == ["bad_static_kv"]
    assert "head size D must be a multiple of the key cache's vector width" in report.failed[0][1]
    man = json.loads((path / "manifest.json").read_text())
    assert man["targets"] == ["cuda:sm_90", "hip:gfx942"]
    bins = man["pipelines"]["rms_fp8"]["binaries"]
    assert any(p.endswith(".cubin") for p in sum(bins["cuda:sm_90"].values(), []))
    assert any(p.endswith(".hsaco") for p in sum(bins["hip:gfx942"].values(), []))
    assert all((path / rel).exists() for rel in man["files"])


BLOCKED_RUN = textwrap.dedent("""
    import sys, torch
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in ('lark', 'torch_mlir', 'flydsl'):
                raise ImportError('blocked: ' + name)
    sys.meta_path.insert(0, Block())
    import qfuse
    pipes = qfuse.load(sys.argv[1])
    data = torch.load(sys.argv[2])
    out = {name: pipes[name](*args) for name, args in data.items()}
    torch.save(out, sys.argv[3])
    assert 'lark' not in sys.modules and 'torch_mlir' not in sys.modules
""")


def test_load_without_lark_and_mlir_runs_bit_identical_to_the_compiler(bundle, tmp_path):
    """The bundle's kernels give the bits the in-process compiler's give; the norm-free
    pipeline also the reference's (a norm's sum order is unspecified, docs/semantics.md:
    tests/backends/triton checks those codes against the reference)."""
    path, _ = bundle
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(5, 256, generator=g).bfloat16(), torch.randn(256, generator=g).bfloat16()
    x[1] = 0                                                   # a zero row
    data = {"rms_fp8": (x, w), "mxfp4": (x,)}
    torch.save(data, tmp_path / "in.pt")
    script = tmp_path / "run.py"
    script.write_text(BLOCKED_RUN)
    env = dict(os.environ, PYTHONPATH=str(ROOT), TRITON_INTERPRET="1")
    r = subprocess.run([sys.executable, str(script), str(path), str(tmp_path / "in.pt"),
                        str(tmp_path / "out.pt")], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    got = torch.load(tmp_path / "out.pt")
    from qfuse.dsl import load_source
    from qfuse.backends.reference import run_pipeline
    from qfuse.runtime.pipeline import QuantPipeline
    progs = load_source(SRC, "p.qp")

    def same(a, b):
        return torch.equal(a.view(torch.uint8) if a.element_size() == 1 else a,
                           b.view(torch.uint8) if b.element_size() == 1 else b)
    for name, args in data.items():
        jit = QuantPipeline(progs[name], backend="triton")(*args)
        assert all(same(u, v) for u, v in zip(jit, got[name])), name
    want = run_pipeline(progs["mxfp4"], {"x": x})
    assert all(same(u, v) for u, v in zip(want.values(), got["mxfp4"]))


def test_wrong_target_and_version_are_refused_with_fallback(bundle, tmp_path):
    path, _ = bundle
    with pytest.raises(BundleError, match="no kernels for hip:gfx950"):
        load(path, target="hip:gfx950")
    assert "rms_fp8" in load(path, target="hip:gfx950", fallback="jit")
    copy = tmp_path / "old"
    import shutil
    shutil.copytree(path, copy)
    man = json.loads((copy / "manifest.json").read_text())
    man["versions"]["qfuse"] = "0.0.1"
    (copy / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(BundleError, match="built by qfuse 0.0.1"):
        load(copy)


def test_damaged_artifact_and_missing_manifest(bundle, tmp_path):
    path, _ = bundle
    import shutil
    copy = tmp_path / "dmg"
    shutil.copytree(path, copy)
    art = copy / "rms_fp8.json"
    art.write_text(art.read_text().replace('"rms_fp8"', '"rms_fp9"', 1))
    with pytest.raises(BundleError, match="checksum"):
        load(copy)
    with pytest.raises(BundleError, match="not a qfuse bundle"):
        load(tmp_path / "nothing")


def test_cli_build_exit_code(tmp_path):
    qp = tmp_path / "p.qp"
    qp.write_text(SRC)
    from qfuse.cli import main
    rc = main(["build", str(qp), "--target", "cuda:sm_90", "-o", str(tmp_path / "o"), "--quiet"])
    assert rc == 1
    assert (tmp_path / "o" / "rms_fp8.json").exists()


# ---------------------------------------------------------------- damaged bundles
def _copy(bundle_path: Path, tmp_path: Path) -> Path:
    import shutil
    d = tmp_path / "copy"
    shutil.copytree(bundle_path, d)
    return d


def _manifest(d: Path, change) -> None:
    m = json.loads((d / "manifest.json").read_text())
    (d / "manifest.json").write_text(json.dumps(change(m)))


def _write_listed(d: Path, rel: str, data: bytes) -> None:
    """Write a file and record its checksum, as a builder would: only the schema and the
    path checks can then tell that something is wrong."""
    import hashlib
    (d / rel).write_bytes(data)
    _manifest(d, lambda m: {**m, "files": {**m["files"], rel: hashlib.sha256(data).hexdigest()}})


def _artifact(d: Path, change) -> None:
    j = json.loads((d / "rms_fp8.json").read_text())
    _write_listed(d, "rms_fp8.json", json.dumps(change(j)).encode())


def _set(path: list, value):
    """A change that sets the item at ``path`` (keys / indices) to ``value``."""
    def change(doc):
        node = doc
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
        return doc
    return change


def _drop(path: list):
    def change(doc):
        node = doc
        for k in path[:-1]:
            node = node[k]
        del node[path[-1]]
        return doc
    return change


def _replace_with_directory(d: Path, rel: str) -> None:
    (d / rel).unlink()
    (d / rel).mkdir()


def _tuning(d: Path, data: bytes) -> None:
    _write_listed(d, "autotune.json", data)
    _manifest(d, _set(["autotune"], "autotune.json"))


BUNDLE_DAMAGE = {
    "manifest_a_list": lambda d: (d / "manifest.json").write_text("[]"),
    "manifest_not_json": lambda d: (d / "manifest.json").write_text("{\"format\": "),
    "manifest_not_utf8": lambda d: (d / "manifest.json").write_bytes(b"\xff\xfe{}"),
    "manifest_a_directory": lambda d: _replace_with_directory(d, "manifest.json"),
    "versions_a_string": lambda d: _manifest(d, _set(["versions"], "0.1.0")),
    "format_a_string": lambda d: _manifest(d, _set(["format"], "1")),
    "no_pipelines": lambda d: _manifest(d, _drop(["pipelines"])),
    "pipelines_a_list": lambda d: _manifest(d, _set(["pipelines"], [])),
    "pipeline_entry_a_string": lambda d: _manifest(d, _set(["pipelines", "rms_fp8"], "x")),
    "no_artifact": lambda d: _manifest(d, _drop(["pipelines", "rms_fp8", "artifact"])),
    "artifact_a_number": lambda d: _manifest(d, _set(["pipelines", "rms_fp8", "artifact"], 3)),
    "no_checksums": lambda d: _manifest(d, _drop(["files"])),
    "checksums_a_list": lambda d: _manifest(d, _set(["files"], [])),
    "artifact_missing": lambda d: (d / "rms_fp8.json").unlink(),
    "artifact_a_directory": lambda d: _replace_with_directory(d, "rms_fp8.json"),
    "artifact_not_json": lambda d: _write_listed(d, "rms_fp8.json", b"{\"steps\": ["),
    "artifact_a_list": lambda d: _write_listed(d, "rms_fp8.json", b"[]"),
    "artifact_without_steps": lambda d: _artifact(d, _drop(["steps"])),
    "kernel_source_a_list": lambda d: _artifact(d, _set(["steps", 0, "source"], [])),
    "kernel_args_of_strings": lambda d: _artifact(d, _set(["steps", 0, "source", "args"], ["x"])),
    "unknown_dtype": lambda d: _artifact(d, _set(["program", "params", 0, "type", "dtype"], "bf17")),
    "undefined_value_id": lambda d: _artifact(d, _set(["program", "returns"], [99])),
    "another_pipelines_artifact": lambda d: _manifest(
        d, _set(["pipelines", "rms_fp8", "artifact"], "mxfp4.json")),
    "tuning_file_missing": lambda d: _manifest(d, _set(["autotune"], "autotune.json")),
    "tuning_a_list": lambda d: _tuning(d, b"[]"),
    "tuning_unknown_config_key": lambda d: _tuning(
        d, json.dumps({"k": {"b": {"config": {"bogus": 1}, "us": 1.0}}}).encode()),
}


@pytest.mark.parametrize("damage", sorted(BUNDLE_DAMAGE))
def test_damaged_bundles_raise_bundle_errors_that_say_what_to_do(bundle, tmp_path, damage):
    d = _copy(bundle[0], tmp_path)
    BUNDLE_DAMAGE[damage](d)
    with pytest.raises(BundleError, match="rebuild|build one"):
        load(d)


def _outside_artifact(bundle_path: Path, tmp_path: Path) -> tuple:
    """A bundle copy plus a sound artifact outside it (with its checksum)."""
    import hashlib
    import shutil
    d = _copy(bundle_path, tmp_path)
    outside = tmp_path / "outside.json"
    shutil.copy(d / "rms_fp8.json", outside)
    return d, outside, hashlib.sha256(outside.read_bytes()).hexdigest()


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_paths_are_confined_to_the_bundle(bundle, tmp_path, how):
    d, outside, sha = _outside_artifact(bundle[0], tmp_path)
    if how == "symlink":
        (d / "rms_fp8.json").unlink()
        (d / "rms_fp8.json").symlink_to(outside)
    else:
        rel = "../outside.json" if how == "dotdot" else str(outside)
        _manifest(d, lambda m: {**_set(["pipelines", "rms_fp8", "artifact"], rel)(m),
                                "files": {**m["files"], rel: sha}})
    with pytest.raises(BundleError, match=r"\.\.|relative path|symbolic link"):
        load(d)


def test_a_kernel_name_with_a_path_is_refused_before_anything_is_written(bundle, tmp_path,
                                                                        monkeypatch):
    monkeypatch.setenv("QFUSE_CACHE_DIR", str(tmp_path / "cache"))
    d = _copy(bundle[0], tmp_path)
    bad = "x/../../escape"
    _artifact(d, lambda j: _set(["steps", 0, "source", "name"], bad)(
        _set(["steps", 0, "name"], bad)(j)))
    with pytest.raises(BundleError, match="identifier"):
        load(d)
    assert not [p for p in tmp_path.rglob("*escape*")]


def test_the_tuning_table_is_verified_like_every_other_file(bundle, tmp_path):
    d = _copy(bundle[0], tmp_path)
    _tuning(d, b"{}")
    assert "rms_fp8" in load(d)
    (d / "autotune.json").write_bytes(b'{"rms_fp8__k0": {}}')          # edited afterwards
    with pytest.raises(BundleError, match="autotune.json does not match its checksum"):
        load(d)


def test_targets_given_as_a_string_do_not_match_by_substring(bundle, tmp_path):
    d = _copy(bundle[0], tmp_path)
    _manifest(d, _set(["targets"], "cuda:sm_90 hip:gfx942"))
    with pytest.raises(BundleError, match="targets: expected a list"):
        load(d, target="cuda:sm_9")


def test_the_writer_confines_paths_and_checks_its_manifest(tmp_path):
    from qfuse.runtime.bundle import write_bundle_files
    from qfuse.errors import QfuseError
    with pytest.raises(QfuseError, match="relative path"):
        write_bundle_files(tmp_path / "b", {}, {"../evil.py": "x = 1"})
    assert not (tmp_path / "evil.py").exists()
    with pytest.raises(QfuseError, match="missing key 'bundle_format'"):
        write_bundle_files(tmp_path / "b", {}, {"ok.json": "{}"})


def test_cli_build_with_a_bad_tuning_file_is_a_user_error(tmp_path, capsys):
    qp = tmp_path / "p.qp"
    qp.write_text(SRC)
    bad = tmp_path / "tuned.json"
    bad.write_text('{"k": []}')
    from qfuse.cli import main
    for tuning in (str(bad), str(tmp_path / "missing.json")):
        rc = main(["build", str(qp), "--target", "cuda:sm_90", "-o", str(tmp_path / "o"),
                   "--quiet", "--tuning", tuning])
        err = capsys.readouterr().err
        assert rc == 1 and "--tuning" in err and "Traceback" not in err, err
