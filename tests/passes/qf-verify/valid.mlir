// RUN: %qfuse-opt %s --passes qf-verify | FileCheck %s

// A verified module prints back unchanged: every option is an attribute, the result
// types are those the stage's rule infers.

// CHECK-LABEL: func.func @rms_fp8(
// CHECK-SAME:    %arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "x"}
// CHECK-NEXT:    %[[N:.+]] = "qf.norm"(%arg0, %arg1, %arg2) {dtype = "f32", gemma = false, kind = "rms", {{.*}}} : (tensor<?x?xbf16>, tensor<?xbf16>, f32) -> tensor<?x?xf32>
// CHECK-NEXT:    %[[S:.+]] = "qf.scale"(%[[N]]) {{{.*}}granularity = "per_token"{{.*}}} : (tensor<?x?xf32>) -> tensor<?x1xf32>
// CHECK-NEXT:    %[[Q:.+]] = "qf.round"(%[[N]], %[[S]])
// CHECK-NEXT:    return %[[Q]], %[[S]]
func.func @rms_fp8(%arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "x"}, %arg1: tensor<?xbf16> {qf.dims = ["N"], qf.name = "w"}, %arg2: f32 {qf.default = 9.9999999999999995E-7 : f64, qf.name = "eps"}) -> (tensor<?x?xf8E4M3FN> {qf.name = "q"}, tensor<?x1xf32> {qf.name = "s"}) {
  %0 = "qf.norm"(%arg0, %arg1, %arg2) {dtype = "f32", gemma = false, kind = "rms", operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>, residual_sum = "fp32", resultSegmentSizes = array<i32: 1, 0>} : (tensor<?x?xbf16>, tensor<?xbf16>, f32) -> tensor<?x?xf32>
  %1 = "qf.scale"(%0) {amax_floor = 1.000000e-10 : f64, dtype = "fp8_e4m3fn", dtype_max = 4.480000e+02 : f64, e8m0 = "roundup", granularity = "per_token", operandSegmentSizes = array<i32: 1, 0>, pow2 = false, zero = "one"} : (tensor<?x?xf32>) -> tensor<?x1xf32>
  %2 = "qf.round"(%0, %1) {dtype = "fp8_e4m3fn", dtype_max = 4.480000e+02 : f64, granularity = "per_token", mode = "rne", recip = "div", sat = true} : (tensor<?x?xf32>, tensor<?x1xf32>) -> tensor<?x?xf8E4M3FN>
  return %2, %1 : tensor<?x?xf8E4M3FN>, tensor<?x1xf32>
}
