#!/usr/bin/env bash
# The whole GPU benchmark in one go (scaling issue, item 3), sized for a 10-minute slot (at most ~9.6 minutes):
#   0. tests/test_device.py: objective, gradient and short fits on CUDA against the CPU's, CUDA graphs against eager;
#   1. one objective evaluation (loss and gradient) on CUDA: time, synchronisations, copies, kernels, graph replay;
#   2. an ensemble of 8 on the public NonPlumCuspIso file (1000 stars) replaying CUDA graphs, the default:
#      8 members from scratch and, since 2026-12-05, one more flow on all stars, the centre of the value and
#      bands (target: <= 15 s on one H100-class GPU; 24.0 s for the members alone on an H200, 2026-12-04);
#   2b. the same ensemble warm-started (--warm-start 50: the all-star flow, then every member at most
#      50 L-BFGS steps from it; the same value as 2; not yet run on a GPU: on the CPU it costs 1.7 single flows);
#   3. one flow on the same stars replaying CUDA graphs (the batched trainer with one member), twice:
#      whether a GPU fit repeats itself bit for bit (on 2026-12-04 the same code stopped at step 256 once and
#      ran to 400 once);
#   4. cost against N: 1e3, 1e4, 1e5 stars (minibatches of 1000 stars), --device cuda.
# Left out, measured on an H200 on 2026-12-04: one flow without graphs (81.6 and 85.9 s) and the ensemble of 8
# without graphs (not finished within 190 s); bench_flow.py --no-cuda-graphs runs them.
# Each step has its own time limit and a failed step does not stop the others; the exit status counts the
# failed steps. Steps print Markdown tables (benchmarks/RESULTS.md); JSON goes to ${OUT:-/tmp}/bench_gpu_*.json.
# Usage (repository root, an environment with dsphnf's dependencies and a CUDA build of torch):
#   bash benchmarks/bench_gpu.sh
set -uo pipefail
PY=${PYTHON:-python}
OUTDIR=${OUT:-/tmp}
export PYTHONUNBUFFERED=1
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device visible to torch')" || exit 2
"$PY" -c "import torch; print('GPU:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
failed=0
step() {  # step NAME SECONDS COMMAND...: run one step under its limit, report its wall time and exit status
    local name=$1 limit=$2 t0 rc ms
    shift 2
    echo "## $name"
    t0=$(date +%s%N)
    timeout "$limit" "$@"
    rc=$?
    ms=$((($(date +%s%N) - t0) / 1000000))
    printf '(%s: exit %d after %d.%01d s%s)\n' "$name" "$rc" $((ms / 1000)) $((ms % 1000 / 100)) \
        "$([ "$rc" = 124 ] && echo ", stopped at its limit of $limit s")"
    [ "$rc" = 0 ] || failed=$((failed + 1))
}
step "CUDA against CPU (tests/test_device.py)" 60 "$PY" -m pytest -q -p no:cacheprovider tests/test_device.py
step "one objective evaluation" 45 "$PY" benchmarks/bench_objective.py --timing --device cuda --repeat 5
step "ensemble of 8, 1000 stars, CUDA graphs" 120 "$PY" benchmarks/bench_flow.py --device cuda --threads 0 \
    --ensemble 8 --json "$OUTDIR/bench_gpu_ens8_graphs.json"
step "ensemble of 8 warm-started (--warm-start 50), 1000 stars, CUDA graphs" 60 "$PY" benchmarks/bench_flow.py \
    --device cuda --threads 0 --ensemble 8 --warm-start 50 --json "$OUTDIR/bench_gpu_ens8_warm50.json"
step "single flow, 1000 stars, CUDA graphs" 100 "$PY" benchmarks/bench_flow.py --device cuda --threads 0 \
    --json "$OUTDIR/bench_gpu_single_graphs.json"
step "the same single flow again" 60 "$PY" benchmarks/bench_flow.py --device cuda --threads 0 \
    --json "$OUTDIR/bench_gpu_single_graphs_again.json"
step "the two runs bit for bit" 10 "$PY" benchmarks/same_fit.py "$OUTDIR/bench_gpu_single_graphs.json" \
    "$OUTDIR/bench_gpu_single_graphs_again.json"
step "cost against N" 100 "$PY" benchmarks/bench_scale.py --device cuda --threads 0 \
    --json "$OUTDIR/bench_gpu_scale.json"
echo "failed steps: $failed"
exit "$failed"
