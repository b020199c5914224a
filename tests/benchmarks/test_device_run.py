"""benchmarks/device_run.sh, the one device call, on the CPU: every bench.py command it
runs parses and writes its JSON (with --cpu-smoke appended, the torch stand-in bundle,
the AITER peer in the interpreter; no previous bundle: that step is the one-launch
command's form with another --bundle)."""
import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import aiter_impl  # noqa: E402


@pytest.mark.skipif(aiter_impl.find() is None or shutil.which("timeout") is None,
                    reason="needs the AITER peer (../shared/peers/aiter) and timeout(1)")
def test_device_run_script_on_the_cpu(tmp_path):
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (shim / "python3").chmod(0o755)
    out = tmp_path / "out"
    env = dict(os.environ, PATH=f"{shim}:{os.environ['PATH']}", OUT=str(out), BUNDLE="stub",
               PREV=str(tmp_path / "no-prev"), AITER=aiter_impl.find(),
               BENCH_EXTRA="--cpu-smoke --shapes 2x256 --pipelines per_tensor_fp8")
    r = subprocess.run(["sh", os.path.join(ROOT, "benchmarks", "device_run.sh")], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "bench: rc 0" in r.stdout and "previous bundle" not in r.stdout
    assert r.stdout.count("per-tensor one launch=") == 2 and "rc 124" not in r.stdout
    bench = json.loads((out / "bench.json").read_text())
    assert bench["impls"] == ["qfuse", "eager", "compile", "aiter"]
    assert "us" in bench["results"][0]["aiter"]
    for name in ("one-launch-1.json", "one-launch-0.json"):
        res = json.loads((out / name).read_text())
        assert res["impls"] == ["qfuse"] and res["results"][0]["qfuse"]["us"] > 0, name
