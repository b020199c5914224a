"""GPU probe 2 (not a benchmark): which parts of a per-token fp8 kernel cost time.

    python3 benchmarks/probes/kernel_probe2.py OUT.json
"""
import itertools
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
import torch
import triton
import triton.language as tl
from triton.testing import do_bench

from qfuse.backends.triton.numerics import qf_fp8_bits
from qfuse.backends.triton.lib import qft_amax, qft_bf16_to_f32


@triton.jit
def per_token(x_ptr, xb_ptr, s_ptr, q_ptr, q8_ptr, M, N, xs0, BLOCK: tl.constexpr,
              LOADF: tl.constexpr, CG: tl.constexpr, STORE: tl.constexpr, AMAXF: tl.constexpr,
              MARK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    cmask = cols < N
    if LOADF:
        if CG:
            x = tl.load(xb_ptr + row * xs0 + cols, mask=cmask, other=0, cache_modifier=".cg").to(tl.float32)
        else:
            x = tl.load(xb_ptr + row * xs0 + cols, mask=cmask, other=0).to(tl.float32)
    else:
        if CG:
            x = qft_bf16_to_f32(tl.load(x_ptr + row * xs0 + cols, mask=cmask, other=0, cache_modifier=".cg"))
        else:
            x = qft_bf16_to_f32(tl.load(x_ptr + row * xs0 + cols, mask=cmask, other=0))
    if AMAXF:
        amax = tl.max(tl.abs(x), axis=0)
    else:
        amax = tl.max(tl.where(cmask, x.to(tl.int32, bitcast=True) & 0x7FFFFFFF, 0), axis=0).to(tl.float32, bitcast=True)
    s = tl.math.div_rn(amax, 448.0)
    s = tl.where(s == 0.0, 1.0, s)
    tl.store(s_ptr + row, s)
    if MARK:
        r = tl.math.div_rn(1.0, s)
        q0 = x * r
        e = tl.fma(0.0 - q0, s, x)
        v = tl.fma(e, r, q0)
    else:
        v = x * (1.0 / s)
    if STORE:
        tl.store(q8_ptr + row * N + cols, tl.clamp(v, -448.0, 448.0).to(tl.float8e4nv), mask=cmask)
    else:
        tl.store(q_ptr + row * N + cols, qf_fp8_bits(v, False, 448.0, True, True), mask=cmask)


def main():
    res = []
    for (M, N) in ((16384, 8192), (4096, 7168)):
        x = torch.randn(M, N, device="cuda", dtype=torch.bfloat16)
        xi = x.view(torch.int16)
        q = torch.empty(M, N, device="cuda", dtype=torch.uint8)
        q8 = torch.empty(M, N, device="cuda", dtype=torch.float8_e4m3fn)
        s = torch.empty(M, device="cuda", dtype=torch.float32)
        xc = x.clone()
        res.append({"M": M, "what": "copy_", "us": do_bench(lambda: xc.copy_(x), warmup=25, rep=100) * 1e3})
        BLOCK = triton.next_power_of_2(N)
        for loadf, cg, store, amaxf, mark in itertools.product((0, 1), (0, 1), (0, 1), (0, 1), (0, 1)):
            if mark and (loadf or amaxf or store):
                continue
            for w in (4, 8):
                f = lambda: per_token[(M,)](xi, x, s, q, q8, M, N, N, BLOCK=BLOCK, LOADF=loadf, CG=cg,
                                            STORE=store, AMAXF=amaxf, MARK=mark, num_warps=w,
                                            num_stages=1, enable_fp_fusion=False)
                t = do_bench(f, warmup=25, rep=100) * 1e3
                res.append({"M": M, "what": f"loadf{loadf} cg{cg} store{store} amaxf{amaxf} mark{mark} w{w}", "us": t})
                print(json.dumps(res[-1]), flush=True)
    with open(sys.argv[1], "w") as fh:
        json.dump(res, fh, indent=1)


main()
