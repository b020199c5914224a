// RUN: not %qfuse-opt %s --split-input-file --passes qf-fuse 2>&1 | FileCheck %s

// Hand-written IR the planner cannot outline is a located error, not a KeyError or
// MLIR's "redefinition of symbol" with a whole function dumped.

// A kernel symbol is never a pipeline's.
// CHECK: invalid.mlir:[[# @LINE + 1]]:1: error: pipeline 'a' would get a kernel named 'a__k0', which is also a pipeline's name
func.func @a(%arg0: tensor<?x?xbf16>) -> tensor<?x?xf32> {
  %0 = "qf.silu"(%arg0) : (tensor<?x?xbf16>) -> tensor<?x?xf32>
  return %0 : tensor<?x?xf32>
}
func.func @a__k0(%arg0: tensor<?x?xbf16>) -> tensor<?x?xf32> {
  %0 = "qf.silu"(%arg0) : (tensor<?x?xbf16>) -> tensor<?x?xf32>
  return %0 : tensor<?x?xf32>
}

// -----
// Stages beside kernel calls would never run.
// CHECK: invalid.mlir:[[# @LINE + 7]]:8: error: pipeline 'f' mixes kernel calls and stages
func.func private @f__k0(%arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "x"}) -> (tensor<?x?xf32> {qf.name = "y"}) attributes {qf.kernel, qf.reason = "", qf.space = "row"} {
  %0 = "qf.silu"(%arg0) : (tensor<?x?xbf16>) -> tensor<?x?xf32>
  return %0 : tensor<?x?xf32>
}
func.func @f(%arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "x"}) -> (tensor<?x?xf32>, tensor<?x?xf32>) {
  %0 = "qf.silu"(%arg0) : (tensor<?x?xbf16>) -> tensor<?x?xf32>
  %1 = call @f__k0(%arg0) : (tensor<?x?xbf16>) -> tensor<?x?xf32>
  return %0, %1 : tensor<?x?xf32>, tensor<?x?xf32>
}
