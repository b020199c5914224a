// RUN: qfuse ir %s --emit loops | FileCheck %s

// per-token fp8: the row loop; the amax is a reduction loop over the row (maximumf of
// |x| by the sign bit); s = amax / 448 with zero -> 1, stored once per row; the codes
// loop divides (correctly rounded divf) and stores bytes.

// CHECK:       func.func @per_token_fp8__k0(%[[X:arg[0-9]+]]: memref<?x?xbf16, strided<[?, ?], offset: ?>> {qf.name = "x"}, %[[SO:arg[0-9]+]]: memref<?x?xf32, strided<[?, ?], offset: ?>> {qf.name = "s"}, %[[QO:arg[0-9]+]]: memref<?x?xi8, strided<[?, ?], offset: ?>> {qf.name = "q"}) attributes {llvm.emit_c_interface, qf.kernel, qf.reason = "", qf.space = "row"}
// CHECK:         %[[M:.+]] = memref.dim %[[X]], %{{.+}}
// CHECK:         %[[N:.+]] = memref.dim %[[X]], %{{.+}}
// CHECK:         scf.for %[[ROW:.+]] = %{{.+}} to %[[M]] step
// CHECK:           %[[AMAX:.+]] = scf.for %{{.+}} = %{{.+}} to %[[N]] step %{{.+}} iter_args(%[[ACC:.+]] = %{{.+}}) -> (f32)
// CHECK:             arith.andi %{{.+}}, %{{.+}} : i32
// CHECK:             arith.maximumf %[[ACC]], %{{.+}} : f32
// CHECK:           %[[S0:.+]] = arith.divf %[[AMAX]], %{{.+}} : f32
// CHECK:           %[[S:.+]] = arith.select %{{.+}}, %{{.+}}, %[[S0]] : f32
// CHECK:           memref.store %[[S]], %[[SO]][%[[ROW]], %{{.+}}]
// CHECK:           scf.for %[[COL:.+]] = %{{.+}} to %[[N]] step
// CHECK:             arith.divf %{{.+}}, %[[S]] : f32
// CHECK:             %[[B:.+]] = arith.trunci %{{.+}} : i32 to i8
// CHECK:             memref.store %[[B]], %[[QO]][%[[ROW]], %[[COL]]]
// the pipeline on buffers: the outputs are arguments, the kernel a call
// CHECK:       func.func @per_token_fp8(%[[PX:arg[0-9]+]]: memref<?x?xbf16, {{.+}}> {qf.dims = ["M", "N"], qf.name = "x"}, %[[PS:arg[0-9]+]]: memref<?x?xf32, {{.+}}> {qf.name = "s", qf.output}, %[[PQ:arg[0-9]+]]: memref<?x?xi8, {{.+}}> {qf.name = "q", qf.output})
// CHECK-NEXT:    call @per_token_fp8__k0(%[[PX]], %[[PS]], %[[PQ]]) : ({{.+}}) -> ()
// CHECK-NEXT:    return
// CHECK-NOT:     "qf.
module {
  func.func private @per_token_fp8__k0(%arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "x"}) -> (tensor<?x1xf32> {qf.name = "s"}, tensor<?x?xf8E4M3FN> {qf.name = "q"}) attributes {qf.kernel, qf.reason = "", qf.space = "row"} {
    %0 = "qf.scale"(%arg0) {amax_floor = 1.000000e-10 : f64, dtype = "fp8_e4m3fn", dtype_max = 4.480000e+02 : f64, e8m0 = "roundup", granularity = "per_token", operandSegmentSizes = array<i32: 1, 0>, pow2 = false, zero = "one"} : (tensor<?x?xbf16>) -> tensor<?x1xf32>
    %1 = "qf.round"(%arg0, %0) {dtype = "fp8_e4m3fn", dtype_max = 4.480000e+02 : f64, granularity = "per_token", mode = "rne", recip = "div", sat = true} : (tensor<?x?xbf16>, tensor<?x1xf32>) -> tensor<?x?xf8E4M3FN>
    return %0, %1 : tensor<?x1xf32>, tensor<?x?xf8E4M3FN>
  }
  func.func @per_token_fp8(%arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "x"}) -> (tensor<?x?xf8E4M3FN> {qf.name = "q"}, tensor<?x1xf32> {qf.name = "s"}) {
    %0:2 = call @per_token_fp8__k0(%arg0) : (tensor<?x?xbf16>) -> (tensor<?x1xf32>, tensor<?x?xf8E4M3FN>)
    return %0#1, %0#0 : tensor<?x?xf8E4M3FN>, tensor<?x1xf32>
  }
}
