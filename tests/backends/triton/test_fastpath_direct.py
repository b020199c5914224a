"""The direct-launch logic of BoundLaunch on the CPU, with stand-ins for Triton's JIT
function, compiled kernel and driver (the real path is tested on the GPU in
test_kernels_gpu.py::test_gpu_direct_launch and test_triton_adapter.py)."""
import torch

from qfuse.backends.triton import triton_adapter
from qfuse.backends.triton.launch import fastpath


class FakeKernel:
    def __init__(self, log):
        self.function, self.packed_metadata, self.log = "fn-handle", "meta", log

    def run(self, *a):
        self.log.append(("direct",) + a)


class FakeJit:
    def __init__(self, log):
        self.log, self.kernel = log, FakeKernel(log)

    def __getitem__(self, grid):
        def launch(*args, **opts):
            self.log.append(("jit", grid, args, tuple(sorted(opts))))
            return self.kernel
        return launch


class FakeDriver:
    def __init__(self):
        self.device = 0

    def get_current_device(self):
        return self.device

    def get_current_stream(self, device):
        return 1000 + device


def fake_triton(monkeypatch, drv, hooks):
    """The adapter's driver and launch-hook queries answered by ``drv`` and ``hooks[0]``."""
    monkeypatch.setattr(triton_adapter, "current_device", lambda: drv.get_current_device())
    monkeypatch.setattr(triton_adapter, "current_stream", drv.get_current_stream)
    monkeypatch.setattr(triton_adapter, "hooks_active", lambda: hooks[0])


def make(log):
    # args: x (input slot 0, viewed as int16), q (output slot 1), N (dim), eps (scalar), B (constexpr)
    return fastpath.BoundLaunch(runs=[(FakeJit(log), (7,))], args=[None, None, 64, None, 128],
                                slots=[(0, "input", "x", torch.int16), (1, "output", "q", torch.uint8)],
                                scalar_slots=[(3, "eps", True)], workspace=[], ws_size=0,
                                opts={"num_warps": 4}, out_specs=[])


def test_first_call_jit_then_direct(monkeypatch):
    drv = FakeDriver()
    fake_triton(monkeypatch, drv, [False])
    log = []
    bl = make(log)
    x, q = torch.zeros(4, dtype=torch.bfloat16), torch.zeros(4, dtype=torch.uint8)
    bl({"x": x, "eps": 1e-6}, {"q": q})
    kind, grid, args, opts = log[-1]
    assert kind == "jit" and grid == (7,) and args[0].dtype == torch.int16 and opts == ("num_warps",)
    assert bl.direct is not None and bl.device_index == 0
    x2 = torch.ones(4, dtype=torch.bfloat16)
    bl({"x": x2, "eps": 2}, {"q": q})
    call = log[-1]
    assert call[0] == "direct"
    assert call[1:8] == (7, 1, 1, 1000, "fn-handle", "meta", None)   # grid, stream, handle, meta, hooks...
    assert call[10] is x2 and call[11] is q and call[12:] == (64, 2.0, 128)   # no dtype views
    assert isinstance(call[13], float)


def test_device_change_or_hooks_go_back_to_the_jit(monkeypatch):
    drv = FakeDriver()
    hooks = [False]
    fake_triton(monkeypatch, drv, hooks)
    log = []
    bl = make(log)
    x, q = torch.zeros(4, dtype=torch.bfloat16), torch.zeros(4, dtype=torch.uint8)
    bl({"x": x, "eps": 1.0}, {"q": q})
    drv.device = 1                                 # the binary was loaded on device 0
    bl({"x": x, "eps": 1.0}, {"q": q})
    assert log[-1][0] == "jit" and bl.device_index == 1
    hooks[0] = True                                # a profiler's launch hook
    bl({"x": x, "eps": 1.0}, {"q": q})
    assert log[-1][0] == "jit" and bl.direct is None
