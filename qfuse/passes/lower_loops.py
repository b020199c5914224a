"""``qf-lower-loops``: every kernel function of the fused module lowered to a loop nest on
memrefs (``arith``, ``math``, ``memref``, ``scf``), the pipeline functions on buffers.

Each kernel ``func.func`` (``qf.kernel``) is read and handed to the kernel lowering
registered for the ``loops`` level (:mod:`.lowering`: the ROCDL backend's renderer, one
lowering per stage), which gives the function in destination-passing style::

    func.func @p__k0(%x: memref<?x?xbf16, strided<[?, ?], offset: ?>>, ...,
                     %q: memref<?x?xi8, strided<[?, ?], offset: ?>>)
        attributes {llvm.emit_c_interface, qf.kernel, qf.space = "row", qf.reason = ""}

(arguments named by ``qf.name``: the kernel's parameters, then its outputs). A host step
(``all_reduce``) becomes a private declaration of the same ABI carrying its op
(``qf.host_op``, ``qf.host_attrs``), which the runtime runs between kernels. The
pipeline functions are rewritten on buffers (:mod:`.bufferize`), so the module
verifies. What the CPU twin runs is each kernel function of this module.

The pass starts from the fused module (after ``qf-fuse``); ``qf-map-gpu``
(:mod:`.map_gpu`) starts there too, rendering each kernel with the GPU mapping rather
than rewriting these loops (the renderer writes every kernel once against a mapping:
which loops are threads, where the block reductions go).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..dialect.encoding import KERNEL_ATTR, REASON_ATTR, SPACE_ATTR
from ..dialect.mlir import ir
from ..dialect.reader import read_function
from ..errors import QfuseError
from .bufferize import Callee, attr_name, bufferize_pipeline
from .lowering import kernel_lowering

__all__ = ["LowerLoopsPass", "lower_module", "GPU_MODULE"]

#: the gpu.module that qf-map-gpu outlines the kernels into
GPU_MODULE = "qfuse_kernels"
_KEEP = (KERNEL_ATTR, SPACE_ATTR, REASON_ATTR)


@dataclass(frozen=True)
class LowerLoopsPass:
    name: str = "qf-lower-loops"

    def run(self, module):
        return lower_module(module, "loops", None, self.name)


def _symbol(op) -> str:
    return ir.StringAttr(op.attributes["sym_name"]).value


class _Kernel:
    """One kernel function (``prog``: it read by the reader) and its lowering."""

    def __init__(self, fn, prog, lowered: dict):
        from ..dialect.in_place import updated_params
        self.name = _symbol(fn)
        self.attrs = {k: fn.attributes[k] for k in _KEEP if k in fn.attributes}
        params = [p.value.name for p in prog.params]
        self.lowered = lowered
        self.host = bool(lowered.get("host"))
        self.result_names = [attr_name(a) for a in fn.res_attrs]
        self.arg_names = params + self.result_names
        in_place = updated_params(prog)
        self.in_place = {j: params.index(in_place[v.name]) for j, v in enumerate(prog.returns)
                         if v.name in in_place}
        self.n_params = len(params)
        ops = [op.operation for op in fn.regions[0].blocks[0].operations
               if op.operation.name.startswith("qf.")]
        self.host_op = ops[0] if self.host and len(ops) == 1 else None
        if self.host and self.host_op is None:
            raise QfuseError(f"kernel {self.name}: a host step holds one stage, not {len(ops)}")

    def callee(self, op) -> Callee:
        """The Callee of this kernel's lowered function ``op`` (its argument types)."""
        ftype = ir.FunctionType(ir.TypeAttr(op.attributes["function_type"]).value)
        launch = None if self.host else {k: self.lowered[k] for k in
                                         ("grid", "rows_arg", "block", "max_blocks")}
        return Callee(list(ftype.inputs), self.n_params, self.result_names, self.in_place,
                      launch, self.host)

    def annotate(self, op) -> None:
        """The kept ``qf`` attributes, argument names and a host step's op on ``op``."""
        for k, v in self.attrs.items():
            op.attributes[k] = v
        n = len(ir.FunctionType(ir.TypeAttr(op.attributes["function_type"]).value).inputs)
        names = self.arg_names + ["workspace"] * (n - len(self.arg_names))
        op.attributes["arg_attrs"] = ir.ArrayAttr.get(
            [ir.DictAttr.get({"qf.name": ir.StringAttr.get(s)}) for s in names])
        if self.host_op is not None:
            op.attributes["qf.host_op"] = ir.StringAttr.get(self.host_op.name)
            attrs = self.host_op.attributes
            named = [attrs[i] for i in range(len(attrs))]
            op.attributes["qf.host_attrs"] = ir.DictAttr.get({a.name: a.attr for a in named})


