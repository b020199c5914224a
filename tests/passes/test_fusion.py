"""Fusion, dead-stage elimination, CSE and legalisation on the qf dialect."""
import io
import re

import pytest

from qfuse.dialect.builder import build_module
from qfuse.dialect.reader import read_pipelines
from qfuse.dialect.text import parse_module, print_module
from qfuse.dsl import load_source
from qfuse.errors import QfuseError
from qfuse.passes import run_passes


def compile_text(src: str, pipeline="default"):
    tps = list(load_source(src, "t.qp").values())
    return run_passes(build_module(tps), pipeline)


def kernels(module) -> list:
    text = print_module(module)
    return re.findall(r"func\.func private @(\w+)\(.*qf\.kernel.*qf\.space = \"(\w+)\"", text)


ADD_NORM_QUANT = """
def f(x: bf16[M, N], r: bf16[M, N], w: bf16[N], eps: f32 = 1e-6):
    h = x + r
    y = norm(h, w, eps)
    s = scale(y, fp8_e4m3fn, per_token)
    q = round(y, s, fp8_e4m3fn)
    return q, s
"""


def test_add_norm_scale_round_is_one_kernel():
    assert kernels(compile_text(ADD_NORM_QUANT)) == [("f__k0", "row")]


def test_dynamic_per_tensor_is_two_kernels_and_says_why():
    m = compile_text("""
def f(x: bf16[M, N], w: bf16[N]):
    y = norm(x, w, 1e-6)
    s = scale(y, fp8_e4m3fn, per_tensor)
    return round(y, s, fp8_e4m3fn), s
""")
    assert kernels(m) == [("f__k0", "tensor_amax"), ("f__k1", "row")]
    text = print_module(m)
    assert 'qf.reason = "grid-wide-amax' in text
    # the amax kernel recomputes the norm instead of materialising it
    k0 = text[text.index("@f__k0"):text.index("@f__k1")]
    assert "qf.norm" in k0 and "qf.scale" in k0


def test_fused_module_reads_back_as_the_same_program():
    tps = list(load_source(ADD_NORM_QUANT, "t.qp").values())
    fused = run_passes(build_module(tps), "default")
    (again,) = read_pipelines(parse_module(print_module(fused, debug_info=True)))
    assert [c.stage for c in again.calls] == [c.stage for c in tps[0].calls]


def test_dead_stage_and_duplicate_are_removed():
    m = compile_text("""
def f(x: bf16[M, N]):
    unused = silu(x)
    s1 = scale(x, fp8_e4m3fn, per_token)
    s2 = scale(x, fp8_e4m3fn, per_token)
    q = round(x, s1, fp8_e4m3fn)
    return q, s2
""", "qf-dce,qf-cse")
    text = print_module(m)
    assert "qf.silu" not in text
    assert text.count('"qf.scale"') == 1


def test_independent_row_chains_share_one_kernel():
    m = compile_text("""
def f(g: bf16[M, N], u: bf16[M, N], s: f32[1]):
    return round(silu(g) * u, s, fp8_e4m3fn, granularity=per_tensor)
""")
    assert kernels(m) == [("f__k0", "row")]


def test_gather_of_an_in_kernel_value_starts_a_new_kernel():
    m = compile_text("""
def f(x: bf16[M, N], ids: i32[R]):
    y = silu(x)
    g = gather(y, ids)
    s = scale(g, fp8_e4m3fn, per_token)
    return round(g, s, fp8_e4m3fn), s
""")
    assert [k[1] for k in kernels(m)] == ["row", "row"]
    assert 'qf.reason = "remapped-rows' in print_module(m)


def test_legalize_records_blocks_and_rejects_static_mx_misfit():
    m = compile_text("""
def f(x: bf16[M, 128]):
    s = scale(x, fp8_e4m3fn, per_1x64)
    return round(x, s, fp8_e4m3fn)
""")
    assert "qf.block = [1, 64]" in print_module(m)
    with pytest.raises(QfuseError) as e:
        compile_text("""
def f(x: bf16[M, 100]):
    s = scale(x, fp4_e2m1, mx)
    return pack(round(x, s, fp4_e2m1)), s
""")
    assert "multiple of 32" in str(e.value) and "t.qp:3:" in str(e.value)


def test_print_after_all_names_every_pass():
    tps = list(load_source(ADD_NORM_QUANT, "t.qp").values())
    out = io.StringIO()
    run_passes(build_module(tps), "default", print_after_all=True, out=out)
    dumps = re.findall(r"IR Dump After ([\w-]+)", out.getvalue())
    assert dumps == ["qf-verify", "qf-dce", "qf-cse", "qf-fuse", "qf-legalize", "qf-verify"]


def test_every_example_fuses_and_verifies():
    import glob
    from qfuse.dsl import load_file
    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    for path in sorted(glob.glob(str(root / "examples/*.qp"))):
        tps = list(load_file(path).values())
        m = run_passes(build_module(tps), "default")
        assert len(kernels(m)) >= len(tps)


def test_a_chain_that_only_feeds_a_grid_wide_amax_is_not_a_kernel_of_its_own():
    """The amax kernel recomputes x + x; the row kernel that computed it first has no
    output left and is dropped (it used to become a kernel function without results,
    which the runtime could not schedule)."""
    from qfuse.runtime.compiler import compile_pipeline
    src = """
def f(x: bf16[M, N]):
    s = scale(x + x, fp8_e4m3fn, per_tensor)
    return round(x, s, fp8_e4m3fn), s
"""
    assert kernels(compile_text(src)) == [("f__k0", "tensor_amax"), ("f__k1", "row")]
    compiled = compile_pipeline(load_source(src, "t.qp")["f"], "triton")
    assert [step.name for step in compiled.steps] == ["f__k0", "f__k1"]


def test_hand_written_shuffle_of_a_parameter_is_a_located_error():
    """The DSL only lets shuffle lay out an mx scale of the same pipeline; MLIR input that
    shuffles a parameter gets a located error from the planner, not a KeyError."""
    src = ("def f(x: bf16[M, N], t: e8m0[M, G]):\n    s = scale(x, fp4_e2m1, mx)\n"
           "    return shuffle(s), t\n")
    text = print_module(build_module(list(load_source(src, "t.qp").values())), debug_info=True)
    shuffled_param = re.sub(r'"qf\.shuffle"\(%0\)', '"qf.shuffle"(%arg1)', text)
    assert shuffled_param != text
    with pytest.raises(QfuseError) as info:
        run_passes(parse_module(shuffled_param))
    assert "shuffle lays out the E8M0 scale" in info.value.message
    assert (info.value.loc.file, info.value.loc.line) == ("t.qp", 3)
