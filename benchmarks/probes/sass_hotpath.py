"""CPU probe: registers and SASS instructions of the generated kernels, without a GPU.

    .venv/bin/python benchmarks/probes/sass_hotpath.py [--pipelines a,b] [--dims M=16384,N=8192]
                                                       [--qp FILE] [--keep DIR]

Cross-compiles every kernel of the chosen pipelines for sm_90 as the GPU's JIT would see
it at those dims (pointers 16-byte aligned, every dim and stride divisible by 16, so
loads and stores vectorise), disassembles it with the nvdisasm / cuobjdump that ship in
Triton's wheel, and prints per kernel: warps, rows per program, registers per thread,
total SASS, the hot path and its instruction mix, and the global load/store widths.

The hot path is an estimate: a walk from the entry that follows unconditional branches,
falls through conditional ones, except into a basic block that calls a slow path (the
`div.rn` / `rcp.rn` fallbacks), and stops at the first unconditional EXIT. Divided by the
elements per thread it gives instructions per element, the quantity that limited the
memory-bound kernels of session 3 (on the H200 at 16384 x 8192, about 3.5-4 us per
instruction per element; docs/performance.md).
"""
import argparse
import collections
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

_INSTR = re.compile(r"^\s+/\*[0-9a-f]+\*/\s+(.*?)\s*;")
_LABEL = re.compile(r"^(\.L_x_\d+):")


def _tools():
    import triton
    return os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")


def hot_path(sass: str) -> tuple:
    """(instruction count, Counter of opcodes) along the estimated hot path of ``sass``."""
    ins, labels = [], {}
    for line in sass.splitlines():
        m = _LABEL.match(line)
        if m:
            labels[m.group(1)] = len(ins)
            continue
        if line.strip().startswith(".type") and ins:
            ins.append(None)                 # end of the kernel function
            continue
        m = _INSTR.match(line)
        if m:
            ins.append(m.group(1))
    starts = set(labels.values())
    pc, count, ops, steps = 0, 0, collections.Counter(), 0
    while pc < len(ins) and ins[pc] is not None and steps < 100000:
        steps += 1
        txt = ins[pc]
        op = re.sub(r"^@!?U?P\w+\s+", "", txt).split()[0]
        count += 1
        ops[op.split(".")[0]] += 1
        if op.startswith("EXIT") and not txt.startswith("@"):
            break
        if op.startswith("BRA"):
            target = labels[re.search(r"\((\.L_x_\d+)\)", txt).group(1)]
            if not txt.startswith("@"):
                pc = target
                continue
            j = pc + 1                       # the fall-through basic block
            while j < len(ins) and j not in starts and ins[j] is not None \
                    and "BRA" not in ins[j]:
                j += 1
            slow = any("CALL" in ins[k] for k in range(pc + 1, j))
            pc = target if slow else pc + 1
            continue
        pc += 1
    return count, ops


def analyse(kern, dims: dict, keep: str = "", config: dict = None) -> list:
    """One dict per launch of ``kern`` (a TritonKernel) at ``dims``, with the launch
    configuration ``config`` (TritonConfig fields; default: the default rule)."""
    from qfuse.backends.triton.launch.cross_compile import compile_kernel
    from qfuse.backends.triton.kernel import TritonConfig
    src = kern.source
    env = {s: dims.get(s, 4096) for s in src.symbols}
    cexpr = kern._constexprs(TritonConfig(**(config or {})), env, interpret=False, hip=False)
    sig = {a.name: a.sig for a in src.args if a.role != "constexpr"}
    consts = {a.name: cexpr[a.ref] for a in src.args if a.role == "constexpr"}
    rows = []
    for phase, fn in enumerate(kern.fns):
        names = fn.arg_names
        attrs = {(names.index(a.name),): [["tt.divisibility", 16]] for a in src.args
                 if a.role in ("input", "output", "workspace", "dim", "stride")}
        asm = compile_kernel(fn, sig, consts, "cuda:sm_90", num_warps=cexpr["_warps"],
                             attrs=attrs)
        path = os.path.join(keep or "/tmp", f"{src.name}_{phase}.cubin")
        with open(path, "wb") as f:
            f.write(asm["cubin"])
        res = subprocess.run([os.path.join(_tools(), "cuobjdump"), "-res-usage", path],
                             capture_output=True, text=True).stdout
        sass = subprocess.run([os.path.join(_tools(), "nvdisasm"), "-c", path],
                              capture_output=True, text=True).stdout
        if keep:
            with open(path + ".sass", "w") as f:
                f.write(sass)
        else:
            os.remove(path)
        regs = re.search(r"REG:(\d+)", res)
        hot, ops = hot_path(sass)
        widest = max(v for k, v in cexpr.items() if k.startswith("BLOCK_") and isinstance(v, int))
        per_thread = max(1, widest * cexpr.get("BLOCK_M", 1) // (32 * cexpr["_warps"]))
        rows.append({"kernel": src.name, "phase": phase, "warps": cexpr["_warps"],
                     "block_m": cexpr.get("BLOCK_M"), "regs": int(regs.group(1)) if regs else None,
                     "sass": sum(1 for ln in sass.splitlines() if _INSTR.match(ln)),
                     "hot": hot, "per_element": round(hot / per_thread, 1),
                     "mix": dict(ops.most_common(8)),
                     "memory": dict(collections.Counter(re.findall(r"\b((?:LDG|STG)\.E[.\w]*)", sass)))})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser()
    root = os.path.join(os.path.dirname(__file__), "..")
    ap.add_argument("--qp", default=os.path.join(root, "pipelines.qp"))
    ap.add_argument("--pipelines", default="")
    ap.add_argument("--dims", default="M=16384,N=8192,T=16384,H=64,D=128")
    ap.add_argument("--keep", default="", help="directory for the cubins and SASS")
    ap.add_argument("--config", default="", help="launch config, e.g. num_warps=4,col_chunks=8")
    a = ap.parse_args(argv)
    from qfuse.backends.triton.launch import TritonKernel
    from qfuse.dsl import load_file
    from qfuse.runtime.pipeline import QuantPipeline
    dims = {k: int(v) for k, v in (kv.split("=") for kv in a.dims.split(",") if kv)}
    config = {k: int(v) for k, v in (kv.split("=") for kv in a.config.split(",") if kv)}
    pipes = load_file(a.qp)
    names = [n for n in a.pipelines.split(",") if n] or list(pipes)
    out = []
    for name in names:
        cp = QuantPipeline(pipes[name]).compiled("triton", "cuda:sm_90")
        for step in cp.steps:
            for row in analyse(TritonKernel(step.source), dims, a.keep, config):
                out.append(row)
                print(f"{row['kernel']:32s} warps {row['warps']:2d} BM {row['block_m']} "
                      f"regs {row['regs']} sass {row['sass']} hot {row['hot']} "
                      f"({row['per_element']}/elem) {row['memory']}", flush=True)
    return out


if __name__ == "__main__":
    main()
