"""cache_write's numerics options (zero, floor, recip, requant) and per-block scales over
super-blocks (scale_block), on the Triton backend (interpreter) and the reference, both
against a token-by-token fp32 oracle written from docs/semantics.md: zero head rows, tiny
amax, NaN / Inf, negative, past-the-end and duplicate slots."""
import pytest
import torch

from test_kernels_helpers import assert_bitwise, pipes, run_both

FMAX = {"fp8_e4m3fn": 448.0, "fp8_e4m3fnuz": 240.0, "i8": 127.0}
TORCH = {"fp8_e4m3fn": torch.float8_e4m3fn, "fp8_e4m3fnuz": torch.float8_e4m3fnuz,
         "i8": torch.int8}


def codes(v: torch.Tensor, cdt: str) -> torch.Tensor:
    """fp32 -> the cache's codes (bytes): saturating, fp8 RNE (NaN: the NaN code), int8
    toward zero (NaN: 0)."""
    m, dt = FMAX[cdt], TORCH[cdt]
    v = torch.where(v.isnan(), v, v.clamp(-m, m))
    if cdt == "i8":
        return torch.where(v.isnan(), torch.zeros_like(v), v.trunc()).to(dt).view(torch.uint8)
    nan = 0x7F if cdt == "fp8_e4m3fn" else 0x80
    c = v.to(dt).view(torch.uint8)
    return torch.where(v.isnan(), torch.full_like(c, nan), c)


def decode(c: torch.Tensor, cdt: str) -> torch.Tensor:
    return c.view(TORCH[cdt]).float()


def divide(v, s, recip):
    return v / s if recip == "div" else v * (torch.ones_like(s) / s)


def written(slots, cap):
    """{slot: token} of the tokens written: in range, the later of a repeated slot."""
    out = {}
    for t, s in enumerate(slots.tolist()):
        if 0 <= s < cap:
            out[s] = t
    return out


# ----------------------------------------------------------------------- per token
def per_token_pipe(cdt, zero, floor, recip):
    src = (f"def cw(k: bf16[T, H, D], c: {cdt}[B, BS, H, D], slots: i64[T], s: f32[H, S]):\n"
           f"    kc, ks = cache_write(k, c, slots, layout=flash, quant=per_token, scales=s, "
           f"zero={zero}, floor={floor}, recip={recip})\n    return kc, ks\n")
    return pipes(src, "cache_options_test.qp")["cw"]


def edge_tokens(h=2, d=32, seed=3):
    g = torch.Generator().manual_seed(seed)
    k = torch.randn(8, h, d, generator=g) * 3
    k[1, 0] = 0.0                              # an all-zero head row
    k[2, 1] = torch.randn(d, generator=g) * 1e-30   # tiny amax (a normal fp32 scale)
    k[3, 0, 5] = float("nan")
    k[4, 1, 7] = float("inf")
    k[5, 0] = -0.0
    slots = torch.tensor([3, 9, 17, 30, 2, -1, 64, 9])   # -1 padding; 64 past the end;
    return k.bfloat16(), slots                             # 9 twice: token 7 wins


