"""A checked program survives JSON (what bundles carry) and runs the same."""
import json
from pathlib import Path

import pytest
import torch

from qfuse.backends.reference.interpreter import run_pipeline
from qfuse.demo import shapes_for
from qfuse.dsl import load_file
from qfuse.runtime.inputs import random_inputs
from qfuse.runtime.program_json import pipeline_from_json, pipeline_to_json

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.qp"))
def _bits(t):
    return t.detach().flatten().contiguous().view(torch.uint8)


CASES = [(p, name) for p in EXAMPLES for name in load_file(p)]


@pytest.mark.parametrize("path,name", CASES, ids=[f"{p.stem}:{n}" for p, n in CASES])
def test_json_roundtrip_runs_identically(path, name):
    tp = load_file(path)[name]
    j = json.loads(json.dumps(pipeline_to_json(tp)))
    back = pipeline_from_json(j)
    assert pipeline_to_json(back) == j
    inputs = random_inputs(tp, shapes_for(path.name, name), seed=1)
    a = run_pipeline(tp, {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in inputs.items()})
    b = run_pipeline(back, inputs)
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape
        assert torch.equal(_bits(a[k]), _bits(b[k])), k
