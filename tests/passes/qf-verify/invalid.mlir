// RUN: not %qfuse-opt %s --split-input-file --passes qf-verify 2>&1 | FileCheck %s

// Invalid qf IR is an error at the op's position in this file (the verifiers run when
// the module is parsed), never a traceback.

// CHECK: invalid.mlir:[[# @LINE + 2]]:8: error: qf.silu: result 'out' must be f32[?, ?], got bf16[?, ?]
func.func @wrong_result(%x: tensor<?x?xbf16>) -> tensor<?x?xbf16> {
  %0 = "qf.silu"(%x) : (tensor<?x?xbf16>) -> tensor<?x?xbf16>
  return %0 : tensor<?x?xbf16>
}

// -----
// CHECK: invalid.mlir:[[# @LINE + 2]]:8: error: qf.scale: option granularity='per_row' is not one of per_tensor, per_token,
func.func @bad_option(%x: tensor<?x?xbf16>) -> tensor<?x1xf32> {
  %0 = "qf.scale"(%x) {amax_floor = 1.000000e-10 : f64, dtype = "fp8_e4m3fn", dtype_max = 4.480000e+02 : f64, e8m0 = "roundup", granularity = "per_row", operandSegmentSizes = array<i32: 1, 0>, pow2 = false, zero = "one"} : (tensor<?x?xbf16>) -> tensor<?x1xf32>
  return %0 : tensor<?x1xf32>
}

// -----
// CHECK: invalid.mlir:[[# @LINE + 2]]:8: error: qf.gelu: missing option attribute approx
func.func @missing_option(%x: tensor<?x?xbf16>) -> tensor<?x?xf32> {
  %0 = "qf.gelu"(%x) : (tensor<?x?xbf16>) -> tensor<?x?xf32>
  return %0 : tensor<?x?xf32>
}

// -----
// Static dims are exact: a [64] weight for 128 columns is a provable mismatch.
// CHECK: invalid.mlir:[[# @LINE + 2]]:8: error: qf.norm: mismatched dims: norm w length must equal the last dim of x (64 vs 128) (operand w)
func.func @static_mismatch(%x: tensor<4x128xbf16>, %w: tensor<64xbf16>, %eps: f32) -> tensor<4x128xf32> {
  %0 = "qf.norm"(%x, %w, %eps) {dtype = "f32", gemma = false, kind = "rms", operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>, residual_sum = "fp32", resultSegmentSizes = array<i32: 1, 0>} : (tensor<4x128xbf16>, tensor<64xbf16>, f32) -> tensor<4x128xf32>
  return %0 : tensor<4x128xf32>
}

// -----
// CHECK: invalid.mlir:[[# @LINE + 2]]:8: error: unregistered operation 'qf.sigmoid' found in dialect ('qf')
func.func @unknown_op(%x: tensor<?x?xbf16>) -> tensor<?x?xf32> {
  %0 = "qf.sigmoid"(%x) : (tensor<?x?xbf16>) -> tensor<?x?xf32>
  return %0 : tensor<?x?xf32>
}

// -----
// CHECK: invalid.mlir:[[# @LINE + 2]]:20: error: expected ')' to end operand list
func.func @syntax(%x: tensor<?x?xbf16>) -> tensor<?x?xf32> {
  %0 = "qf.silu"(%x : (tensor<?x?xbf16>) -> tensor<?x?xf32>
  return %0 : tensor<?x?xf32>
}
