// RUN: %qfuse-opt %s --split-input-file --passes qf-fuse | FileCheck %s

// Why a kernel boundary exists is the callee's qf.reason.

// A gather reads rows of an in-kernel value through an index: that value would live in
// another program's registers, so silu ends its kernel.
// CHECK-LABEL: func.func private @gathered__k0(
// CHECK-SAME:    -> (tensor<?x?xf32> {qf.name = "y"})
// CHECK-SAME:    qf.reason = "", qf.space = "row"
// CHECK-NEXT:    "qf.silu"
// CHECK-NEXT:    return
// CHECK-LABEL: func.func private @gathered__k1(
// CHECK-SAME:    %arg0: tensor<?x?xf32> {qf.dims = ["M", "N"], qf.name = "y"}, %arg1: tensor<?xi32> {qf.dims = ["R"], qf.name = "ids"}
// CHECK-SAME:    qf.reason = "remapped-rows: gather reads rows of y through an index", qf.space = "row"
// CHECK-NEXT:    "qf.gather"(%arg0, %arg1)
// CHECK-NEXT:    "qf.scale"
// CHECK-NEXT:    "qf.round"
func.func @gathered(%arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "x"}, %arg1: tensor<?xi32> {qf.dims = ["R"], qf.name = "ids"}) -> (tensor<?x?xf8E4M3FN> {qf.name = "q"}, tensor<?x1xf32> {qf.name = "s"}) {
  %0 = "qf.silu"(%arg0) : (tensor<?x?xbf16>) -> tensor<?x?xf32> loc("y")
  %1 = "qf.gather"(%0, %arg1) {packed_ids = false, topk = 1 : i64} : (tensor<?x?xf32>, tensor<?xi32>) -> tensor<?x?xf32> loc("g")
  %2 = "qf.scale"(%1) {amax_floor = 1.000000e-10 : f64, dtype = "fp8_e4m3fn", dtype_max = 4.480000e+02 : f64, e8m0 = "roundup", granularity = "per_token", operandSegmentSizes = array<i32: 1, 0>, pow2 = false, zero = "one"} : (tensor<?x?xf32>) -> tensor<?x1xf32> loc("s")
  %3 = "qf.round"(%1, %2) {dtype = "fp8_e4m3fn", dtype_max = 4.480000e+02 : f64, granularity = "per_token", mode = "rne", recip = "div", sat = true} : (tensor<?x?xf32>, tensor<?x1xf32>) -> tensor<?x?xf8E4M3FN> loc("q")
  return %3, %2 : tensor<?x?xf8E4M3FN>, tensor<?x1xf32>
}

// -----
// 128x128 tiles read their input from memory: the row-space silu is materialised.
// CHECK-LABEL: func.func private @tiles__k0(
// CHECK-SAME:    qf.reason = "", qf.space = "row"
// CHECK-NEXT:    "qf.silu"
// CHECK-LABEL: func.func private @tiles__k1(
// CHECK-SAME:    qf.reason = "tile-space: 128x128 scales quantise tiles, so their input comes from memory", qf.space = "tile"
// CHECK-NEXT:    %[[S:.+]] = "qf.scale"(%arg0)
// CHECK-NEXT:    "qf.round"(%arg0, %[[S]])
func.func @tiles(%arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "x"}) -> (tensor<?x?xf8E4M3FN> {qf.name = "q"}, tensor<?x?xf32> {qf.name = "s"}) {
  %0 = "qf.silu"(%arg0) : (tensor<?x?xbf16>) -> tensor<?x?xf32> loc("y")
  %1 = "qf.scale"(%0) {amax_floor = 1.000000e-10 : f64, dtype = "fp8_e4m3fn", dtype_max = 4.480000e+02 : f64, e8m0 = "roundup", granularity = "per_128x128", operandSegmentSizes = array<i32: 1, 0>, pow2 = false, zero = "one"} : (tensor<?x?xf32>) -> tensor<?x?xf32> loc("s")
  %2 = "qf.round"(%0, %1) {dtype = "fp8_e4m3fn", dtype_max = 4.480000e+02 : f64, granularity = "per_128x128", mode = "rne", recip = "div", sat = true} : (tensor<?x?xf32>, tensor<?x?xf32>) -> tensor<?x?xf8E4M3FN> loc("q")
  return %2, %1 : tensor<?x?xf8E4M3FN>, tensor<?x?xf32>
}

