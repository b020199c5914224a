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


def test_a_qp_wins_over_a_same_named_directory(pipes_dir):
    """A bare directory would import as an empty namespace package and hide the .qp."""
    (pipes_dir / "qf_hook_dir").mkdir()
    (pipes_dir / "qf_hook_dir.qp").write_text(V1)
    mod = importlib.import_module("qf_hook_dir")
    assert mod.__qfuse_pipelines__ == ["quant"]


def test_an_ordinary_package_still_wins_over_a_qp(pipes_dir):
    (pipes_dir / "qf_hook_pkg").mkdir()
    (pipes_dir / "qf_hook_pkg" / "__init__.py").write_text("ORDINARY = True\n")
    (pipes_dir / "qf_hook_pkg.qp").write_text(V1)
    assert importlib.import_module("qf_hook_pkg").ORDINARY


def test_a_pipeline_removed_from_the_file_is_gone_after_reload(pipes_dir):
    two = V1 + V2.replace("def quant", "def quant_i8")
    (pipes_dir / "qf_hook_rm.qp").write_text(two)
    mod = importlib.import_module("qf_hook_rm")
    assert hasattr(mod, "quant_i8")
    (pipes_dir / "qf_hook_rm.qp").write_text(V1)
    mod = importlib.reload(mod)
    assert not hasattr(mod, "quant_i8") and mod.__qfuse_pipelines__ == ["quant"]


@pytest.mark.parametrize("name", ["__spec__", "__file__", "__qfuse_pipelines__"])
def test_pipelines_named_like_module_attributes_are_refused(pipes_dir, name):
    (pipes_dir / "qf_hook_dunder.qp").write_text(V1.replace("def quant", f"def {name}"))
    with pytest.raises(QfuseError, match=f"pipeline name '{name}'.* reserved") as e:
        importlib.import_module("qf_hook_dunder")
    assert "qf_hook_dunder.qp:2:" in str(e.value)
    assert "qf_hook_dunder" not in sys.modules


def test_a_bytes_entry_on_sys_path_breaks_no_import(pipes_dir, monkeypatch):
    monkeypatch.setattr(sys, "path", [b"/nowhere"] + sys.path)
    (pipes_dir / "qf_hook_b.qp").write_text(V1)
    assert importlib.import_module("qf_hook_b").__qfuse_pipelines__ == ["quant"]
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("qf_hook_no_such_module")


def test_a_non_utf8_file_raises_a_located_error(pipes_dir):
    (pipes_dir / "qf_hook_latin1.qp").write_bytes(V1.encode() + b"# caf\xe9\n")
    with pytest.raises(QfuseError, match="qf_hook_latin1.qp") as e:
        importlib.import_module("qf_hook_latin1")
    assert "UTF-8" in str(e.value)
