"""The ROCDL backend's stored form: cache entries and bundles that a second process uses
without the passes (cache) or without MLIR at all (a bundle's GPU kernels), damaged
entries refused or rebuilt, never a crash; cache keys that follow the toolchain."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch

from qfuse.backends.reference import run_pipeline
from qfuse.dsl import load_source
from qfuse.runtime.artifact import CompiledPipeline
from qfuse.runtime.bundle import BundleError, load
from qfuse.runtime.cache import CacheCorruptionWarning, KernelCache
from qfuse.runtime.compiler import (cached_compile, compile_key, compile_pipeline,
                                    qfuse_fingerprint)
from qfuse.runtime.schema import SchemaError

ROOT = Path(__file__).resolve().parents[2]
SRC = """
def mxfp4(x: bf16[M, N]):
    s = scale(x, fp4_e2m1, mx, e8m0=even)
    return pack(round(x, s, fp4_e2m1)), s

def tensor_fp8(x: bf16[M, N]):
    s = scale(x, fp8_e4m3fn, per_tensor)
    return round(x, s, fp8_e4m3fn), s
"""


def progs():
    return load_source(SRC, "p.qp")


def inputs():
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(5, 72, generator=g) * 4).bfloat16()
    x[1] = 0                                             # a zero row
    x[2, 3] = float("nan")
    x[3, :4] = torch.tensor([1e-40, -0.0, 448.0, 0.25])  # subnormal, -0, max, a tie
    return x


def same(a, b) -> bool:
    """Bit for bit (NaN payloads included)."""
    ints = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
    return a.shape == b.shape and a.dtype == b.dtype and \
        torch.equal(a.view(ints[a.element_size()]), b.view(ints[b.element_size()]))


# ------------------------------------------------------------------ cache
WARM = textwrap.dedent("""
    import sys, torch
    import qfuse.passes
    def boom(*a, **k):
        raise SystemExit('passes ran on a warm cache')
    qfuse.passes.run_passes = boom
    import qfuse.runtime.compiler as compiler
    compiler.qfuse_fingerprint = lambda: sys.argv[5]
    from qfuse.dsl import load_source
    from qfuse.runtime.cache import KernelCache
    from qfuse.runtime.pipeline import QuantPipeline
    tp = load_source(open(sys.argv[1]).read(), 'p.qp')[sys.argv[2]]
    out = QuantPipeline(tp, backend='rocdl')(torch.load(sys.argv[3]))
    assert KernelCache.stats['damaged'] == 0, KernelCache.stats
    torch.save(out, sys.argv[4])
