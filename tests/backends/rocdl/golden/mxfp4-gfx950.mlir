// RUN: qfuse ir %s --emit rocdl --target hip:gfx950 | FileCheck %s

// MXFP4 on gfx950: the group loop is the threads' loop (one 1x32 group per thread), the
// E8M0 byte is stored per group, and the E2M1 magnitude comes from the chip's scaled
// fp4 convert (rocdl.cvt.scalef32.pk.fp4.f32), NaN and sign set around it.

// CHECK:       gpu.module @qfuse_kernels
// CHECK:         llvm.func @mxfp4__k0(
// CHECK-SAME:      rocdl.kernel
// CHECK:           rocdl.workgroup.id.x
// CHECK:           rocdl.cvt.scalef32.pk.fp4.f32
// CHECK-NOT:     qf.
module {
  func.func private @mxfp4__k0(%arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "x"}) -> (tensor<?x?xf8E8M0FNU> {qf.name = "s"}, tensor<?x?xui8> {qf.name = "pack_0"}) attributes {qf.kernel, qf.reason = "", qf.space = "row"} {
    %0 = "qf.scale"(%arg0) {amax_floor = 1.000000e-10 : f64, dtype = "fp4_e2m1", dtype_max = 6.000000e+00 : f64, e8m0 = "roundup", granularity = "mx", operandSegmentSizes = array<i32: 1, 0>, pow2 = false, zero = "one"} : (tensor<?x?xbf16>) -> tensor<?x?xf8E8M0FNU>
    %1 = "qf.round"(%arg0, %0) {dtype = "fp4_e2m1", dtype_max = 6.000000e+00 : f64, granularity = "mx", mode = "rne", recip = "div", sat = true} : (tensor<?x?xbf16>, tensor<?x?xf8E8M0FNU>) -> tensor<?x?xf4E2M1FN>
    %2 = "qf.pack"(%1) {order = "linear"} : (tensor<?x?xf4E2M1FN>) -> tensor<?x?xui8>
    return %0, %2 : tensor<?x?xf8E8M0FNU>, tensor<?x?xui8>
  }
  func.func @mxfp4(%arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "x"}) -> (tensor<?x?xui8> {qf.name = "pack_0"}, tensor<?x?xf8E8M0FNU> {qf.name = "s"}) {
    %0:2 = call @mxfp4__k0(%arg0) : (tensor<?x?xbf16>) -> (tensor<?x?xf8E8M0FNU>, tensor<?x?xui8>)
    return %0#1, %0#0 : tensor<?x?xui8>, tensor<?x?xf8E8M0FNU>
  }
}
