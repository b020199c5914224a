"""The GPU mapping's block reductions, checked in the emitted code (cross-compiled on the
CPU): a butterfly of subgroup shuffles sized to the target's wave, then the waves'
partials through workgroup memory; no ``gpu.all_reduce`` left to a generic lowering."""
from __future__ import annotations

import re

import pytest

from qfuse.backends.base import parse_target
from qfuse.backends.registry import get_backend
from qfuse.backends.rocdl.codeobj import read_code_object
from qfuse.backends.rocdl.lower import build_binaries
from qfuse.backends.rocdl.mapping import BLOCK
from qfuse.dsl import load_source
from qfuse.runtime.compiler import compile_pipeline

SRC = """
def amax_only(x: bf16[M, N]):
    s = scale(x, fp8_e4m3fn, per_token)
    return round(x, s, fp8_e4m3fn), s

def rms_amax(x: bf16[M, N], w: bf16[N], eps: f32 = 1e-6):
    y = norm(x, w, eps)
    s = scale(y, fp8_e4m3fn, per_token)
    return round(y, s, fp8_e4m3fn), s
"""

WAVE = {"hip:gfx942": 64, "hip:gfx950": 64, "cuda:sm_90": 32}


@pytest.fixture(scope="module")
def kernels():
    progs = load_source(SRC, "m.qp")
    return {name: compile_pipeline(tp, "rocdl", "any").steps[0].source
            for name, tp in progs.items()}


def _reductions(name: str) -> int:
    return {"amax_only": 1, "rms_amax": 2}[name]     # amax; sum of squares + amax


@pytest.mark.parametrize("target", sorted(WAVE))
@pytest.mark.parametrize("name", ["amax_only", "rms_amax"])
def test_the_gpu_form_reduces_with_shuffles_sized_to_the_wave(kernels, target, name):
    gpu = kernels[name].gpu[target]
    wave = WAVE[target]
    steps = wave.bit_length() - 1                   # log2(wave) butterfly steps
    assert "gpu.all_reduce" not in gpu
    shuffles = re.findall(r"gpu\.shuffle xor %\S+, %\S+, %\S+ : f32", gpu)
    assert len(shuffles) == steps * _reductions(name)
    assert re.search(rf"workgroup\(%\S+ : memref<{BLOCK // wave}xf32, "
                     rf"#gpu.address_space<workgroup>>\)", gpu)
    assert gpu.count("gpu.barrier") == 2 * _reductions(name)
    if name == "rms_amax":
        assert re.search(r"= arith\.addf %\S+, %shuffleResult\S* : f32", gpu)   # the sum's butterfly
    assert re.search(r"= arith\.maximumf %\S+, %shuffleResult\S* : f32", gpu)


@pytest.mark.parametrize("name", ["amax_only", "rms_amax"])
def test_ptx_has_the_warp_butterfly_and_the_shared_partials(kernels, name):
    ptx = build_binaries(kernels[name], parse_target("cuda:sm_90"))["ptx"]
    assert len(re.findall(r"shfl\.sync\.bfly\.b32", ptx)) == 5 * _reductions(name)
    assert ".shared .align 4 .b8" in ptx and "bar.sync" in ptx
    assert not re.search(r"\batom\.|\bred\.", ptx)      # no atomics: one block per row


