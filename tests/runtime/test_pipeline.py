"""@quant_pipeline callables: binding, validation, backends, inspection, torch integration."""
from __future__ import annotations

import pytest
import torch

from qfuse import quant_pipeline
from qfuse.errors import InputError, QfuseError


@quant_pipeline
def add_rms_fp8(x: bf16[M, N], res: bf16[M, N], w: bf16[N], eps: f32 = 1e-6):
    y, h = norm(x, w, eps, residual=res)
    s = scale(y, fp8_e4m3fn, per_token)
    q = round(y, s, fp8_e4m3fn)
    return q, s, h


TRITON = quant_pipeline(backend="triton")(add_rms_fp8.__wrapped__)


def _inputs(m=3, n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(m, n, generator=g).bfloat16(), torch.randn(m, n, generator=g).bfloat16(),
            torch.randn(n, generator=g).bfloat16())


def _bits(t):
    return t.contiguous().view(torch.uint8) if t.element_size() == 1 else t


def assert_norm_match(got, want):
    """Norm pipelines sum in a different order than torch (docs/semantics.md): float
    outputs agree to a few fp32 ulps; a code may differ only by one step, and rarely."""
    for u, v in zip(got, want):
        assert u.dtype == v.dtype and u.shape == v.shape
        if u.element_size() == 1:
            a, b = _bits(u).int(), _bits(v).int()
            diff = a != b
            assert bool(((a - b).abs()[diff] == 1).all()) and diff.float().mean() < 1e-2
        else:
            torch.testing.assert_close(u.float(), v.float(), rtol=4 * 2 ** -23, atol=0)


def test_reference_and_triton_interpreter_agree():
    x, r, w = _inputs()
    assert_norm_match(TRITON(x, r, w), add_rms_fp8(x, r, w))


def test_keywords_defaults_and_single_kernel_ir():
    x, r, w = _inputs(m=1)
    q, s, h = add_rms_fp8(x=x, res=r, w=w, eps=1e-5)
    assert q.shape == (1, 200) and s.shape == (1, 1) and h.dtype == torch.bfloat16
    fused = add_rms_fp8.ir("fused")
    assert fused.count("qf.kernel") == 1
    assert "qf.norm" in add_rms_fp8.ir("qfuse")
    assert "@triton.jit" in TRITON.source()


def test_zero_rows():
    x, r, w = _inputs(m=0)
    q, s, h = TRITON(x, r, w)
    assert q.shape == (0, 200) and s.shape == (0, 1)


@pytest.mark.parametrize("bad,msg", [
    (lambda x, r, w: (x.float(), r, w), "x: expected bf16[M, N]"),
    (lambda x, r, w: (x, r, w[:100]), "N"),
    (lambda x, r, w: (x, r[:2], w), "M"),
    (lambda x, r, w: (x[None], r, w), "x: expected bf16[M, N]"),
    (lambda x, r, w: (x, r.to("meta"), w), "different devices"),
])
def test_input_errors_name_the_parameter(bad, msg):
    with pytest.raises(InputError) as e:
        TRITON(*bad(*_inputs()))
    assert msg in str(e.value)


def test_non_contiguous_last_dim_is_refused_for_triton_and_row_stride_is_fine():
    x, r, w = _inputs(m=4, n=128)
    with pytest.raises(InputError, match="last dim must be contiguous"):
        TRITON(x.t().contiguous().t(), r, w)
    big = torch.randn(4, 256).bfloat16()
    strided = big[:, :128]                      # row stride 256 > N
    assert_norm_match(TRITON(strided, r, w), add_rms_fp8(strided.contiguous(), r, w))


def test_argument_binding_errors():
    x, r, w = _inputs()
    with pytest.raises(InputError, match="missing argument w"):
        add_rms_fp8(x, r)
    with pytest.raises(InputError, match="no parameter 'bias'"):
        add_rms_fp8(x, r, w, bias=w)
    with pytest.raises(InputError, match="eps must be finite and >= 0"):
        add_rms_fp8(x, r, w, -1.0)


def test_runs_inside_torch_compile_as_one_op():
    x, r, w = _inputs()
    compiled = torch.compile(lambda a, b, c: add_rms_fp8(a, b, c), backend="aot_eager",
                             fullgraph=True)
    got = compiled(x, r, w)
    want = add_rms_fp8(x, r, w)
    assert all(torch.equal(_bits(u), _bits(v)) for u, v in zip(got, want))


def test_cache_write_updates_the_cache_in_place():
    @quant_pipeline
    def kv(k: bf16[T, H, D], cache: bf16[B, H, D, BS], slots: i64[T]):
        return cache_write(k, cache, slots, layout=value)

    k = torch.randn(3, 2, 16).bfloat16()
    cache = torch.zeros(2, 2, 16, 4).bfloat16()
    out = kv(k, cache, torch.tensor([5, -1, 0]))
    assert out is cache
    assert torch.equal(cache[1, :, :, 1], k[0]) and torch.equal(cache[0, :, :, 0], k[2])
    assert int((cache != 0).sum()) == 2 * 2 * 16 - int((k[[0, 2]] == 0).sum())


