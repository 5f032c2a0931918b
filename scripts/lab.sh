#!/usr/bin/env bash
# Open the chapters in JupyterLab, with live widgets: the README's command for
# running the book.
#
#   bash scripts/lab.sh                              # opens a browser tab
#   bash scripts/lab.sh --no-browser --port 8888     # extra arguments go to JupyterLab
#
# 1. scripts/setup_env.sh creates .venv if missing and installs requirements.txt
#    (JupyterLab 4, ipywidgets 8 and their JupyterLab extension) and the package;
#    set CNNBOOK_SKIP_SETUP=1 to skip it when .venv is ready.
# 2. scripts/pinned_arithmetic.sh pins the floating-point arithmetic the way the
#    stored outputs were made, so the chapters print the book's numbers.
# 3. JupyterLab starts with its file browser on book/; the kernel ("Python 3") is
#    the environment's Python.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${CNNBOOK_VENV:-.venv}
if [ "${CNNBOOK_SKIP_SETUP:-0}" != 1 ]; then
    bash scripts/setup_env.sh
fi

export CNNBOOK_PYTHON="$venv/bin/python"
# shellcheck source=scripts/pinned_arithmetic.sh
source scripts/pinned_arithmetic.sh
# a terminal opened in JupyterLab finds the environment's python, pip and jupyter
PATH="$PWD/$venv/bin:$PATH"
export PATH

args=(--ServerApp.root_dir="$PWD/book")
if [ "$(id -u)" = 0 ]; then
    args+=(--allow-root)  # containers run as root; JupyterLab refuses it otherwise
fi
exec "$venv/bin/jupyter" lab "${args[@]}" "$@"
