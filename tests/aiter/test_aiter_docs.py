"""docs/aiter.md cannot drift from qfuse.aiter: its function table is checked against the
code in both directions, and its computed columns are generated from the code.

* Every public function of ``qfuse.aiter`` (each name in a public module's ``__all__``
  that is a function defined in ``qfuse.aiter``) has a row, and every row names a
  function at that module path, or says ``missing`` for one that does not exist (yet).
* Every function issue 15 lists (:data:`ISSUE_FUNCTIONS`) has a row, and every row a
  numerics bullet (``* `name`: ...``, or one bullet for several names).
* The ``pipelines`` and ``kind`` columns are what the code calls: the ``.qp`` templates
  and pipeline names its ``pipeline(...)`` / ``Binding.run(...)`` calls name, in the
  function or any ``qfuse.aiter`` function it reaches, and the entry-point kind
  (``torch`` / ``hip`` / ``triton``) it passes (:func:`computed_row`). Each named pipeline
  exists in its template.
* Every present function that runs a pipeline is called by a test in tests/aiter/ (the
  doc's "what has run where").
* docs/semantics.md's claims issue 15 names: ``cache_write`` updates the caller's cache
  in place on both backends, norms agree to 4 ulp of the row (not the last bit), and no
  mx error suggests ``per_1x32`` with fp32 scales (which fp4 rejects).

``python tests/aiter/test_aiter_docs.py`` rewrites the computed columns (and appends rows
for new functions, status ``present``) in docs/aiter.md; the prose is written by hand.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import sys
import textwrap
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "aiter.md"
PIPELINES = ROOT / "qfuse" / "aiter" / "pipelines"
BEGIN, END = "<!-- aiter-functions:begin -->", "<!-- aiter-functions:end -->"
KINDS = ("torch", "hip", "triton")
HEAD = ("| function | module (`import aiter`) | pipelines (`qfuse/aiter/pipelines/`) | kind "
        "| status |\n|---|---|---|---|---|")

#: the functions issue 15 asks for, by AITER module path
ISSUE_FUNCTIONS = {
    "aiter.ops.quant": [
        "per_tensor_quant", "pertoken_quant", "per_1x32_f4_quant", "per_block_quant_wrapper",
        "per_1x32_i4_quant", "per_tensor_quant_hip", "per_token_quant_hip",
        "smooth_per_token_scaled_quant", "moe_smoothquant_fwd", "get_torch_quant",
        "get_hip_quant", "get_triton_quant"],
    "aiter.ops.triton.quant.quant": [
        "static_per_tensor_quant_fp8_i8", "dynamic_per_tensor_quant_fp8_i8",
        "dynamic_per_token_quant_fp8_i8", "dynamic_mxfp4_quant"],
    "aiter.ops.triton.quant.fused_fp8_quant": [
        "fused_rms_fp8_per_tensor_static_quant", "fused_rms_fp8_group_quant",
        "fused_reduce_act_mul_fp8_group_quant", "fused_reduce_rms_fp8_group_quant",
        "fused_silu_mul_fp8_per_tensor_static_quant", "fused_flatten_fp8_group_quant"],
    "aiter.ops.triton.quant.fused_mxfp4_quant": [
        "fused_rms_mxfp4_quant", "fused_reduce_act_mul_and_mxfp4_quant",
        "fused_reduce_rms_mxfp4_quant", "fused_flatten_mxfp4_quant",
        "fused_dynamic_mxfp4_quant_moe_sort"],
    "aiter.ops.norm": [
        "layernorm2d_fwd_with_smoothquant", "rmsnorm2d_fwd_with_add",
        "rmsnorm2d_fwd_with_smoothquant", "rmsnorm2d_fwd_with_add_smoothquant",
        "rmsnorm2d_fwd_with_dynamicquant", "rmsnorm2d_fwd_with_add_dynamicquant"],
    "aiter.ops.cache": [
        "reshape_and_cache", "reshape_and_cache_with_pertoken_quant",
        "reshape_and_cache_with_block_quant", "reshape_and_cache_with_block_quant_for_asm_pa",
        "indexer_k_quant_and_cache"],
    # the fused QK norm + RoPE / mRoPE cache writes, at AITER's own module paths
    "aiter.ops.fused_qk_norm_rope_cache_quant": ["fused_qk_norm_rope_cache_quant_shuffle"],
    "aiter.ops.fused_qk_norm_mrope_cache_quant": [
        "fused_qk_norm_mrope_3d_cache_pts_quant_shuffle"],
    "aiter.utility.fp4_utils": [
        "f32_to_mxfp4", "mxfp4_to_f32", "f32_to_e8m0", "f32_to_mx_e8m0_scale", "e8m0_to_f32",
        "e8m0_shuffle"],
    "aiter.int4_utils": ["convert_int8_to_uint32_int4", "rearrange_4bit_elements"],
    "aiter.ops.communication": ["all_reduce_rmsnorm_quant"],
}


# ------------------------------------------------------------------ the code's side
def public_functions() -> dict:
    """``{(aiter module path, name): function}``: each public function at the module that
    defines it (``fn.__module__``; re-exports such as ``aiter.ops.rmsnorm`` or
    ``aiter.ops.triton.quant`` are the same objects)."""
    import qfuse.aiter as pkg
    out = {}
    modules = [pkg] + [importlib.import_module(i.name)
                       for i in pkgutil.walk_packages(pkg.__path__, "qfuse.aiter.")
                       if not any(p.startswith("_") for p in i.name.split("."))]
    for mod in modules:
        for name in getattr(mod, "__all__", ()):
            try:
                obj = getattr(mod, name)
            except ImportError:           # a listed submodule that does not exist (yet)
                continue
            if inspect.isfunction(inspect.unwrap(obj)) and \
                    obj.__module__.startswith("qfuse.aiter"):     # lru_cache'd ones too
                home = obj.__module__
                if any(p.startswith("_") for p in home.split(".")):
                    home = mod.__name__           # defined privately, public here
                out[(home[len("qfuse."):], obj.__name__)] = obj
    return out


def _index() -> dict:
    """Every function of every ``qfuse.aiter`` module (private ones too), by name."""
    import qfuse.aiter as pkg
    by_name: dict = {}
    for info in pkgutil.walk_packages(pkg.__path__, "qfuse.aiter."):
        mod = importlib.import_module(info.name)
        for obj in vars(mod).values():
            if inspect.isfunction(obj) and obj.__module__ == mod.__name__:
                by_name.setdefault(obj.__name__, set()).add(obj)
    return by_name


def _names(code: types.CodeType) -> set:
    out = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            out |= _names(c)
    return out


def reached(fn, index: dict) -> list:
    """``fn`` and every ``qfuse.aiter`` function it reaches by name (module globals,
    ``module.attr`` pairs, names imported inside a function)."""
    seen, todo = [], [fn]
    while todo:
        f = inspect.unwrap(todo.pop())
        if f in seen or not inspect.isfunction(f) or \
                not f.__module__.startswith("qfuse.aiter"):
            continue
        seen.append(f)
        names = _names(f.__code__)
        for name in names:
            obj = f.__globals__.get(name)
            if isinstance(obj, types.ModuleType) and obj.__name__.startswith("qfuse.aiter"):
                todo += [getattr(obj, a) for a in names if inspect.isfunction(
                    getattr(obj, a, None))]
            elif inspect.isfunction(obj):
                todo.append(obj)
            elif obj is None and name in index and name not in f.__globals__:
                todo += list(index[name])        # imported inside the function
        for cell in f.__closure__ or ():          # decorators' wrapped functions
            if inspect.isfunction(cell.cell_contents):
                todo.append(cell.cell_contents)
    return seen


def _strings(node, assigned: dict) -> list:
    """The string values an argument can take: a literal, or a local name assigned from
    literals (``name = "a" if shuffle else "b"``)."""
    if isinstance(node, ast.Constant):
        return [node.value] if isinstance(node.value, str) else []
    if isinstance(node, ast.Name):
        return [c.value for v in assigned.get(node.id, ()) for c in ast.walk(v)
                if isinstance(c, ast.Constant) and isinstance(c.value, str)]
    return []


def _calls(fn) -> tuple:
    """``(pipelines, kinds)`` named by literal arguments in ``fn``'s own source:
    ``pipeline("tmpl", "name", kind)`` / ``b.run("tmpl", "name", "kind")``, and a kind
    passed as the second argument of a helper (``quantise_*(func, "hip", ...)``)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    assigned: dict = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                isinstance(node.targets[0], ast.Name):
            assigned.setdefault(node.targets[0].id, []).append(node.value)
    pipes, kinds = set(), set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        args = node.args
        callee = node.func.attr if isinstance(node.func, ast.Attribute) else \
            getattr(node.func, "id", "")
        if callee in ("pipeline", "run") and len(args) >= 3:
            for tmpl in _strings(args[0], assigned):
                pipes |= {(tmpl, name) for name in _strings(args[1], assigned)}
            kinds |= set(_strings(args[2], {})) & set(KINDS)
        elif callee not in ("getattr", "hasattr", "setattr") and len(args) >= 2:
            kinds |= set(_strings(args[1], {})) & set(KINDS)
    return pipes, kinds


