// RUN: %qfuse-opt %s --passes qf-lower-loops | FileCheck %s

// A KV cache is updated in place: the kernel's output kc is the cache parameter's
// buffer itself (no output argument), and the pipeline returns that buffer.

// CHECK:       func.func @kv__k0(%{{.+}} {qf.name = "k"}, %{{.+}} {qf.name = "k_cache"}, %{{.+}} {qf.name = "slots"}, %{{.+}} {qf.name = "kc"})
// CHECK:       func.func @kv(%[[K:arg[0-9]+]]: {{.+}}, %[[C:arg[0-9]+]]: memref<?x?x?x?x?xbf16, {{.+}}> {qf.dims = ["B", "H", "DX", "BS", "X"], qf.name = "k_cache"}, %[[SL:arg[0-9]+]]: memref<?xi64, {{.+}}> {qf.dims = ["T"], qf.name = "slots"})
// CHECK-SAME:    attributes {qf.returns = {{\[\["kc", "k_cache"\]\]}}}
// CHECK-NEXT:    call @kv__k0(%[[K]], %[[C]], %[[SL]], %[[C]])
module {
  func.func private @kv__k0(%arg0: tensor<?x?x?xbf16> {qf.dims = ["T", "H", "D"], qf.name = "k"}, %arg1: tensor<?x?x?x?x?xbf16> {qf.dims = ["B", "H", "DX", "BS", "X"], qf.name = "k_cache"}, %arg2: tensor<?xi64> {qf.dims = ["T"], qf.name = "slots"}) -> (tensor<?x?x?x?x?xbf16> {qf.name = "kc"}) attributes {qf.kernel, qf.reason = "", qf.space = "row"} {
    %0 = "qf.cache_write"(%arg0, %arg1, %arg2) {amax_floor = 0.000000e+00 : f64, dtype_max = 0.000000e+00 : f64, floor = "floor", layout = "key", mode = "trunc", operandSegmentSizes = array<i32: 1, 1, 1, 0>, pow2 = false, quant = "none", recip = "mul_rcp", requant = "grow", resultSegmentSizes = array<i32: 1, 0>, scale_block = 0 : i64, scale_layout = "default", vec = 8 : i64, zero = "zero"} : (tensor<?x?x?xbf16>, tensor<?x?x?x?x?xbf16>, tensor<?xi64>) -> tensor<?x?x?x?x?xbf16>
    return %0 : tensor<?x?x?x?x?xbf16>
  }
  func.func @kv(%arg0: tensor<?x?x?xbf16> {qf.dims = ["T", "H", "D"], qf.name = "k"}, %arg1: tensor<?x?x?x?x?xbf16> {qf.dims = ["B", "H", "DX", "BS", "X"], qf.name = "k_cache"}, %arg2: tensor<?xi64> {qf.dims = ["T"], qf.name = "slots"}) -> (tensor<?x?x?x?x?xbf16> {qf.name = "kc"}) {
    %0 = call @kv__k0(%arg0, %arg1, %arg2) : (tensor<?x?x?xbf16>, tensor<?x?x?x?x?xbf16>, tensor<?xi64>) -> tensor<?x?x?x?x?xbf16>
    return %0 : tensor<?x?x?x?x?xbf16>
  }
}

