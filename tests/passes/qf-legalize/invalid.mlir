// RUN: not %qfuse-opt %s --split-input-file --passes qf-legalize 2>&1 | FileCheck %s

// The stage requirements that constant dims decide, each an error (with the message the
// runtime gives at call time) at the stage's DSL position (here: the loc the DSL gave the
// op) or at its line in this file.

// CHECK: invalid.mlir:[[# @LINE + 2]]:8: error: cache_write: arg1: the key cache's last dim must be the vector width vec (needs 4 == 8, got 4 vs 8)
func.func @key_vec(%arg0: tensor<?x?x?xbf16>, %arg1: tensor<?x?x?x?x4xbf16>, %arg2: tensor<?xi64>) -> tensor<?x?x?x?x4xbf16> {
  %0 = "qf.cache_write"(%arg0, %arg1, %arg2) {amax_floor = 0.000000e+00 : f64, dtype_max = 0.000000e+00 : f64, floor = "floor", layout = "key", mode = "trunc", operandSegmentSizes = array<i32: 1, 1, 1, 0>, pow2 = false, quant = "none", recip = "mul_rcp", requant = "grow", resultSegmentSizes = array<i32: 1, 0>, scale_block = 0 : i64, scale_layout = "default", vec = 8 : i64, zero = "zero"} : (tensor<?x?x?xbf16>, tensor<?x?x?x?x4xbf16>, tensor<?xi64>) -> tensor<?x?x?x?x4xbf16>
  return %0 : tensor<?x?x?x?x4xbf16>
}

// -----
// CHECK: t.qp:3:9: error: cache_write: arg0: the head size D must be a multiple of the key cache's vector width X (needs 12 % 8 == 0, got 12 vs 8)
func.func @key_head(%arg0: tensor<?x?x12xbf16>, %arg1: tensor<?x?x?x?x8xbf16>, %arg2: tensor<?xi64>) -> tensor<?x?x?x?x8xbf16> {
  %0 = "qf.cache_write"(%arg0, %arg1, %arg2) {amax_floor = 0.000000e+00 : f64, dtype_max = 0.000000e+00 : f64, floor = "floor", layout = "key", mode = "trunc", operandSegmentSizes = array<i32: 1, 1, 1, 0>, pow2 = false, quant = "none", recip = "mul_rcp", requant = "grow", resultSegmentSizes = array<i32: 1, 0>, scale_block = 0 : i64, scale_layout = "default", vec = 8 : i64, zero = "zero"} : (tensor<?x?x12xbf16>, tensor<?x?x?x?x8xbf16>, tensor<?xi64>) -> tensor<?x?x?x?x8xbf16> loc("t.qp":3:9)
  return %0 : tensor<?x?x?x?x8xbf16>
}