@pytest.mark.parametrize("chip", ["gfx942", "gfx950"])
def test_amdgcn_has_the_wave_butterfly_and_the_lds_partials(kernels, chip):
    target = parse_target(f"hip:{chip}")
    out = build_binaries(kernels["rms_amax"], target)
    asm = out["amdgcn"]
    # each butterfly step is one cross-lane op: xor 32 / 16 cross rows (ds_bpermute on
    # gfx942, v_permlane32/16_swap on gfx950), xor 8 .. 1 stay in a row (swizzle or DPP);
    # the partials go through LDS with a barrier on each side
    steps = re.findall(r"\bds_bpermute_b32\b|\bv_permlane\d+_swap_b32\w*|"
                       r"\bds_swizzle_b32\b|\bv_\w+_dpp\b", asm)
    assert len(steps) >= 2 * 6, steps
    assert "s_barrier" in asm and "ds_write_b32" in asm
    meta = read_code_object(out["hsaco"]).kernel("rms_amax__k0")
    assert meta[".group_segment_fixed_size"] == 4 * (BLOCK // 64)


def test_the_cpu_loops_are_unchanged_by_the_mapping(kernels):
    loops = kernels["rms_amax"].loops
    assert "gpu." not in loops and "workgroup" not in loops


def test_a_target_less_mapping_uses_the_narrowest_wave():
    from qfuse.backends.rocdl.mapping import Gpu
    assert Gpu().subgroup == 32 and Gpu(parse_target("hip:gfx942")).subgroup == 64
    assert get_backend("rocdl").supports(parse_target("cuda:sm_90"))


# ------------------------------------------------------------------ grid-wide amax
TENSOR = """
def tensor_fp8(x: bf16[M, N]):
    s = scale(x, fp8_e4m3fn, per_tensor)
    return round(x, s, fp8_e4m3fn), s
"""


@pytest.fixture(scope="module")
def amax_kernel():
    tp = load_source(TENSOR, "t.qp")["tensor_fp8"]
    k = compile_pipeline(tp, "rocdl", "any").steps[0]
    assert k.space == "tensor_amax"
    return k.source


@pytest.mark.parametrize("target", sorted(WAVE))
def test_the_grid_wide_amax_strides_blocks_over_rows_and_meets_in_atomics(amax_kernel,
                                                                          target):
    from qfuse.backends.rocdl.mapping import GRID_BLOCKS
    gpu = amax_kernel.gpu[target]
    assert amax_kernel.grid == "blocks"
    assert 'memref<2xi32> {qf.name = "workspace"}' in gpu and "gpu.grid_dim" not in gpu
    assert re.search(rf"arith\.minui %\S+, %\S+ : index", gpu) and str(GRID_BLOCKS) in gpu
    assert re.search(r"scf\.for %\S+ = %block_id_x\S* to %\S+ step %\S+ iter_args", gpu)
    kinds = re.findall(r"memref\.atomic_rmw (\w+)", gpu)
    assert kinds == ["maxu", "addi", "maxu"]      # max, ticket, the last block's read
    assert "gpu.all_reduce" not in gpu and "#gpu.address_space<workgroup>" in gpu
    assert "memref.atomic_rmw" not in amax_kernel.loops and "workspace" not in amax_kernel.loops


def test_the_grid_wide_amax_in_ptx_and_amdgcn(amax_kernel):
    ptx = build_binaries(amax_kernel, parse_target("cuda:sm_90"))["ptx"]
    assert re.search(r"atom\.acq_rel\.\w+\.global\.max\.u32", ptx)
    assert re.search(r"atom\.acq_rel\.\w+\.global\.add\.u32", ptx)
    for chip in ("gfx942", "gfx950"):
        out = build_binaries(amax_kernel, parse_target(f"hip:{chip}"))
        asm = out["amdgcn"]
        # a system-scope umax is a compare-and-swap loop on gfx942, native elsewhere
        assert re.search(r"global_atomic_(umax|cmpswap)\b", asm), chip
        assert "global_atomic_add" in asm and "__ockl" not in asm, chip
        assert "buffer_wbl2" in asm and "buffer_inv" in asm     # the acq_rel fences


def test_the_grid_wide_amax_kernargs_include_the_workspace(amax_kernel):
    from qfuse.backends.rocdl.args import kernarg_layout
    out = build_binaries(amax_kernel, parse_target("hip:gfx942"))
    meta = read_code_object(out["hsaco"]).kernel(amax_kernel.name)
    explicit = [(a[".offset"], a[".size"]) for a in meta[".args"]
                if not a[".value_kind"].startswith("hidden_")]
    assert explicit == kernarg_layout(amax_kernel.gpu_args)
    assert len(amax_kernel.gpu_args) == len(amax_kernel.args) + 1


def test_the_launch_grid_matches_the_kernel(amax_kernel):
    import torch
    from qfuse.backends.rocdl.launch_gpu import GpuKernel
    from qfuse.backends.rocdl.mapping import GRID_BLOCKS, grid_blocks
    assert [grid_blocks(m) for m in (0, 1, 7, GRID_BLOCKS, 10 ** 6)] == \
        [1, 1, 7, GRID_BLOCKS, GRID_BLOCKS]
    k = GpuKernel.__new__(GpuKernel)
    k.kernel = amax_kernel
    x = torch.zeros(3000, 8, dtype=torch.bfloat16)
    assert k.grid([x, torch.zeros(1)]) == GRID_BLOCKS
    assert k.grid([x[:0], torch.zeros(1)]) == 1            # zero rows: the scale is written
