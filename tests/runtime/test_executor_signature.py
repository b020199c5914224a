"""The executor's fast-path key: what a bound launch (and Triton's specialisation) depends on."""
import torch

from qfuse.backends.triton.triton_adapter import _hook_active
from qfuse.runtime.executor import _signature


def test_signature_separates_alignment_and_int_specialisation():
    base = torch.zeros(64, 33, dtype=torch.bfloat16)
    a = {"x": base[:, :32], "eps": 1e-6}
    b = {"x": base[:, 1:], "eps": 1e-6}          # same shape and strides, 2-byte offset
    assert _signature(a) != _signature(b)
    assert _signature(a) == _signature({"x": base[:, :32], "eps": 3.0})
    assert _signature({"k": 1}) != _signature({"k": 2})        # Triton specialises == 1
    assert _signature({"k": 16}) != _signature({"k": 17})      # and % 16
    assert _signature({"k": 17}) == _signature({"k": 19})


def test_launch_hooks_detection():
    class Chain:
        def __init__(self, calls):
            self.calls = calls
    assert not _hook_active(None) and not _hook_active(Chain([]))
    assert _hook_active(Chain([print])) and _hook_active(print)


def test_seen_call_plans(monkeypatch):
    """A single kernel without cache outputs gets the direct plan (returns mapped from its
    outputs), and so does dynamic per-tensor where the tensor fits one program (one launch:
    qfuse/backends/triton/launch/one_launch.py); its two kernels (QFUSE_ONE_LAUNCH=0) and a
    KV write (an aliased cache) take the step-by-step one; both give the checked path's
    results on later calls."""
    from qfuse.dsl import load_file
    from qfuse.runtime.pipeline import QuantPipeline
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    if str(root) not in sys.path:                    # benchmarks/ is not a package install
        sys.path.insert(0, str(root))
    pipes = load_file(str(root / "benchmarks" / "pipelines.qp"))
    cases = [("per_token_fp8", "1", True), ("per_tensor_fp8", "1", True),
             ("per_tensor_fp8", "0", False), ("kv_key_per_token_fp8", "1", False)]
    from benchmarks.cases import CASES
    for name, one_launch, single in cases:
        monkeypatch.setenv("QFUSE_ONE_LAUNCH", one_launch)
        qp = QuantPipeline(pipes[name], backend="triton")
        ref = QuantPipeline(pipes[name], backend="reference")
        inputs = CASES[name].inputs(2, 256, torch.device("cpu"), seed=0)
        for call in range(3):
            got = qp(*[v.clone() for v in inputs.values()])
            want = ref(*[v.clone() for v in inputs.values()])
            for g, w in zip(got, want):
                assert torch.equal(g.view(torch.uint8) if g.element_size() == 1 else g,
                                   w.view(torch.uint8) if w.element_size() == 1 else w), (name, call)
        (ex,) = qp._executors.values()
        ((_, direct),) = ex.runner._fast.values()
        assert (direct is not None) == single, name
        if single:
            launch, device, rets = direct
            assert device == torch.device("cpu") and all(from_out for _, from_out, _ in rets)
