"""A checked program survives JSON (what bundles carry) and runs the same."""
import json
from pathlib import Path

import pytest
import torch

from qfuse.backends.reference.interpreter import run_pipeline
from qfuse.demo import shapes_for
from qfuse.dialect.options import Granularity, QuantTarget
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


def _damaged(change):
    tp = load_file(EXAMPLES[0])[next(iter(load_file(EXAMPLES[0])))]
    j = json.loads(json.dumps(pipeline_to_json(tp)))
    return change(j) or j          # a change edits j in place or returns a replacement


DAMAGE = {
    "a_list": lambda j: [j],
    "keys_missing": lambda j: j.clear(),
    "params_a_dict": lambda j: j.update(params={}),
    "dtype_unknown": lambda j: j["params"][0]["type"].update(dtype="bf17"),
    "dim_op_unknown": lambda j: j["params"][0]["type"].update(dims=[["pow", "M", 2]]),
    "dim_a_float": lambda j: j["params"][0]["type"].update(dims=[1.5]),
    "dim_nested_deeply": lambda j: j["params"][0]["type"].update(dims=[_deep(3000)]),
    "return_id_undefined": lambda j: j.update(returns=[999]),
    "operand_id_undefined": lambda j: j["calls"][0]["operands"].update(x=999),
    "name_not_an_identifier": lambda j: j.update(name="a b"),
    "loc_a_string": lambda j: j.update(loc="k.qp:1:1"),
    "stage_unknown": lambda j: j["calls"][0].update(stage="scael"),
    "option_unknown": lambda j: j["calls"][0]["options"].update(colour=1),
    "option_value_unknown": lambda j: j["calls"][0]["options"].update(granularity="per_row"),
}


def test_loaded_options_are_catalog_members():
    """A program read from JSON holds the option values a compiled one holds (the
    catalog's enum members, not bare strings), and writes them back as the same JSON."""
    tp = load_file(EXAMPLES[0])["per_token_fp8"]
    j = json.loads(json.dumps(pipeline_to_json(tp)))
    back = pipeline_from_json(j)
    opts = back.calls[0].options
    assert opts["granularity"] is Granularity.PER_TOKEN
    assert opts["dtype"] is QuantTarget.FP8_E4M3FN
    assert json.loads(json.dumps(pipeline_to_json(back))) == j


def _deep(n):
    d = "M"
    for _ in range(n):
        d = ["mul", d, 1]
    return d


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_program_json_raises_a_schema_error(damage):
    from qfuse.runtime.schema import SchemaError
    with pytest.raises(SchemaError):
        pipeline_from_json(_damaged(DAMAGE[damage]))
