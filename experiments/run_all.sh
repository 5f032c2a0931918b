#!/usr/bin/env bash
# Run every experiment as stored in experiments/results/, niced, under the pinned
# arithmetic (one BLAS thread, Haswell kernels, AVX2 NumPy loops), from the repository root:
#   bash experiments/run_all.sh            # all three
#   bash experiments/run_all.sh degradation
set -euo pipefail
cd "$(dirname "$0")/.."
export CNNBOOK_PYTHON=${CNNBOOK_PYTHON:-.venv/bin/python}
source scripts/pinned_arithmetic.sh
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(degradation batch_norm regularization)
for name in "${names[@]}"; do
  nice -n 10 "$CNNBOOK_PYTHON" -m "experiments.$name"
done
