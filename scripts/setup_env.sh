#!/usr/bin/env bash
# Create (or bring up to date) the project's virtual environment from the
# project's own files: requirements.txt, pyproject.toml (the cnnbook package)
# and book/support/pyproject.toml (the chapters' helpers, cnnbook_book). Idempotent: a
# stamp holding the hash of those files skips the install when nothing changed.
#   CNNBOOK_VENV   where the environment lives (default: .venv)
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${CNNBOOK_VENV:-.venv}
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating virtual environment $venv"
  "$python" -m venv "$venv"
fi

want=$(cat requirements.txt pyproject.toml book/support/pyproject.toml | sha256sum | cut -d' ' -f1)
stamp="$venv/.cnnbook-requirements"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing requirements.txt, cnnbook and cnnbook_book (editable) into $venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
  "$venv/bin/python" -m pip install --quiet -r requirements.txt -e . -e book/support 2>&1 \
    | grep -v '^WARNING: Location' || true
  "$venv/bin/python" -c "import cnnbook, cnnbook_book, numpy, nbval, jupyter_book" \
    || { echo "setup: installation failed" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