def computed_row(fn, index: dict) -> tuple:
    """``(pipelines cell, kind cell)`` of a function, from the code it reaches."""
    pipes, kinds = set(), set()
    for f in reached(fn, index):
        p, k = _calls(f)
        pipes |= p
        kinds |= k
    by_file: dict = {}
    for tmpl, name in sorted(pipes):
        by_file.setdefault(tmpl, []).append(name)
    cell = "; ".join(f"`{t}.qp`: {', '.join(ns)}" for t, ns in by_file.items()) or "-"
    return cell, ", ".join(k for k in KINDS if k in kinds) or "-"


# ------------------------------------------------------------------ the doc's side
def doc_rows(text: str) -> dict:
    """``{(module, name): [pipelines, kind, status]}`` of the doc's function table."""
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    rows = {}
    for line in block.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        key = (cells[1].strip("`"), cells[0].strip("`"))
        assert key not in rows, f"docs/aiter.md lists {key} twice"
        rows[key] = cells[2:]
    return rows


def render_table(text: str, functions: dict, index: dict) -> str:
    """The doc with its table's computed columns (and status) from the code: rows keep
    their order; a function without a row gets one at the end."""
    rows = doc_rows(text)
    for key in functions:
        rows.setdefault(key, ["", "", ""])
    lines = [HEAD]
    for key, cells in rows.items():
        fn = functions.get(key)
        if fn is None:
            pipes, kind, status = "-", "-", "**missing**"
        else:
            (pipes, kind), status = computed_row(fn, index), "present"
        lines.append(f"| `{key[1]}` | `{key[0]}` | {pipes} | {kind} | {status} |")
    head, rest = text.split(BEGIN, 1)
    return head + BEGIN + "\n" + "\n".join(lines) + "\n" + END + rest.split(END, 1)[1]