def _functions(block) -> dict:
    """``{symbol: op}`` of the functions in ``block`` and in its gpu.modules."""
    out = {}
    for op in block.operations:
        if op.operation.name == "gpu.module":
            out.update(_functions(op.regions[0].blocks[0]))
        elif "sym_name" in op.operation.attributes:
            out[_symbol(op.operation)] = op.operation
    return out


def _check_fused(module, pass_name: str) -> list:
    """The module's functions; a module that is not the fused qf module is refused."""
    funcs = []
    for op in module.body.operations:
        name = op.operation.name
        attrs = op.operation.attributes
        lowered = name == "func.func" and (not op.regions[0].blocks or
                                           "llvm.emit_c_interface" in attrs)
        if name != "func.func" or lowered:
            raise QfuseError(f"{pass_name}: the module holds {name} @{_symbol(op.operation)}, "
                             f"which is lowered already: the lowering passes start from the "
                             f"fused qf module (qfuse ir --emit fused), and each runs on its "
                             f"own copy of it")
        funcs.append(op)
    return funcs


def lower_module(module, level: str, target: Optional[str], pass_name: str):
    """Lower every kernel function of ``module`` to ``level`` (``loops``; ``gpu`` for
    ``target``) and rewrite the pipeline functions on buffers, in place."""
    from ..dialect.text import verify
    lower = kernel_lowering(level, pass_name)
    with module.context, ir.Location.unknown():
        kernels, pipelines = {}, []
        for fn in _check_fused(module, pass_name):
            if KERNEL_ATTR in fn.attributes:
                space = ir.StringAttr(fn.attributes[SPACE_ATTR]).value
                prog = read_function(fn)
                k = _Kernel(fn, prog, lower(prog, space, target))
                kernels[k.name] = k
            else:
                pipelines.append(fn)
        host = [k.lowered["text"] for k in kernels.values() if k.host]
        device = [k.lowered["text"] for k in kernels.values() if not k.host]
        gpu = level == "gpu"
        if gpu:
            device = [f"gpu.module @{GPU_MODULE} {{\n" + "\n".join(device) + "\n}"] \
                if device else []
        head = "module attributes {gpu.container_module} {\n" if gpu else "module {\n"
        lowered = ir.Module.parse(head + "\n".join(host + device) + "\n}")
        funcs = _functions(lowered.body)
        callees = {n: k.callee(funcs[n]) for n, k in kernels.items()}
        texts = [bufferize_pipeline(fn, callees, GPU_MODULE if gpu else None)
                 for fn in pipelines]
        final = ir.Module.parse(head + "\n".join(host + device + texts) + "\n}")
        for name, op in _functions(final.body).items():
            if name in kernels:
                kernels[name].annotate(op)
        for op in list(module.body.operations):
            op.operation.erase()
        end = ir.InsertionPoint(module.body)
        for op in list(final.body.operations):
            op.operation.detach_from_parent()
            end.insert(op.operation)
        if gpu:
            module.operation.attributes["gpu.container_module"] = ir.UnitAttr.get()
    verify(module)
    return module
