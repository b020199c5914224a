"""GPU probe (not a benchmark): where does a per-token fp8 kernel's time go on this GPU?

    python3 benchmarks/probes/kernel_probe.py [--out FILE]

Times hand-written variants of the generated per-token fp8 kernel (division modes,
hardware vs emulated fp8, rows per program, warps) against a same-byte Triton copy, and
the host cost of three ways to launch a compiled Triton kernel.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
import torch
import triton
import triton.language as tl
from triton.testing import do_bench

from qfuse.backends.triton.numerics import qf_fp8_bits
from qfuse.backends.triton.lib import qft_amax, qft_bf16_to_f32


@triton.jit
def per_token(x_ptr, s_ptr, q_ptr, M, N, xs0, BLOCK_M: tl.constexpr, BLOCK: tl.constexpr,
              DIV: tl.constexpr, NATIVE: tl.constexpr):
    pid = tl.program_id(0)
    row = pid.to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)[:, None]
    rmask = row < M
    cols = tl.arange(0, BLOCK)[None, :]
    cmask = cols < N
    x = qft_bf16_to_f32(tl.load(x_ptr + row * xs0 + cols, mask=rmask & cmask, other=0))
    amax = qft_amax(x, cmask, 1)
    s = tl.math.div_rn(amax, 448.0)
    s = tl.where(s == 0.0, 1.0, s)
    tl.store(s_ptr + row, s, mask=rmask)
    if DIV == 0:
        v = tl.math.div_rn(x, s)
    elif DIV == 1:
        v = x * (1.0 / s)
    elif DIV == 2:
        r = tl.math.div_rn(1.0, s)
        q0 = x * r
        e = tl.fma(0.0 - q0, s, x)
        v = tl.fma(e, r, q0)
    else:
        v = x / s
    q = qf_fp8_bits(v, False, 448.0, True, NATIVE)
    tl.store(q_ptr + row * N + cols, q, mask=rmask & cmask)


@triton.jit
def copy3(x_ptr, q_ptr, M, N, BLOCK_M: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    row = pid.to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)[:, None]
    cols = tl.arange(0, BLOCK)[None, :]
    m = (row < M) & (cols < N)
    x = tl.load(x_ptr + row * N + cols, mask=m, other=0)
    tl.store(q_ptr + row * N + cols, (x.to(tl.float32) * 0.5).to(tl.float8e4nv), mask=m)


@triton.jit
def tiny(x_ptr, n, B: tl.constexpr):
    o = tl.arange(0, B)
    tl.store(x_ptr + o, tl.load(x_ptr + o, mask=o < n) + 1, mask=o < n)


def host_us(fn, n=2000):
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    t = (time.perf_counter() - t0) / n * 1e6
    torch.cuda.synchronize()
    return t


def main():
    out = {"device": torch.cuda.get_device_name(), "triton": triton.__version__}
    # ---- host cost of launching
    buf = torch.zeros(64, device="cuda")
    k = tiny[(1,)](buf, 64, B=64)
    out["host_jit_us"] = host_us(lambda: tiny[(1,)](buf, 64, B=64))
    out["host_runner_us"] = host_us(lambda: k[(1, 1, 1)](buf, 64, 64))
    from qfuse.backends.triton import triton_adapter as tri    # the launcher call qfuse makes
    dev = tri.current_device()
    launch = tri.direct_launcher(k, (1,))
    def direct():
        launch(tri.current_stream(dev), [buf, 64, 64])
    try:
        out["host_direct_us"] = host_us(direct)
    except Exception as e:
        out["host_direct_err"] = repr(e)
    out["torch_empty_us"] = host_us(lambda: torch.empty((4096, 7168), dtype=torch.uint8, device="cuda"))
    out["buf_add_us"] = host_us(lambda: buf.add_(1))
    print(json.dumps(out), flush=True)
    # ---- kernels
    res = []
    for (M, N) in ((16384, 8192), (4096, 7168)):
        x = torch.randn(M, N, device="cuda", dtype=torch.bfloat16)
        q = torch.empty(M, N, device="cuda", dtype=torch.uint8)
        s = torch.empty(M, device="cuda", dtype=torch.float32)
        xc = x.clone()
        qc = torch.empty(M, N, device="cuda", dtype=torch.float8_e4m3fn)
        t = do_bench(lambda: xc.copy_(x), warmup=25, rep=100)
        res.append({"M": M, "N": N, "what": "bf16 copy_", "us": t * 1e3})
        BLOCK = triton.next_power_of_2(N)
        for bm, w in ((1, 4), (1, 8), (1, 16), (2, 8), (2, 16), (4, 16)):
            t = do_bench(lambda: copy3[(triton.cdiv(M, bm),)](x, qc, M, N, BLOCK_M=bm, BLOCK=BLOCK,
                                                             num_warps=w), warmup=25, rep=100)
            res.append({"M": M, "N": N, "what": f"copy bf16->fp8 bm{bm} w{w}", "us": t * 1e3})
        ref = None
        for div in (0, 1, 2, 3):
            for native in (True, False):
                for bm, w in ((1, 4), (1, 8), (1, 16), (2, 8), (2, 16), (4, 16)):
                    if not native and bm > 1 and div in (1, 3):
                        continue
                    f = lambda: per_token[(triton.cdiv(M, bm),)](x, s, q, M, N, N, BLOCK_M=bm, BLOCK=BLOCK,
                                                                DIV=div, NATIVE=native, num_warps=w,
                                                                num_stages=1, enable_fp_fusion=False)
                    f()
                    if ref is None:
                        ref = q.clone()
                    bad = int((q != ref).sum())
                    t = do_bench(f, warmup=25, rep=100)
                    res.append({"M": M, "N": N, "what": f"per_token div{div} native{int(native)} bm{bm} w{w}",
                                "us": t * 1e3, "codes_differing_from_div0": bad})
                    print(json.dumps(res[-1]), flush=True)
    out["kernels"] = res
    if len(sys.argv) > 2:
        with open(sys.argv[2], "w") as fh:
            json.dump(out, fh, indent=1)


main()
