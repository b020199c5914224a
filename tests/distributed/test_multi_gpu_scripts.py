"""benchmarks/multi_gpu.py and multi_gpu_check.py on the CPU: argument parsing, building
the pipelines and the dry run (which loads them back and generates the one-shot kernels);
the GPU runs themselves need a machine with two GPUs (docs/multi-gpu.md)."""
from __future__ import annotations

import pytest

from benchmarks import multi_gpu, multi_gpu_check


def test_arguments():
    a = multi_gpu.parse_args(["--ms", "1,64", "--ns", "7168", "--kinds", "fp8"])
    assert a.ms == [1, 64] and a.ns == [7168] and a.kinds == ["fp8"]
    d = multi_gpu.parse_args([])
    assert d.ms[0] == 1 and d.ms[-1] == 4096 and d.ns == [7168, 8192]
    assert len(multi_gpu.cases()) == 3 * 2 * 13
    for bad in (["--kinds", "fp16"], ["--impls", "nccl"], ["--ms", "0"]):
        with pytest.raises(SystemExit):
            multi_gpu.parse_args(bad)


def test_build_then_dry_run(tmp_path, capsys):
    out = str(tmp_path / "arts")
    assert multi_gpu.main(["--build", out]) == 0
    assert multi_gpu.main(["--dry-run", "--artifacts", out]) == 0
    assert multi_gpu_check.main(["--dry-run", "--artifacts", out]) == 0
    text = capsys.readouterr().out
    assert "ar_fp8__k1__oneshot" in text and "78 cases x 4 impls" in text
    assert "12 cases" in text


def test_missing_artifacts_say_how_to_build(tmp_path):
    with pytest.raises(SystemExit, match="--build"):
        multi_gpu.main(["--dry-run", "--artifacts", str(tmp_path / "none")])


@pytest.mark.parametrize("kind", list(multi_gpu.KINDS))
def test_the_torch_comparator_runs(kind):
    inp = multi_gpu.rank_inputs(0, 3, 256, "cpu")
    q, s, h = multi_gpu.torch_chain(kind)(inp["x"], inp["res"], inp["w"])
    assert h.dtype == inp["x"].dtype and q.shape[0] == 3 and s.shape[0] == 3
