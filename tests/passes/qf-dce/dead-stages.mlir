// RUN: %qfuse-opt %s --split-input-file --passes qf-dce | FileCheck %s

// Every qf op is Pure: a stage whose results nobody uses is erased, and so is a chain
// that only fed it.

// CHECK-LABEL: func.func @f(
// CHECK-NOT:     qf.silu
// CHECK-NOT:     qf.mul
// CHECK:         %[[S:.+]] = "qf.scale"(%arg0)
// CHECK-NEXT:    %[[Q:.+]] = "qf.round"(%arg0, %[[S]])
// CHECK-NEXT:    return %[[Q]], %[[S]]
func.func @f(%arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "x"}) -> (tensor<?x?xf8E4M3FN>, tensor<?x1xf32>) {
  %0 = "qf.silu"(%arg0) : (tensor<?x?xbf16>) -> tensor<?x?xf32>
  %1 = "qf.mul"(%0, %0) : (tensor<?x?xf32>, tensor<?x?xf32>) -> tensor<?x?xf32>
  %2 = "qf.scale"(%arg0) {amax_floor = 1.000000e-10 : f64, dtype = "fp8_e4m3fn", dtype_max = 4.480000e+02 : f64, e8m0 = "roundup", granularity = "per_token", operandSegmentSizes = array<i32: 1, 0>, pow2 = false, zero = "one"} : (tensor<?x?xbf16>) -> tensor<?x1xf32>
  %3 = "qf.round"(%arg0, %2) {dtype = "fp8_e4m3fn", dtype_max = 4.480000e+02 : f64, granularity = "per_token", mode = "rne", recip = "div", sat = true} : (tensor<?x?xbf16>, tensor<?x1xf32>) -> tensor<?x?xf8E4M3FN>
  return %3, %2 : tensor<?x?xf8E4M3FN>, tensor<?x1xf32>
}

// -----
// A private kernel function nothing calls is dropped (symbol-dce).

// CHECK-NOT:   @g__k9
// CHECK-LABEL: func.func @g(
func.func private @g__k9(%arg0: tensor<?x?xbf16>) -> tensor<?x?xf32> attributes {qf.kernel, qf.reason = "", qf.space = "row"} {
  %0 = "qf.silu"(%arg0) : (tensor<?x?xbf16>) -> tensor<?x?xf32>
  return %0 : tensor<?x?xf32>
}
func.func @g(%arg0: tensor<?x?xbf16>) -> tensor<?x?xbf16> {
  return %arg0 : tensor<?x?xbf16>
}