# ------------------------------------------------------------------ tests
def test_every_public_function_has_a_row_and_every_row_a_function():
    rows = doc_rows(DOC.read_text())
    functions = public_functions()
    assert set(functions) - set(rows) == set(), \
        "functions without a row in docs/aiter.md: run python tests/aiter/test_aiter_docs.py"
    for key, (_, _, status) in rows.items():
        if status == "**missing**":
            present = [k for k in functions if k[1] == key[1]]
            assert not present, f"{key[1]} is in qfuse.aiter now ({present}): fill in its row " \
                f"and numerics in docs/aiter.md (python tests/aiter/test_aiter_docs.py)"
        else:
            assert key in functions, f"docs/aiter.md row {key}: no such public function"


def test_computed_columns_match_the_code():
    text = DOC.read_text()
    assert render_table(text, public_functions(), _index()) == text, \
        "docs/aiter.md's table differs from the code: python tests/aiter/test_aiter_docs.py"


def test_every_named_pipeline_exists():
    for (module, name), (pipes, _, _) in doc_rows(DOC.read_text()).items():
        for tmpl, names in re.findall(r"`(\w+)\.qp`: ([\w, ]+)", pipes):
            text = (PIPELINES / f"{tmpl}.qp").read_text()
            for pipe in names.split(", "):
                assert re.search(rf"^def {pipe}\(", text, re.M), f"{name}: {tmpl}.qp has no {pipe}"


