// RUN: %qfuse-opt %s --passes qf-lower-loops | FileCheck %s

// A row kernel lowered to its loop nest on memrefs (the CPU twin's form): the kernel's
// parameters, then its outputs, each named by qf.name, the C interface for the
// ExecutionEngine, the qf.kernel attributes kept; no qf op is left. The pipeline
// function is on buffers: its outputs are arguments (qf.output) passed to the call,
// qf.returns maps its returns to them (q is returned first, the kernel writes s first).

// CHECK:       func.func @per_token__k0(%[[X:arg[0-9]+]]: memref<?x?xbf16, strided<[?, ?], offset: ?>> {qf.name = "x"}, %[[S:arg[0-9]+]]: memref<?x?xf32, strided<[?, ?], offset: ?>> {qf.name = "s"}, %[[Q:arg[0-9]+]]: memref<?x?xi8, strided<[?, ?], offset: ?>> {qf.name = "q"})
// CHECK-SAME:    attributes {llvm.emit_c_interface, qf.kernel, qf.reason = "", qf.space = "row"}
// CHECK:         %[[M:.+]] = memref.dim %[[X]], %{{.+}}
// CHECK:         scf.for %[[ROW:.+]] = %{{.+}} to %[[M]] step
// CHECK:           arith.maximumf
// CHECK:           memref.store %{{.+}}, %[[S]][%[[ROW]], %{{.+}}]
// CHECK:           scf.for %[[COL:.+]] = %{{.+}} to %{{.+}} step
// CHECK:             memref.store %{{.+}}, %[[Q]][%[[ROW]], %[[COL]]]
// CHECK:       func.func @per_token(%[[PX:arg[0-9]+]]: memref<?x?xbf16, {{.+}}> {qf.dims = ["M", "N"], qf.name = "x"}, %[[PS:arg[0-9]+]]: memref<?x?xf32, {{.+}}> {qf.name = "s", qf.output}, %[[PQ:arg[0-9]+]]: memref<?x?xi8, {{.+}}> {qf.name = "q", qf.output})
// CHECK-SAME:    attributes {qf.returns = {{\[\["q", "q"\], \["s", "s"\]\]}}}
// CHECK-NEXT:    call @per_token__k0(%[[PX]], %[[PS]], %[[PQ]]) : ({{.+}}) -> ()
// CHECK-NEXT:    return
// CHECK-NOT:   "qf.
module {
  func.func private @per_token__k0(%arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "x"}) -> (tensor<?x1xf32> {qf.name = "s"}, tensor<?x?xf8E4M3FN> {qf.name = "q"}) attributes {qf.kernel, qf.reason = "", qf.space = "row"} {
    %0 = "qf.scale"(%arg0) {amax_floor = 1.000000e-10 : f64, dtype = "fp8_e4m3fn", dtype_max = 4.480000e+02 : f64, e8m0 = "roundup", granularity = "per_token", operandSegmentSizes = array<i32: 1, 0>, pow2 = false, zero = "one"} : (tensor<?x?xbf16>) -> tensor<?x1xf32>
    %1 = "qf.round"(%arg0, %0) {dtype = "fp8_e4m3fn", dtype_max = 4.480000e+02 : f64, granularity = "per_token", mode = "rne", recip = "div", sat = true} : (tensor<?x?xbf16>, tensor<?x1xf32>) -> tensor<?x?xf8E4M3FN>
    return %0, %1 : tensor<?x1xf32>, tensor<?x?xf8E4M3FN>
  }
  func.func @per_token(%arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "x"}) -> (tensor<?x?xf8E4M3FN> {qf.name = "q"}, tensor<?x1xf32> {qf.name = "s"}) {
    %0:2 = call @per_token__k0(%arg0) : (tensor<?x?xbf16>) -> (tensor<?x1xf32>, tensor<?x?xf8E4M3FN>)
    return %0#1, %0#0 : tensor<?x?xf8E4M3FN>, tensor<?x1xf32>
  }
}