// -----
// A cache block's scale needs all of its new tokens: a cache_block kernel.
// CHECK-LABEL: func.func private @kv_block__k1(
// CHECK-SAME:    qf.reason = "per-block-scale: a cache block's scale needs all of its new tokens", qf.space = "cache_block"
// CHECK-NEXT:    %[[W:.+]]:2 = "qf.cache_write"(%arg0, %arg1, %arg2, %arg3)
// CHECK-NEXT:    return %[[W]]#0, %[[W]]#1
func.func @kv_block(%arg0: tensor<?x?x?xbf16> {qf.dims = ["T", "H", "D"], qf.name = "k"}, %arg1: tensor<?x?x?x?x?xf8E4M3FN> {qf.dims = ["B", "H", "DX", "BS", "X"], qf.name = "c"}, %arg2: tensor<?xi64> {qf.dims = ["T"], qf.name = "slots"}, %arg3: tensor<?x?xf32> {qf.dims = ["H", "B"], qf.name = "s"}) -> (tensor<?x?x?x?x?xf8E4M3FN> {qf.name = "kc"}, tensor<?x?xf32> {qf.name = "ks"}) {
  %0 = "qf.silu"(%arg0) : (tensor<?x?x?xbf16>) -> tensor<?x?x?xf32>
  %1:2 = "qf.cache_write"(%0, %arg1, %arg2, %arg3) {amax_floor = 0.000000e+00 : f64, dtype_max = 4.480000e+02 : f64, floor = "floor", layout = "key", mode = "trunc", operandSegmentSizes = array<i32: 1, 1, 1, 1>, pow2 = false, quant = "per_block", recip = "mul_rcp", requant = "grow", resultSegmentSizes = array<i32: 1, 1>, scale_block = 0 : i64, scale_layout = "default", vec = 16 : i64, zero = "zero"} : (tensor<?x?x?xf32>, tensor<?x?x?x?x?xf8E4M3FN>, tensor<?xi64>, tensor<?x?xf32>) -> (tensor<?x?x?x?x?xf8E4M3FN>, tensor<?x?xf32>)
  return %1#0, %1#1 : tensor<?x?x?x?x?xf8E4M3FN>, tensor<?x?xf32>
}

// -----
// Stages over the same rows that read only pipeline inputs share one kernel (gate and
// up: one launch); stages over other rows (R, not M) get their own.
// CHECK-LABEL: func.func private @rows__k0(
// CHECK-SAME:    qf.reason = "", qf.space = "row"
// CHECK-NEXT:    %[[G:.+]] = "qf.silu"(%arg0)
// CHECK-NEXT:    %[[GU:.+]] = "qf.mul"(%[[G]], %arg1)
// CHECK-NEXT:    "qf.round"(%[[GU]], %arg2)
// CHECK-LABEL: func.func private @rows__k1(
// CHECK-SAME:    %arg0: tensor<?x?xbf16> {qf.dims = ["R", "N"], qf.name = "r"}
// CHECK-SAME:    qf.reason = "", qf.space = "row"
// CHECK-NEXT:    "qf.silu"(%arg0)
func.func @rows(%arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "g"}, %arg1: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "u"}, %arg2: tensor<1xf32> {qf.dims = [1], qf.name = "s"}, %arg3: tensor<?x?xbf16> {qf.dims = ["R", "N"], qf.name = "r"}) -> (tensor<?x?xf8E4M3FN> {qf.name = "q"}, tensor<?x?xf32> {qf.name = "t"}) {
  %0 = "qf.silu"(%arg0) : (tensor<?x?xbf16>) -> tensor<?x?xf32>
  %1 = "qf.mul"(%0, %arg1) : (tensor<?x?xf32>, tensor<?x?xbf16>) -> tensor<?x?xf32>
  %2 = "qf.round"(%1, %arg2) {dtype = "fp8_e4m3fn", dtype_max = 4.480000e+02 : f64, granularity = "per_tensor", mode = "rne", recip = "div", sat = true} : (tensor<?x?xf32>, tensor<1xf32>) -> tensor<?x?xf8E4M3FN>
  %3 = "qf.silu"(%arg3) : (tensor<?x?xbf16>) -> tensor<?x?xf32>
  return %2, %3 : tensor<?x?xf8E4M3FN>, tensor<?x?xf32>
}
