"""The executor's fast-path key: what a bound launch (and Triton's specialisation) depends on."""
import torch

from qfuse.backends.triton.fastpath import _hook_active
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
