// RUN: %qfuse-opt %s --split-input-file --passes qf-fuse | FileCheck %s

// shuffle is a store layout: of an mx scale computed in the pipeline it joins the
// scale's kernel (the bytes are stored once, shuffled); a scale given as a parameter
// (AITER's e8m0_shuffle of a stored scale) is laid out by a row kernel over its rows.

// CHECK-LABEL: func.func private @joined__k0(
// CHECK-SAME:    qf.reason = "", qf.space = "row"
// CHECK-NEXT:    %[[S:.+]] = "qf.scale"(%arg0)
// CHECK-NEXT:    %[[T:.+]] = "qf.shuffle"(%[[S]])
// CHECK-NEXT:    return %[[T]]
// CHECK-NOT:   func.func private @joined__k1
func.func @joined(%arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "x"}) -> (tensor<?x?xf8E8M0FNU> {qf.name = "t"}) {
  %0 = "qf.scale"(%arg0) {amax_floor = 1.000000e-10 : f64, dtype = "fp4_e2m1", dtype_max = 6.000000e+00 : f64, e8m0 = "roundup", granularity = "mx", operandSegmentSizes = array<i32: 1, 0>, pow2 = false, zero = "one"} : (tensor<?x?xbf16>) -> tensor<?x?xf8E8M0FNU> loc("s")
  %1 = "qf.shuffle"(%0) {pad = 0 : i64} : (tensor<?x?xf8E8M0FNU>) -> tensor<?x?xf8E8M0FNU> loc("t")
  return %1 : tensor<?x?xf8E8M0FNU>
}

// -----
// CHECK-LABEL: func.func private @shuffled_param__k0(
// CHECK-SAME:    %arg0: tensor<?x?xf8E8M0FNU> {qf.dims = ["M", "G"], qf.name = "s"}
// CHECK-SAME:    qf.reason = "", qf.space = "row"
// CHECK-NEXT:    %[[T:.+]] = "qf.shuffle"(%arg0) {pad = 127 : i64}
// CHECK-NEXT:    return %[[T]]
func.func @shuffled_param(%arg0: tensor<?x?xf8E8M0FNU> {qf.dims = ["M", "G"], qf.name = "s"}) -> (tensor<?x?xf8E8M0FNU> {qf.name = "t"}) {
  %0 = "qf.shuffle"(%arg0) {pad = 127 : i64} : (tensor<?x?xf8E8M0FNU>) -> tensor<?x?xf8E8M0FNU> loc("t")
  return %0 : tensor<?x?xf8E8M0FNU>
}
