"""Self-resetting workspaces (workspace.py): a dynamic per-tensor amax kernel leaves its
workspace zeroed, so the launcher clears it once and reuses it per stream."""
import torch

from qfuse.backends.triton.launch import workspace as wsmod
from qfuse.backends.triton.launch.workspace import SLOTS, WorkspacePool
from qfuse.dsl import load_source
from qfuse.runtime.pipeline import QuantPipeline

SRC = """
def per_tensor_fp8(x: bf16[M, N]):
    s = scale(x, fp8_e4m3fn, per_tensor)
    return round(x, s, fp8_e4m3fn), s
"""


def test_one_slot_per_stream_and_per_capture(monkeypatch):
    pool = WorkspacePool(2, torch.device("cpu"))
    a, b = pool.get(1), pool.get(2)
    assert pool.get(1) is a and a.data_ptr() != b.data_ptr()
    assert a.shape == (2,) and a.data_ptr() % 16 == 0 and b.data_ptr() % 16 == 0
    assert int(pool.buffer.abs().sum()) == 0
    monkeypatch.setattr(wsmod, "_capturing", lambda device: True)
    g1, g2 = pool.get(1), pool.get(1)          # each capture: a slot of its own
    assert len({a.data_ptr(), b.data_ptr(), g1.data_ptr(), g2.data_ptr()}) == 4
    monkeypatch.setattr(wsmod, "_capturing", lambda device: False)
    assert pool.get(1) is a


def test_slots_run_out_into_fresh_zeroed_workspaces():
    pool = WorkspacePool(2, torch.device("cpu"))
    got = [pool.get(s) for s in range(SLOTS)]
    extra = pool.get(SLOTS + 1)
    assert extra.data_ptr() not in {g.data_ptr() for g in got}
    assert extra.dtype == torch.int32 and int(extra.abs().sum()) == 0


def test_first_launch_under_capture_allocates_no_pool(monkeypatch):
    pool = WorkspacePool(2, torch.device("cpu"))
    monkeypatch.setattr(wsmod, "_capturing", lambda device: True)
    assert pool.get(5).shape == (2,) and pool.buffer is None


def test_amax_kernel_leaves_its_workspace_zeroed():
    """Three calls of one signature (the bound launch reuses the CPU workspace) on
    different data each match the reference, and the workspace is zero afterwards."""
    qp = QuantPipeline(load_source(SRC, "ws.qp")["per_tensor_fp8"], backend="triton")
    ref = QuantPipeline(load_source(SRC, "ws.qp")["per_tensor_fp8"], backend="reference")
    for seed, mag in ((0, 1.0), (1, 1e3), (2, 1e-2)):
        g = torch.Generator().manual_seed(seed)
        x = (torch.randn(5, 40, generator=g) * mag).to(torch.bfloat16)
        q, s = qp(x)
        rq, rs = ref(x)
        assert torch.equal(q.view(torch.uint8), rq.view(torch.uint8)) and torch.equal(s, rs), seed
    ex = next(iter(qp._executors.values()))
    pools = [step[1].ws_pool for steps, _ in ex.runner._fast.values() for step in steps
             if step[1] is not None and step[1].ws_pool is not None]
    assert pools and all(int(p.buffer.abs().sum()) == 0 for p in pools)
    assert all(len(p.by_stream) == 1 for p in pools)


def test_large_workspaces_are_one_buffer_per_stream_not_preallocated(monkeypatch):
    """A KV-cache write's slot claims hold a word per cache slot: SLOTS copies up front
    would cost SLOTS times that."""
    size = wsmod.SHARED_BYTES // 4
    pool = WorkspacePool(size, torch.device("cpu"))
    a = pool.get(1)
    assert pool.buffer is None and a.shape == (size,) and int(a.abs().sum()) == 0
    assert pool.get(1) is a and pool.get(2) is not a
    monkeypatch.setattr(wsmod, "_capturing", lambda device: True)
    g = pool.get(1)                              # a capture: fresh, zeroed in the graph
    assert g is not a and int(g.abs().sum()) == 0
