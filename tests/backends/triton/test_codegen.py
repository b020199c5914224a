"""The Triton renderer on its own: readable, deterministic source; the KernelSource
contract; errors for what is not supported; loading; cross-compiling (no GPU needed).

The kernels come from the fused module, as production renders them (``kernel_sources``:
``compile_pipeline``'s steps); only the tests of what the renderer refuses hand it
programs the fusion pass would have split."""
import os
import subprocess
import sys
import textwrap

import pytest
import triton.language as tl
from triton.runtime.interpreter import InterpretedFunction
from triton.runtime.jit import JITFunction

from qfuse.backends.triton import (KernelSource, TritonConfig, TritonKernel, infer_space,
                                  render_kernel)
from qfuse.backends.triton.launch.loader import load_kernel
from qfuse.backends.triton.triton_adapter import interpreting
from qfuse.backends.triton.triton_adapter import version as triton_version
from qfuse.dsl import load_source
from qfuse.errors import UnsupportedError
from qfuse.runtime.compiler import compile_pipeline

SRC = """
def rms_fp8(x: bf16[M, N], w: bf16[N], eps: f32 = 1e-6):
    y = norm(x, w, eps)
    s = scale(y, fp8_e4m3fn, per_token)
    return round(y, s, fp8_e4m3fn), s

def rms_fnuz(x: bf16[M, N], w: bf16[N], eps: f32 = 1e-6):
    y = norm(x, w, eps)
    s = scale(y, fp8_e4m3fnuz, per_token)
    return round(y, s, fp8_e4m3fnuz), s

def mxfp4_shuffle(x: bf16[M, N]):
    s = scale(x, fp4_e2m1, mx, e8m0=even)
    return pack(round(x, s, fp4_e2m1)), shuffle(s)

def dyn(x: bf16[M, N]):
    return scale(x, fp8_e4m3fn, per_tensor)

def tile(x: bf16[M, N]):
    s = scale(x, fp8_e4m3fn, per_128x128)
    return round(x, s, fp8_e4m3fn), s

def kv(k: bf16[T, H, D], c: fp8_e4m3fn[B, H, DX, BS, X], slots: i64[T], s: f32[H, S]):
    kc, ks = cache_write(k, c, slots, layout=key, quant=per_token, scales=s)
    return kc, ks

def kv_block(k: bf16[T, H, D], c: fp8_e4m3fn[B, H, DX, BS, X], slots: i64[T], s: f32[H, B]):
    kc, ks = cache_write(k, c, slots, layout=key, quant=per_block, scales=s)
    return kc, ks

def two_domains(x: bf16[M, N], g: bf16[R, N]):
    return x + 1.0, g + 1.0

def reduce_of_value(p: f32[S, M, N]):
    return reduce(p * 2.0)

def mul_add(x: f32[M, N], y: f32[M, N]):
    return x * y + 1.0
"""


@pytest.fixture(scope="module")
def P():
    return load_source(SRC, "codegen_test.qp")


def kernel_sources(tp) -> list:
    """The KernelSource of each kernel of ``tp``'s fused module, in launch order."""
    return [step.source for step in compile_pipeline(tp, "triton").steps]


def kernel_source(tp) -> KernelSource:
    """The one kernel of a pipeline that fuses into one."""
    (ks,) = kernel_sources(tp)
    return ks


def test_readable_and_located(P):
    ks = kernel_source(P["rms_fp8"])
    assert isinstance(ks, KernelSource) and ks.space == "row" and ks.name == "rms_fp8__k0"
    t = ks.text
    for needle in ("# norm(kind=rms, dtype=f32) -> y @ codegen_test.qp:3:9",
                   "# scale(dtype=fp8_e4m3fn, granularity=per_token, zero=one) -> s @ "
                   "codegen_test.qp:4:9", "# round(", "# output s: f32[M, 1]",
                   "@triton.jit\ndef rms_fp8__k0(",
                   "from qfuse.backends.triton.numerics import qf_div, qf_div_bounded, qf_div_codes, "
                   "qf_fp8_bits_finite, qf_fp8_prepare, qf_scale_fast_ok, qf_sqrt",
                   # round(y, scale(y)): the bounded fast path, and the general one behind it
                   "if fast_", "qf_div_bounded(y_", "tl.debug_barrier()"):
        assert needle in t, needle
    compile(t, "rms_fp8.py", "exec")
    assert max(len(line) for line in t.splitlines()) < 160


def test_deterministic(P):
    a = kernel_source(P["mxfp4_shuffle"])
    b = kernel_source(load_source(SRC, "codegen_test.qp")["mxfp4_shuffle"])
    assert a.text == b.text and a.key == b.key and a == b


