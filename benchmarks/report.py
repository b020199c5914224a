"""Reporting for ``bench.py``: output comparison, derived rates, the printed table.

``compare_outputs(got, ref)`` counts, per output, the elements that are not bit-equal
(codes compared as bytes; floats with NaN == NaN) and how far apart the codes are
(``max_step``: distance in code order for fp8 / int8, 1 = adjacent codes);
``derive`` adds GB/s, % of copy bandwidth and speed-ups to a result row;
``format_table`` renders the whole run. As a script it renders a results file kept in
``docs/results/`` as the markdown that ``docs/performance.md`` holds between its
``<!-- results:NAME:begin -->`` / ``end`` markers (``tests/test_docs.py`` keeps them equal)::

    python -m benchmarks.report --markdown docs/results/h200-2026-11-29.json
    python -m benchmarks.report --update docs/performance.md   # rewrite every such block
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys

import torch

__all__ = ["GRAPH_MAX_M", "as_tuple", "compare_outputs", "summarize_check", "derive",
           "format_row", "format_table", "format_comparison", "markdown", "render_blocks",
           "geomean_vs_aiter", "amd_proxy_table", "merge", "BLOCK", "HEADER", "HEADER_AITER"]

GRAPH_MAX_M = 64          # rows up to this M are timed by CUDA-graph replay


# ---------------------------------------------------------------------------- checking
def as_tuple(out) -> tuple:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def _ordered_fp8(b: torch.Tensor) -> torch.Tensor:
    """e4m3fn bytes -> integers ordered like the values (adjacent codes differ by 1)."""
    b = b.to(torch.int32)
    return torch.where(b >= 128, -(b - 128), b)


def compare_outputs(got, ref, names=None) -> dict:
    """Per output: ``mismatch`` (elements not bit-equal; NaN == NaN for floats), ``numel``,
    ``max_step`` (largest code distance for fp8 / int8) or ``max_abs`` (floats)."""
    got, ref = as_tuple(got), as_tuple(ref)
    names = list(names or [f"out{i}" for i in range(len(ref))])
    res = {}
    if len(got) != len(ref):
        return {"error": f"{len(got)} outputs, reference has {len(ref)}"}
    for name, g, r in zip(names, got, ref):
        if not isinstance(g, torch.Tensor) or tuple(g.shape) != tuple(r.shape):
            res[name] = {"error": f"shape {tuple(getattr(g, 'shape', ()))} vs {tuple(r.shape)}"}
            continue
        g = g.detach().to(r.device)
        e = {"numel": r.numel()}
        if r.element_size() == 1 or not r.dtype.is_floating_point:
            if g.element_size() != r.element_size():
                res[name] = {"error": f"dtype {g.dtype} vs {r.dtype}"}
                continue
            gb = g.view(torch.uint8) if g.element_size() == 1 else g
            rb = r.view(torch.uint8) if r.element_size() == 1 else r
            diff = gb != rb
            e["mismatch"] = int(diff.sum())
            if e["mismatch"] and r.dtype in (torch.float8_e4m3fn, torch.int8):
                if r.dtype == torch.int8:
                    d = (g.to(torch.int32) - r.to(torch.int32)).abs()
                else:
                    d = (_ordered_fp8(gb) - _ordered_fp8(rb)).abs()
                e["max_step"] = int(d.max())
        else:
            g32, r32 = g.float(), r.float()
            same = (g32 == r32) | (g32.isnan() & r32.isnan())
            e["mismatch"] = int((~same).sum())
            if e["mismatch"]:
                e["max_abs"] = float((g32 - r32).abs().nan_to_num(float("inf")).max())
        res[name] = e
    return res


def summarize_check(check: dict) -> str:
    if not check:
        return "-"
    if "error" in check:
        return "ERR " + check["error"]
    parts = []
    for name, e in check.items():
        if "error" in e:
            parts.append(f"{name}:{e['error']}")
        elif e["mismatch"]:
            extra = f"(<={e['max_step']})" if "max_step" in e else ""
            parts.append(f"{name}:{e['mismatch']}/{e['numel']}{extra}")
    return "exact" if not parts else " ".join(parts)



def derive(row: dict, copy_gbps, peak) -> None:
    def us(k):
        v = row.get(k)
        return v.get("us") if isinstance(v, dict) else None
    q, c, e, a = us("qfuse"), us("compile"), us("eager"), us("aiter")
    for k in ("qfuse", "eager", "compile", "aiter"):
        if us(k) and row.get("bytes"):
            row[k]["gbps"] = row["bytes"] / us(k) / 1e3
            if copy_gbps:
                row[k]["pct_copy"] = 100 * row[k]["gbps"] / copy_gbps
            if peak:
                row[k]["pct_peak_copy"] = 100 * row[k]["gbps"] / peak
    if q and c:
        row["speedup_vs_compile"] = c / q
    if q and e:
        row["speedup_vs_eager"] = e / q
    if q and a:
        row["speedup_vs_aiter"] = a / q
    roof = (row.get("scatter_roofline") or {}).get("us")
    if q and roof:                  # qfuse's share of the scatter roofline (probes/kv_scatter)
        row["qfuse"]["pct_scatter"] = 100 * roof / q


def geomean_vs_aiter(results: list) -> dict:
    """``geomean_speedup_vs_aiter`` (AITER time / qfuse time) over the rows that have both,
    and its row count."""
    sp = [r["speedup_vs_aiter"] for r in results if r.get("speedup_vs_aiter")]
    g = math.exp(sum(map(math.log, sp)) / len(sp)) if sp else None
    return {"geomean_speedup_vs_aiter": g, "geomean_aiter_count": len(sp)}


# ---------------------------------------------------------------------------- report
HEADER = ("pipeline", "shape", "qfuse us", "eager us", "compile us", "qfuse GB/s", "%copy",
          "%peak", "x compile", "qfuse graph us", "correct (qfuse vs eager)")
# with an aiter column (a run with --impls ...,aiter): its time and x aiter (AITER / qfuse)
HEADER_AITER = HEADER[:5] + ("aiter us",) + HEADER[5:9] + ("x aiter",) + HEADER[9:]


def format_row(row: dict) -> str:
    def t(k):
        v = row.get(k) or {}
        if "error" in v:
            return "ERR"
        if "us" not in v:
            return "-"
        return f"{v['us']:.2f}" + ("*" if v["timer"] == "bench" and row["M"] <= GRAPH_MAX_M
                                   else "")
    q = row.get("qfuse") or {}
    f = (row["pipeline"], row["shape"], t("qfuse"), t("eager"), t("compile"),
         f"{q['gbps']:.0f}" if "gbps" in q else "-",
         f"{q['pct_copy']:.1f}" if "pct_copy" in q else "-",
         f"{q['pct_peak_copy']:.1f}" if "pct_peak_copy" in q else "-",
         f"{row['speedup_vs_compile']:.2f}" if row.get("speedup_vs_compile") else "-",
         f"{q['graph_us']:.2f}" if "graph_us" in q else "-",
         row.get("error") or (("ERR " + q["error"]) if "error" in q
                              else summarize_check(row.get("correct", {}))))
    if "aiter" in row:              # the aiter columns: '-' where AITER has no kernel
        x = f"{row['speedup_vs_aiter']:.2f}" if row.get("speedup_vs_aiter") else "-"
        f = f[:5] + (t("aiter"),) + f[5:9] + (x,) + f[9:]
    f = f[:-1] + (f[-1] if len(f[-1]) <= 90 else f[-1][:87] + "...",)
    return "| " + " | ".join(map(str, f)) + " |"


def format_table(result: dict) -> str:
    d = result["device"]
    lines = [f"device: {d.get('name')} | driver {d.get('driver', '-')} | cuda {d.get('cuda', '-')}"
             f" | torch {d['torch']} | triton {d.get('triton')}", ""]
    for c in result["copy"]:
        lines.append(f"copy {c['shape']}: " + (f"{c['us']:.2f} us, {c['gbps']:.0f} GB/s"
                                                if "gbps" in c else c.get("error", "")))
    head = HEADER_AITER if "aiter" in result.get("impls", ()) else HEADER
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += [format_row(r) for r in result["results"]]
    g = result.get("geomean_speedup_vs_compile")
    lines += ["", f"geomean speed-up over torch.compile: "
                  f"{g:.3f}x over {result['geomean_count']} rows" if g else
              "geomean speed-up over torch.compile: -"]
    if "aiter" in result.get("impls", ()):
        g = result.get("geomean_speedup_vs_aiter")
        lines.append(f"geomean speed-up over AITER: {g:.3f}x over "
                     f"{result['geomean_aiter_count']} rows" if g else
                     "geomean speed-up over AITER: -")
    lines += _roofline_lines(result["results"])
    if result.get("errors"):
        lines += ["", f"{len(result['errors'])} errors:"] + [f"  {e}" for e in result["errors"]]
    return "\n".join(lines)


def _roofline_lines(results: list) -> list:
    """One line per row with a scatter roofline (the KV write): the probe's time and
    qfuse's share of it."""
    out = []
    for r in results:
        roof = r.get("scatter_roofline")
        if not roof:
            continue
        if "us" not in roof:
            out.append(f"scatter roofline {r['shape']}: ERR {roof.get('error', '')}")
            continue
        gbps = f", {r['bytes'] / roof['us'] / 1e3:.0f} GB/s" if r.get("bytes") else ""
        pct = (r.get("qfuse") or {}).get("pct_scatter")
        share = f"; qfuse at {pct:.1f} % of it" if pct else ""
        out.append(f"scatter roofline {r['pipeline']} {r['shape']}: {roof['us']:.2f} us"
                   f"{gbps} (probes/kv_scatter.py, config {roof.get('config')}){share}")
    return [""] + out if out else []


