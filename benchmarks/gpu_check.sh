#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: the cuda target's tests run natively (not in the simulator),
# then the training step of mlp_small, mlp_large and lenet is timed on the GPU against the cpu
# target. A few minutes in all.
#   bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup >/dev/null
export NUMBA_ENABLE_CUDASIM=0
export IRNET_CACHE_DIR="${IRNET_CACHE_DIR:-$(mktemp -d)}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
.venv/bin/python -c "from numba import cuda; cuda.detect() or exit('no usable GPU')"
echo "== cuda target tests, on the GPU"
timeout 420 .venv/bin/pytest -q -x -p no:cacheprovider tests/test_cuda.py
echo "== training step: GPU (cuda target) against the CPU (cpu target)"
timeout 300 .venv/bin/python benchmarks/bench_cuda.py --repeat 10