def test_kernel_source_contract(P):
    ks = kernel_source(P["mxfp4_shuffle"])
    roles = [(a.name, a.role) for a in ks.args]
    assert roles[:3] == [("x_ptr", "input"), ("pack_0_ptr", "output"),
                         ("shuffle_0_ptr", "output")]
    assert ("dim_M", "dim") in roles and ("BLOCK_M", "constexpr") in roles
    assert dict(ks.constexprs)["BLOCK_0"] == "max(np2(N), 32)"     # mx groups of 32
    assert ks.grid == ("cdiv(M, BLOCK_M)", "cdiv(N, BLOCK_0)") and ks.col_split == 32
    out = ks.tensor("shuffle_0", "output")
    assert out.init is None and out.contiguous and out.shape == ("round_up(M, 256)",
                                                                       "round_up(cdiv(N, 32), 8)")
    assert ks.outputs == (("pack_0", "pack_0"), ("shuffle_0", "shuffle_0"))
    assert ks.tensor("x").view == "int16"


def test_spaces(P):
    assert infer_space(P["dyn"]) == "tensor_amax" and infer_space(P["tile"]) == "tile"
    amax = kernel_source(P["dyn"])
    assert amax.space == "tensor_amax" and amax.min_programs == 1 and amax.workspace == "2"
    assert "tl.atomic_max(ws_ptr" in amax.text and "tl.num_programs(0) - 1" in amax.text
    tile = kernel_source(P["tile"])
    assert tile.space == "tile" and tile.grid == ("cdiv(M, TILE)", "cdiv(N, TILE)")
    # what the renderer refuses: a kernel in a space its stages cannot run in
    with pytest.raises(UnsupportedError, match="iteration space"):
        render_kernel(P["tile"], "wavefront")
    with pytest.raises(UnsupportedError, match="ends in cache_write"):
        render_kernel(P["tile"], "cache_block")
    assert infer_space(P["kv_block"]) == "cache_block"
    with pytest.raises(UnsupportedError, match="render it in the cache_block space"):
        render_kernel(P["kv_block"], "row")
    with pytest.raises(UnsupportedError, match="per_128x128 needs the tile space"):
        render_kernel(P["tile"], "row")


def test_cache_kernel_contract(P):
    ks = kernel_source(P["kv"])
    assert ks.tensor("kc", "output").init == ("copy", "c")
    assert ks.tensor("ks", "output").init == ("copy", "s")
    assert ks.checks == (("X == 16", "c: the key layout's last dim must be vec=16"),)
    assert "slot_ok" in ks.text and "# cache_write(layout=key, quant=per_token)" in ks.text


def test_unsupported_is_located(P):
    """Programs the fusion pass splits (two row domains; a reduce of a computed value)
    rendered as one kernel: a located refusal, not wrong code."""
    with pytest.raises(UnsupportedError) as e:
        render_kernel(P["two_domains"])
    assert "iterate over different rows" in str(e.value)
    with pytest.raises(UnsupportedError) as e:
        render_kernel(P["reduce_of_value"])
    line = SRC.splitlines().index("    return reduce(p * 2.0)") + 1
    assert e.value.loc is not None and e.value.loc.line == line
    assert "split-K partials must be a kernel input" in str(e.value)


def test_loader_and_interpreting_restore(P):
    ks = kernel_source(P["rms_fp8"])
    fn = load_kernel(ks)
    assert isinstance(fn, JITFunction) and fn.fn.__module__.startswith("qfuse_gen_rms_fp8_")
    assert os.path.exists(fn.fn.__code__.co_filename)
    assert load_kernel(ks) is fn
    call, core = JITFunction.__call__, dict(vars(tl.core))
    with interpreting(fn) as k:
        assert isinstance(k, InterpretedFunction) and JITFunction.__call__ is not call
    assert JITFunction.__call__ is call and isinstance(tl.max, JITFunction)
    assert all(vars(tl.core).get(name) is v for name, v in core.items())


def test_triton_interpret_env_subprocess(tmp_path):
    """Generated code also runs when TRITON_INTERPRET=1 was set before triton's import."""
    script = textwrap.dedent("""
        import torch
        from qfuse.dsl import load_source
        from qfuse.backends.triton import run_pipeline
        from qfuse.backends.reference import run_pipeline as ref
        tp = load_source('''
        def f(x: bf16[M, N]):
            s = scale(x, fp4_e2m1, mx)
            return pack(round(x, s, fp4_e2m1)), s
        ''', "env.qp")["f"]
        x = torch.randn(5, 64).to(torch.bfloat16)
        a, b = run_pipeline(tp, {"x": x}), ref(tp, {"x": x})
        assert all(torch.equal(a[k], b[k]) for k in b)
        print("OK")
    """)
    env = dict(os.environ, TRITON_INTERPRET="1", QFUSE_CACHE_DIR=str(tmp_path))
    r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr[-2000:]


