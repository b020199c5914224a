// RUN: %qfuse-opt %s --passes qf-fuse | FileCheck %s

// A pipeline that is already fused (only kernel calls) is left as it is.

// CHECK-LABEL: func.func private @f__k0(
// CHECK-NEXT:    "qf.silu"(%arg0)
// CHECK-NEXT:    return
// CHECK-LABEL: func.func @f(
// CHECK-NEXT:    %[[K:.+]] = call @f__k0(%arg0)
// CHECK-NEXT:    return %[[K]]
// CHECK-NOT:   func.func
func.func private @f__k0(%arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "x"}) -> (tensor<?x?xf32> {qf.name = "y"}) attributes {qf.kernel, qf.reason = "", qf.space = "row"} {
  %0 = "qf.silu"(%arg0) : (tensor<?x?xbf16>) -> tensor<?x?xf32>
  return %0 : tensor<?x?xf32>
}
func.func @f(%arg0: tensor<?x?xbf16> {qf.dims = ["M", "N"], qf.name = "x"}) -> (tensor<?x?xf32> {qf.name = "y"}) {
  %0 = call @f__k0(%arg0) : (tensor<?x?xbf16>) -> tensor<?x?xf32>
  return %0 : tensor<?x?xf32>
}
