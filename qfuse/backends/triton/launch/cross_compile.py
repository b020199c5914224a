"""Cross-compile Triton kernels without a GPU.

Works on triton 3.6 .. 3.9 (triton_adapter.compile_for: ``ASTSource`` + ``triton.compile``
for a ``GPUTarget``; signature keys are argument names).

* `gpu_target("cuda:sm_90" | "hip:gfx942" | Target)` -> Triton's `GPUTarget` (the one
  target spelling is ``qfuse.backends.base.Target``).
* `compile_kernel(jit_fn, signature, constexprs, target, ...)` -> `{stage: asm}` with the
  stages `source, ttir, ttgir, llir` and `ptx, cubin` (cuda) or `amdgcn, hsaco` (hip).
  A kernel decorated under `TRITON_INTERPRET=1` compiles too (its interpreted functions
  are jit functions while it compiles). Not thread safe.

To run the same kernels in the CPU interpreter: `triton_adapter.interpret` /
`interpreting`.
"""
from ..targets import gpu_target
from ..triton_adapter import compile_for, jit_function

__all__ = ["gpu_target", "compile_kernel"]


def compile_kernel(jit_fn, signature, constexprs, target, num_warps=4, num_stages=None,
                   enable_fp_fusion=False, attrs=None):
    """Cross-compile `jit_fn` for `target` (a ``Target``, its string, or a GPUTarget).

    signature: {arg name: type string ('*fp32', '*bf16', '*u8', '*fp8e4nv', 'i32', 'fp32',
    ...)}; constexprs: {arg name: value} (listed as 'constexpr' in the signature for you).
    attrs: optional {(arg index,): [['tt.divisibility', 16]]}. FP fusion is off by default
    (the semantics forbid FMA contraction). Returns {stage: asm text or bytes}."""
    target = gpu_target(target)
    fn = jit_function(jit_fn)
    name = fn.fn.__name__
    constexprs = dict(constexprs or {})
    names = fn.arg_names
    unknown = (set(signature) | set(constexprs)) - set(names)
    if unknown:
        raise ValueError(f"{name}: unknown arguments {sorted(unknown)}")
    sig = {}
    for arg in names:
        if arg in constexprs:
            sig[arg] = "constexpr"
        elif arg in signature:
            sig[arg] = signature[arg]
        else:
            raise ValueError(f"{name}: argument {arg!r} has neither a type nor a constexpr value")
    options = {"num_warps": num_warps, "enable_fp_fusion": enable_fp_fusion}
    if num_stages is not None:
        options["num_stages"] = num_stages
    return compile_for(fn, sig, constexprs, attrs or {}, target, options)