def bullet_heads(text: str) -> set:
    """The names a bullet opens with: ``* `a`, `b` (Triton): ...`` gives ``a`` and ``b``
    (the text before the first colon outside backquotes, over the bullet's lines)."""
    names = set()
    for bullet in re.findall(r"^\* (.*(?:\n  .*)*)", text, re.M):
        head, quoted = [], False
        for ch in bullet:
            if ch == "`":
                quoted = not quoted
            elif ch == ":" and not quoted:
                break
            head.append(ch)
        names |= set(re.findall(r"`(\w+)`", "".join(head)))
    return names


def test_the_issue_functions_have_rows_and_numerics():
    text = DOC.read_text()
    rows = doc_rows(text)
    described = bullet_heads(text)
    for module, names in ISSUE_FUNCTIONS.items():
        for name in names:
            assert any(k[1] == name for k in rows), f"{module}.{name} has no row"
            assert name in described, f"{name} has no numerics bullet"
    undescribed = {k[1] for k in rows} - described
    assert not undescribed, f"rows without a numerics bullet: {sorted(undescribed)}"


def test_present_functions_keep_their_module_paths():
    """A row's module is where ``import aiter`` finds the function (through the alias's
    module objects: ``aiter.X`` is ``qfuse.aiter.X``)."""
    for (module, name), (_, _, status) in doc_rows(DOC.read_text()).items():
        if status == "present":
            assert getattr(importlib.import_module("qfuse." + module), name).__name__ == name


def test_every_function_with_a_pipeline_is_called_by_a_test():
    """The doc's "what has run where": every present function that runs a pipeline is
    called by a test in tests/aiter/ (named there, or reached by a dispatcher that is)."""
    words = set()
    for path in DOC.parents[1].joinpath("tests", "aiter").glob("test_*.py"):
        if path.name != Path(__file__).name:
            words |= set(re.findall(r"\w+", path.read_text()))
    functions, index = public_functions(), _index()
    tested = set(words)
    for (module, name), fn in functions.items():
        if name.startswith("get_") and name.endswith("_quant") and name in words:
            tested |= {f.__name__ for f in reached(fn, index)}
    rows = doc_rows(DOC.read_text())
    untested = sorted(name for (_, name), (pipes, _, status) in rows.items()
                      if status == "present" and pipes != "-" and name not in tested)
    assert not untested, f"functions no test in tests/aiter/ calls: {untested}"


def test_the_readme_links_the_doc():
    assert "docs/aiter.md" in (ROOT / "README.md").read_text()


def test_kind_to_backend_is_what_the_doc_says():
    """torch -> reference, triton -> triton, hip -> triton (no ROCDL for qfuse.aiter yet)."""
    import qfuse.aiter as aiter
    assert [aiter.backend_for(k) for k in KINDS] == ["reference", "triton", "triton"]
    text = DOC.read_text()
    for kind, backend in (("torch", "reference"), ("triton", "triton"), ("hip", "triton")):
        assert f"| `{kind}` | `{backend}` |" in text


# ------------------------------------------------------------------ docs/semantics.md claims
SEMANTICS = ROOT / "docs" / "semantics.md"
_CACHE_QP = """def kv(x: bf16[T, H, D], kc: fp8_e4m3fn[NB, H, DX, BS, X], slots: i64[T],
       ks: f32[H, S]):
    kc2, ks2 = cache_write(x, kc, slots, layout=key, quant=per_token, scales=ks)
    return kc2, ks2
"""


