#!/usr/bin/env bash
# The GPU checks of issue 15, as one script for a lent device (about 5 minutes on one H200):
#   1. gpu-small trained for 600 steps of 64 × 1024 tokens (bf16 autocast, fused AdamW, torch.compile): tokens/s and
#      MFU, written to $OUT/bench.json (or runs/bench-gpu/ without $OUT);
#   2. the tests marked `gpu` (bf16, compile vs eager, the peak-FLOPs table, NCCL DDP when 2 GPUs are present).
# Usage: bash scripts/gpu_check.sh [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${1:-600}"
out="${OUT:-runs/bench-gpu}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
.venv/bin/python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device (is a CUDA torch installed?)'; print(torch.__version__, torch.cuda.get_device_name(0))"
.venv/bin/python benchmarks/bench_train_gpu.py --preset gpu-small --steps "$steps" --out "$out" 2>&1 | tail -n 5
.venv/bin/pytest -q -m gpu tests/test_proxy_train.py 2>&1 | tail -n 15 | tee "$out/gpu-tests.txt"
