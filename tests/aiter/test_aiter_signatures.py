"""AITER's Triton quantisation entry points (the peer's ``aiter/ops/triton/quant/*.py``,
the source of truth for their names, argument names and defaults) and qfuse.aiter's: the
same argument names, in order, and the same defaults, for every function both have.

The peer's signatures are kept in ``data/aiter_triton_signatures.json`` (CI runs in a
clean clone where ``../shared`` may not exist); ``test_the_copy_is_the_peer`` checks the
copy against the peer when it is there, and ``python tests/aiter/test_aiter_signatures.py``
writes it again. Functions of the peer that qfuse.aiter does not provide are listed (they
are outside issue 15 and the guide), so a new one fails here until it is added or listed.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import json
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
COPY = HERE / "data" / "aiter_triton_signatures.json"
PEER = HERE.parents[2] / "shared" / "peers" / "aiter" / "aiter_peer" / "aiter" / "ops" / \
    "triton" / "quant"
MODULES = ("quant", "fused_fp8_quant", "fused_mxfp4_quant")
#: the peer's public functions qfuse.aiter does not provide (neither the guide nor issue 15
#: lists them) and its host helpers
NOT_PROVIDED = {"dynamic_mxfp8_quant", "dynamic_mxfp8_quant_n32k4_mbn",
                "fp8_legacy_to_mxfp8", "dynamic_nvfp4_quant", "get_fp8_min_max_bounds",
                "calc_rows_per_block", "fused_rms_gated_fp8_group_quant",
                "fused_quant_fp8_sort"}


def peer_signatures(root: Path) -> dict:
    """``{module: {function: [[arg, default source or null], ...]}}`` read with ``ast``."""
    out = {}
    for mod in MODULES:
        tree = ast.parse((root / f"{mod}.py").read_text())
        funcs = {}
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                a = node.args
                names = [x.arg for x in a.posonlyargs + a.args]
                defaults = [None] * (len(names) - len(a.defaults)) + \
                    [ast.unparse(d) for d in a.defaults]
                args = [[n, d] for n, d in zip(names, defaults)]
                args += [[x.arg, None if d is None else ast.unparse(d)]
                         for x, d in zip(a.kwonlyargs, a.kw_defaults)]
                funcs[node.name] = args
        out[mod] = funcs
    return out


def _value(source: str, module):
    """A default's value: a literal, or a name of AITER's module (``fp8_dtype``)."""
    try:
        return ast.literal_eval(source)
    except ValueError:
        return eval(source, {"torch": importlib.import_module("torch")}, vars(module))


def test_names_and_defaults_are_aiters():
    recorded = json.loads(COPY.read_text())
    seen = set()
    for mod, funcs in recorded.items():
        ours = importlib.import_module(f"qfuse.aiter.ops.triton.quant.{mod}")
        for name, args in funcs.items():
            seen.add(name)
            if name in NOT_PROVIDED:
                assert not hasattr(ours, name), f"{name} is provided now: drop it from the list"
                continue
            fn = getattr(ours, name, None)
            assert fn is not None, f"aiter.ops.triton.quant.{mod}.{name} is missing"
            params = list(inspect.signature(fn).parameters.values())
            assert [p.name for p in params] == [a for a, _ in args], \
                f"{name}: arguments {[p.name for p in params]}, AITER's {[a for a, _ in args]}"
            for p, (arg, default) in zip(params, args):
                if default is None:
                    assert p.default is inspect.Parameter.empty, f"{name}({arg}) has a default"
                else:
                    assert p.default == _value(default, ours), \
                        f"{name}({arg}={p.default!r}), AITER's default is {default}"
    assert NOT_PROVIDED <= seen


def test_the_copy_is_the_peer():
    if not PEER.exists():
        pytest.skip(f"{PEER} is not present (a clean clone): the copy is all there is")
    assert json.loads(COPY.read_text()) == peer_signatures(PEER), \
        "the peer's signatures changed: run python tests/aiter/test_aiter_signatures.py"


if __name__ == "__main__":
    COPY.write_text(json.dumps(peer_signatures(PEER), indent=1) + "\n")
    print(f"wrote {COPY}")
