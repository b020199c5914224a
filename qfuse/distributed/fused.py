"""A pipeline with an all-reduce, run by the one-shot kernel at decode sizes and by the
two-step path (the collective, then the fused kernels) above a size threshold.

Both paths sum in rank order in fp32 (``all_reduce(order=rank)``): the one-shot kernel
through the peer table (``oneshot.py``), the two-step path as an all-gather and the
ordered sum (``qfuse.backends.collective``), followed by the same generated kernel text,
so the two give the same bits on every rank and the threshold changes only the speed.

The one-shot path needs CUDA tensors and symmetric memory (``symm.py``, UNRUN: no GPU
has run it yet); everything else takes the two-step path, which runs anywhere
torch.distributed does (gloo on the CPU: tests/distributed).
"""
from __future__ import annotations

from typing import Optional

from ..backends.collective import resolve_group
from ..errors import InputError
from .oneshot import OneShotKernel, plan_oneshot
from .symm import SymmetricBuffer, unavailable

__all__ = ["ONESHOT_MAX_BYTES", "PATHS", "FusedAllReduce"]

#: The largest per-rank input (bytes of x) the one-shot path takes: above it every rank
#: reading every peer's whole tensor costs more than the two-step path's traffic.
#: A PLACEHOLDER, not a measurement: 7168 bf16 columns x 32 rows = 448 KiB, the size where
#: one-shot all-reduces usually stop winning on 2 NVLink GPUs (vLLM's custom all-reduce
#: switches near 512 KiB). To be measured on two GPUs with benchmarks/multi_gpu.py
#: (docs/multi-gpu.md) and set from the crossing point.
ONESHOT_MAX_BYTES = 448 * 1024
PATHS = ("auto", "oneshot", "two_step")


class FusedAllReduce:
    """Call ``pipeline`` (``all_reduce(x, group) -> row kernel``: a QuantPipeline, or its
    Triton CompiledPipeline, e.g. read back from ``cp.dumps()`` on a machine without the
    compiler) on this rank: ``FusedAllReduce(qp, max_rows)(x, res, w, ...)`` returns the
    pipeline's results in return order.
    ``max_rows``: the most rows a one-shot call may have (the symmetric buffer's size,
    allocated on the first one-shot call: collective). ``path``: ``auto`` (the one-shot
    kernel up to :data:`ONESHOT_MAX_BYTES` where symmetric memory serves the device),
    ``oneshot`` or ``two_step`` (forced, for benchmarks and tests)."""

    def __init__(self, pipeline, max_rows: int, path: str = "auto"):
        from ..runtime.executor import Executor
        if path not in PATHS:
            raise InputError(f"path must be one of {', '.join(PATHS)}, got {path!r}")
        cp = pipeline if hasattr(pipeline, "steps") else pipeline.compiled("triton",
                                                                           "cpu:interp")
        self.max_rows, self.path = int(max_rows), path
        self.plan = plan_oneshot(cp)              # the Triton text is the same for any target
        self.kernel = OneShotKernel(self.plan)
        self.two_step = Executor(cp)
        self.params = [p.value.name for p in cp.program.params]
        self._buffer: Optional[SymmetricBuffer] = None

    def choose(self, x) -> str:
        """The path a call with input ``x`` takes."""
        if self.path != "auto":
            return self.path
        small = x.numel() * x.element_size() <= ONESHOT_MAX_BYTES and x.shape[0] <= self.max_rows
        return "oneshot" if small and unavailable(x.device) is None else "two_step"

    def __call__(self, *args, **kwargs):
        if len(args) > len(self.params):
            raise InputError(f"{len(args)} arguments, the pipeline takes "
                             f"{len(self.params)} ({', '.join(self.params)})")
        inputs = {**dict(self.plan.defaults), **dict(zip(self.params, args)), **kwargs}
        x = inputs.get(self.plan.x)
        if x is None:
            raise InputError(f"{self.plan.x}: missing input")
        if self.choose(x) == "two_step":
            outs = self.two_step.run(inputs)
        else:
            buf = self._symmetric(x)
            local = buf.local(x.shape[0])
            local.copy_(x)
            buf.barrier()                 # every peer's rows are in place
            outs = self.kernel(buf.table, local, inputs)
            buf.barrier()                 # no rank overwrites its rows while a peer reads
        return tuple(outs[name] for name, _ in self.plan.returns)

    def _symmetric(self, x) -> SymmetricBuffer:
        why = unavailable(x.device)
        if why is not None:
            raise InputError(f"the one-shot path cannot run here: {why} (use path='auto' "
                             f"or 'two_step')")
        if x.dim() != 2 or x.shape[0] > self.max_rows:
            raise InputError(f"{self.plan.x}: the one-shot path takes [M <= {self.max_rows}, "
                             f"N], got shape {tuple(x.shape)}")
        if self._buffer is None or not self._buffer.fits(x):
            self._buffer = SymmetricBuffer(self.max_rows, x.shape[1], x.dtype, x.device,
                                           resolve_group(self.plan.group))
        return self._buffer
