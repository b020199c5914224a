"""The quantisation stages added for issue 15 (dequant, unpack, pack(order=even_odd),
scale(pow2=true), gather(topk > 1)) were refused by the ROCDL backend while they were not
lowered; they are now (tests/backends/rocdl/test_stages_options.py checks them over
their options): these small cases run and agree with the reference bit for bit."""
import pytest
import torch

from qfuse.dsl import load_source
from qfuse.runtime.pipeline import QuantPipeline

P = load_source("""
def dq(q: i8[M, N], s: f32[M, 1]):
    return dequant(q, s, granularity=per_token)

def eo(q: int4[M, N]):
    return pack(q, order=even_odd)

def p2(x: bf16[M, N]):
    return scale(x, fp8_e4m3fn, per_token, pow2=true)

def gk(x: bf16[M, N], i: i32[R]):
    return gather(x, i, packed_ids=true, topk=2)

def up(w: u8[M, B]):
    return unpack(w, int4)
""", "rocdl_refuse.qp")


@pytest.mark.parametrize("name,args,match", [
    ("dq", (torch.zeros(2, 4, dtype=torch.int8), torch.ones(2, 1)), "dequant"),
    ("eo", (torch.zeros(2, 8, dtype=torch.int8),), "order"),
    ("p2", (torch.zeros(2, 8, dtype=torch.bfloat16),), "pow2"),
    ("gk", (torch.zeros(4, 8, dtype=torch.bfloat16), torch.zeros(3, dtype=torch.int32)), "topk"),
    ("up", (torch.zeros(2, 4, dtype=torch.uint8),), "unpack"),
])
def test_lowered_and_exact(name, args, match):
    from qfuse.backends.reference.interpreter import run_pipeline
    from qfuse.runtime.compare import compare_outputs
    tp = P[name]
    inputs = dict(zip([p.value.name for p in tp.params], args))
    got = QuantPipeline(tp, backend="rocdl")(**inputs, _as_dict=True)
    ok, msg = compare_outputs(got, run_pipeline(tp, inputs), 0)
    assert ok and msg == "exact", f"{match}: {msg}"
