// RUN: %qfuse-opt %s --passes 'qf-map-gpu{target=hip:gfx950}' | FileCheck %s

// A dynamic per_tensor scale: the grid-wide amax kernel takes a zeroed i32[2] workspace
// (the amax's bits, the block tickets) as its last argument, and runs on
// max(1, min(rows, 1024)) blocks; the pipeline allocates and zeroes the workspace for
// the launch. The row kernel after it is launched per row. On gfx950 the OCP fp8 codes
// come from the chip's convert (arith.truncf to f8E4M3FN, lowered by
// convert-arith-to-amdgpu).

// CHECK:         gpu.func @per_tensor__k0(%{{.+}} {qf.name = "x"}, %{{.+}} {qf.name = "s"}, %{{.+}}: memref<2xi32> {qf.name = "workspace"})
// CHECK-SAME:      qf.space = "tensor_amax"
// CHECK:           memref.atomic_rmw maxu
// CHECK:           memref.atomic_rmw addi
// CHECK:         gpu.func @per_tensor__k1(
// CHECK:           arith.truncf %{{.+}} : f32 to f8E4M3FN
// CHECK:       func.func @per_tensor(%[[X:arg[0-9]+]]: {{.+}}, %[[S:arg[0-9]+]]: {{.+}}, %[[Q:arg[0-9]+]]: {{.+}})
// CHECK:         %[[ROWS:.+]] = memref.dim %[[X]], %c0
// CHECK-NEXT:    %[[CAP:.+]] = arith.minui %[[ROWS]], %c1024 : index
// CHECK-NEXT:    %[[G:.+]] = arith.maxui %[[CAP]], %c1 : index
// CHECK-NEXT:    %[[WS:.+]] = memref.alloc() : memref<2xi32>
// CHECK-NEXT:    memref.store %c0_i32, %[[WS]][%c0] : memref<2xi32>
// CHECK-NEXT:    memref.store %c0_i32, %[[WS]][%c1] : memref<2xi32>
// CHECK-NEXT:    gpu.launch_func @qfuse_kernels::@per_tensor__k0 blocks in (%[[G]], %c1, %c1) threads in (%c256, %c1, %c1) args(%[[X]] : {{.+}}, %[[S]] : {{.+}}, %[[WS]] : memref<2xi32>)
// CHECK-NEXT:    memref.dealloc %[[WS]] : memref<2xi32>
// CHECK-NEXT:    %[[ROWS2:.+]] = memref.dim %[[X]], %c0
// CHECK-NEXT:    gpu.launch_func @qfuse_kernels::@per_tensor__k1 blocks in (%[[ROWS2]], %c1, %c1) threads in (%c256, %c1, %c1) args(%[[X]] : {{.+}}, %[[S]] : {{.+}}, %[[Q]] : {{.+}})
module {
  func.func private @per_tensor__k0(%arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "x"}) -> (tensor<1xf32> {qf.name = "s"}) attributes {qf.kernel, qf.reason = "grid-wide-amax: a dynamic per_tensor scale needs the amax of the whole tensor before quantising", qf.space = "tensor_amax"} {
    %0 = "qf.scale"(%arg0) {amax_floor = 1.000000e-10 : f64, dtype = "fp8_e4m3fn", dtype_max = 4.480000e+02 : f64, e8m0 = "roundup", granularity = "per_tensor", operandSegmentSizes = array<i32: 1, 0>, pow2 = false, zero = "zero"} : (tensor<?x?xbf16>) -> tensor<1xf32>
    return %0 : tensor<1xf32>
  }
  func.func private @per_tensor__k1(%arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "x"}, %arg1: tensor<1xf32> {qf.dims = [1], qf.name = "s", qf.scale_of = {dtype_max = 4.480000e+02 : f64, granularity = "per_tensor", x = 0 : i64}}) -> (tensor<?x?xf8E4M3FN> {qf.name = "q"}) attributes {qf.kernel, qf.reason = "after-tensor_amax: reads the result of a tensor_amax kernel", qf.space = "row"} {
    %0 = "qf.round"(%arg0, %arg1) {dtype = "fp8_e4m3fn", dtype_max = 4.480000e+02 : f64, granularity = "per_tensor", mode = "rne", recip = "div", sat = true} : (tensor<?x?xbf16>, tensor<1xf32>) -> tensor<?x?xf8E4M3FN>
    return %0 : tensor<?x?xf8E4M3FN>
  }
  func.func @per_tensor(%arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "x"}) -> (tensor<?x?xf8E4M3FN> {qf.name = "q"}, tensor<1xf32> {qf.name = "s"}) {
    %0 = call @per_tensor__k0(%arg0) : (tensor<?x?xbf16>) -> tensor<1xf32>
    %1 = call @per_tensor__k1(%arg0, %0) : (tensor<?x?xbf16>, tensor<1xf32>) -> tensor<?x?xf8E4M3FN>
    return %1, %0 : tensor<?x?xf8E4M3FN>, tensor<1xf32>
  }
}

