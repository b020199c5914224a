"""`import mypipes` finds mypipes.qp: call, edit + reload, errors at import."""
from __future__ import annotations

import importlib
import sys

import pytest
import torch

import qfuse.jit  # noqa: F401  (installs the hook)
from qfuse.errors import QfuseError

V1 = """
def quant(x: bf16[M, N]):
    s = scale(x, fp8_e4m3fn, per_token)
    return round(x, s, fp8_e4m3fn), s
"""
V2 = """
def quant(x: bf16[M, N]):
    s = scale(x, i8, per_token)
    return round(x, s, i8, mode=rne), s
"""


@pytest.fixture
def pipes_dir(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("qf_hook_")]:
        del sys.modules[name]


def test_import_call_edit_reload(pipes_dir):
    (pipes_dir / "qf_hook_a.qp").write_text(V1)
    mod = importlib.import_module("qf_hook_a")
    x = torch.randn(2, 64).bfloat16()
    q, s = mod.quant(x)
    assert q.dtype == torch.float8_e4m3fn
    (pipes_dir / "qf_hook_a.qp").write_text(V2)
    mod = importlib.reload(mod)
    q, s = mod.quant(x)
    assert q.dtype == torch.int8
    assert mod.__qfuse_pipelines__ == ["quant"]


def test_syntax_error_raises_at_import_with_position(pipes_dir):
    (pipes_dir / "qf_hook_bad.qp").write_text("def f(x: bf16[M, N]\n    return x\n")
    with pytest.raises(QfuseError) as e:
        importlib.import_module("qf_hook_bad")
    assert "qf_hook_bad.qp:1:" in str(e.value) and "^" in str(e.value)


def test_regular_modules_still_win(pipes_dir):
    (pipes_dir / "json.qp").write_text(V1)
    import json
    assert hasattr(json, "dumps")
