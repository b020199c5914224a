#!/bin/sh
# Run the GPU-only tests on a box that has torch + triton but no pytest (the device tool's
# H200): pytest and hypothesis come from wheels carried in .whl/ (pip download them here:
#   .venv/bin/pip download --only-binary :all: --python-version 3.12 -d .whl pytest hypothesis).
# Usage (device tool, carry [".whl"]): sh benchmarks/gpu_tests.sh [pytest args]
set -e
PP=$(mktemp -d)
python3 -m pip install -q --no-index --find-links .whl --target "$PP" pytest hypothesis lark >/dev/null
PYTHONPATH="$PP:$PWD" python3 -m pytest -q -p no:cacheprovider "$@"
