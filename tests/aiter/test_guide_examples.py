"""The AITER quantisation guide's own Python examples, run as written on ``qfuse.aiter``.

Every fenced ``python`` block of the guide (``tests/aiter/data/aiter-quant-guide.md``, a
copy of ``../shared/spec/aiter-quant-guide.md``: CI runs in a clean clone where
``../shared`` may not exist, and ``test_the_copy_is_the_guide`` checks the copy against
the original wherever both are present) runs after ``import qfuse.aiter as aiter``; its
``from aiter... import`` lines go through the ``import aiter`` alias
(``qfuse/aiter/_alias.py``).

How an example runs:

* The guide reads top to bottom, so an example sees the names the earlier examples
  imported (section 9 uses ``QuantType`` from section 1's import) and nothing else of
  theirs. Its free tensors (``x``, ``inp1``, ``key_cache``, ...) come from
  :func:`inputs`: small CPU tensors of the shapes its comments give; ``torch``, which
  the guide uses without importing, is there too.
* Device: the guide names no device today. Should an example say ``device="cuda"`` or
  ``.cuda()``, :func:`on_cpu` rewrites it to the CPU (the only textual change made to an
  example), and each example runs inside ``with torch.device("cpu")``.
* An example that needs a ``qfuse.aiter`` function that does not exist yet is skipped
  with a reason naming every missing function; the reason is computed from the failure
  (an ``ImportError`` / ``AttributeError`` on a ``qfuse.aiter`` name, or a ``NameError`` on
  a name an earlier example failed to import). Any other failure fails the test.
* Where the guide itself is wrong (:data:`ERRATA`: a call AITER's own code rejects too),
  the example must fail exactly as documented, and its corrected form must run; an
  erratum that stops failing fails the test, so the list cannot go stale.
* Where an example implies a result (its comments give shapes, its call a dtype),
  :data:`CHECKS` checks it.
"""
from __future__ import annotations

import ast
import importlib
import importlib.machinery
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import pytest
import torch

import qfuse.aiter as aiter
from qfuse.aiter import dtypes

HERE = Path(__file__).resolve().parent
GUIDE = HERE / "data" / "aiter-quant-guide.md"
SHARED = HERE.parents[2] / "shared" / "spec" / "aiter-quant-guide.md"

M, N = 4, 256                  # N: whole 1x128 groups (per_1x128), MX blocks, moe-sort's N
T, H, D, NB, BS = 3, 2, 32, 6, 1
E, TOPK, TOKENS = 3, 2, 2      # moe: experts, top-k, tokens (moe-sort's x [TOKENS*TOPK, N]
assert M == TOKENS * TOPK      # is the guide's x [M, N])


def guide_examples(text: Optional[str] = None) -> list:
    """The fenced ``python`` blocks of the guide, in order."""
    text = GUIDE.read_text() if text is None else text
    return [m.group(1) for m in re.finditer(r"```python\n(.*?)```", text, re.S)]


def on_cpu(src: str) -> str:
    """The example with a CUDA device named as the CPU (the guide names none today)."""
    src = re.sub(r"""device\s*=\s*(["'])cuda(:\d+)?\1""", 'device="cpu"', src)
    return src.replace(".cuda()", ".cpu()")


