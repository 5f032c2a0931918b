#!/usr/bin/env bash
# Re-execute chapters in place, storing their outputs and widget state, under the
# pinned arithmetic that nbval uses (scripts/pinned_arithmetic.sh).
#
#   bash scripts/execute_notebooks.sh                 # every chapter, in book order
#   bash scripts/execute_notebooks.sh intro backprop  # some, by name
#
# The conclusion counts every chapter's checks, so it runs last whenever it is named.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${CNNBOOK_VENV:-.venv}
export CNNBOOK_PYTHON="$venv/bin/python"
# shellcheck source=scripts/pinned_arithmetic.sh
source scripts/pinned_arithmetic.sh

if [ $# -eq 0 ]; then
    # book order, from _toc.yml
    set -- $(grep -oE '(root|file): book/[A-Za-z0-9_]+' _toc.yml | sed 's|.*book/||')
fi
for name in "$@"; do
    nb="book/${name%.ipynb}.ipynb"
    nb="${nb#book/book/}"
    [ -f "$nb" ] || continue  # Markdown pages (api, bibliography) have nothing to run
    start=$(date +%s)
    if ! "$venv/bin/jupyter" execute --inplace --timeout=900 "$nb" 2> >(
        grep -v 'running over TCP without encryption' >&2); then
        echo "execute: $nb failed" >&2
        exit 1
    fi
    echo "executed $nb in $(( $(date +%s) - start )) s"
done
