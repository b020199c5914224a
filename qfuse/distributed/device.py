"""Device helpers of the one-shot all-reduce kernel (prefix ``qfd_``): the rank-order sum
of the peers' rows, read through a table of peer pointers.

``peers`` points at ``WORLD`` int64 addresses, entry ``r`` the base of rank r's buffer
(symmetric memory on GPUs; separate tensors of one process in the interpreter tests).
Each helper loads element ``off`` (masked) of every peer and adds them in rank order in
fp32, starting from rank 0's value: ``((x_0 + x_1) + x_2) + ...``, the order of
``qfuse.backends.collective.ordered_sum`` (so -0.0 on every rank stays -0.0, as there).
The generated kernel rounds the sum to the all-reduce's result dtype where that is not
fp32 (``qf_round_bf16`` / ``qf_round_f16``, RNE). Loads use the storage views of the
renderer (bf16 as int16 bits, widened by ``qft_bf16_to_f32``: exact in the interpreter).
"""
import triton
import triton.language as tl

from qfuse.backends.triton.lib import qft_bf16_to_f32


@triton.jit
def qfd_peer(peers, r, off, mask, KIND: tl.constexpr):
    """Element ``off`` of peer ``r`` as fp32 (KIND 0: bf16 bits, 1: f16, 2: f32)."""
    if KIND == 0:
        p = tl.load(peers + r).to(tl.pointer_type(tl.int16))
        return qft_bf16_to_f32(tl.load(p + off, mask=mask, other=0))
    elif KIND == 1:
        p = tl.load(peers + r).to(tl.pointer_type(tl.float16))
        return tl.load(p + off, mask=mask, other=0).to(tl.float32)
    else:
        p = tl.load(peers + r).to(tl.pointer_type(tl.float32))
        return tl.load(p + off, mask=mask, other=0)


@triton.jit
def qfd_peer_sum(peers, WORLD: tl.constexpr, off, mask, KIND: tl.constexpr):
    """``((x_0 + x_1) + x_2) + ... + x_{WORLD-1}`` in fp32, x_r = peer r's element."""
    acc = qfd_peer(peers, 0, off, mask, KIND)
    for r in tl.static_range(1, WORLD):
        acc = acc + qfd_peer(peers, r, off, mask, KIND)
    return acc