def inputs() -> dict:
    """Fresh CPU tensors for the guide's free names (shapes from its comments)."""
    g = torch.Generator().manual_seed(0)

    def rnd(*shape, dt=torch.bfloat16, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).to(dt)

    x, inp1, x1 = rnd(M, N), rnd(M, N, scale=0.1), rnd(M, N, scale=0.1)
    for t in (x, inp1, x1):
        t[1] = 0                                               # an all-zero row
    # one cache tensor pair serves both cache calls of section 7 as the guide passes them:
    # with block_size 1 the per-token scales [H, NB * BS] are also the per-block [H, NB]
    cache = dict(key=rnd(T, H, D), value=rnd(T, H, D),
                 key_cache=torch.zeros(NB, H, D // 16, BS, 16, dtype=dtypes.fp8),
                 value_cache=torch.zeros(NB, H, D, BS, dtype=dtypes.fp8),
                 k_dequant_scales=torch.zeros(H, NB * BS), v_dequant_scales=torch.zeros(H, NB * BS),
                 slot_mapping=torch.tensor([0, 4, 2], dtype=torch.int64))
    # moe-sort: packed ids (top-k slot << 24 | token) sorted by expert, each expert's
    # block padded to 32 with token_num (AITER's moe_sorting output)
    ids = [(k << 24) | t for t in range(TOKENS) for k in range(TOPK)]
    sorted_ids = torch.full((64,), TOKENS, dtype=torch.int32)
    sorted_ids[:3] = torch.tensor(ids[:3])
    sorted_ids[32:32 + len(ids) - 3] = torch.tensor(ids[3:])
    return dict(
        x=x, smooth_scale=torch.rand(1, N, generator=g) + 0.5,
        inp1=inp1, inp1_weight=rnd(N), inp1_epsilon=1e-6,
        x1=x1, x1_weight=rnd(N), x1_epsilon=1e-6,
        **cache,
        out=torch.zeros(M, TOPK, N, dtype=torch.int8), input=rnd(M, N),
        x_scale=torch.rand(E, N, generator=g) + 0.5,
        topk_ids=torch.randint(0, E, (M, TOPK), generator=g, dtype=torch.int32),
        y_scale=torch.zeros(M, TOPK, 1),
        sorted_ids=sorted_ids, num_valid_ids=torch.tensor([64], dtype=torch.int32),
        token_num=TOKENS, topk=TOPK,
        scale=torch.randint(100, 140, (M, N // 32), generator=g, dtype=torch.uint8),
        residual_in=rnd(M, N), xscale=torch.rand(N, generator=g) + 0.5, weight=rnd(N),
        bias=rnd(N), epsilon=1e-6)


# ------------------------------------------------------------------ expected results
def _shape(t, shape, dtype=None, what=""):
    assert tuple(t.shape) == tuple(shape), f"{what}: shape {tuple(t.shape)}, want {shape}"
    if dtype is not None:
        assert t.dtype == dtype, f"{what}: dtype {t.dtype}, want {dtype}"


def _check_enum(ns, _):
    assert ns["QuantType"] is aiter.QuantType


def _check_per_tensor(ns, _):
    _shape(ns["x_quant"], (M, N), torch.int8, "x_quant")
    assert ns["scale"].numel() == 1 and ns["scale"].dtype == torch.float32


def _check_per_token(ns, _):
    _shape(ns["x_quant"], (M, N), torch.int8, "x_quant")
    _shape(ns["scale"], (M, 1), torch.float32, "scale")
    assert ns["scale"][1].item() == 1.0 and not ns["x_quant"][1].any()   # the zero row


def _check_mxfp4(names, dtype_q, dtype_s):
    def check(ns, _):
        _shape(ns[names[0]], (M, N // 2), dtype_q, names[0])
        _shape(ns[names[1]], (M, N // 32), dtype_s, names[1])
        zero_row = ns[names[0]].view(torch.uint8)[1]                   # codes +-0 only
        assert not (zero_row & 0x77).any()
    return check


def _check_fp8_groups(ns, _):
    _shape(ns["out_fp8"], (M, N), dtypes.fp8, "out_fp8")
    _shape(ns["out_scales"], (M, N // 128), torch.float32, "out_scales")


def _check_cache(ns, _):
    kc = ns["key_cache"].view(torch.uint8)
    for slot in ns["slot_mapping"].tolist():
        assert kc[slot // BS].any(), f"slot {slot} not written"
    assert not kc[1].any() and not kc[3].any(), "an unwritten block changed"
    ks = ns["k_dequant_scales"]
    assert (ks[:, ns["slot_mapping"] // BS] > 0).all() and not ks[:, [1, 3, 5]].any()


def _check_moe_smooth(ns, _):
    assert ns["out"].any()
    _shape(ns["y_scale"], (M, TOPK, 1), torch.float32, "y_scale")
    assert (ns["y_scale"] > 0).all()


def _check_moe_sort(ns, _):
    _shape(ns["x_fp4"], (TOKENS * TOPK, N // 2), None, "x_fp4")
    assert ns["blockscale"].numel() >= 64 * N // 32


def _check_dispatch(ns, _):
    # the second call (get_hip_quant(QuantType.per_1x32)) is the one left in the names
    _shape(ns["x_quant"], (M, N // 2), dtypes.fp4x2, "x_quant")
    _shape(ns["scale"], (M, N // 32), dtypes.fp8_e8m0, "scale")


def _check_shuffle(ns, _):
    _shape(ns["shuffled_scale"], (256, 8), None, "shuffled_scale")


def _check_all_reduce(ns, result):
    out, residual_out, y_scale = result
    _shape(out, (M, N), torch.int8, "out")
    _shape(residual_out, (M, N), torch.bfloat16, "residual_out")
    _shape(y_scale, (M, 1), torch.float32, "y_scale")


@dataclass(frozen=True)
class Check:
    anchor: str                      # text only this example has
    check: Optional[Callable] = None


#: one entry per example, in the guide's order (the anchors pin the order)
CHECKS = [
    Check("QuantType.per_128x128   #", _check_enum),
    Check("per_tensor_quant(", _check_per_tensor),
    Check("x_scale=None,       # optional SmoothQuant", _check_per_token),
    Check("per_1x32_f4_quant(", _check_mxfp4(("x_fp4", "scale_e8m0"), dtypes.fp4x2,
                                             dtypes.fp8_e8m0)),
    Check("dynamic_mxfp4_quant(", _check_mxfp4(("x_fp4", "blockscale"), torch.uint8,
                                               torch.uint8)),
    Check("x_scale=smooth_scale", _check_per_token),
    Check("fused_rms_fp8_group_quant(", _check_fp8_groups),
    Check("fused_rms_mxfp4_quant(", _check_mxfp4(("out_fp4", "out_scales"), torch.uint8,
                                                 torch.uint8)),
    Check("reshape_and_cache_with_block_quant(\n", _check_cache),
    Check("moe_smoothquant_fwd(", _check_moe_smooth),
    Check("fused_dynamic_mxfp4_quant_moe_sort(", _check_moe_sort),
    Check("get_triton_quant(QuantType.per_Token)", _check_dispatch),
    Check("rearrange_4bit_elements", None),          # imports only: importing is the check
    Check("e8m0_shuffle(scale)", _check_shuffle),
    Check("all_reduce_rmsnorm_quant(", _check_all_reduce),
]


@dataclass(frozen=True)
class Erratum:
    """Where the guide is wrong: how the example as written fails (AITER's code rejects
    it too) and the smallest correction, which must then run and pass its check."""
    error: type
    match: str
    fix: tuple                       # (text in the example, replacement)
    why: str


ERRATA = {
    "per_1x32_f4_quant(": Erratum(
        NotImplementedError, "quant_dtype must be dtypes.fp4x2",
        ("    quant_dtype=torch.float8_e4m3fnuz,  # fp4x2 packed\n", ""),
        "quant_dtype=float8_e4m3fnuz: the function is fp4-only (AITER asserts "
        "quant_dtype == dtypes.fp4x2); corrected: the default fp4x2"),
    "fused_rms_fp8_group_quant(": Erratum(
        ValueError, "too many values to unpack",
        ("out_fp8, out_scales = ", "(out_fp8, out_scales), *_ = "),
        "AITER returns ((out_fp8, out_scales), out1, out2, out_res1), not a pair"),
    "fused_rms_mxfp4_quant(": Erratum(
        ValueError, "too many values to unpack",
        ("out_fp4, out_scales = ", "(out_fp4, out_scales), *_ = "),
        "AITER returns ((out_fp4, out_scales), out1, out2, out_res1), not a pair"),
    "reshape_and_cache_with_block_quant(\n": Erratum(
        TypeError, "missing 1 required positional argument: 'asm_layout'",
        ("    slot_mapping,\n)", "    slot_mapping,\n    False,  # asm_layout\n)"),
        "both cache writes take asm_layout, which has no default in AITER"),
}


# ------------------------------------------------------------------ running an example
def _imports(src: str) -> list:
    """The ``import`` statements of an example (top level), as source."""
    tree = ast.parse(src)
    return [ast.get_source_segment(src, node) for node in tree.body
            if isinstance(node, (ast.Import, ast.ImportFrom))]


def _imported_names(stmt: str) -> list:
    """``[(module, name)]`` an import statement binds from ``aiter``."""
    node = ast.parse(stmt).body[0]
    if isinstance(node, ast.ImportFrom):
        return [(node.module, a.name) for a in node.names]
    return [(a.name, None) for a in node.names]


def _missing(stmt: str) -> list:
    """The ``aiter.*`` names an import statement asks for that ``qfuse.aiter`` lacks."""
    out = []
    for module, name in _imported_names(stmt):
        if not module.split(".")[0] == "aiter":
            continue
        try:
            mod = importlib.import_module("qfuse." + module)
        except ModuleNotFoundError:
            out.append(module if name is None else f"{module}.{name}")
            continue
        if name is not None and not hasattr(mod, name):
            out.append(f"{module}.{name}")
    return out


def _run(src: str, ns: dict):
    """Execute ``src`` in ``ns``; the value of its last statement when that is an
    expression (as a REPL shows it), else None."""
    tree = ast.parse(src)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    with torch.device("cpu"):
        exec(compile(tree, "<guide example>", "exec"), ns)
        if last is not None:
            return eval(compile(ast.Expression(last.value), "<guide example>", "eval"), ns)
    return None


def _session(index: int, examples: list) -> tuple:
    """``(names, unavailable)``: what the earlier examples imported, and the names whose
    import failed (``{name: 'aiter.module.name'}``)."""
    ns, unavailable = {"aiter": aiter, "torch": torch}, {}
    for src in examples[:index]:
        for stmt in _imports(src):
            try:
                exec(stmt, ns)
            except ImportError:
                for module, name in _imported_names(stmt):
                    unavailable[name or module] = f"{module}.{name}" if name else module
    return ns, unavailable


def _skip_reason(err: BaseException, src: str, unavailable: dict) -> Optional[str]:
    """The missing ``qfuse.aiter`` functions behind ``err``, or None (a real failure)."""
    if isinstance(err, ImportError):
        missing = [m for stmt in _imports(src) for m in _missing(stmt)]
    elif isinstance(err, NameError) and err.name in unavailable:
        missing = [unavailable[err.name]]
    elif isinstance(err, AttributeError) and \
            getattr(getattr(err, "obj", None), "__name__", "").startswith("qfuse.aiter"):
        missing = [f"{err.obj.__name__[len('qfuse.'):]}.{err.name}"]
    else:
        return None
    if not missing:
        return None
    return "needs " + ", ".join(missing) + ": not in qfuse.aiter yet"


def _anchor_of(src: str) -> str:
    hits = [c.anchor for c in CHECKS if c.anchor in src]
    assert len(hits) == 1, f"example matches anchors {hits}:\n{src}"
    return hits[0]


@pytest.fixture(autouse=True)
def alias_reachable(monkeypatch):
    """Let ``import aiter`` reach the alias under pytest. pytest puts ``tests/`` on
    ``sys.path``, where ``tests/aiter`` (no ``__init__.py``) is a namespace package named
    ``aiter``; the alias takes any ``aiter`` the path finder finds for a real AITER and
    steps aside. The entries that make that namespace package leave ``sys.path`` for the
    test (a real AITER, a regular package, is never hidden)."""
    hide = [e for e in sys.path if (Path(e or ".") / "aiter").is_dir()
            and not (Path(e or ".") / "aiter" / "__init__.py").exists()]
    if hide:
        monkeypatch.setattr(sys, "path", [e for e in sys.path if e not in hide])
    for name in [n for n in sys.modules if n == "aiter" or n.startswith("aiter.")]:
        if not getattr(sys.modules[name], "__name__", "").startswith("qfuse.aiter"):
            monkeypatch.delitem(sys.modules, name)


@pytest.fixture
def world():
    """A one-process gloo group (section 12's collective), unless one exists."""
    import torch.distributed as dist
    if dist.is_initialized():
        yield
        return
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        dist.init_process_group("gloo", init_method=f"file://{tmp}/store", rank=0,
                                world_size=1)
        try:
            yield
        finally:
            dist.destroy_process_group()


EXAMPLES = guide_examples()


@pytest.mark.parametrize("index", range(len(EXAMPLES)),
                         ids=[_anchor_of(s).strip("(\n ").split("(")[0][:40] for s in EXAMPLES])
def test_guide_example(index, world):
    src = on_cpu(EXAMPLES[index])
    check = CHECKS[index]
    assert check.anchor in src, f"example {index} is not the one CHECKS expects"
    erratum = ERRATA.get(check.anchor)
    ns, unavailable = _session(index, EXAMPLES)
    ns.update(inputs())
    try:
        if erratum is not None:
            with pytest.raises(erratum.error, match=re.escape(erratum.match)):
                _run(src, dict(ns))
            old, new = erratum.fix
            assert old in src, f"erratum fix text not in the example: {old!r}"
            src = src.replace(old, new)
        result = _run(src, ns)
    except (ImportError, NameError, AttributeError) as err:
        reason = _skip_reason(err, src, unavailable)
        if reason is None:
            raise
        pytest.skip(reason)
    if check.check is not None:
        check.check(ns, result)


def test_every_example_has_its_check():
    assert len(EXAMPLES) == len(CHECKS) == 15
    assert [_anchor_of(s) for s in EXAMPLES] == [c.anchor for c in CHECKS]
    assert set(ERRATA) <= {c.anchor for c in CHECKS}


def test_the_copy_is_the_guide():
    if not SHARED.exists():
        pytest.skip(f"{SHARED} is not present (a clean clone): the copy is all there is")
    assert GUIDE.read_text() == SHARED.read_text(), \
        f"tests/aiter/data/{GUIDE.name} differs from {SHARED}: copy it again"


def test_import_aiter_is_qfuse_aiter():
    """The guide's ``from aiter... import`` lines reach qfuse.aiter through the alias."""
    if importlib.machinery.PathFinder.find_spec("aiter") is not None:
        pytest.skip("a real AITER is on sys.path: the alias steps aside for it")
    import aiter as alias
    from aiter.ops import quant
    assert alias is aiter and sys.modules["aiter"] is aiter
    assert quant is importlib.import_module("qfuse.aiter.ops.quant")


def test_skip_reasons_name_the_missing_function():
    """The skip logic itself: a missing name is named, anything else is a failure."""
    src = "from aiter.ops.quant import pertoken_quant, no_such_function\n"
    with pytest.raises(ImportError) as info:
        _run(src, {})
    assert _skip_reason(info.value, src, {}) == \
        "needs aiter.ops.quant.no_such_function: not in qfuse.aiter yet"
    assert _skip_reason(NameError("x", name="x"), "y = x\n", {}) is None
    assert _skip_reason(ImportError("elsewhere"), "import os\n", {}) is None
    assert "device=\"cpu\"" in on_cpu("t = torch.zeros(2, device='cuda:0')")
    with pytest.raises(AttributeError) as info:
        aiter.ops.quant.no_such_function      # noqa: B018
    assert _skip_reason(info.value, "", {}) == \
        "needs aiter.ops.quant.no_such_function: not in qfuse.aiter yet"
