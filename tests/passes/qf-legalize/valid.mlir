// RUN: %qfuse-opt %s --passes qf-legalize | FileCheck %s

// Legal stages pass unchanged: no attribute is added (a scale's block is the catalog's
// group size of its granularity, which backends read).

// CHECK-LABEL: func.func @f(
// CHECK-NEXT:    %[[S:.+]] = "qf.scale"(%arg0) {amax_floor = 1.000000e-10 : f64, dtype = "fp4_e2m1", dtype_max = 6.000000e+00 : f64, e8m0 = "roundup", granularity = "mx", operandSegmentSizes = array<i32: 1, 0>, pow2 = false, zero = "one"} : (tensor<?x128xbf16>) -> tensor<?x4xf8E8M0FNU>
// CHECK-NEXT:    %[[Q:.+]] = "qf.round"(%arg0, %[[S]]) {dtype = "fp4_e2m1", dtype_max = 6.000000e+00 : f64, granularity = "mx", mode = "rne", recip = "div", sat = true} : (tensor<?x128xbf16>, tensor<?x4xf8E8M0FNU>) -> tensor<?x128xf4E2M1FN>
// CHECK-NEXT:    %[[P:.+]] = "qf.pack"(%[[Q]]) {order = "linear"} : (tensor<?x128xf4E2M1FN>) -> tensor<?x64xui8>
// CHECK-NEXT:    return %[[P]], %[[S]]
func.func @f(%arg0: tensor<?x128xbf16> {qf.dims = ["M", 128], qf.name = "x"}) -> (tensor<?x64xui8>, tensor<?x4xf8E8M0FNU>) {
  %0 = "qf.scale"(%arg0) {amax_floor = 1.000000e-10 : f64, dtype = "fp4_e2m1", dtype_max = 6.000000e+00 : f64, e8m0 = "roundup", granularity = "mx", operandSegmentSizes = array<i32: 1, 0>, pow2 = false, zero = "one"} : (tensor<?x128xbf16>) -> tensor<?x4xf8E8M0FNU>
  %1 = "qf.round"(%arg0, %0) {dtype = "fp4_e2m1", dtype_max = 6.000000e+00 : f64, granularity = "mx", mode = "rne", recip = "div", sat = true} : (tensor<?x128xbf16>, tensor<?x4xf8E8M0FNU>) -> tensor<?x128xf4E2M1FN>
  %2 = "qf.pack"(%1) {order = "linear"} : (tensor<?x128xf4E2M1FN>) -> tensor<?x64xui8>
  return %2, %0 : tensor<?x64xui8>, tensor<?x4xf8E8M0FNU>
}