def _section(text: str, heading: str) -> str:
    return text.split(heading, 1)[1].split("\n### ", 1)[0]


def test_cache_write_updates_the_callers_cache_in_place_on_both_backends():
    """semantics.md: a pipeline call updates the caller's cache and scales in place and
    returns them (the reference's stage function works on copies the runtime copies
    back; the Triton kernels write through)."""
    import torch
    from qfuse.dsl import load_source
    from qfuse.runtime.pipeline import QuantPipeline
    text = _section(SEMANTICS.read_text(), "### `cache_write(")
    assert "in place" in text and "returns copies" not in text
    prog = load_source(_CACHE_QP, "kv.qp")["kv"]
    x = torch.randn(3, 2, 32).to(torch.bfloat16)
    slots = torch.tensor([0, 5, 2])
    for backend in ("reference", "triton"):
        kc = torch.zeros(2, 2, 2, 4, 16, dtype=torch.float8_e4m3fn)
        ks = torch.zeros(2, 8)
        got_kc, got_ks = QuantPipeline(prog, backend=backend)(x, kc, slots, ks)
        assert got_kc is kc and got_ks is ks, backend
        assert kc.view(torch.uint8).any() and (ks[:, [0, 5, 2]] > 0).all(), backend
        assert not ks[:, [1, 3, 4, 6, 7]].any(), backend


def test_norm_agreement_is_4_ulp_of_the_row_not_the_last_bit():
    """semantics.md's norm claim is the Agreement rule runtime/compare.py applies: an fp32
    output of one inexact stage may be 4 ulp (of its row's largest value) off, not 5."""
    import torch
    from qfuse.runtime.compare import compare_outputs
    text = SEMANTICS.read_text()
    assert "last fp32 bit" not in text and "up to 4 ulp of its row's largest value" in text
    want = torch.tensor([[1.0, 0.25]])
    ulp = 2.0 ** -23
    for off, ok in ((4 * ulp, True), (5 * ulp, False)):
        got = want + torch.tensor([[0.0, off]])
        assert compare_outputs({"y": got}, {"y": want}, 1)[0] is ok, off
    assert compare_outputs({"y": want + torch.tensor([[0.0, ulp]])}, {"y": want}, 0)[0] \
        is False                                  # no inexact stage: bit for bit


def test_mx_errors_never_suggest_per_1x32_with_fp32_scales():
    """fp4 has no fp32-scale granularity: the error for fp4 without mx names mx, and a
    row that is not whole 1x32 blocks (the case the old hint was about) is an mx pipeline
    with a partial last group, not an error."""
    import torch
    from qfuse.dsl import load_source
    from qfuse.errors import QfuseError
    from qfuse.runtime.pipeline import QuantPipeline
    src = ("def p(x: bf16[M, N]):\n    s = scale(x, fp4_e2m1, {g})\n"
           "    return pack(round(x, s, fp4_e2m1)), s\n")
    try:
        load_source(src.format(g="per_1x32"), "p.qp")
        raise AssertionError("fp4 with per_1x32 was accepted")
    except QfuseError as err:
        text = str(err)
    assert "needs granularity mx" in text and "fp32" not in text
    q, s = QuantPipeline(load_source(src.format(g="mx"), "p.qp")["p"],
                         backend="reference")(torch.randn(2, 100).to(torch.bfloat16))
    assert q.shape == (2, 50) and s.shape == (2, 4)
    bad = [p for p in (ROOT / "qfuse").rglob("*.py")
           if re.search(r"per_1x32 with f(p)?32", p.read_text())]
    assert not bad, f"an error suggests per_1x32 with fp32 scales: {bad}"


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    DOC.write_text(render_table(DOC.read_text(), public_functions(), _index()))
    print(f"updated {DOC.relative_to(ROOT)}")