# ------------------------------------------------------------------ cross-compile
@pytest.mark.parametrize("name,target,needle", [
    ("rms_fp8", "cuda:sm_90", "cvt.rn.satfinite.e4m3x2.f32"),
    ("rms_fnuz", "hip:gfx942", "v_cvt_pk_fp8_f32"),
    ("rms_fp8", "hip:gfx950", "v_cvt_scalef32_pk_fp8_f32"),
])
def test_cross_compile_native_fp8(P, name, target, needle):
    if target == "hip:gfx950" and triton_version() < (3, 7):
        pytest.skip("triton 3.6 emulates OCP fp8 on gfx950")
    k = TritonKernel(kernel_source(P[name]))
    asm = k.compile(target, config=TritonConfig(native=True))
    text = asm["ptx"] if target.startswith("cuda") else asm["amdgcn"]
    assert needle in text
    plain = k.compile(target, config=TritonConfig(native=False))   # the integer emulation
    assert needle not in (plain["ptx"] if target.startswith("cuda") else plain["amdgcn"])
    # the default: hardware converts on NVIDIA; on AMD for one-row programs (wide rows) only
    wide = k.compile(target, dims={"N": 8192})
    assert needle in (wide["ptx"] if target.startswith("cuda") else wide["amdgcn"])
    narrow = k.compile(target, dims={"N": 256})
    if target.startswith("cuda"):
        assert needle in narrow["ptx"]
    else:
        assert needle not in narrow["amdgcn"]
    if target.startswith("cuda"):
        assert asm["cubin"][:4] == b"\x7fELF"


def test_no_fma_contraction(P):
    """enable_fp_fusion=False: x * y + 1.0 stays a multiply and an add (two roundings, as
    in the reference); the only fma.rn.f32 in generated code are explicit (qf_div_codes)."""
    ptx = TritonKernel(kernel_source(P["mul_add"])).compile("cuda:sm_90")["ptx"]
    assert "fma.rn.f32" not in ptx and "mul.f32" in ptx.replace("mul.rn.f32", "mul.f32")


@pytest.mark.parametrize("name,target", [(n, "cuda:sm_90") for n in ("mxfp4_shuffle", "dyn",
                                                                     "tile", "kv")]
                         + [("mxfp4_shuffle", "hip:gfx950"), ("dyn", "hip:gfx942"),
                            ("kv", "hip:gfx942")])
def test_cross_compile_every_space(P, name, target):
    asm = TritonKernel(kernel_source(P[name])).compile(target, dims={"N": 256, "D": 128})
    assert ("cubin" in asm) if target.startswith("cuda") else ("hsaco" in asm)


def test_zero_scale_select_only_where_a_scale_can_be_zero():
    """round's `where(s == 0, 0, v)` is emitted for static and zero-policy scales only; a
    per-token scale with zero=one is never 0 (an all-zero row gets scale 1)."""
    src = load_source(textwrap.dedent('''
    def tok(x: bf16[M, N]):
        s = scale(x, fp8_e4m3fn, per_token)
        return round(x, s, fp8_e4m3fn), s

    def tok_zero(x: bf16[M, N]):
        s = scale(x, fp8_e4m3fn, per_token, zero=zero)
        return round(x, s, fp8_e4m3fn), s

    def static(x: bf16[M, N], s: f32[1]):
        return round(x, s, fp8_e4m3fn, granularity=per_tensor)
    '''), "zero_sel.qp")
    text = {n: kernel_source(src[n]).text for n in src}
    assert "== 0.0, 0.0," not in text["tok"]
    assert "== 0.0, 0.0," in text["tok_zero"] and "== 0.0, 0.0," in text["static"]


def test_the_scale_fact_comes_from_the_kernel_function():
    """The quantise kernel's bounded fast path rests on the qf.scale_of attribute of its
    scale argument, which qf-fuse writes: the renderer reads it from the kernel function
    (no side channel), so removing it, or a dtype_max above the fp8 range, loses the
    fast path."""
    import re

    from qfuse.dialect.builder import build_module
    from qfuse.dialect.encoding import KERNEL_ATTR
    from qfuse.dialect.reader import read_function
    from qfuse.dialect.text import parse_module, print_module
    from qfuse.passes import run_passes
    tp = load_source("def f(x: bf16[M, N]):\n    s = scale(x, fp8_e4m3fn, per_tensor)\n"
                     "    return round(x, s, fp8_e4m3fn), s\n", "fact.qp")["f"]
    text = print_module(run_passes(build_module([tp])), debug_info=True)

    def quantise_kernel(module_text: str) -> str:
        module = parse_module(module_text)
        kernels = [op for op in module.body.operations if KERNEL_ATTR in op.attributes]
        return render_kernel(read_function(kernels[1]), "row").text

    fact = re.search(r", qf\.scale_of = \{dtype_max = 4\.480000e\+02 : f64[^}]*\}", text)
    assert fact is not None
    assert "qf_div_bounded" in quantise_kernel(text)
    assert "qf_div_bounded" not in quantise_kernel(text.replace(fact.group(0), ""))
    too_big = text.replace(fact.group(0), fact.group(0).replace("4.480000e+02", "1.000000e+03"))
    assert "qf_div_bounded" not in quantise_kernel(too_big)
