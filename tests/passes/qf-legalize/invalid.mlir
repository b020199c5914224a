// RUN: not %qfuse-opt %s --split-input-file --passes qf-legalize 2>&1 | FileCheck %s

// The static shape rules, each an error at the stage's DSL position (here: the loc the
// DSL gave the op) or at its line in this file.

// CHECK: t.qp:3:9: error: mx quantisation works on whole 1x32 blocks: N = 100 is not a multiple of 32 (pad the rows, or use per_1x32 with fp32 scales)
func.func @mx_misfit(%arg0: tensor<?x100xbf16> {qf.dims = ["M", 100], qf.name = "x"}) -> tensor<?x4xf8E8M0FNU> {
  %0 = "qf.scale"(%arg0) {amax_floor = 1.000000e-10 : f64, dtype = "fp4_e2m1", dtype_max = 6.000000e+00 : f64, e8m0 = "roundup", granularity = "mx", operandSegmentSizes = array<i32: 1, 0>, zero = "one"} : (tensor<?x100xbf16>) -> tensor<?x4xf8E8M0FNU> loc("t.qp":3:9)
  return %0 : tensor<?x4xf8E8M0FNU>
}

// -----
// CHECK: invalid.mlir:[[# @LINE + 2]]:8: error: the key cache layout ends in the vector width x = 8 (16 bytes of the cache dtype), but the cache's last dim is 4: pass vec=4 or fix the cache shape
func.func @key_vec(%arg0: tensor<?x?x?xbf16>, %arg1: tensor<?x?x?x?x4xbf16>, %arg2: tensor<?xi64>) -> tensor<?x?x?x?x4xbf16> {
  %0 = "qf.cache_write"(%arg0, %arg1, %arg2) {dtype_max = 0.000000e+00 : f64, layout = "key", mode = "trunc", operandSegmentSizes = array<i32: 1, 1, 1, 0>, quant = "none", resultSegmentSizes = array<i32: 1, 0>, scale_layout = "default", vec = 8 : i64} : (tensor<?x?x?xbf16>, tensor<?x?x?x?x4xbf16>, tensor<?xi64>) -> tensor<?x?x?x?x4xbf16>
  return %0 : tensor<?x?x?x?x4xbf16>
}

// -----
// CHECK: invalid.mlir:[[# @LINE + 2]]:8: error: head size 12 is not a multiple of the key vector width x = 8
func.func @key_head(%arg0: tensor<?x?x12xbf16>, %arg1: tensor<?x?x?x?x8xbf16>, %arg2: tensor<?xi64>) -> tensor<?x?x?x?x8xbf16> {
  %0 = "qf.cache_write"(%arg0, %arg1, %arg2) {dtype_max = 0.000000e+00 : f64, layout = "key", mode = "trunc", operandSegmentSizes = array<i32: 1, 1, 1, 0>, quant = "none", resultSegmentSizes = array<i32: 1, 0>, scale_layout = "default", vec = 8 : i64} : (tensor<?x?x12xbf16>, tensor<?x?x?x?x8xbf16>, tensor<?xi64>) -> tensor<?x?x?x?x8xbf16>
  return %0 : tensor<?x?x?x?x8xbf16>
}
