// RUN: qfuse ir %s --emit gpu --target hip:gfx942 | FileCheck %s

// The same kernel mapped onto the gpu dialect: one block per row (gpu.block_id), 256
// threads striding over the columns, the amax combined across the block (a butterfly of
// gpu.shuffle xor in each 64-lane wave, the 4 waves' partials through workgroup memory),
// the row's scale stored by thread 0 only.

// CHECK:       gpu.module @qfuse_kernels
// CHECK-LABEL:   gpu.func @per_token_fp8__k0(
// CHECK-SAME:      %[[X:arg[0-9]+]]: memref<?x?xbf16, strided<[?, ?], offset: ?>> {qf.name = "x"}
// CHECK-SAME:      %[[SO:arg[0-9]+]]: memref<?x?xf32, strided<[?, ?], offset: ?>> {qf.name = "s"}
// CHECK-SAME:      %[[QO:arg[0-9]+]]: memref<?x?xi8, strided<[?, ?], offset: ?>> {qf.name = "q"}
// CHECK-SAME:      workgroup(%[[WG:.+]] : memref<4xf32, #gpu.address_space<workgroup>>)
// CHECK-SAME:      kernel attributes {known_block_size = array<i32: 256, 1, 1>, qf.kernel, qf.reason = "", qf.space = "row"}
// CHECK:           %[[TID:.+]] = gpu.thread_id x
// CHECK:           %[[ROW:.+]] = gpu.block_id x
// CHECK:           %[[PART:.+]] = scf.for %{{.+}} = %{{.+}} to %{{.+}} step %{{.+}} iter_args
// CHECK:             arith.maximumf
// CHECK:           %[[S32:.+]], %{{.+}} = gpu.shuffle xor %[[PART]], %{{.+}}, %[[W:.+]] : f32
// CHECK:           %[[M32:.+]] = arith.maximumf %[[PART]], %[[S32]]
// CHECK-COUNT-4:   gpu.shuffle xor
// CHECK:           gpu.barrier
// CHECK:           memref.store %{{.+}}, %[[WG]][
// CHECK:           gpu.barrier
// CHECK-COUNT-4:   memref.load %[[WG]][
// CHECK:           %[[AMAX:.+]] = arith.maximumf
// CHECK-NOT:       gpu.shuffle
// CHECK:           arith.divf %[[AMAX]]
// CHECK:           %[[LEAD:.+]] = arith.cmpi eq, %[[TID]]
// CHECK:           scf.if %[[LEAD]] {
// CHECK-NEXT:        memref.store %{{.+}}, %[[SO]][%[[ROW]]
// CHECK:           scf.for
// CHECK:             memref.store %{{.+}}, %[[QO]][%[[ROW]]
// CHECK:           gpu.return
// the pipeline on buffers launches it: one block of 256 threads per row of x
// CHECK:         func.func @per_token_fp8(%[[PX:arg[0-9]+]]: memref<?x?xbf16, strided<[?, ?], offset: ?>> {qf.dims = ["M", "N"], qf.name = "x"}
// CHECK-SAME:      %[[PS:arg[0-9]+]]: memref<?x?xf32, strided<[?, ?], offset: ?>> {qf.name = "s", qf.output}
// CHECK-SAME:      %[[PQ:arg[0-9]+]]: memref<?x?xi8, strided<[?, ?], offset: ?>> {qf.name = "q", qf.output})
// CHECK-SAME:      attributes {qf.returns = {{\[\["q", "q"\], \["s", "s"\]\]}}}
// CHECK:           %[[ROWS:.+]] = memref.dim %[[PX]], %{{.+}}
// CHECK:           gpu.launch_func @qfuse_kernels::@per_token_fp8__k0 blocks in (%[[ROWS]], %{{.+}}, %{{.+}}) threads in (%c256, %{{.+}}, %{{.+}}) args(%[[PX]] : {{.+}}, %[[PS]] : {{.+}}, %[[PQ]] : {{.+}})
// CHECK-NEXT:      return
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

