// RUN: %qfuse-opt %s --passes qf-fuse | FileCheck %s

// Each kernel holds its own copy of the literals it reads; a literal the pipeline
// returns as it is stays in the pipeline, and one that only kernels read is gone.

// CHECK-LABEL: func.func private @f__k0(
// CHECK-SAME:    qf.space = "tensor_amax"
// CHECK-NEXT:    %[[TWO:.+]] = arith.constant 2.000000e+00 : f32
// CHECK-NEXT:    %[[A:.+]] = "qf.mul"(%arg0, %[[TWO]])
// CHECK-NEXT:    "qf.scale"(%[[A]])
// CHECK-LABEL: func.func private @f__k1(
// CHECK-SAME:    qf.space = "row"
// CHECK-NEXT:    %[[TWO1:.+]] = arith.constant 2.000000e+00 : f32
// CHECK-NEXT:    %[[ONE:.+]] = arith.constant 1.000000e+00 : f32
// CHECK-NEXT:    %[[A1:.+]] = "qf.mul"(%arg0, %[[TWO1]])
// CHECK-NEXT:    "qf.round"(%[[A1]], %arg1)
// CHECK-NEXT:    "qf.add"(%[[A1]], %[[ONE]])
// CHECK-LABEL: func.func @f(
// CHECK-NEXT:    %[[SEVEN:.+]] = arith.constant 7.000000e+00 : f32
// CHECK-NEXT:    %[[K0:.+]] = call @f__k0(%arg0)
// CHECK-NEXT:    %[[K1:.+]]:2 = call @f__k1(%arg0, %[[K0]])
// CHECK-NEXT:    return %[[K1]]#0, %[[K1]]#1, %[[K0]], %[[SEVEN]]
func.func @f(%arg0: tensor<?x?xf32> {qf.dims = ["M", "N"], qf.name = "x"}) -> (tensor<?x?xf8E4M3FN> {qf.name = "q"}, tensor<?x?xf32> {qf.name = "b"}, tensor<1xf32> {qf.name = "s"}, f32 {qf.name = "seven"}) {
  %two = arith.constant 2.000000e+00 : f32
  %one = arith.constant 1.000000e+00 : f32
  %seven = arith.constant 7.000000e+00 : f32
  %0 = "qf.mul"(%arg0, %two) : (tensor<?x?xf32>, f32) -> tensor<?x?xf32> loc("a")
  %1 = "qf.scale"(%0) {amax_floor = 1.000000e-10 : f64, dtype = "fp8_e4m3fn", dtype_max = 4.480000e+02 : f64, e8m0 = "roundup", granularity = "per_tensor", operandSegmentSizes = array<i32: 1, 0>, pow2 = false, zero = "zero"} : (tensor<?x?xf32>) -> tensor<1xf32> loc("s")
  %2 = "qf.round"(%0, %1) {dtype = "fp8_e4m3fn", dtype_max = 4.480000e+02 : f64, granularity = "per_tensor", mode = "rne", recip = "div", sat = true} : (tensor<?x?xf32>, tensor<1xf32>) -> tensor<?x?xf8E4M3FN> loc("q")
  %3 = "qf.add"(%0, %one) : (tensor<?x?xf32>, f32) -> tensor<?x?xf32> loc("b")
  return %2, %3, %1, %seven : tensor<?x?xf8E4M3FN>, tensor<?x?xf32>, tensor<1xf32>, f32
}
