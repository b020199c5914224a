"""Benchmark cases: inputs and compulsory bytes of each pipeline at an ``M x N`` shape.

``CASES[name]`` is a :class:`Case` with ``inputs(M, N, device, seed)`` (a dict by parameter
name, in parameter order, as the bundle callable and ``torch_refs`` take them) and
``nbytes(M, N)``: the compulsory bytes, each input read once and each output written
once (bf16 2 B, f32 4 B, fp8/int8 1 B, packed fp4 0.5 B, E8M0 1 B per element), with two
reads of x for the dynamic per-tensor scale (amax pass + quantise pass).

Inputs are random and valid (never zeros): ``randn`` activations and weights, positive
smooth and static scales, a KV cache prefilled with random fp8 codes and distinct slots.
The KV case maps ``M x N`` to ``T = M`` tokens of ``H = N / 128`` heads of ``D = 128``, a
key-layout cache ``[NB, H, D/16, 16, 16]`` (block size 16, X = 16 fp8 lanes) with exactly
``NB = ceil(T / 16)`` blocks and scales ``[H, NB * 16]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

__all__ = ["Case", "CASES", "kv_dims", "shuffled_scale_shape"]

KV_D, KV_BS, KV_X = 128, 16, 16


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def kv_dims(m: int, n: int) -> tuple:
    """``(T, H, D, NB, BS, X)`` of the KV case for an ``M x N`` shape."""
    if n % KV_D:
        raise ValueError(f"the KV-cache case needs N divisible by D={KV_D}, got N={n}")
    return m, n // KV_D, KV_D, _cdiv(m, KV_BS), KV_BS, KV_X


def shuffled_scale_shape(m: int, n: int) -> tuple:
    """Shape of the shuffled E8M0 scales of an ``M x N`` MXFP4 tensor."""
    return _cdiv(m, 256) * 256, _cdiv(_cdiv(n, 32), 8) * 8


@dataclass(frozen=True)
class Case:
    name: str
    label: str                               # the wording, for the table
    make: Callable                           # (M, N, gen) -> dict on gen's device
    nbytes: Callable                         # (M, N) -> compulsory bytes
    note: str = ""

    def inputs(self, m: int, n: int, device="cpu", seed: int = 0) -> dict:
        """Drawn on ``device`` (deterministic in ``seed`` per device type). ``"meta"``: the
        shapes and dtypes only, no data (for probes that compile, at any size, at once)."""
        if str(device) == "meta":
            return self.make(m, n, None)
        return self.make(m, n, torch.Generator(device=device).manual_seed(seed))


# ---------------------------------------------------------------------------- inputs
# g is None: meta tensors of the shape (Case.inputs(device="meta"))
def _randn(g, *shape):
    if g is None:
        return torch.empty(*shape, device="meta")
    return torch.randn(*shape, generator=g, device=g.device)


def _rand(g, *shape):
    if g is None:
        return torch.empty(*shape, device="meta")
    return torch.rand(*shape, generator=g, device=g.device)


def _randperm(g, n):
    if g is None:
        return torch.empty(n, dtype=torch.int64, device="meta")
    return torch.randperm(n, generator=g, device=g.device)


def _bf16(g, *shape):
    return _randn(g, *shape).to(torch.bfloat16)


def _static(g):                               # a plausible static scale (amax ~ 4.5 / 448)
    return _rand(g, 1) * 0.005 + 0.008


def _x(m, n, g):
    return {"x": _bf16(g, m, n)}


def _x_s(m, n, g):
    return {"x": _bf16(g, m, n), "s": _static(g)}


def _x_w(m, n, g):
    return {"x": _bf16(g, m, n), "w": _bf16(g, n), "eps": 1e-6}


def _x_res_w(m, n, g):
    return {"x": _bf16(g, m, n), "res": _bf16(g, m, n), "w": _bf16(g, n), "eps": 1e-6}


def _x_w_s(m, n, g):
    return {"x": _bf16(g, m, n), "w": _bf16(g, n), "s": (_static(g) * 2), "eps": 1e-6}


def _gate_up_s(m, n, g):
    return {"gate": _bf16(g, m, n), "up": _bf16(g, m, n), "s": _static(g) / 4}


def _x_smooth(m, n, g):
    return {"x": _bf16(g, m, n), "smooth_scale": _rand(g, n) * 0.5 + 0.75}


def _kv(m, n, g):
    t, h, d, nb, bs, xw = kv_dims(m, n)
    cache = (_randn(g, nb, h, d // xw, bs, xw) * 4).to(torch.float8_e4m3fn)
    return {"k": _bf16(g, t, h, d), "k_cache": cache,
            "k_scales": _rand(g, h, nb * bs) * 0.05 + 0.01,
            "slots": _randperm(g, nb * bs)[:t]}


# ---------------------------------------------------------------------------- bytes
def _b_kv(m, n):
    t, h, d, nb, bs, xw = kv_dims(m, n)
    # key read + slots read + the cache's T*H*D bytes written (NB*BS*H*D: the cache holds
    # exactly the new tokens, rounded up to a block) + T*H scales written
    return 2 * t * h * d + 8 * t + nb * bs * h * d + 4 * t * h


_CASES = [
    Case("per_tensor_fp8", "dynamic per-tensor fp8", _x,
         lambda m, n: 2 * (2 * m * n) + m * n + 4, "x read twice (amax pass + quantise pass)"),
    Case("per_token_fp8", "per-token fp8", _x,
         lambda m, n: 2 * m * n + m * n + 4 * m),
    Case("static_per_tensor_fp8", "static per-tensor fp8", _x_s,
         lambda m, n: 2 * m * n + 4 + m * n),
    Case("rmsnorm_per_token_fp8", "rmsnorm + per-token fp8", _x_w,
         lambda m, n: 2 * m * n + 2 * n + m * n + 4 * m),
    Case("add_rmsnorm_per_token_fp8", "add + rmsnorm + per-token fp8 (+residual out)", _x_res_w,
         lambda m, n: 2 * m * n + 2 * m * n + 2 * n + m * n + 4 * m + 2 * m * n),
    Case("rmsnorm_group128_fp8", "rmsnorm + 1x128 fp8", _x_w,
         lambda m, n: 2 * m * n + 2 * n + m * n + 4 * m * _cdiv(n, 128)),
    Case("rmsnorm_static_fp8", "rmsnorm + static per-tensor fp8", _x_w_s,
         lambda m, n: 2 * m * n + 2 * n + 4 + m * n),
    Case("silu_mul_static_fp8", "silu(gate)*up + static fp8", _gate_up_s,
         lambda m, n: 2 * m * n + 2 * m * n + 4 + m * n),
    Case("smooth_per_token_i8", "smooth + per-token int8", _x_smooth,
         lambda m, n: 2 * m * n + 4 * n + m * n + 4 * m),
    Case("mxfp4_even", "mxfp4 1x32 (e8m0 even, packed)", _x,
         lambda m, n: 2 * m * n + m * n // 2 + m * _cdiv(n, 32)),
    Case("rmsnorm_mxfp4_shuffle", "rmsnorm + mxfp4 + shuffle", _x_w,
         lambda m, n: (2 * m * n + 2 * n + m * n // 2
                       + shuffled_scale_shape(m, n)[0] * shuffled_scale_shape(m, n)[1])),
    Case("kv_key_per_token_fp8", "per-token fp8 KV-cache write (key layout)", _kv, _b_kv,
         "T=M, H=N/128, D=128; cache sized to the T new tokens"),
]

CASES = {c.name: c for c in _CASES}
