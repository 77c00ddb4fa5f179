#!/usr/bin/env bash
# The whole GPU benchmark in one go (scaling issue, item 3), sized for a 10-minute slot:
#   1. one flow on the public NonPlumCuspIso file (1000 stars), --device cuda;
#   2. an ensemble of 8 on the same stars (target: <= 15 s on one H100-class GPU);
#   3. cost against N: 1e3, 1e4, 1e5 stars (minibatches of 1000 stars), --device cuda.
# Each step prints a Markdown table (benchmarks/RESULTS.md); the JSON goes to ${OUT:-/tmp}/bench_gpu_*.json.
# Usage (repository root, with the environment of `make setup` and a CUDA build of torch):
#   bash benchmarks/bench_gpu.sh
set -euo pipefail
PY=${PYTHON:-python}
OUTDIR=${OUT:-/tmp}
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device visible to torch')"
"$PY" -c "import torch; print('GPU:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
echo "## single flow, 1000 stars"
timeout 150 "$PY" benchmarks/bench_flow.py --device cuda --threads 0 --json "$OUTDIR/bench_gpu_single.json"
echo "## ensemble of 8, 1000 stars"
timeout 240 "$PY" benchmarks/bench_flow.py --device cuda --threads 0 --ensemble 8 --json "$OUTDIR/bench_gpu_ens8.json"
echo "## cost against N"
timeout 180 "$PY" benchmarks/bench_scale.py --device cuda --threads 0 --json "$OUTDIR/bench_gpu_scale.json"