# ---------------------------------------------------------------------------- results files
def _us(row: dict, impl: str) -> str:
    v = row.get(impl) or {}
    return "ERR" if "error" in v else (f"{v['us']:.2f}" if "us" in v else "-")


def _device_line(d: dict) -> str:
    return (f"device: {d.get('name')} | driver {d.get('driver', '-')} | cuda {d.get('cuda', '-')}"
            f" | torch {d.get('torch')} | triton {d.get('triton')}")


def format_comparison(doc: dict) -> str:
    """Two runs of one device call, ``doc[label]`` each a bench result and
    ``doc["commits"] = {label: commit}`` (first label: the baseline): qfuse per row in
    each, and the ratio of the second's time to the first's."""
    (a, ca), (b, cb) = list(doc["commits"].items())
    ra, rb = doc[a], doc[b]
    lines = [_device_line(doc.get("device") or rb["device"]), ""]
    for x, y in zip(ra["copy"], rb["copy"]):
        lines.append(f"copy {x['shape']}: {x['us']:.2f} us ({a}), {y['us']:.2f} us ({b})")
    head = ("pipeline", "shape", f"qfuse us, {a} ({ca})", f"qfuse us, {b} ({cb})",
            f"{b} / {a}", f"graph us, {a}", f"graph us, {b}", f"%copy, {b}",
            f"eager us, {b}", f"correct, {b}")
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    base = {(r["pipeline"], r["shape"]): r for r in ra["results"]}
    for r in rb["results"]:
        o = base.get((r["pipeline"], r["shape"]), {})
        q, p = r.get("qfuse") or {}, o.get("qfuse") or {}
        ratio = f"{q['us'] / p['us']:.2f}" if "us" in q and "us" in p else "-"
        lines.append("| " + " | ".join((
            r["pipeline"], r["shape"], _us(o, "qfuse"), _us(r, "qfuse"), ratio,
            f"{p['graph_us']:.2f}" if "graph_us" in p else "-",
            f"{q['graph_us']:.2f}" if "graph_us" in q else "-",
            f"{q['pct_copy']:.1f}" if "pct_copy" in q else "-", _us(r, "eager"),
            summarize_check(r.get("correct", {})))) + " |")
    return "\n".join(lines)


