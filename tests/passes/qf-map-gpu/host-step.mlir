// RUN: %qfuse-opt %s --passes 'qf-map-gpu{target=cuda:sm_90}' | FileCheck %s

// The host step stays on the host: a private declaration outside the gpu.module, called
// with func.call; the kernel after it is launched on the reduced buffer.

// CHECK:       func.func private @ar__k0(
// CHECK-SAME:    qf.host_op = "qf.all_reduce"
// CHECK:       gpu.module @qfuse_kernels
// CHECK-NOT:     @ar__k0
// CHECK:         gpu.func @ar__k1(
// CHECK:       func.func @ar(%[[X:arg[0-9]+]]: {{.+}}, %[[W:arg[0-9]+]]: {{.+}}, %[[R:arg[0-9]+]]: {{.+}} {qf.buffer, qf.name = "all_reduce_0"}, %[[Y:arg[0-9]+]]: {{.+}} {qf.name = "y", qf.output})
// CHECK:         call @ar__k0(%[[X]], %[[R]])
// CHECK:         %[[ROWS:.+]] = memref.dim %[[R]], %c0
// CHECK-NEXT:    gpu.launch_func @qfuse_kernels::@ar__k1 blocks in (%[[ROWS]], %c1, %c1) threads in (%c256, %c1, %c1) args(%[[R]] : {{.+}}, %[[W]] : {{.+}}, %[[Y]] : {{.+}})
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

