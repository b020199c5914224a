// RUN: %qfuse-opt %s --passes 'qf-map-gpu{target=hip:gfx942}' | FileCheck %s --check-prefixes=CHECK,WAVE64
// RUN: %qfuse-opt %s --passes 'qf-map-gpu{target=cuda:sm_90}' | FileCheck %s --check-prefixes=CHECK,WAVE32

// A row kernel mapped onto the gpu dialect and outlined into gpu.module @qfuse_kernels:
// one block per row, 256 threads striding over the columns, the row's amax reduced
// across the block (a butterfly of gpu.shuffle xor per subgroup: 6 steps on a 64-lane
// wave, 5 on a 32-lane warp; the subgroups' partials through workgroup memory), the
// scale stored by thread 0. The pipeline function launches it: blocks = rows of x.

// CHECK:       module attributes {gpu.container_module}
// CHECK:       gpu.module @qfuse_kernels
// CHECK:         gpu.func @per_token__k0(%{{.+}} {qf.name = "x"}, %{{.+}} {qf.name = "s"}, %{{.+}} {qf.name = "q"})
// WAVE64-SAME:     workgroup(%{{.+}} : memref<4xf32, #gpu.address_space<workgroup>>)
// WAVE32-SAME:     workgroup(%{{.+}} : memref<8xf32, #gpu.address_space<workgroup>>)
// CHECK-SAME:      kernel attributes {known_block_size = array<i32: 256, 1, 1>, qf.kernel, qf.reason = "", qf.space = "row"}
// CHECK:           %[[TID:.+]] = gpu.thread_id x
// CHECK:           gpu.block_id x
// WAVE64-COUNT-6:  gpu.shuffle xor
// WAVE32-COUNT-5:  gpu.shuffle xor
// CHECK-NOT:       gpu.shuffle
// CHECK:           gpu.barrier
// CHECK:           arith.cmpi eq, %[[TID]]
// CHECK:           gpu.return
// CHECK:       func.func @per_token(%[[X:arg[0-9]+]]: {{.+}} {qf.dims = ["M", "N"], qf.name = "x"}, %[[S:arg[0-9]+]]: {{.+}} {qf.name = "s", qf.output}, %[[Q:arg[0-9]+]]: {{.+}} {qf.name = "q", qf.output})
// CHECK:         %[[ROWS:.+]] = memref.dim %[[X]], %c0
// CHECK-NEXT:    gpu.launch_func @qfuse_kernels::@per_token__k0 blocks in (%[[ROWS]], %c1, %c1) threads in (%c256, %c1, %c1) args(%[[X]] : {{.+}}, %[[S]] : {{.+}}, %[[Q]] : {{.+}})
// CHECK-NEXT:    return
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

