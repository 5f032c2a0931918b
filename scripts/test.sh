#!/usr/bin/env bash
# Run every test: lint and format, unit and property tests with doctests, the
# PyTorch-parity tests (skipped with a reason if torch is absent), every
# notebook re-executed by nbval in strict mode (under the pinned arithmetic, then
# under the other CPU configuration this machine can emulate), the published book
# opened in headless Chromium, and a chapter opened in JupyterLab. Sets up its own
# environment first.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup_env.sh
venv=${CNNBOOK_VENV:-.venv}
export PATH="$PWD/$venv/bin:$PATH"
export PYTHONHASHSEED=0

echo "== lint and format (ruff)"
ruff check .
ruff format --check .

echo "== build the book (the browser test opens it)"
bash scripts/build_book.sh
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test: installing Debian's chromium for the browser test"
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else
    echo "test: chromium is missing; install it (e.g. apt-get install chromium)" >&2
    exit 1
  fi
fi

echo "== unit, property, parity and browser tests, doctests"
CI=${CI:-true} MPLBACKEND=Agg pytest -q -p no:cacheprovider tests cnnbook book/support/cnnbook_book \
  experiments

# Chapters are executed and compared under pinned arithmetic (the same settings that
# scripts/execute_notebooks.sh stores outputs with): see docs/AUTHORING.md.
export CNNBOOK_PYTHON="$venv/bin/python"
# shellcheck source=scripts/pinned_arithmetic.sh
source scripts/pinned_arithmetic.sh
echo "== notebooks: nbval, strict, pinned arithmetic" \
  "(OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-native}," \
  "NPY_DISABLE_CPU_FEATURES=${NPY_DISABLE_CPU_FEATURES:-none})"
pytest -q -p no:cacheprovider --nbval --nbval-current-env --ignore=book/support \
  --nbval-sanitize-with book/nbval_sanitize.cfg book/

echo "== notebooks: nbval, strict, under the other CPU configuration"
python scripts/nbval_other_cpu.py