def test_bound_cache_write_does_not_copy_the_cache(monkeypatch):
    """Seen-signature calls of a KV write update the caller's cache in place without first
    cloning it (a clone of a whole cache per call used to be thrown away)."""
    @quant_pipeline(backend="triton")
    def kv(k: bf16[T, H, D], cache: fp8_e4m3fn[B, H, D, BS], scales: f32[H, S], slots: i64[T]):
        c, s = cache_write(k, cache, slots, layout=value, quant=per_token, scales=scales)
        return c, s

    cache = torch.zeros(2, 2, 16, 4, dtype=torch.float8_e4m3fn)
    scales = torch.zeros(2, 8)
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        k = torch.randn(3, 2, 16, generator=g).bfloat16()
        if seed == 2:
            clones = []
            real = torch.Tensor.clone
            monkeypatch.setattr(torch.Tensor, "clone",
                                lambda self, *a, **kw: clones.append(1) or real(self, *a, **kw))
        out, s = kv(k, cache, scales, torch.tensor([5, 0, 2]))
        assert out is cache and s is scales
    assert clones == []
    ref = quant_pipeline(backend="reference")(kv.__wrapped__)
    cache2, scales2 = torch.zeros_like(cache), torch.zeros_like(scales)
    ref(k, cache2, scales2, torch.tensor([5, 0, 2]))
    assert torch.equal(cache.view(torch.uint8), cache2.view(torch.uint8))
    assert torch.equal(scales, scales2)


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(QfuseError, match="backend='cuda'"):
        quant_pipeline(backend="cuda")(add_rms_fp8.__wrapped__)


def test_single_output_pipeline_returns_a_tensor():
    @quant_pipeline(backend="triton")
    def static_fp8(x: bf16[M, N], s: f32[1]):
        return round(x, s, fp8_e4m3fn, granularity=per_tensor, recip=mul_rcp)

    q = static_fp8(torch.randn(2, 64).bfloat16(), torch.tensor([0.05]))
    assert isinstance(q, torch.Tensor) and q.dtype == torch.float8_e4m3fn


def test_repeated_calls_take_the_bound_fast_path_and_stay_exact():
    @quant_pipeline(backend="triton")
    def mx(x: bf16[M, N], w: bf16[N]):
        y = norm(x, w, 1e-6)
        s = scale(y, fp4_e2m1, mx, e8m0=even)
        return pack(round(y, s, fp4_e2m1)), shuffle(s, pad=127)

    ref = quant_pipeline(backend="reference")(mx.__wrapped__)
    ex_calls = []
    for seed in range(3):                       # same signature: calls 2 and 3 are fast
        x, _, w = _inputs(m=5, n=64, seed=seed)
        assert_norm_match(mx(x, w), ref(x, w))
        ex_calls.append(len(next(iter(mx._executors.values())).runner._fast))
    assert ex_calls == [1, 1, 1]


def test_seen_signature_path_still_checks_what_can_change():
    """After a signature is bound, all-positional calls skip binding (_call_seen); a new
    dtype, shape, scalar-as-tensor or bad eps still takes the checked path."""
    qp = quant_pipeline(backend="triton")(add_rms_fp8.__wrapped__)
    x, res, w = _inputs(m=3, n=64)
    first = qp(x, res, w, 1e-6)
    ex = next(iter(qp._executors.values()))
    assert qp._call_seen((x, res, w, 1e-6)) is not None           # the seen path is taken
    assert_norm_match(qp(x, res, w, 1e-6), first)
    assert_norm_match(qp(x, res, w, torch.tensor(1e-6)), first)   # a 0-d tensor eps binds
    with pytest.raises(InputError, match="eps must be finite"):
        qp(x, res, w, -1.0)
    with pytest.raises(InputError, match="x"):
        qp(x.float(), res, w, 1e-6)
    with pytest.raises(InputError, match="res"):
        qp(x, res[:, :32], w, 1e-6)
    assert len(ex.runner._fast) == 1


def test_keyword_calls_take_the_seen_path_with_defaults_filled():
    """All-keyword calls map onto the positional seen path (eps from its default); an
    unknown or missing name still gets the binding error."""
    qp = quant_pipeline(backend="triton")(add_rms_fp8.__wrapped__)
    x, res, w = _inputs(m=3, n=64)
    first = qp(x, res, w, 1e-6)
    assert qp._from_keywords({"x": x, "res": res, "w": w}) == (x, res, w, 1e-6)
    seen = []
    real = qp._call_seen
    qp._call_seen = lambda args: seen.append(args) or real(args)
    assert_norm_match(qp(w=w, x=x, res=res), first)
    assert_norm_match(qp(x=x, res=res, w=w, eps=1e-6), first)
    assert len(seen) == 2 and all(a[0] is x and a[3] == 1e-6 for a in seen)
    with pytest.raises(InputError, match="no parameter 'bias'"):
        qp(x=x, res=res, w=w, bias=w)
    with pytest.raises(InputError, match="missing argument w"):
        qp(x=x, res=res)
    assert len(seen) == 2


@quant_pipeline
def shuffle_given(s: e8m0[M, G]):
    return shuffle(s, pad=127)


@pytest.mark.parametrize("backend", ["reference", "triton"])
def test_e8m0_inputs_as_uint8_or_float8_e8m0fnu(backend):
    """An E8M0 parameter takes uint8 bytes or torch's float8_e8m0fnu (AITER's
    dtypes.fp8_e8m0) holding the same bytes, on every backend, with one result."""
    pipe = quant_pipeline(backend=backend)(shuffle_given.__wrapped__)
    s = torch.randint(0, 256, (33, 5), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    want = pipe(s)
    for _ in range(2):                     # the checked call, then the bound fast path
        got = pipe(s.view(torch.float8_e8m0fnu))
        assert got.dtype == torch.uint8 and torch.equal(got, want)
    with pytest.raises(InputError, match=r"s: expected e8m0\[M, G\] \(uint8 or float8_e8m0fnu\), "
                                         r"got float32"):
        pipe(s.float())