def _side(s: dict, key: str) -> str:
    return str(s[key]) if key in s else "-"


def amd_proxy_table(doc: dict) -> str:
    """An AMD proxy file (``benchmarks/probes/amd_hotpath.py --out``): per chip, per
    pipeline x shape, hot-loop instructions per element and registers of qfuse's kernels
    and of AITER's, and where qfuse needs more instructions per element (target: none)."""
    lines = [f"run {doc.get('run')} | commit {doc.get('commit')} | triton {doc.get('triton')}"
             f" | AITER {str(doc.get('aiter_commit'))[:10]} | {doc.get('note')}", ""]
    head = ("chip", "pipeline", "shape", "qfuse instr/elem", "AITER instr/elem", "qfuse / AITER",
            "qfuse VGPR", "AITER VGPR", "qfuse SGPR", "AITER SGPR", "spills (qfuse, AITER)",
            "more than AITER?")
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    more = both = 0
    for r in doc["rows"]:
        q, a = r["qfuse"], r["aiter"]
        ratio, verdict = "-", ""
        if "instr_per_elem" in q and "instr_per_elem" in a:
            both += 1
            x = q["instr_per_elem"] / a["instr_per_elem"] if a["instr_per_elem"] else float("inf")
            ratio = f"{x:.2f}"
            if q["instr_per_elem"] > a["instr_per_elem"]:
                more += 1
                verdict = f"**yes, {x:.2f}x**"
            else:
                verdict = "no"
        if "error" in q:
            verdict = "qfuse ERR " + q["error"][:60]
        elif "error" in a:
            verdict = "AITER ERR " + a["error"][:60]
        elif "absent" in a:
            verdict = "no AITER Triton kernel"
        lines.append("| " + " | ".join((
            r["chip"], r["pipeline"], r["shape"], _side(q, "instr_per_elem"),
            _side(a, "instr_per_elem"), ratio, _side(q, "vgprs"), _side(a, "vgprs"),
            _side(q, "sgprs"), _side(a, "sgprs"),
            f"{_side(q, 'spills')}, {_side(a, 'spills')}", verdict)) + " |")
    lines += ["", f"qfuse needs more instructions per element than AITER on {more} of {both} "
                  f"rows that have both (target: none)"]
    return "\n".join(lines)


