"""qfuse: a DSL and MLIR compiler for fused LLM quantization kernels.

    from qfuse import quant_pipeline          # decorate a pipeline function
    pipes = qfuse.load("bundle/")             # prebuilt kernels: torch + triton only
    qfuse.install_import_hook()               # `import mypipes` finds mypipes.qp

Heavy parts (lark, the MLIR bindings, triton) are imported on first use.
"""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["quant_pipeline", "QuantPipeline", "load", "install_import_hook", "QfuseError",
           "__version__"]

from .errors import QfuseError


def __getattr__(name: str):
    if name in ("quant_pipeline", "QuantPipeline"):
        from .runtime import pipeline
        return getattr(pipeline, name)
    if name == "load":
        from .runtime.bundle import load
        return load
    if name == "install_import_hook":
        from .runtime.import_hook import install_import_hook
        return install_import_hook
    raise AttributeError(f"module 'qfuse' has no attribute {name!r}")
