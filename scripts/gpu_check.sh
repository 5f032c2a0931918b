#!/usr/bin/env bash
# The GPU leg, for a machine with CuPy and a CUDA device (CI has neither):
# every test of the suite that runs on the "cupy" backend, then
# benchmarks/gpu.py (-> benchmarks/results/gpu/latest.json, with the tests' counts;
# the CPU/GPU chapter reads it).
#
#   bash scripts/gpu_check.sh                        # the project's .venv
#   PYTHON=python3 bash scripts/gpu_check.sh -x      # another Python; pytest args
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export PYTHONPATH="$PWD:$PWD/book/support${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
report=$(mktemp --suffix=.xml)
trap 'rm -f "$report"' EXIT
# The test files that take the backend fixture (the others never touch CuPy).
mapfile -t files < <(grep -l "def test.*(.*backend" tests/test_*.py)
tests=0
"$PY" -m pytest -p no:cacheprovider -o addopts=--strict-markers -k cupy \
    -rfE --junitxml="$report" "${files[@]}" "$@" || tests=$?
"$PY" benchmarks/gpu.py --junit "$report" ${GPU_JSON:+--out "$GPU_JSON"}
exit "$tests"
