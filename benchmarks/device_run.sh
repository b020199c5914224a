#!/bin/sh
# Everything issue 16 measures, in ONE device call (benchmarks/README.md, "The device call"):
#   sh benchmarks/device_run.sh            (carry [".bundle", ".peer-aiter"])
# Steps in order, each under `timeout` so the whole stays inside the call's 10 minutes and a
# step cut short keeps its rows ($OUT/*.json is rewritten after every row):
#   1. bench.py: 12 pipelines x 5 shapes (M = 1, 16, 64 by graph replay; 4096, 16384),
#      qfuse / torch eager / torch.compile / AITER's Triton kernels (.peer-aiter), the copy
#      roofline and, on the KV rows, the scatter roofline (probes/kv_scatter.py);
#   2. dynamic per-tensor at sizes that fit one program, one launch (the default) and two
#      (QFUSE_ONE_LAUNCH=0), qfuse only, same process order each time;
#   3. if .bundle/prev exists (the previous commit's bundle, built from its own tree), its
#      qfuse rows at the same shapes, for the no-regression check.
# (BUNDLE, PREV, AITER and BENCH_EXTRA, appended to every bench.py command, exist for the
# CPU test: tests/benchmarks/test_device_run.py runs this script with --cpu-smoke)
set -u
OUT=${OUT:-out}
BUNDLE=${BUNDLE:-.bundle/bench}
PREV=${PREV:-.bundle/prev}
AITER=${AITER:-.peer-aiter}
BENCH_EXTRA=${BENCH_EXTRA:-}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader \
    > "$OUT/gpu.txt" 2>&1
timeout 400 python3 benchmarks/bench.py --bundle "$BUNDLE" \
    --impls qfuse,eager,compile,aiter --aiter "$AITER" --out "$OUT/bench.json" $BENCH_EXTRA \
    > "$OUT/bench.log" 2>&1
echo "bench: rc $?"
SMALL=1x4096,1x7168,1x16384,4x2048,16x1024,64x256
for one in 1 0; do
    QFUSE_ONE_LAUNCH=$one timeout 35 python3 benchmarks/bench.py --bundle "$BUNDLE" \
        --impls qfuse --pipelines per_tensor_fp8 --shapes "$SMALL" \
        --out "$OUT/one-launch-$one.json" $BENCH_EXTRA > /dev/null 2>&1
    echo "per-tensor one launch=$one: rc $?"
done
if [ -e "$PREV" ]; then
    timeout 90 python3 benchmarks/bench.py --bundle "$PREV" --impls qfuse \
        --out "$OUT/prev.json" $BENCH_EXTRA > /dev/null 2>&1
    echo "previous bundle: rc $?"
fi
tail -n 30 "$OUT/bench.log"
