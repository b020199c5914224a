"""benchmarks/probes/kv_scatter.py, the scatter roofline of the KV write, in the Triton
interpreter: it writes the bytes (and scales) the benchmark case's write would, at the
case's random slots, and leaves every other slot alone."""
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks.cases import CASES  # noqa: E402
from benchmarks.probes import kv_scatter  # noqa: E402


@pytest.mark.parametrize("m,n,hb", [(5, 256, 4), (16, 384, 2), (33, 128, 1), (1, 256, 8)])
def test_scatter_moves_the_right_bytes(m, n, hb):
    inputs = CASES["kv_key_per_token_fp8"].inputs(m, n, seed=m + n)
    inputs["k"][0, 0, :4] = torch.tensor([-1.5, 0.0, -0.0, 65504.0])   # sign bits, zeros
    before = inputs["k_cache"].view(torch.uint8).clone()
    want_cache, want_scales = kv_scatter.expected(inputs)
    kv_scatter.run(inputs, hb=hb)
    got = inputs["k_cache"].view(torch.uint8)
    assert torch.equal(got, want_cache)
    assert torch.equal(inputs["k_scales"], want_scales)
    # every new token's slot changed somewhere (random keys), nothing else did
    slots = inputs["slots"].tolist()
    bs = got.shape[3]
    touched = torch.zeros(got.shape[0] * bs, dtype=torch.bool)
    touched[slots] = True
    flat = lambda c: c.permute(0, 3, 1, 2, 4).reshape(got.shape[0] * bs, -1)  # noqa: E731
    assert torch.equal(flat(got)[~touched], flat(before)[~touched])



def test_best_picks_a_config_on_the_cpu():
    from benchmarks.timer import Timer
    inputs = CASES["kv_key_per_token_fp8"].inputs(4, 256, seed=0)
    r = kv_scatter.best(Timer(torch.device("cpu"), cpu_reps=1), inputs, 4)
    assert r["us"] > 0 and r["config"] == list(kv_scatter.CONFIGS[0])
