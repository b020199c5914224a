// RUN: not %qfuse-opt %s --passes 'qf-map-gpu{target=cpu:interp}' 2>&1 | FileCheck %s --check-prefix=CPU
// RUN: not %qfuse-opt %s --passes 'qf-map-gpu{chip=gfx942}' 2>&1 | FileCheck %s --check-prefix=OPTION
// RUN: not %qfuse-opt %s --passes 'qf-lower-loops,qf-map-gpu{target=hip:gfx942}' 2>&1 | FileCheck %s --check-prefix=TWICE

// CPU: qf-map-gpu needs a GPU target (hip:gfx942, hip:gfx950, cuda:sm_90), not cpu:interp
// OPTION: qf-map-gpu: unknown option 'chip=gfx942' (options: target)
// TWICE: qf-map-gpu{target=hip:gfx942}: the module holds func.func @per_token__k0, which is lowered already
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

