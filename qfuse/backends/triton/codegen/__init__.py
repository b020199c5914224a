"""Code generation: a fused kernel (a TypedPipeline) -> Triton module text (KernelSource)."""
from .render import column_split_ok, infer_space, render_kernel, scale_fact

__all__ = ["render_kernel", "infer_space", "scale_fact", "column_split_ok"]
