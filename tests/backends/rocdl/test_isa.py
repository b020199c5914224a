"""Code objects of the ROCDL backend, built on the CPU: the chip's native conversions in
the AMDGCN, every hsaco an ELF for the right EF_AMDGPU_MACH with one kernel descriptor
per kernel, the launcher's argument layout equal to the code object's metadata, and the
NVVM twin's PTX / cubin (correctly rounded division, nothing contracted into an fma)."""
from __future__ import annotations

import functools
import re
import struct
from pathlib import Path

import pytest

from qfuse.backends.base import parse_target
from qfuse.backends.rocdl.args import kernarg_layout
from qfuse.backends.rocdl.codeobj import EM_AMDGPU, MACH, read_code_object
from qfuse.backends.rocdl.lower import build_binaries
from qfuse.dsl import load_file
from qfuse.runtime.compiler import compile_pipeline

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
PIPES = {name: tp for f in sorted(EXAMPLES.glob("*.qp")) for name, tp in load_file(f).items()}


@functools.lru_cache(maxsize=None)
def _built(name: str, target: str) -> list:
    """``[(kernel, {ext: binary})]`` of one example pipeline for one target."""
    cp = compile_pipeline(PIPES[name], "rocdl", target)
    return [(s, build_binaries(s.source, parse_target(target))) for s in cp.steps]


def _asm(name: str, target: str) -> str:
    return "\n".join(b["amdgcn"] for _, b in _built(name, target))


def test_gfx942_fnuz_fp8_uses_the_native_pack():
    assert "v_cvt_pk_fp8_f32" in _asm("fnuz_per_token_vllm", "hip:gfx942")


def test_gfx942_ocp_fp8_is_emulated():
    # gfx942 has no OCP e4m3fn convert: the integer sequence, no fp8 instruction
    assert not re.search(r"v_cvt_\w*fp8", _asm("per_token_fp8", "hip:gfx942"))


@pytest.mark.parametrize("name", ["per_token_fp8", "rmsnorm_group128_fp8", "mxfp8"])
def test_gfx950_ocp_fp8_uses_a_native_convert(name):
    asm = _asm(name, "hip:gfx950")
    assert "v_cvt_pk_fp8_f32" in asm or "v_cvt_scalef32_pk_fp8_f32" in asm


def test_gfx950_mxfp4_uses_the_scaled_fp4_convert():
    assert "v_cvt_scalef32_pk_fp4_f32" in _asm("mxfp4", "hip:gfx950")
    assert "v_cvt_scalef32_pk_fp4_f32" not in _asm("mxfp4", "hip:gfx942")


@pytest.mark.parametrize("name,target", [("fnuz_per_token_vllm", "hip:gfx942"),
                                         ("per_tensor_fp8", "hip:gfx942"),
                                         ("mxfp4", "hip:gfx950"),
                                         ("add_rmsnorm_per_token_fp8", "hip:gfx950")])
def test_hsaco_is_a_code_object_for_the_chip(name, target):
    chip = parse_target(target).arch
    for step, b in _built(name, target):
        assert re.search(rf'\.amdgcn_target "amdgcn-amd-amdhsa-\w*-{chip}"', b["amdgcn"])
        co = read_code_object(b["hsaco"])
        assert co.machine == EM_AMDGPU and co.mach == MACH[chip]
        assert co.kernel_descriptors == [f"{step.name}.kd"]


@pytest.mark.parametrize("name", ["rmsnorm_per_token_fp8", "static_per_tensor_fp8",
                                  "rmsnorm_int4_packed"])
def test_kernarg_layout_matches_the_code_object(name):
    for step, b in _built(name, "hip:gfx942"):
        meta = read_code_object(b["hsaco"]).kernel(step.name)
        explicit = [(a[".offset"], a[".size"]) for a in meta[".args"]
                    if not a[".value_kind"].startswith("hidden_")]
        layout = kernarg_layout(step.source.args)
        assert explicit == layout
        assert meta[".kernarg_segment_size"] >= layout[-1][0] + layout[-1][1]


@pytest.mark.parametrize("name", ["rmsnorm_group128_fp8", "layernorm_i8",
                                  "rmsnorm_int4_packed", "mxfp4", "gelu_add_per_token_fp8"])
def test_nvvm_twin_ptx_and_cubin(name):
    for step, b in _built(name, "cuda:sm_90"):
        ptx = b["ptx"]
        assert ".target sm_90" in ptx and f".entry {step.name}(" in ptx
        assert "div.rn.f32" in ptx
        assert ("sqrt.rn.f32" in ptx) == ("norm" in name)
        assert not re.search(r"\bfma\.", ptx)        # no contraction: mul.rn / add.rn
        assert "__nv_" not in ptx                    # no libdevice calls
        cubin = b["cubin"]
        assert cubin[:4] == b"\x7fELF" and struct.unpack_from("<H", cubin, 18)[0] == 190


@pytest.mark.parametrize("target", ["hip:gfx942", "hip:gfx950"])
def test_exp_is_the_native_instruction_not_a_device_library(target):
    asm = _asm("gelu_add_per_token_fp8", target)
    assert "v_exp_f32" in asm and "__ocml" not in asm