def markdown(doc: dict) -> str:
    """A results file as markdown: ``run | commit`` and ``format_table`` for one run;
    ``format_comparison`` for a file holding two runs (``commits``); the AMD proxy's table
    for an ``amd-proxy`` file. The lines above the table (run, device, copy bandwidths)
    become list items."""
    if doc.get("kind") == "amd-proxy":
        text = amd_proxy_table(doc)
    elif "results" not in doc:
        text = f"run {doc.get('run', '-')}\n" + format_comparison(doc)
    else:
        text = f"run {doc.get('run', '-')} | commit {doc.get('commit', '-')}\n" + format_table(doc)
    lines = text.split("\n")
    top = next(i for i, line in enumerate(lines) if line.startswith("|"))
    head = [f"* {line}" for line in lines[:top] if line]
    return "\n".join(head + [""] + lines[top:])


BLOCK = re.compile(r"(<!-- results:([\w.-]+):begin -->\n).*?(<!-- results:\2:end -->)", re.S)


def render_blocks(text: str, results_dir: str) -> str:
    """``text`` with every results block regenerated from ``results_dir/NAME.json``."""
    def block(m):
        with open(os.path.join(results_dir, m.group(2) + ".json")) as f:
            return f"{m.group(1)}\n{markdown(json.load(f))}\n\n{m.group(3)}"
    return BLOCK.sub(block, text)


def merge(docs: list) -> dict:
    """Several bench.py JSONs of one device call (the pipelines split over commands that
    each fit the call's time limit) as one run: the first's device and settings, every
    shape's copy row once (the first measured), all result rows, the geomeans again."""
    out = dict(docs[0])
    seen = {c["shape"] for c in out["copy"]}
    out["copy"] = list(out["copy"])
    out["results"] = [r for d in docs for r in d["results"]]
    for d in docs[1:]:
        out["copy"] += [c for c in d["copy"] if c["shape"] not in seen]
        seen |= {c["shape"] for c in d["copy"]}
        out["errors"] = out.get("errors", []) + d.get("errors", [])
    out["impls"] = list(dict.fromkeys(i for d in docs for i in d.get("impls", ())))
    sp = [r["speedup_vs_compile"] for r in out["results"] if r.get("speedup_vs_compile")]
    out["geomean_speedup_vs_compile"] = math.exp(sum(map(math.log, sp)) / len(sp)) if sp else None
    out["geomean_count"] = len(sp)
    out.update(geomean_vs_aiter(out["results"]))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.report",
                                 description="Render benchmark results files as markdown.")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--markdown", metavar="FILE",
                   help="print a JSON written by bench.py (docs/results/*.json) as markdown")
    g.add_argument("--update", metavar="DOC",
                   help="rewrite DOC's results blocks from the results/ folder next to it")
    g.add_argument("--merge", nargs="+", metavar="FILE",
                   help="merge bench.py JSONs of one device call into one (to --out)")
    ap.add_argument("--out", help="with --merge: the merged JSON's path")
    args = ap.parse_args(argv)
    if args.merge:
        docs = []
        for path in args.merge:
            with open(path) as f:
                docs.append(json.load(f))
        with open(args.out, "w") as f:
            json.dump(merge(docs), f, indent=1)
        return 0
    if args.markdown:
        with open(args.markdown) as f:
            sys.stdout.write(markdown(json.load(f)) + "\n")
        return 0
    with open(args.update) as f:
        text = f.read()
    new = render_blocks(text, os.path.join(os.path.dirname(os.path.abspath(args.update)),
                                           "results"))
    if new != text:
        with open(args.update, "w") as f:
            f.write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