def oracle_per_token(k, c, slots, s, cdt, zero, floor, recip):
    c, s = c.view(torch.uint8).clone(), s.clone()
    nb, bs = c.shape[:2]
    dm = torch.tensor(FMAX[cdt])
    for slot, t in written(slots, nb * bs).items():
        for h in range(k.shape[1]):
            a = k[t, h].float()
            sc = a.abs().max() / dm
            qs = torch.maximum(sc, torch.tensor(1e-12)) if floor == "floor" else \
                torch.where(sc == 0, torch.tensor(1.0), sc)
            c[slot // bs, slot % bs, h] = codes(divide(a, qs, recip), cdt)
            s[h, slot] = 1.0 if (zero == "one" and sc == 0) else sc
    return c, s


@pytest.mark.parametrize("cdt,zero,floor,recip", [
    ("fp8_e4m3fn", "zero", "floor", "mul_rcp"),       # AITER HIP (the defaults)
    ("fp8_e4m3fn", "one", "none", "div"),             # AITER's torch reference
    ("i8", "one", "none", "div"),
    ("fp8_e4m3fnuz", "one", "floor", "mul_rcp"),
    ("i8", "zero", "none", "mul_rcp"),
])
def test_per_token_options(cdt, zero, floor, recip):
    tp = per_token_pipe(cdt, zero, floor, recip)
    k, slots = edge_tokens()
    c = torch.randint(0, 0x70, (4, 16, 2, 32), dtype=torch.uint8).view(TORCH[cdt])
    s = torch.full((2, 64), -1.0)
    inputs = {"k": k, "c": c, "slots": slots, "s": s}
    got, ref = run_both(tp, inputs)
    assert_bitwise(got, ref)
    wc, ws = oracle_per_token(k, c, slots, s, cdt, zero, floor, recip)
    assert_bitwise({"kc": ref["kc"].view(torch.uint8), "ks": ref["ks"]}, {"kc": wc, "ks": ws})
    tiny = ref["kc"].view(torch.uint8)[17 // 16, 17 % 16, 1]        # token 2, head 1
    assert bool((decode(tiny, cdt) != 0).any()) == (floor == "none")   # floored: all 0


def test_zero_floor_option_is_refused():
    with pytest.raises(Exception, match="zero=zero or zero=one"):
        per_token_pipe("fp8_e4m3fn", "floor", "floor", "mul_rcp")


# ----------------------------------------------------------------------- per block
LAYOUTS = {"key": "[B, H, DX, BS, X]", "flash": "[B, BS, H, D]", "value": "[B, H, D, BS]"}


def block_pipe(cdt, layout, requant, floor="floor", zero="zero", recip="mul_rcp", sb=0):
    sshape = "[H, NS]"
    extra = f", scale_block={sb}" if sb else ""
    src = (f"def cw(k: bf16[T, H, D], c: {cdt}{LAYOUTS[layout]}, slots: i64[T], "
           f"s: f32{sshape}):\n"
           f"    kc, ks = cache_write(k, c, slots, layout={layout}, quant=per_block, scales=s, "
           f"requant={requant}, floor={floor}, zero={zero}, recip={recip}{extra})\n"
           f"    return kc, ks\n")
    return pipes(src, "cache_options_test.qp")["cw"]


def logical(c, layout):
    """[NB, BS, H, D] bytes of a physical cache."""
    c = c.view(torch.uint8)
    if layout == "key":
        nb, h, dx, bs, x = c.shape
        return c.permute(0, 3, 1, 2, 4).reshape(nb, bs, h, dx * x)
    if layout == "value":
        return c.permute(0, 3, 1, 2)
    return c


def oracle_per_block(k, c, slots, s, cdt, layout, requant, floor, zero, recip, sb):
    """[NB*BS, H, D] codes and [H, NS] scales after the write (docs/semantics.md)."""
    lg = logical(c, layout)
    nb, bs, h, d = lg.shape
    sb = sb or bs
    flat = lg.reshape(nb * bs, h, d).clone()
    s = s.clone()
    dm = torch.tensor(FMAX[cdt])
    one = torch.tensor(1.0)
    per_blk = {}
    for slot, t in sorted(written(slots, nb * bs).items()):
        per_blk.setdefault(slot // sb, []).append((slot % sb, t))

    def scale_of(amax):
        if floor == "floor":
            amax = torch.maximum(amax, torch.tensor(1e-6))
        v = amax / dm
        return torch.where(v == 0, one, v) if zero == "one" else v

    for b, items in per_blk.items():
        base = b * sb
        offs = [o for o, _ in items]
        xs = torch.stack([k[t].float() for _, t in items])             # [n, H, D]
        for hh in range(h):
            old = s[hh, b]
            if requant == "always":
                v = decode(flat[base:base + sb, hh], cdt) * old
                for o, t in items:
                    v[o] = k[t, hh].float()
                sc = scale_of(v.abs().max())
                qs = torch.where(sc == 0, one, sc)
                flat[base:base + sb, hh] = codes(divide(v, qs, recip), cdt)
                s[hh, b] = sc
                continue
            new = scale_of(xs[:, hh].abs().max())
            first = min(offs)
            if first > 0 and old < new:
                q = decode(flat[base:base + first, hh], cdt)
                flat[base:base + first, hh] = codes((q * old) / new, cdt)
            sc = new if (first == 0 or old < new) else old
            s[hh, b] = sc
            qs = torch.where(sc == 0, one, sc)
            for o, t in items:
                flat[base + o, hh] = codes(divide(k[t, hh].float(), qs, recip), cdt)
    return flat, s


def block_case(layout, cdt, sb, seed=5):
    h, d, nb, bs = 2, 32, 8, 4
    x = 16
    shape = {"key": (nb, h, d // x, bs, x), "value": (nb, h, d, bs),
             "flash": (nb, bs, h, d)}[layout]
    g = torch.Generator().manual_seed(seed)
    raw = torch.randint(0, 0x70, shape, generator=g, dtype=torch.uint8)
    cache = (raw.to(torch.int16) - 0x38).to(torch.int8) if cdt == "i8" else raw.view(TORCH[cdt])
    n = nb * bs // (sb or bs)
    s = torch.rand(h, n, generator=g) * 0.02
    s[0, 0] = 1e-6                                     # grows
    s[1, 1] = 10.0                                     # kept
    # first offset > 0 in scale block 0 (slots 2, 3 and with sb 8 also 5); slot 9 twice;
    # -2 padding; 32 past the end; an all-zero token
    slots = torch.tensor([2, 3, 9, 5, -2, 12, 13, 32, 9, 20])
    k = torch.randn(len(slots), h, d, generator=g) * 2
    k[6] = 0.0
    return {"k": k.bfloat16(), "c": cache, "slots": slots, "s": s}


@pytest.mark.parametrize("layout,cdt,requant,floor,zero,recip,sb", [
    ("flash", "fp8_e4m3fn", "always", "none", "one", "div", 0),      # torch reference
    ("key", "i8", "always", "floor", "zero", "mul_rcp", 0),
    ("key", "fp8_e4m3fn", "grow", "floor", "zero", "mul_rcp", 8),    # asm PA super-blocks
    ("value", "i8", "grow", "none", "one", "div", 16),
    ("key", "fp8_e4m3fnuz", "always", "none", "one", "div", 8),
])
def test_per_block_options(layout, cdt, requant, floor, zero, recip, sb):
    tp = block_pipe(cdt, layout, requant, floor, zero, recip, sb)
    inputs = block_case(layout, cdt, sb)
    got, ref = run_both(tp, inputs)
    assert_bitwise(got, ref)
    wc, ws = oracle_per_block(inputs["k"], inputs["c"], inputs["slots"], inputs["s"], cdt,
                              layout, requant, floor, zero, recip, sb)
    nb, bs = 8, 4
    assert_bitwise({"kc": logical(ref["kc"], layout).reshape(nb * bs, 2, 32), "ks": ref["ks"]},
                   {"kc": wc, "ks": ws})


def test_per_block_twice_reuses_the_workspace():
    """Two calls in a row (the marks and amax words are cleared by the first)."""
    tp = block_pipe("fp8_e4m3fn", "key", "always", sb=8)
    a = block_case("key", "fp8_e4m3fn", 8, seed=1)
    got, ref = run_both(tp, a)
    b = dict(a, c=ref["kc"], s=ref["ks"], k=a["k"] * 3)
    got2, ref2 = run_both(tp, b)
    assert_bitwise(got2, ref2)


@pytest.mark.parametrize("sb,shape,match", [
    (6, (2, 4), "whole number of cache blocks"),
    (8, (2, 3), "NSB \\* 8 == NB \\* BS"),
])
def test_scale_block_shape_errors(sb, shape, match):
    from qfuse.runtime.pipeline import QuantPipeline
    tp = block_pipe("fp8_e4m3fn", "flash", "grow", sb=sb)
    c = torch.zeros(8, 4, 2, 32, dtype=torch.uint8).view(torch.float8_e4m3fn)
    with pytest.raises(Exception, match=match):
        QuantPipeline(tp, backend="reference")(torch.zeros(1, 2, 32, dtype=torch.bfloat16), c,
                                               torch.tensor([0]), torch.ones(shape))


# ------------------------------------------------- preshuffle layout, token scales, pow2
def test_preshuffle_token_scales_pow2():
    """per_token with amax_floor, pow2 and scale_layout=token into the 16x16-tile layout
    (AITER's indexer cache), and per_block into the same layout: Triton == reference, and
    the reference == the oracle through the logical view."""
    src = ("def cw(k: bf16[T, H, D], c: fp8_e4m3fn[B, BSX, H, DX, XB, X], slots: i64[T], "
           "s: f32[B, BS, H]):\n"
           "    kc, ks = cache_write(k, c, slots, layout=preshuffle, quant=per_token, scales=s, "
           "scale_layout=token, amax_floor=0.0001, pow2=true)\n    return kc, ks\n")
    tp = pipes(src, "cache_options_test.qp")["cw"]
    k, slots = edge_tokens(h=2, d=32)
    c = torch.randint(0, 0x70, (2, 2, 2, 2, 16, 16), dtype=torch.uint8).view(torch.float8_e4m3fn)
    s = torch.full((2, 32, 2), -1.0)
    inputs = {"k": k, "c": c, "slots": slots, "s": s}
    got, ref = run_both(tp, inputs)
    assert_bitwise(got, ref)
    lg = c.view(torch.uint8).permute(0, 1, 4, 2, 3, 5).reshape(64, 2, 32).clone()
    ws = s.clone().reshape(64, 2)
    for slot, t in written(slots, 64).items():
        for h in range(2):
            a = k[t, h].float()
            sc = torch.maximum(a.abs().max(), torch.tensor(1e-4)) / 448.0
            if torch.isfinite(sc):
                m, e = torch.frexp(sc)
                sc = torch.ldexp(torch.tensor(1.0), e - 1) if m == 0.5 else \
                    torch.ldexp(torch.tensor(1.0), e)
            lg[slot, h] = codes(a * (1.0 / torch.maximum(sc, torch.tensor(1e-12))), "fp8_e4m3fn")
            ws[slot, h] = sc
    got_lg = ref["kc"].view(torch.uint8).permute(0, 1, 4, 2, 3, 5).reshape(64, 2, 32)
    assert_bitwise({"kc": got_lg, "ks": ref["ks"].reshape(64, 2)}, {"kc": lg, "ks": ws})


def test_preshuffle_per_block():
    src = ("def cw(k: bf16[T, H, D], c: i8[B, BSX, H, DX, XB, X], slots: i64[T], "
           "s: f32[H, B]):\n"
           "    kc, ks = cache_write(k, c, slots, layout=preshuffle, quant=per_block, scales=s)\n"
           "    return kc, ks\n")
    tp = pipes(src, "cache_options_test.qp")["cw"]
    g = torch.Generator().manual_seed(4)
    c = (torch.randint(0, 0x70, (3, 2, 2, 2, 16, 16), generator=g).to(torch.int16) - 0x38) \
        .to(torch.int8)
    k = (torch.randn(5, 2, 32, generator=g) * 3).bfloat16()
    inputs = {"k": k, "c": c, "slots": torch.tensor([3, 40, 41, -1, 95]),
              "s": torch.tensor([[1e-4, 0.3, 5.0], [2e-3, 1.0, 1e-5]])}
    got, ref = run_both(tp, inputs)
    assert_bitwise(got, ref)
    assert (ref["kc"] != c).any()
