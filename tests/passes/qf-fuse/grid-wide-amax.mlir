// RUN: %qfuse-opt %s --split-input-file --passes qf-fuse | FileCheck %s

// A dynamic per_tensor scale needs the amax of the whole tensor: its own kernel, which
// recomputes its input (a clone of the norm, and of the constant eps) rather than reading
// a materialised y. The norm itself moves into the row kernel that quantises (planned
// first, so its boundary has no reason). The scale s is of y, which the row kernel
// computes again: no qf.scale_of fact on its argument.

// CHECK-LABEL: func.func private @f__k0(
// CHECK-SAME:    -> (tensor<1xf32> {qf.name = "s"})
// CHECK-SAME:    qf.reason = "grid-wide-amax: a dynamic per_tensor scale needs the amax of the whole tensor before quantising", qf.space = "tensor_amax"
// CHECK-NEXT:    %[[EPS:.+]] = arith.constant 9.99999997E-7 : f32
// CHECK-NEXT:    %[[Y:.+]] = "qf.norm"(%arg0, %arg1, %[[EPS]])
// CHECK-NEXT:    %[[S:.+]] = "qf.scale"(%[[Y]])
// CHECK-NEXT:    return %[[S]]
// CHECK-LABEL: func.func private @f__k1(
// CHECK-SAME:    %arg2: tensor<1xf32> {qf.dims = [1], qf.name = "s"})
// CHECK-SAME:    qf.reason = "", qf.space = "row"
// CHECK-NEXT:    %[[EPS1:.+]] = arith.constant 9.99999997E-7 : f32
// CHECK-NEXT:    %[[Y1:.+]] = "qf.norm"(%arg0, %arg1, %[[EPS1]])
// CHECK-NEXT:    %[[Q:.+]] = "qf.round"(%[[Y1]], %arg2)
// CHECK-NEXT:    return %[[Q]]
// CHECK-LABEL: func.func @f(
// CHECK-NEXT:    %[[K0:.+]] = call @f__k0(%arg0, %arg1)
// CHECK-NEXT:    %[[K1:.+]] = call @f__k1(%arg0, %arg1, %[[K0]])
// CHECK-NEXT:    return %[[K1]], %[[K0]]
func.func @f(%arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "x"}, %arg1: tensor<?xbf16> {qf.dims = ["N"], qf.name = "w"}) -> (tensor<?x?xf8E4M3FN> {qf.name = "q"}, tensor<1xf32> {qf.name = "s"}) {
  %cst = arith.constant 9.99999997E-7 : f32
  %0 = "qf.norm"(%arg0, %arg1, %cst) {dtype = "f32", gemma = false, kind = "rms", operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>, residual_sum = "fp32", resultSegmentSizes = array<i32: 1, 0>} : (tensor<?x?xbf16>, tensor<?xbf16>, f32) -> tensor<?x?xf32> loc("y")
  %1 = "qf.scale"(%0) {amax_floor = 1.000000e-10 : f64, dtype = "fp8_e4m3fn", dtype_max = 4.480000e+02 : f64, e8m0 = "roundup", granularity = "per_tensor", operandSegmentSizes = array<i32: 1, 0>, pow2 = false, zero = "zero"} : (tensor<?x?xf32>) -> tensor<1xf32> loc("s")
  %2 = "qf.round"(%0, %1) {dtype = "fp8_e4m3fn", dtype_max = 4.480000e+02 : f64, granularity = "per_tensor", mode = "rne", recip = "div", sat = true} : (tensor<?x?xf32>, tensor<1xf32>) -> tensor<?x?xf8E4M3FN> loc("q")
  return %2, %1 : tensor<?x?xf8E4M3FN>, tensor<1xf32>
}

// -----
// A chain that only feeds the amax (x + x) is recomputed there; the row kernel that
// computed it first has no output left and is not emitted, and the original add is gone.

// CHECK-LABEL: func.func private @g__k0(
// CHECK-SAME:    qf.space = "tensor_amax"
// CHECK-NEXT:    %[[A:.+]] = "qf.add"(%arg0, %arg0)
// CHECK-NEXT:    %[[S:.+]] = "qf.scale"(%[[A]])
// CHECK-NEXT:    return %[[S]]
// CHECK-LABEL: func.func private @g__k1(
// CHECK-NOT:     qf.add
// CHECK:         "qf.round"(%arg0, %arg1)
// CHECK-LABEL: func.func @g(
// CHECK-NEXT:    call @g__k0
// CHECK-NEXT:    call @g__k1
// CHECK-NEXT:    return
func.func @g(%arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "x"}) -> (tensor<?x?xf8E4M3FN> {qf.name = "q"}, tensor<1xf32> {qf.name = "s"}) {
  %0 = "qf.add"(%arg0, %arg0) : (tensor<?x?xbf16>, tensor<?x?xbf16>) -> tensor<?x?xf32>
  %1 = "qf.scale"(%0) {amax_floor = 1.000000e-10 : f64, dtype = "fp8_e4m3fn", dtype_max = 4.480000e+02 : f64, e8m0 = "roundup", granularity = "per_tensor", operandSegmentSizes = array<i32: 1, 0>, pow2 = false, zero = "zero"} : (tensor<?x?xf32>) -> tensor<1xf32> loc("s")
  %2 = "qf.round"(%arg0, %1) {dtype = "fp8_e4m3fn", dtype_max = 4.480000e+02 : f64, granularity = "per_tensor", mode = "rne", recip = "div", sat = true} : (tensor<?x?xbf16>, tensor<1xf32>) -> tensor<?x?xf8E4M3FN> loc("q")
  return %2, %1 : tensor<?x?xf8E4M3FN>, tensor<1xf32>
}

// -----
// An amax kernel that does not feed the row kernel launches after it (planning order);
// its copy of silu is cloned, the row kernel's silu is moved.

// CHECK-LABEL: func.func private @h__k0(
// CHECK-SAME:    -> (tensor<?x?xf32> {qf.name = "y"})
// CHECK-SAME:    qf.space = "row"
// CHECK-NEXT:    "qf.silu"(%arg0)
// CHECK-LABEL: func.func private @h__k1(
// CHECK-SAME:    qf.space = "tensor_amax"
// CHECK-NEXT:    %[[Y:.+]] = "qf.silu"(%arg0)
// CHECK-NEXT:    "qf.scale"(%[[Y]])
// CHECK-LABEL: func.func @h(
// CHECK-NEXT:    %[[K0:.+]] = call @h__k0(%arg0)
// CHECK-NEXT:    %[[K1:.+]] = call @h__k1(%arg0)
// CHECK-NEXT:    return %[[K0]], %[[K1]]
func.func @h(%arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "x"}) -> (tensor<?x?xf32> {qf.name = "y"}, tensor<1xf32> {qf.name = "s"}) {
  %0 = "qf.silu"(%arg0) : (tensor<?x?xbf16>) -> tensor<?x?xf32> loc("y")
  %1 = "qf.scale"(%0) {amax_floor = 1.000000e-10 : f64, dtype = "fp8_e4m3fn", dtype_max = 4.480000e+02 : f64, e8m0 = "roundup", granularity = "per_tensor", operandSegmentSizes = array<i32: 1, 0>, pow2 = false, zero = "zero"} : (tensor<?x?xf32>) -> tensor<1xf32> loc("s")
  return %0, %1 : tensor<?x?xf32>, tensor<1xf32>
}