""")


@pytest.mark.parametrize("name", ["mxfp4", "tensor_fp8"])
def test_a_second_process_runs_the_warm_entry_on_the_cpu_twin(tmp_path, name):
    tp = progs()[name]
    cached_compile(tp, "rocdl", "cpu:interp", KernelCache(tmp_path / "cache"))
    # the child keys with this process's source fingerprint: the sources may be edited
    # while it starts (test_compile_cache.py checks that two processes hash alike)
    fingerprint = qfuse_fingerprint()
    x = inputs()
    torch.save(x, tmp_path / "x.pt")
    (tmp_path / "p.qp").write_text(SRC)
    (tmp_path / "warm.py").write_text(WARM)
    r = subprocess.run([sys.executable, str(tmp_path / "warm.py"), str(tmp_path / "p.qp"), name,
                        str(tmp_path / "x.pt"), str(tmp_path / "out.pt"), fingerprint],
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=str(ROOT),
                                QFUSE_CACHE_DIR=str(tmp_path / "cache")))
    assert r.returncode == 0, r.stderr[-2000:]
    got = torch.load(tmp_path / "out.pt")
    want = run_pipeline(tp, {"x": x})
    assert all(same(u, v) for u, v in zip(want.values(), got)), name


def test_a_gpu_target_entry_stores_its_code_objects():
    cp = compile_pipeline(progs()["mxfp4"], "rocdl", "cuda:sm_90")
    back = CompiledPipeline.loads(cp.dumps().encode(), "mxfp4.json", "mxfp4")
    k = back.steps[0].source
    assert set(k.binaries) == {"cuda:sm_90"}
    assert k.binaries["cuda:sm_90"]["cubin"][:4] == b"\x7fELF"
    assert ".target sm_90" in k.binaries["cuda:sm_90"]["ptx"]
    assert back.dumps() == cp.dumps()
    assert cp.source_suffix == ".mlir" and cp.sources()["mxfp4__k0"] == k.loops


@pytest.mark.parametrize("tool", ["torch-mlir", "flydsl", "ziglang", "ld.lld",
                                  "triton (ptxas)"])
def test_the_key_follows_the_mlir_and_linker_versions(monkeypatch, tool):
    from qfuse.backends.rocdl import toolchain
    tp = progs()["mxfp4"]
    base = compile_key(tp, "rocdl", "hip:gfx942")
    real = toolchain.versions()
    assert tool in real
    monkeypatch.setattr(toolchain, "versions", lambda: {**real, tool: real[tool] + "+other"})
    assert compile_key(tp, "rocdl", "hip:gfx942") != base


# ------------------------------------------------------------------ damage
@pytest.fixture(scope="module")
def stored():
    """The stored JSON of a rocdl pipeline built for gfx942 and sm_90."""
    cp = compile_pipeline(progs()["mxfp4"], "rocdl", "any")
    from qfuse.backends.base import parse_target
    from qfuse.backends.registry import get_backend
    for t in ("hip:gfx942", "cuda:sm_90"):
        get_backend("rocdl").binaries(cp.steps[0].source, parse_target(t), {})
    return json.loads(cp.dumps())


def _src(j):
    return j["steps"][0]["source"]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


DAMAGE = {
    "grid": (lambda j: _src(j).update(grid="cols"), "grid 'cols'"),
    "rows arg": (lambda j: _src(j).update(rows_arg=7), "rows argument 7"),
    "dtype": (lambda j: _src(j)["args"][0].update(dtype="f128"), "unknown dtype"),
    "args shape": (lambda j: _src(j).update(args="x"), "args: expected a list"),
    "arg name": (lambda j: _src(j)["args"][0].update(name="../x"), "args[0].name"),
    "base64": (lambda j: _src(j)["binaries"]["cuda:sm_90"].update(cubin="@@"), "not base64"),
    "not elf": (lambda j: _src(j)["binaries"]["cuda:sm_90"].update(cubin=_b64(b"junk")),
                "not an ELF"),
    "cut hsaco": (lambda j: _src(j)["binaries"]["hip:gfx942"].update(
        hsaco=_b64(base64.b64decode(_src(j)["binaries"]["hip:gfx942"]["hsaco"])[:200])),
        "hsaco cannot be read"),
    "wrong chip": (lambda j: _src(j)["binaries"].update(
        {"hip:gfx950": _src(j)["binaries"]["hip:gfx942"]}), "not this kernel for gfx950"),
    "cubin as hsaco": (lambda j: _src(j)["binaries"]["hip:gfx942"].update(
        hsaco=_src(j)["binaries"]["cuda:sm_90"]["cubin"]), "not this kernel for gfx942"),
    "extension": (lambda j: _src(j)["binaries"]["cuda:sm_90"].update(exe="x"), "'exe'"),
    "target": (lambda j: _src(j)["gpu"].update({"tpu:v5": ""}), "unknown target"),
    "cpu target": (lambda j: _src(j)["binaries"].update({"cpu:interp": {}}),
                   "not a GPU target"),
    "backend": (lambda j: j.update(backend="nope"), "'nope' is not a backend"),
    "other backend": (lambda j: j.update(backend="triton"), "steps[0].source"),
    "no backend": (lambda j: j.pop("backend"), "backend"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_stored_kernels_raise_schema_errors_that_say_where(stored, case):
    j = json.loads(json.dumps(stored))
    damage, message = DAMAGE[case]
    damage(j)
    with pytest.raises(SchemaError, match="mxfp4.json") as e:
        CompiledPipeline.loads(json.dumps(j).encode(), "mxfp4.json", "mxfp4")
    assert message in str(e.value)


def _rewrite_entry(cache: KernelCache, key: str, name: str, edit) -> None:
    """Edit the entry's JSON and fix its checksum: damage the checksum cannot see."""
    d = cache.entry_dir(key)
    art = d / f"{name}.json"
    j = json.loads(art.read_text())
    edit(j)
    art.write_text(json.dumps(j))
    grp = d / f"__grp__{name}.json"
    g = json.loads(grp.read_text())
    g["files"][f"{name}.json"] = hashlib.sha256(art.read_bytes()).hexdigest()
    grp.write_text(json.dumps(g))


