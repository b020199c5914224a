// RUN: %qfuse-opt %s --passes qf-lower-loops | FileCheck %s

// An all_reduce is a host step: its kernel function becomes a private declaration of
// the same ABI (the runtime runs it between the kernels), carrying its op and options.
// The reduced tensor only feeds the next kernel: a scratch buffer argument (qf.buffer)
// that the host step writes and the row kernel reads. y is returned twice: one buffer,
// two entries of qf.returns.

// CHECK:       func.func private @ar__k0(memref<?x?xbf16, strided<[?, ?], offset: ?>> {qf.name = "x"}, memref<?x?xbf16, strided<[?, ?], offset: ?>> {qf.name = "all_reduce_0"})
// CHECK-SAME:    qf.host_attrs = {dtype = "bf16", group = "world", op = "sum", order = "rank"}, qf.host_op = "qf.all_reduce", qf.kernel
// CHECK-SAME:    qf.space = "collective"
// CHECK:       func.func @ar__k1(%{{.+}} {qf.name = "all_reduce_0"}, %{{.+}} {qf.name = "w"}, %{{.+}} {qf.name = "y"})
// CHECK-SAME:    llvm.emit_c_interface
// CHECK:       func.func @ar(%[[X:arg[0-9]+]]: {{.+}} {qf.dims = ["M", "N"], qf.name = "x"}, %[[W:arg[0-9]+]]: {{.+}} {qf.dims = ["N"], qf.name = "w"}, %[[R:arg[0-9]+]]: memref<?x?xbf16, {{.+}}> {qf.buffer, qf.name = "all_reduce_0"}, %[[Y:arg[0-9]+]]: memref<?x?xf32, {{.+}}> {qf.name = "y", qf.output})
// CHECK-SAME:    attributes {qf.returns = {{\[\["y", "y"\], \["y", "y"\]\]}}}
// CHECK-NEXT:    call @ar__k0(%[[X]], %[[R]])
// CHECK-NEXT:    call @ar__k1(%[[R]], %[[W]], %[[Y]])
// CHECK-NEXT:    return
module {
  func.func private @ar__k0(%arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "x"}) -> (tensor<?x?xbf16> {qf.name = "all_reduce_0"}) attributes {qf.kernel, qf.reason = "collective: all_reduce is a host step between kernels; the next kernel reads its result", qf.space = "collective"} {
    %0 = "qf.all_reduce"(%arg0) {dtype = "bf16", group = "world", op = "sum", order = "rank"} : (tensor<?x?xbf16>) -> tensor<?x?xbf16>
    return %0 : tensor<?x?xbf16>
  }
  func.func private @ar__k1(%arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "all_reduce_0"}, %arg1: tensor<?xbf16> {qf.dims = ["N"], qf.name = "w"}) -> (tensor<?x?xf32> {qf.name = "y"}) attributes {qf.kernel, qf.reason = "after-collective: reads the result of a collective kernel", qf.space = "row"} {
    %cst = arith.constant 9.99999997E-7 : f32
    %0 = "qf.norm"(%arg0, %arg1, %cst) {dtype = "f32", gemma = false, kind = "rms", operandSegmentSizes = array<i32: 1, 1, 1, 0, 0>, residual_sum = "fp32", resultSegmentSizes = array<i32: 1, 0>} : (tensor<?x?xbf16>, tensor<?xbf16>, f32) -> tensor<?x?xf32>
    return %0 : tensor<?x?xf32>
  }
  func.func @ar(%arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "x"}, %arg1: tensor<?xbf16> {qf.dims = ["N"], qf.name = "w"}) -> (tensor<?x?xf32> {qf.name = "y"}, tensor<?x?xf32> {qf.name = "y"}) {
    %0 = call @ar__k0(%arg0) : (tensor<?x?xbf16>) -> tensor<?x?xbf16>
    %1 = call @ar__k1(%0, %arg1) : (tensor<?x?xbf16>, tensor<?xbf16>) -> tensor<?x?xf32>
    return %1, %1 : tensor<?x?xf32>, tensor<?x?xf32>
  }
}

