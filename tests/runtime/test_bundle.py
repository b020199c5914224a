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

def bad_static_mx(x: bf16[M, 100]):
    s = scale(x, fp4_e2m1, mx)
    return pack(round(x, s, fp4_e2m1)), s
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
    assert [n for n, _ in report.failed] == ["bad_static_mx"]
    assert "multiple of 32" in report.failed[0][1]
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
