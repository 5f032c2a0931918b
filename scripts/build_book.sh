#!/usr/bin/env bash
# Build the HTML book into _build/html: the README's main command.
#
#   bash scripts/build_book.sh
#
# 1. scripts/setup_env.sh creates .venv if missing and installs requirements.txt and
#    the package (-e .); set CNNBOOK_SKIP_SETUP=1 to skip it when .venv is ready.
# 2. npm installs the JavaScript the built pages need offline (package-lock.json:
#    MathJax 3, the ipywidgets HTML manager; axe-core for the browser test) and the
#    files are copied to _build/vendor, which _config.yml serves as
#    _build/html/_static/{mathjax,...}
#    (also Font Awesome 4, which matplotlib's JavaScript animations use).
# 3. jupyter-book builds from the outputs stored in the notebooks, warnings fatal.
# 4. The pages are checked for script URLs pointing at a CDN.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${CNNBOOK_VENV:-.venv}"
if [ "${CNNBOOK_SKIP_SETUP:-0}" != 1 ]; then
    bash scripts/setup_env.sh
fi

# ---- offline JavaScript ----------------------------------------------------------
stamp=node_modules/.cnnbook-lock.sha256
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "== npm ci (package-lock.json changed or node_modules missing)"
    npm ci --no-audit --no-fund --loglevel=error
    echo "$want" > "$stamp"
fi

vendor=_build/vendor
rm -rf "$vendor"
mkdir -p "$vendor/mathjax" "$vendor/html-manager"
# MathJax: the combined TeX + SVG component and the pieces it loads on demand
# (extensions, menu, accessibility). SVG output draws glyphs from paths inside the
# script, so a page fetches no font files (CommonHTML fetched 6-11 per page).
mj=node_modules/mathjax/es5
cp "$mj/tex-svg.js" "$vendor/mathjax/"
for d in input output ui a11y adaptors sre; do
    cp -r "$mj/$d" "$vendor/mathjax/"
done
# the ipywidgets HTML manager: embed.js bundles the core widgets and needs no RequireJS
# (1.9 MB; embed-amd.js + require.js were 3.7 MB). Loaded only by pages with widgets.
hm=node_modules/@jupyter-widgets/html-manager/dist
cp "$hm/embed.js" "$vendor/html-manager/"
# the icon fonts the widget CSS refers to, found next to the script
find "$hm" -maxdepth 1 -type f \
    \( -name '*.woff' -o -name '*.woff2' -o -name '*.ttf' -o -name '*.eot' \
       -o -name '*.svg' \) -exec cp {} "$vendor/html-manager/" \;

# Font Awesome 4 for the play/step buttons of matplotlib's JavaScript animations
mkdir -p "$vendor/font-awesome"
cp -r node_modules/font-awesome/css node_modules/font-awesome/fonts "$vendor/font-awesome/"

# ---- the book --------------------------------------------------------------------
start=$(date +%s)
# --all: a full rebuild, so warnings from pages that did not change are not hidden
"$VENV/bin/jupyter-book" build --all -W -n --keep-going .
echo "== book built in $(( $(date +%s) - start )) s: _build/html/index.html"

# ---- nothing essential may come from a CDN ---------------------------------------
cdn='(src|href)="https?://[^"]*(mathjax|require(\.min)?\.js|html-manager|embed-amd)'
if grep -rlE "$cdn" _build/html --include='*.html'; then
    echo "error: the pages above load MathJax/RequireJS/widgets from the internet" >&2
    exit 1
fi
