// RUN: %qfuse-opt %s --passes qf-cse | FileCheck %s

// Two identical stages (same op, operands and options) become one; a stage that differs
// in one option stays.

// CHECK-LABEL: func.func @f(
// CHECK-NEXT:    %[[S:.+]] = "qf.scale"(%arg0) {{{.*}}zero = "one"}
// CHECK-NEXT:    %[[F:.+]] = "qf.scale"(%arg0) {{{.*}}zero = "floor"}
// CHECK-NEXT:    %[[Q:.+]] = "qf.round"(%arg0, %[[S]])
// CHECK-NEXT:    return %[[Q]], %[[S]], %[[F]]
func.func @f(%arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "x"}) -> (tensor<?x?xf8E4M3FN>, tensor<?x1xf32>, tensor<?x1xf32>) {
  %0 = "qf.scale"(%arg0) {amax_floor = 1.000000e-10 : f64, dtype = "fp8_e4m3fn", dtype_max = 4.480000e+02 : f64, e8m0 = "roundup", granularity = "per_token", operandSegmentSizes = array<i32: 1, 0>, pow2 = false, zero = "one"} : (tensor<?x?xbf16>) -> tensor<?x1xf32>
  %1 = "qf.scale"(%arg0) {amax_floor = 1.000000e-10 : f64, dtype = "fp8_e4m3fn", dtype_max = 4.480000e+02 : f64, e8m0 = "roundup", granularity = "per_token", operandSegmentSizes = array<i32: 1, 0>, pow2 = false, zero = "floor"} : (tensor<?x?xbf16>) -> tensor<?x1xf32>
  %2 = "qf.scale"(%arg0) {amax_floor = 1.000000e-10 : f64, dtype = "fp8_e4m3fn", dtype_max = 4.480000e+02 : f64, e8m0 = "roundup", granularity = "per_token", operandSegmentSizes = array<i32: 1, 0>, pow2 = false, zero = "one"} : (tensor<?x?xbf16>) -> tensor<?x1xf32>
  %3 = "qf.round"(%arg0, %0) {dtype = "fp8_e4m3fn", dtype_max = 4.480000e+02 : f64, granularity = "per_token", mode = "rne", recip = "div", sat = true} : (tensor<?x?xbf16>, tensor<?x1xf32>) -> tensor<?x?xf8E4M3FN>
  return %3, %2, %1 : tensor<?x?xf8E4M3FN>, tensor<?x1xf32>, tensor<?x1xf32>
}
