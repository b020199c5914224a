// RUN: not %qfuse-opt %s --split-input-file --passes qf-lower-loops 2>&1 | FileCheck %s

// The lowering passes start from the fused module, once.

// A module lowered already is refused, naming the function.
// CHECK: qf-lower-loops: the module holds func.func @k, which is lowered already
func.func @k(%arg0: memref<?xf32>) attributes {llvm.emit_c_interface} {
  return
}

// -----
// A pipeline still holding stages (not fused) cannot be put on buffers.
// CHECK: invalid.mlir:[[# @LINE + 2]]:8: error: pipeline f holds qf.silu: a pipeline whose kernels are lowered holds only kernel calls (run qf-fuse first)
func.func @f(%arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "x"}) -> (tensor<?x?xf32> {qf.name = "y"}) {
  %0 = "qf.silu"(%arg0) : (tensor<?x?xbf16>) -> tensor<?x?xf32>
  return %0 : tensor<?x?xf32>
}
