// RUN: %qfuse-opt %s --passes qf-fuse | FileCheck %s

// The amax kernel takes its scale over the input x itself; the row kernel reads both x
// and the scale. qf-fuse writes that fact on the scale argument (qf.scale_of, x = the
// argument number of x): every |x| is at most the amax behind s, so the backend may
// quantise x / s without range checks.

// CHECK-LABEL: func.func private @f__k0(
// CHECK-SAME:    %arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "x"})
// CHECK-SAME:    qf.space = "tensor_amax"
// CHECK-LABEL: func.func private @f__k1(
// CHECK-SAME:    %arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "x"},
// CHECK-SAME:    %arg1: tensor<1xf32> {qf.dims = [1], qf.name = "s", qf.scale_of = {dtype_max = 2.400000e+02 : f64, granularity = "per_tensor", x = 0 : i64}})
// CHECK-NEXT:    "qf.round"(%arg0, %arg1)
func.func @f(%arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "x"}) -> (tensor<?x?xf8E4M3FN> {qf.name = "q"}, tensor<1xf32> {qf.name = "s"}) {
  %0 = "qf.scale"(%arg0) {amax_floor = 1.000000e-10 : f64, dtype = "fp8_e4m3fn", dtype_max = 2.400000e+02 : f64, e8m0 = "roundup", granularity = "per_tensor", operandSegmentSizes = array<i32: 1, 0>, pow2 = false, zero = "zero"} : (tensor<?x?xbf16>) -> tensor<1xf32> loc("s")
  %1 = "qf.round"(%arg0, %0) {dtype = "fp8_e4m3fn", dtype_max = 4.480000e+02 : f64, granularity = "per_tensor", mode = "rne", recip = "div", sat = true} : (tensor<?x?xbf16>, tensor<1xf32>) -> tensor<?x?xf8E4M3FN> loc("q")
  return %1, %0 : tensor<?x?xf8E4M3FN>, tensor<1xf32>
}
