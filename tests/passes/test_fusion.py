"""The passes as the compiler drives them: what the golden IR tests (``tests/passes/<pass>/``)
cannot show: a fused module reads back as the same program, the pass manager's dumps, every
example fuses, the runtime schedules the kernels qf-fuse outlines, and outlining works on
the module in place."""
import io
import re

from qfuse.dialect.builder import build_module
from qfuse.dialect.encoding import KERNEL_ATTR
from qfuse.dialect.reader import read_pipelines
from qfuse.dialect.text import parse_module, print_module
from qfuse.dsl import load_source
from qfuse.passes import run_passes
from qfuse.passes.fuse import describe_kernels

ADD_NORM_QUANT = """
def f(x: bf16[M, N], r: bf16[M, N], w: bf16[N], eps: f32 = 1e-6):
    h = x + r
    y = norm(h, w, eps)
    s = scale(y, fp8_e4m3fn, per_token)
    q = round(y, s, fp8_e4m3fn)
    return q, s
"""


def kernel_functions(module) -> list:
    return [op for op in module.body.operations
            if op.operation.name == "func.func" and KERNEL_ATTR in op.operation.attributes]


def test_fused_module_reads_back_as_the_same_program():
    tps = list(load_source(ADD_NORM_QUANT, "t.qp").values())
    fused = run_passes(build_module(tps), "default")
    (again,) = read_pipelines(parse_module(print_module(fused, debug_info=True)))
    assert [c.stage for c in again.calls] == [c.stage for c in tps[0].calls]


def test_fusion_moves_the_ops_it_was_given():
    """qf-fuse outlines in place: the module object is the one passed in, and the stage
    ops in the kernel are the pipeline's own ops (moved, not rebuilt)."""
    module = build_module(list(load_source(ADD_NORM_QUANT, "t.qp").values()))
    block = module.body.operations[0].regions[0].blocks[0]
    before = [op.operation for op in block.operations if op.operation.name.startswith("qf.")]
    assert run_passes(module, "qf-fuse") is module
    (kernel,) = kernel_functions(module)
    after = [op.operation for op in kernel.regions[0].blocks[0].operations
             if op.operation.name.startswith("qf.")]
    assert after == before


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
        assert len(kernel_functions(m)) >= len(tps)
        assert len(describe_kernels(m)) == len(kernel_functions(m))


def test_the_runtime_schedules_the_kernels_qf_fuse_outlines():
    """A kernel whose results were all recomputed by a grid-wide amax is not outlined
    (it used to become a kernel function without results, which the runtime could not
    schedule): the compiled steps are the fused module's kernels."""
    from qfuse.runtime.compiler import compile_pipeline
    src = """
def f(x: bf16[M, N]):
    s = scale(x + x, fp8_e4m3fn, per_tensor)
    return round(x, s, fp8_e4m3fn), s
"""
    compiled = compile_pipeline(load_source(src, "t.qp")["f"], "triton")
    assert [step.name for step in compiled.steps] == ["f__k0", "f__k1"]
    assert [step.space for step in compiled.steps] == ["tensor_amax", "row"]