@pytest.mark.parametrize("case", ["flipped byte", "not elf"])
def test_a_damaged_cache_entry_is_rebuilt_not_used(tmp_path, case):
    tp = progs()["mxfp4"]
    cache = KernelCache(tmp_path)
    cp = cached_compile(tp, "rocdl", "cuda:sm_90", cache)
    key = compile_key(tp, "rocdl", "cuda:sm_90")
    if case == "flipped byte":
        art = cache.entry_dir(key) / "mxfp4.json"
        raw = bytearray(art.read_bytes())
        raw[len(raw) // 2] ^= 1
        art.write_bytes(bytes(raw))
    else:
        _rewrite_entry(cache, key, "mxfp4", DAMAGE["not elf"][0])
    before = KernelCache.stats["damaged"]
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        again = cached_compile(tp, "rocdl", "cuda:sm_90", cache)
    assert KernelCache.stats["damaged"] == before + 1
    assert any(issubclass(x.category, CacheCorruptionWarning) for x in w)
    assert again.dumps() == cp.dumps()            # rebuilt, and the entry is sound again
    assert cache.load(key, "mxfp4", "mxfp4.json",
                      lambda raw, what: CompiledPipeline.loads(raw, what, "mxfp4")) is not None


# ------------------------------------------------------------------ bundles
@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """``qfuse build --backend rocdl`` for sm_90 and gfx942, from the command line."""
    d = tmp_path_factory.mktemp("rb")
    (d / "p.qp").write_text(SRC)
    run = subprocess.run([sys.executable, "-m", "qfuse.cli", "build", str(d / "p.qp"),
                          "--backend", "rocdl", "--target", "cuda:sm_90", "--target",
                          "hip:gfx942", "-o", str(d / "bundle"), "--quiet"],
                         capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert run.returncode == 0, run.stderr[-2000:]
    return d / "bundle"


BLOCKED = textwrap.dedent("""
    import sys, torch
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in ('lark', 'torch_mlir', 'flydsl', 'mlir', 'triton'):
                raise ImportError('blocked: ' + name)
    sys.meta_path.insert(0, Block())
    import qfuse
    from qfuse.backends.base import Target
    from qfuse.backends.rocdl import launch
    from qfuse.backends.rocdl.launch_gpu import GpuKernel
    from qfuse.runtime.executor import Executor
    seen = []

    class Recorder(GpuKernel):
        # the platform's two calls, recorded (no GPU here); the rest is the real launcher
        def _load(self, binary):
            seen.append(('load', self.kernel.name, self.binary_ext, binary))
            return self.kernel.name
        def _launch(self, blocks, threads, params, stream):
            seen.append(('launch', self.function, blocks, threads, len(params)))
        def _stream(self):
            return 0

    target = Target(*sys.argv[2].split(':'))
    ext = {'cuda': 'cubin', 'hip': 'hsaco'}[target.platform]
    def fake_load(kernel, device):
        k = Recorder.__new__(Recorder)
        k.binary_ext = ext
        GpuKernel.__init__(k, kernel, device, target)
        return k
    launch.load_kernel = fake_load
    pipes = qfuse.load(sys.argv[1], target=sys.argv[2])
    x = torch.load(sys.argv[3])
    for name in ('mxfp4', 'tensor_fp8'):
        cp = pipes[name].compiled('rocdl', sys.argv[2])
        Executor(cp).run({'x': x})
    qfuse.load(sys.argv[1])                  # the CPU twin's target loads too
    for mod in ('lark', 'torch_mlir', 'flydsl', 'triton'):
        assert mod not in sys.modules, mod
    torch.save(seen, sys.argv[4])
""")


@pytest.mark.parametrize("target", ["cuda:sm_90", "hip:gfx942"])
def test_a_bundle_loads_and_launches_without_mlir(bundle, tmp_path, target):
    x = inputs()
    torch.save(x, tmp_path / "x.pt")
    (tmp_path / "run.py").write_text(BLOCKED)
    r = subprocess.run([sys.executable, str(tmp_path / "run.py"), str(bundle), target,
                        str(tmp_path / "x.pt"), str(tmp_path / "seen.pt")],
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 0, r.stderr[-3000:]
    seen = torch.load(tmp_path / "seen.pt")
    loads = [s for s in seen if s[0] == "load"]
    launches = [s for s in seen if s[0] == "launch"]
    kernels = json.loads((bundle / "manifest.json").read_text())["pipelines"]
    ext = "cubin" if target.startswith("cuda") else "hsaco"
    for _, name, got_ext, binary in loads:
        assert got_ext == ext
        assert binary == (bundle / f"binaries/{target.replace(':', '_')}/{name}.{ext}"
                          ).read_bytes()
    names = [k["name"] for p in ("mxfp4", "tensor_fp8") for k in kernels[p]["kernels"]]
    assert [s[1] for s in loads] == names
    # one block per row of x, also for the grid-wide amax at 5 rows; 256 threads
    blocks = {s[1]: s[2] for s in launches}
    assert blocks == {"mxfp4__k0": 5, "tensor_fp8__k0": 5, "tensor_fp8__k1": 5}
    assert all(s[3] == 256 for s in launches)
    # x, q, s as memrefs of rank 2: 3 + 2 * 2 arguments each; the amax: x, s (rank 1)
    # and its workspace (rank 1)
    args = {s[1]: s[4] for s in launches}
    assert args["mxfp4__k0"] == 21 and args["tensor_fp8__k0"] == 7 + 5 + 5


def test_a_bundle_on_the_cpu_runs_its_stored_loops_bit_identical(bundle):
    pipes = load(bundle)
    x = inputs()
    for name, tp in progs().items():
        got = pipes[name](x)
        want = run_pipeline(tp, {"x": x})
        assert all(same(u, v) for u, v in zip(want.values(), got)), name
    assert (bundle / "kernels/mxfp4__k0.mlir").read_text().startswith("module")


def test_a_damaged_rocdl_bundle_is_a_bundle_error(bundle, tmp_path):
    import shutil
    copy = tmp_path / "dmg"
    shutil.copytree(bundle, copy)
    art = copy / "mxfp4.json"
    j = json.loads(art.read_text())
    DAMAGE["cut hsaco"][0](j)
    art.write_text(json.dumps(j))
    with pytest.raises(BundleError, match="checksum"):
        load(copy)
    with pytest.raises(BundleError, match="hsaco cannot be read.*rebuild the bundle"):
        load(copy, verify=False)


def test_a_bundle_without_the_target_says_so(bundle):
    with pytest.raises(BundleError, match="no kernels for hip:gfx950"):
        load(bundle, target="hip:gfx950")
    from qfuse.backends.base import parse_target
    cp = load(bundle, target="cuda:sm_90").mxfp4.compiled("rocdl", "cuda:sm_90")
    with pytest.raises(Exception, match="no code object for hip:gfx950.*--target hip:gfx950"):
        k = cp.steps[0].source
        k.gpu.pop("hip:gfx950", None)
        k.code_object(parse_target("hip:gfx950"))


def test_without_the_linker_a_gpu_compile_keeps_no_binaries_and_launch_says_why(monkeypatch):
    from qfuse.backends.base import parse_target
    from qfuse.backends.rocdl import lower
    from qfuse.backends.rocdl.toolchain import ToolMissing

    def missing():
        raise ToolMissing("rocdl backend: linking an hsaco needs ld.lld: pip install ziglang")
    monkeypatch.setattr(lower, "ld_lld", missing)
    cp = compile_pipeline(progs()["mxfp4"], "rocdl", "hip:gfx942")
    k = cp.steps[0].source
    assert k.binaries == {} and "hip:gfx942" in k.gpu
    with pytest.raises(ToolMissing, match="pip install ziglang"):
        k.code_object(parse_target("hip:gfx942"))
