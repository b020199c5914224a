"""The AMD proxy (benchmarks/probes/amd_hotpath.py, amdgcn.py): the AMDGCN parser and
hot-path walk on a known snippet, and a small part of the kept results file regenerated
on the CPU (cross-compiled for gfx950) and compared with it, and its table in
docs/performance.md current. When a kernel changes, regenerate the file:

    .venv/bin/python -m benchmarks.probes.amd_hotpath --aiter ../shared/peers/aiter \\
        --out docs/results/amd-proxy-<date>[-<n>].json
    .venv/bin/python -m benchmarks.report --update docs/performance.md

and point KEPT at it.
"""
import glob
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks.probes import amdgcn  # noqa: E402

SNIPPET = """\t.text
\t.amdgcn_target "amdgcn-amd-amdhsa--gfx942"
\t.globl\tkern
kern:
\t.file\t1 "/src" "k.py"
\t.loc\t1 3 0
\ts_load_dwordx2 s[0:1], s[0:1], 0x0
\tv_mov_b32_e32 v1, 0                    ; comment
.LBB0_1:
\t.loc\t1 5 0
\tglobal_load_dword v2, v1, s[0:1]
\ts_waitcnt vmcnt(0)
\tv_add_f32_e32 v3, v2, v2
\ts_add_i32 s2, s2, 1
\ts_cmp_lt_i32 s2, s3
\ts_cbranch_scc1 .LBB0_1
\t.loc\t1 7 0
\ts_cbranch_execz .LBB0_3
\t.loc\t1 8 0
\tglobal_store_dword v1, v3, s[0:1]
.LBB0_3:
\t.loc\t1 9 0
\ts_endpgm
.Lfunc_end0:
\t.size\tkern, .Lfunc_end0-kern
\t.amdgpu_metadata
amdhsa.kernels:
  - .name:           kern
    .sgpr_count:     18
    .vgpr_count:     4
    .agpr_count:     0
"""


def test_parser_counts_a_known_snippet():
    k = amdgcn.parse(SNIPPET)
    assert k.name == "kern" and len(k.instrs) == 11
    assert k.meta == {"sgpr_count": 18, "vgpr_count": 4, "agpr_count": 0}
    assert [i.op for i in k.instrs][:3] == ["s_load_dwordx2", "v_mov_b32_e32", "global_load_dword"]
    assert k.instrs[4].line == 5 and k.instrs[4].file == os.path.join("/src", "k.py")
    bl = amdgcn.blocks(k)
    assert [(b.start, b.end) for b in bl] == [(0, 2), (2, 8), (8, 9), (9, 10), (10, 11)]
    (lp,) = amdgcn.loops(k, bl)
    assert lp.body == frozenset({1}) and lp.line == 5
    hp = amdgcn.hot_path(k, trips=lambda loop: 10)
    # 2 before the loop, 6 x 10 in it, then execz, the store (masked: counted), endpgm
    assert hp.count == 2 + 60 + 3 and hp.path == [0, 1, 2, 3, 4]
    assert hp.mix == {"smem": 1, "valu": 11, "vmem": 11, "wait": 10, "salu": 20, "branch": 12}
    cold = amdgcn.hot_path(k, trips=lambda loop: 10, cold=lambda i: i.line == 8)
    assert cold.count == 64 and cold.path == [0, 1, 2, 4]


# the results file the docs show and the regenerated rows must match (the earlier
# amd-proxy-2026-12-07.json stays as the numbers before the AMD-only changes)
KEPT = "amd-proxy-2026-12-07-2.json"


def _kept():
    path = os.path.join(ROOT, "docs", "results", KEPT)
    assert os.path.exists(path), f"no docs/results/{KEPT}"
    with open(path) as f:
        return json.load(f)


def test_the_kept_file_is_the_newest():
    """A newer amd-proxy file (by its date, then its suffix) must become KEPT."""
    def order(path):
        parts = os.path.basename(path)[len("amd-proxy-"):-len(".json")].split("-")
        return ("-".join(parts[:3]), int(parts[3]) if len(parts) > 3 else 1)
    files = glob.glob(os.path.join(ROOT, "docs", "results", "amd-proxy-*.json"))
    assert os.path.basename(max(files, key=order)) == KEPT


def test_the_table_in_the_docs_is_current():
    from benchmarks.report import markdown
    doc = _kept()
    with open(os.path.join(ROOT, "docs", "performance.md")) as f:
        text = f.read()
    begin = f"<!-- results:{doc['run']}:begin -->\n"
    assert begin in text, "docs/performance.md has no block for the latest AMD proxy file"
    block = text.split(begin)[1].split(f"<!-- results:{doc['run']}:end -->")[0]
    assert block.strip() == markdown(doc).strip()
    assert "qfuse needs more instructions per element than AITER on" in block


@pytest.mark.parametrize("name,shape", [("static_per_tensor_fp8", "16x7168"),
                                        ("rmsnorm_mxfp4_shuffle", "16x7168")])
def test_regenerated_rows_match_the_kept_file(name, shape):
    """Cross-compile one pipeline again for gfx950 (qfuse's kernels and AITER's) and
    compare with the kept file: a kernel that changed since makes it stale."""
    from benchmarks import aiter_impl
    from benchmarks.probes import amd_hotpath
    where = aiter_impl.find()
    if where is None:
        pytest.skip("no AITER peer (../shared/peers/aiter)")
    peer = aiter_impl.load(where)
    kept = next(r for r in _kept()["rows"]
                if (r["chip"], r["pipeline"], r["shape"]) == ("gfx950", name, shape))
    m, n = map(int, shape.split("x"))
    (row,) = amd_hotpath.run(["gfx950"], [(m, n)], [name], peer, log=lambda *a: None)
    for side in ("qfuse", "aiter"):
        got, want = row[side], kept[side]
        for key in ("instr_per_elem", "vgprs", "sgprs", "spills"):
            assert got[key] == want[key], (side, key, got[key], want[key],
                                           "stale: regenerate docs/results/amd-proxy-*.json")


def test_the_peer_loads_after_the_aiter_alias():
    """A process that already ran ``import aiter`` through qfuse.aiter's alias still gets
    AITER's own package for the peer (the cached alias would hide aiter.ops.triton)."""
    import subprocess
    code = ("import qfuse.aiter, aiter, os\n"
            "assert aiter.__name__ == 'qfuse.aiter'\n"
            "from benchmarks import aiter_impl\n"
            "where = aiter_impl.find()\n"
            "if where is None: raise SystemExit(0)\n"
            "peer = aiter_impl.load(where, interpret=True)\n"
            "assert peer.K.aiter.__file__.startswith(where), peer.K.aiter.__file__\n")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
