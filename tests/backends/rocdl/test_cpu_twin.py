"""The CPU twin (the loop-level IR run by MLIR's ExecutionEngine) against the reference
backend on every example pipeline the ROCDL backend lowers: random data, edge values,
odd shapes (M = 0, 1; N not a multiple of the group) and strided inputs. Codes, scale
bytes and every output of an exact pipeline must be identical; a pipeline with a norm
meets the agreement rule of docs/semantics.md (its sums run in another order)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from qfuse.backends.reference.interpreter import run_pipeline
from qfuse.dsl import load_file
from qfuse.errors import QfuseError
from qfuse.runtime.compare import compare_outputs, tolerant_stages
from qfuse.runtime.inputs import random_inputs
from qfuse.runtime.pipeline import QuantPipeline

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
PIPES = {name: tp for f in sorted(EXAMPLES.glob("*.qp")) for name, tp in load_file(f).items()}

#: what the backend lowers today (the rest is refused: test_refusals); README lists the gaps
LOWERED = ["per_tensor_fp8", "static_per_tensor_fp8", "per_token_fp8", "rmsnorm_per_token_fp8",
           "add_rmsnorm_per_token_fp8", "rmsnorm_group128_fp8", "rmsnorm_static_fp8",
           "fnuz_per_token_vllm", "smooth_per_token_i8", "layernorm_i8", "rmsnorm_int4_packed",
           "mxfp4", "mxfp4_even", "mxfp8", "scaled_residual_bf16", "silu_mul_static_fp8",
           "gelu_add_per_token_fp8"]
#: lowered too, checked with their own dims and hostile indices in test_stages_rows.py,
#: test_stages_tile.py and test_stages_cache.py
ROWS = ["flatten_group_fp8", "moe_smoothquant_i8", "moe_sort_mxfp4", "reduce_act_mul_group_fp8",
        "rmsnorm_mxfp4_shuffle", "block128x128_fp8", "kv_copy_bf16", "kv_per_token_fp8",
        "kv_flash_static_fp8", "rmsnorm_rope_key_cache", "kv_block_fp8"]
REFUSED = sorted(set(PIPES) - set(LOWERED) - set(ROWS))

_PIPES: dict = {}


def _pipe(name: str) -> QuantPipeline:
    if name not in _PIPES:
        _PIPES[name] = QuantPipeline(PIPES[name], backend="rocdl")
    return _PIPES[name]


def _edge(inputs: dict) -> dict:
    """Row 0 all zeros; row 1 (if any) ties, huge, subnormal, NaN and inf values."""
    out = dict(inputs)
    for k, v in inputs.items():
        if isinstance(v, torch.Tensor) and v.dim() == 2 and v.is_floating_point() and v.numel():
            v = v.clone()
            v[0] = 0
            if v.shape[0] > 1:
                special = torch.tensor([448.0, -464.0, 1e-40, 2.0 ** -9, 3e38, float("nan"),
                                        float("inf"), -0.0, 0.75, 6.5, -2.5, 1e-3])
                n = min(v.shape[1], special.numel())
                v[1, :n] = special[:n].to(v.dtype)
            out[k] = v
    return out


def _check(name: str, inputs: dict) -> None:
    tp = PIPES[name]
    got = _pipe(name)(**inputs, _as_dict=True)
    want = run_pipeline(tp, inputs)
    ok, msg = compare_outputs(got, want, tolerant_stages(tp))
    assert ok, f"{name}: {msg}"
    if not tolerant_stages(tp):
        assert msg == "exact", f"{name}: {msg}"


def _dims(name: str, m: int, n: int) -> dict:
    return {"M": m, "N": n}


SHAPES = [(4, 256), (3, 100), (1, 64), (0, 64)]      # 100: partial 1x32 / 1x128 groups


@pytest.mark.parametrize("name", LOWERED)
def test_cpu_twin_matches_the_reference(name):
    for m, n in SHAPES:
        inputs = random_inputs(PIPES[name], _dims(name, m, n), seed=m * 7 + n)
        _check(name, inputs)
        _check(name, _edge(inputs))


@pytest.mark.parametrize("name", ["per_token_fp8", "rmsnorm_group128_fp8", "mxfp4",
                                  "smooth_per_token_i8"])
def test_strided_inputs(name):
    tp = PIPES[name]
    inputs = random_inputs(tp, {"M": 6, "N": 160}, seed=3)
    wide = {}
    for k, v in inputs.items():
        if isinstance(v, torch.Tensor) and v.dim() == 2:
            big = torch.zeros(v.shape[0] * 2, v.shape[1] + 40, dtype=v.dtype)
            big[::2, 8:8 + v.shape[1]] = v
            wide[k] = big[::2, 8:8 + v.shape[1]]         # strided rows, an offset
            assert not wide[k].is_contiguous()
        else:
            wide[k] = v
    _check(name, wide)


def test_norm_is_within_the_agreement_rule_and_exact_where_sums_are_exact():
    # a norm's fp32 sums may differ from torch's order by an ulp: the rule allows it; with
    # every row a multiple of the same power of two the sums are exact and so is every bit
    tp = PIPES["rmsnorm_per_token_fp8"]
    inputs = random_inputs(tp, {"M": 5, "N": 64}, seed=1)
    inputs["x"] = torch.full((5, 64), 0.5, dtype=torch.bfloat16)
    got = _pipe("rmsnorm_per_token_fp8")(**inputs, _as_dict=True)
    want = run_pipeline(tp, inputs)
    assert compare_outputs(got, want, 0)[0]


@pytest.mark.parametrize("name", REFUSED)
def test_refusals_name_the_stage_or_space(name):
    from qfuse.backends.registry import get_backend
    from qfuse.runtime.compiler import compile_pipeline
    with pytest.raises(QfuseError, match=r"rocdl backend: .*(not lowered yet|rank)"):
        compile_pipeline(PIPES[name], "rocdl", "cpu:interp")
    assert get_backend("rocdl").supports(__import__("qfuse.backends.base", fromlist=["x"])
                                         .parse_target("hip:gfx950"))
