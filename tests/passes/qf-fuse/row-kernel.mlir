// RUN: %qfuse-opt %s --passes qf-fuse | FileCheck %s

// add -> norm -> scale(per_token) -> round iterate over the same rows: one row kernel.
// The stages move into it; the pipeline keeps its signature and calls the kernel.

// CHECK-LABEL: func.func private @f__k0(
// CHECK-SAME:    %arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "x"}, %arg1: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "r"}, %arg2: tensor<?xbf16> {qf.dims = ["N"], qf.name = "w"}, %arg3: f32 {qf.name = "eps"})
// CHECK-SAME:    -> (tensor<?x1xf32> {qf.name = "s"}, tensor<?x?xf8E4M3FN> {qf.name = "q"})
// CHECK-SAME:    attributes {qf.kernel, qf.reason = "", qf.space = "row"}
// CHECK-NEXT:    %[[H:.+]] = "qf.add"(%arg0, %arg1)
// CHECK-NEXT:    %[[Y:.+]] = "qf.norm"(%[[H]], %arg2, %arg3)
// CHECK-NEXT:    %[[S:.+]] = "qf.scale"(%[[Y]])
// CHECK-NEXT:    %[[Q:.+]] = "qf.round"(%[[Y]], %[[S]])
// CHECK-NEXT:    return %[[S]], %[[Q]] : tensor<?x1xf32>, tensor<?x?xf8E4M3FN>
// CHECK-NEXT:  }
// CHECK-LABEL: func.func @f(
// CHECK-SAME:    %arg3: f32 {qf.default = 9.9999999999999995E-7 : f64, qf.name = "eps"}
// CHECK-NEXT:    %[[K:.+]]:2 = call @f__k0(%arg0, %arg1, %arg2, %arg3)
// CHECK-NEXT:    return %[[K]]#1, %[[K]]#0
// CHECK-NOT:   qf.
func.func @f(%arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "x"}, %arg1: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "r"}, %arg2: tensor<?xbf16> {qf.dims = ["N"], qf.name = "w"}, %arg3: f32 {qf.default = 9.9999999999999995E-7 : f64, qf.name = "eps"}) -> (tensor<?x?xf8E4M3FN> {qf.name = "q"}, tensor<?x1xf32> {qf.name = "s"}) {
  %0 = "qf.add"(%arg0, %arg1) : (tensor<?x?xbf16>, tensor<?x?xbf16>) -> tensor<?x?xf32> loc("h")
  %1 = "qf.norm"(%0, %arg2, %arg3) {dtype = "f32", gemma = false, kind = "rms", operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>, residual_sum = "fp32", resultSegmentSizes = array<i32: 1, 0>} : (tensor<?x?xf32>, tensor<?xbf16>, f32) -> tensor<?x?xf32> loc("y")
  %2 = "qf.scale"(%1) {amax_floor = 1.000000e-10 : f64, dtype = "fp8_e4m3fn", dtype_max = 4.480000e+02 : f64, e8m0 = "roundup", granularity = "per_token", operandSegmentSizes = array<i32: 1, 0>, pow2 = false, zero = "one"} : (tensor<?x?xf32>) -> tensor<?x1xf32> loc("s")
  %3 = "qf.round"(%1, %2) {dtype = "fp8_e4m3fn", dtype_max = 4.480000e+02 : f64, granularity = "per_token", mode = "rne", recip = "div", sat = true} : (tensor<?x?xf32>, tensor<?x1xf32>) -> tensor<?x?xf8E4M3FN> loc("q")
  return %3, %2 : tensor<?x?xf8E4M3FN>, tensor<?x1xf32>
}
