"""AITER's own Triton quant kernels as a benchmark implementation: the ``aiter`` column of
``bench.py`` and the AITER side of ``probes/amd_hotpath.py``.

The kernels are third-party code (AMD AITER, MIT) and stay out of this repository: they are
the peer in ``../shared/peers/aiter`` (its README: verbatim kernels, ``# PEER-SHIM`` import
shims). A device call does not see ``../shared``, so it carries a copy, ``.peer-aiter``::

    cp -r ../shared/peers/aiter .peer-aiter       # then carry [".bundle", ".peer-aiter"]

``find()`` looks for the peer (an explicit folder, ``.peer-aiter``, ``../shared/peers/aiter``),
``load(DIR)`` imports the peer's ``run_aiter_peer.py`` from there (which imports the AITER
wrappers from ``DIR/aiter_peer``), and ``AiterCall(peer, name)`` calls the wrapper that
matches pipeline ``name`` on the benchmark case's inputs and returns what
``torch_refs.REFS[name]`` returns (same outputs, order, shapes and dtypes), so its outputs
are compared with torch eager like qfuse's. Which wrapper matches which pipeline is the
peer's own table (``OPS[op][3]``); outputs a wrapper takes from its caller (``qx``, scales)
are allocated once per input binding, outputs it allocates itself inside the timed call,
as the peer's harness does, so the times line up with ``shared/spec/peer-baselines.md``.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from typing import Callable, Optional

import torch

__all__ = ["find", "load", "pipeline_ops", "AiterCall", "bind", "absent_reason", "Absent", "load_peer",
           "column_fn", "PEER_COPY", "SHARED_PEER"]

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_COPY = os.path.join(_ROOT, ".peer-aiter")                       # carried to a GPU
SHARED_PEER = os.path.join(os.path.dirname(_ROOT), "shared", "peers", "aiter")


def find(path: Optional[str] = None) -> Optional[str]:
    """The peer folder to use: ``path`` if given (it must hold run_aiter_peer.py), else the
    carried copy ``.peer-aiter``, else ``../shared/peers/aiter``; None if there is none."""
    for d in ([path] if path else [PEER_COPY, SHARED_PEER]):
        if os.path.isfile(os.path.join(d, "run_aiter_peer.py")):
            return os.path.abspath(d)
        if path:
            raise FileNotFoundError(f"{path}: no run_aiter_peer.py (copy ../shared/peers/aiter)")
    return None


def load(path: str, interpret: bool = False):
    """Import ``path/run_aiter_peer.py`` and its AITER stack (``K``: the wrapper modules).
    ``interpret``: set ``TRITON_INTERPRET=1`` first, for CPU tensors (process-wide, as the
    peer's ``--cpu-smoke`` does: run that in its own process)."""
    name = "run_aiter_peer"
    mod = sys.modules.get(name)
    if mod is None or os.path.dirname(os.path.abspath(mod.__file__)) != os.path.abspath(path):
        spec = importlib.util.spec_from_file_location(name, os.path.join(path, "run_aiter_peer.py"))
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    if mod.K is None:
        _evict_alias()
        mod._import_stack(interpret)
    return mod


def _evict_alias() -> None:
    """Drop ``aiter`` / ``aiter.*`` entries that are qfuse.aiter's alias (a process that ran
    ``import aiter`` with no real AITER on the path holds them): Python would hand the
    cached alias to the peer's ``import aiter`` instead of AITER's own package."""
    for key in [k for k in sys.modules if k == "aiter" or k.startswith("aiter.")]:
        if getattr(sys.modules[key], "__name__", "").startswith("qfuse.aiter"):
            del sys.modules[key]


def pipeline_ops(peer) -> dict:
    """``{pipeline: peer op}`` from the peer's own table (ops with a benchmark case)."""
    return {v[3]: op for op, v in peer.OPS.items() if v[3]}


# ---------------------------------------------------------------------------- adapters
# Each takes (K, inputs, fp8 dtype) and returns a no-argument call giving torch_refs'
# outputs; caller-allocated outputs are made here, once.
def _empty(x, dtype, *shape):
    return torch.empty(*shape, dtype=dtype, device=x.device)


def _per_tensor(K, a, fp8):
    x = a["x"]
    q, s = _empty(x, fp8, *x.shape), torch.zeros(1, dtype=torch.float32, device=x.device)

    def call():
        s.zero_()                 # AITER accumulates the scale with atomic_max
        K.quant.dynamic_per_tensor_quant_fp8_i8(q, x, s)
        return q, s
    return call


def _per_token(K, a, fp8):
    x = a["x"]
    q, s = _empty(x, fp8, *x.shape), _empty(x, torch.float32, x.shape[0], 1)

    def call():
        K.quant.dynamic_per_token_quant_fp8_i8(q, x, s)
        return q, s
    return call


def _static(K, a, fp8):
    x, s = a["x"], a["s"]
    q = _empty(x, fp8, *x.shape)
    return lambda: K.quant.static_per_tensor_quant_fp8_i8(q, x, s)


def _rms_per_token(K, a, fp8):
    x, w, eps = a["x"], a["w"], a["eps"]
    q, s = _empty(x, fp8, *x.shape), _empty(x, torch.float32, x.shape[0])

    def call():
        K.rms.rmsnorm2d_fwd_with_dynamicquant(q, x, s, w, eps)
        return q, s.view(-1, 1)
    return call


def _add_rms_per_token(K, a, fp8):
    x, res, w, eps = a["x"], a["res"], a["w"], a["eps"]
    q, s, h = _empty(x, fp8, *x.shape), _empty(x, torch.float32, x.shape[0]), torch.empty_like(x)

    def call():
        K.rms.rmsnorm2d_fwd_with_add_dynamicquant(q, x, res, h, s, w, eps)
        return q, s.view(-1, 1), h
    return call


def _rms_group128(K, a, fp8):
    x, w, eps = a["x"], a["w"], a["eps"]

    def call():
        (q, s), _, _, _ = K.ffq.fused_rms_fp8_group_quant(x, w, eps, group_size=128,
                                                          dtype_quant=fp8)
        return q, s
    return call


def _rms_static(K, a, fp8):
    x, w, s, eps = a["x"], a["w"], a["s"], a["eps"]
    return lambda: K.ffq.fused_rms_fp8_per_tensor_static_quant(x, w, eps, s, dtype_quant=fp8)[0]


def _silu_mul_static(K, a, fp8):
    gu = torch.cat([a["gate"], a["up"]], dim=1)      # AITER takes [gate | up]: not timed
    s = a["s"]
    return lambda: K.ffq.fused_silu_mul_fp8_per_tensor_static_quant(gu, s, dtype_quant=fp8)


def _mxfp4(K, a, fp8):
    return lambda: tuple(K.quant.dynamic_mxfp4_quant(a["x"]))


def _rms_mxfp4_shuffle(K, a, fp8):
    x, w, eps = a["x"], a["w"], a["eps"]
    m, n = x.shape
    shape = (-(-m // 256) * 256, -(-(n // 32) // 8) * 8)    # cases.shuffled_scale_shape

    def call():
        (q, s), _, _, _ = K.fmq.fused_rms_mxfp4_quant(x, w, eps, shuffle=True, inargs="triton")
        # the padded, shuffled E8M0 bytes; the layout of qfuse's `shuffle` (docs/semantics.md)
        return q, (s.reshape(shape) if s.numel() == shape[0] * shape[1] else s)
    return call


ADAPTERS = {
    "per_tensor_fp8": _per_tensor, "per_token_fp8": _per_token,
    "static_per_tensor_fp8": _static, "rmsnorm_per_token_fp8": _rms_per_token,
    "add_rmsnorm_per_token_fp8": _add_rms_per_token, "rmsnorm_group128_fp8": _rms_group128,
    "rmsnorm_static_fp8": _rms_static, "silu_mul_static_fp8": _silu_mul_static,
    "mxfp4_even": _mxfp4, "rmsnorm_mxfp4_shuffle": _rms_mxfp4_shuffle,
}


def bind(peer, name: str, inputs: dict, fp8=torch.float8_e4m3fn) -> Callable:
    """A no-argument call of AITER's wrapper for pipeline ``name`` on ``inputs`` (the
    benchmark case's), returning torch_refs' outputs. KeyError: AITER has no Triton kernel
    for it (the peer's ``ABSENT`` says why for the KV write)."""
    if name not in pipeline_ops(peer) or name not in ADAPTERS:
        raise KeyError(name)
    return ADAPTERS[name](peer.K, inputs, fp8)


def absent_reason(peer, name: str) -> str:
    for op, (case, why) in getattr(peer, "ABSENT", {}).items():
        if case == name:
            return f"not in AITER as Triton ({op}): {why.split('.')[0]}"
    return "no AITER Triton kernel for this pipeline"


class AiterCall:
    """``call(**inputs)`` like a qfuse callable: binds the wrapper to these inputs (kept for
    the next call with the same tensors, as the timer makes) and runs it."""

    def __init__(self, peer, name: str):
        self.peer, self.name = peer, name
        self._key = self._call = self._held = None
        if name not in ADAPTERS or name not in pipeline_ops(peer):
            raise KeyError(name)

    def __call__(self, **inputs):
        key = tuple(id(v) for v in inputs.values())
        if key != self._key:            # (the tensors are held, so their ids stay theirs)
            self._call = bind(self.peer, self.name, inputs)
            self._key, self._held = key, list(inputs.values())
        return self._call()


# ---------------------------------------------------------------------------- bench.py
class Absent:
    """No AITER kernel for a pipeline: the row's ``aiter`` entry says why (not an error)."""

    def __init__(self, why: str):
        self.why = why


def load_peer(path: Optional[str], cpu: bool):
    """The peer for bench.py's ``aiter`` column: ``path``, else ``.peer-aiter``, else
    ``../shared/peers/aiter``; on the CPU its kernels run in the Triton interpreter (this
    sets ``TRITON_INTERPRET=1`` for the process: call it before anything imports triton).
    Returns the peer module or the exception saying why there is none."""
    try:
        where = find(path)
        if where is None:
            raise FileNotFoundError("no AITER peer: cp -r ../shared/peers/aiter .peer-aiter "
                                    "and carry .peer-aiter to the device (benchmarks/README.md)")
        return load(where, interpret=cpu)
    except Exception as e:          # bench.py reports it on every row and goes on
        return e


def column_fn(peer, name: str):
    """bench.py's ``aiter`` callable for pipeline ``name``: an :class:`AiterCall`, an
    :class:`Absent` (AITER has no Triton kernel for it), or the exception of a peer that
    did not load."""
    if isinstance(peer, Exception):
        return peer
    if name not in pipeline_ops(peer) or name not in ADAPTERS:
        return Absent(absent_reason(peer, name))
    return AiterCall(peer, name)
