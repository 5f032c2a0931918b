"""The built book as a reader sees it: every page of _toc.yml in a real browser, at a
desktop width (1366 px) and a phone width (390 px), on a cold cache.

The sibling ``test_book_browser.py`` checks that the pages render what the notebooks
store (equations, figures, widgets, local assets). This test drives Debian's Chromium
through Playwright's Python package (no browser download) and fails on what a reader
would see go wrong:

- a MathJax error (``mjx-merror``, or an undefined macro that MathJax writes in red)
  or TeX left as text in the page;
- any console error (a failed request included) or uncaught exception in the page;
- the page wider than the window at 390 px: a wide table, equation, code block or
  widget may scroll inside its own box, the page may not;
- an axe-core violation of impact critical or serious that is not in the documented
  allow-list ``tests/book_reader_allowlist.yml`` (each entry gives its reason);
- a page heavier than ``MAX_BYTES`` or making more than ``MAX_REQUESTS`` requests on
  a cold cache (measured at 1366 px; bytes as transferred by a server that gzips
  text, as static hosts do), unless the allow-list gives that page a documented
  budget of its own.

It writes ``artifacts/reader/pages.md`` and ``pages.json`` (bytes, requests, load time,
axe counts by impact, per page and width) and full-page screenshots at both widths to
``artifacts/reader/``. Needs the built site (``bash scripts/build_book.sh``), the
``playwright`` package, Debian's ``chromium`` (or ``$CHROMIUM``) and ``axe-core`` from
``npm ci``. Without them it fails when ``CI`` is set and skips otherwise.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urljoin

import pytest
import yaml
from book_pages import toc_pages, unavailable
from cnnbook_book import figures

ROOT = Path(__file__).resolve().parents[1]
# the built site; CNNBOOK_HTML measures another build (e.g. an older commit's)
HTML = Path(os.environ.get("CNNBOOK_HTML", ROOT / "_build" / "html"))
OUT = ROOT / "artifacts" / "reader"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
ALLOWLIST = Path(__file__).with_name("book_reader_allowlist.yml")

# per page, cold cache, everything it fetches, as transferred (text gzipped)
MAX_BYTES = 2_500_000
MAX_REQUESTS = 40
WIDTHS = {"desktop": (1366, 900), "phone": (390, 844)}
BLOCKING = ("critical", "serious")
GZIPPED = ("application/javascript", "text/javascript", "application/json",
           "image/svg+xml")  # fmt: skip  # axe impacts that fail the test

pytestmark = pytest.mark.slow


# ----------------------------------------------------------------------------------
# fixtures: the site on loopback, one browser
# ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base_url():
    if not (HTML / "index.html").exists():
        unavailable(f"{HTML} is not built: run `bash scripts/build_book.sh` first")

    packed: dict[Path, bytes] = {}

    class Handler(SimpleHTTPRequestHandler):
        """Serves _build/html, gzipping text as static hosts (GitHub Pages) do."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(HTML), **kwargs)

        def do_GET(self):
            path = Path(self.translate_path(self.path))
            kind = self.guess_type(str(path))
            if (
                "gzip" not in self.headers.get("Accept-Encoding", "")
                or not path.is_file()
                or not (kind.startswith("text/") or kind in GZIPPED)
            ):
                return super().do_GET()
            if path not in packed:
                packed[path] = gzip.compress(path.read_bytes(), compresslevel=6)
            data = packed[path]
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _chromium() -> str:
    for name in (os.environ.get("CHROMIUM", ""), "chromium", "chromium-browser"):
        path = shutil.which(name) if name else None
        if path:
            return path
    return ""


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is not installed (requirements.txt)")
    exe = _chromium()
    if not exe:
        unavailable("chromium is not installed: apt-get install -y chromium")
    if not AXE.exists():
        unavailable(f"{AXE} is missing: run `npm ci`")
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=exe,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def allowlist() -> dict:
    """The documented exceptions (axe violations, page weights), each with a reason."""
    doc = yaml.safe_load(ALLOWLIST.read_text(encoding="utf-8")) or {}
    for entry in doc.get("axe") or []:
        assert entry.get("rule") and entry.get("reason"), (
            f"{ALLOWLIST.name}: every axe entry needs a rule and a reason: {entry}"
        )
    for entry in doc.get("weight") or []:
        assert entry.get("page") and entry.get("reason"), (
            f"{ALLOWLIST.name}: every weight entry needs a page and a reason: {entry}"
        )
    return {"axe": doc.get("axe") or [], "weight": doc.get("weight") or []}


@pytest.fixture(scope="module")
def table():
    """Rows of the per-page table, written to artifacts/reader/ at the end."""
    rows: list[dict] = []
    yield rows
    if not rows:
        return
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "pages.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    lines = [
        "| page | width | KB sent | KB decoded | requests | load s | ready s "
        "| axe critical/serious/moderate/minor | min figure scale | problems |",
        "|:--|:--|--:|--:|--:|--:|--:|:--|--:|--:|",
    ]
    for r in rows:
        axe = "/".join(
            str(r["axe"].get(k, 0))
            for k in ("critical", "serious", "moderate", "minor")
        )
        lines.append(
            f"| {r['page']} | {r['width']} | {r['bytes'] / 1000:.0f} | "
            f"{r['decoded_bytes'] / 1000:.0f} | "
            f"{r['requests']} | {r['load_s']:.2f} | {r['ready_s']:.2f} | {axe} | "
            f"{r['min_figure_scale'] or '-'} | {len(r['problems'])} |"
        )
    (OUT / "pages.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------------
# in-page probes
# ----------------------------------------------------------------------------------
# Resolves once MathJax has typeset the page (or at once when the page has no MathJax).
WAIT_MATHJAX = """async () => {
  for (let i = 0; i < 200 && window.MathJax && !MathJax.startup?.promise; i++)
    await new Promise(r => setTimeout(r, 50));
  if (window.MathJax?.startup?.promise) await MathJax.startup.promise;
}"""

# MathJax errors: <mjx-merror> in the output, plus undefined macros, which MathJax's
# noundefined package typesets in red instead of failing.
MATH_ERRORS = """() => {
  const found = [];
  document.querySelectorAll('mjx-merror').forEach(e => found.push(
    'mjx-merror: ' + (e.getAttribute('data-mjx-error') || e.textContent).slice(0, 80)));
  const doc = window.MathJax?.startup?.document;
  for (const item of (doc?.math || [])) {
    const mml = MathJax.startup.toMML(item.root);
    if (/<merror|mathcolor="red"/.test(mml)) found.push('error in: ' +
      item.math.slice(0, 80));
  }
  return found;
}"""

# TeX left as text: backslash commands, $$ or $\ outside code, typeset math and
# scripts (what MathJax did not pick up, or what Markdown broke apart).
RAW_TEX = r"""() => {
  const skip = 'pre, code, mjx-container, script, style, textarea, kbd, samp, ' +
    '.highlight, .output_area pre, mjx-assistive-mml, .sig';
  const walker = document.createTreeWalker(
    document.querySelector('main') || document.body, NodeFilter.SHOW_TEXT);
  const found = [];
  const tex = /\\[a-zA-Z]{2,}|\$\$|\$\s*\\|\\[()[\]]/;
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (n.parentElement.closest(skip)) continue;
    const m = n.textContent.match(tex);
    if (m) found.push(n.textContent.slice(Math.max(0, m.index - 30), m.index + 50));
  }
  return found;
}"""

# The page wider than the window: the document scrolls sideways, or content sticks
# out past the right edge without a scrolling (or clipping) box around it.
OVERFLOW = """() => {
  const vw = document.documentElement.clientWidth;
  const res = {vw, scrollWidth: document.documentElement.scrollWidth, culprits: []};
  const main = document.querySelector('main') || document.body;
  // Inside a box that scrolls (overflow auto/scroll) and itself fits in the window:
  // fine. Cut off by a box with overflow hidden/clip: the reader cannot reach it.
  const boxed = el => {
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      const ox = getComputedStyle(a).overflowX;
      if (ox === 'visible') continue;
      if (a.matches('mjx-assistive-mml, .visually-hidden, .sr-only')) return true;
      // a scrolling box that itself sticks out is fine inside another scrolling box
      return /auto|scroll/.test(ox) &&
        (a.getBoundingClientRect().right <= vw + 1 || boxed(a));
    }
    return false;
  };
  const fixed = el => {
    for (let a = el; a && a !== document.body; a = a.parentElement)
      if (getComputedStyle(a).position === 'fixed') return true;
    return false;
  };
  for (const el of main.querySelectorAll('*')) {
    // the parts of an SVG (MathJax's glyphs) are drawn inside its own box: the
    // outermost <svg> is judged instead
    if (el.ownerSVGElement) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.right <= vw + 1) continue;
    if (!el.checkVisibility({visibilityProperty: true})) continue;
    if (fixed(el)) continue;  // off-canvas drawers (the theme's sidebars)
    if (boxed(el)) continue;
    const name = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
      (el.className && typeof el.className === 'string'
        ? '.' + el.className.trim().split(/\\s+/).slice(0, 2).join('.') : '');
    res.culprits.push(`${name} right=${Math.round(r.right)}`);
  }
  return res;
}"""

AXE_RUN = """async () => {
  const r = await axe.run(document, {resultTypes: ['violations']});
  return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => n.target.join(' '))}));
}"""


def _allowed(violation: dict, target: str, docname: str, entries: list[dict]) -> bool:
    for e in entries:
        if e["rule"] != violation["id"]:
            continue
        if "pages" in e and docname not in e["pages"]:
            continue
        if "target" in e and not re.search(e["target"], target):
            continue
        return True
    return False


def visit(browser, url: str, width: str) -> tuple[dict, object, object]:
    """Open url in a fresh context (empty cache); return measurements and the page."""
    w, h = WIDTHS[width]
    ctx = browser.new_context(
        viewport={"width": w, "height": h},
        is_mobile=width == "phone",
        has_touch=width == "phone",
        device_scale_factor=1,
    )
    page = ctx.new_page()
    errors: list[str] = []
    page.on(
        "console",
        lambda m: m.type == "error" and errors.append(f"console: {m.text[:200]}"),
    )
    page.on("pageerror", lambda e: errors.append(f"page error: {str(e)[:200]}"))
    cdp = ctx.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    net = {"requests": 0, "bytes": 0, "decoded": 0, "failed": [], "open": set()}
    net["last"] = 0.0

    def started(e):
        if e["request"]["url"].startswith("data:"):
            return  # an animation frame shown from the page itself: no network
        net["requests"] += 1
        net["open"].add(e["requestId"])
        net["last"] = time.perf_counter()

    def finished(e, failed=False):
        if e["requestId"] not in net["open"]:
            return
        net["open"].discard(e["requestId"])
        net["last"] = time.perf_counter()
        if failed:
            net["failed"].append(e["errorText"])
        else:
            net["bytes"] += e["encodedDataLength"]

    cdp.on("Network.requestWillBeSent", started)
    cdp.on("Network.loadingFinished", finished)
    cdp.on(
        "Network.dataReceived",
        lambda e: net.update(decoded=net["decoded"] + e["dataLength"]),
    )
    cdp.on("Network.loadingFailed", lambda e: finished(e, failed=True))
    start = time.perf_counter()
    page.goto(url, wait_until="load", timeout=60_000)
    load_s = time.perf_counter() - start
    # quiet: nothing requested or received for 0.5 s (fonts and MathJax's pieces
    # load after the load event)
    while time.perf_counter() - start < 30:
        page.wait_for_timeout(100)
        if not net["open"] and time.perf_counter() - net["last"] > 0.5:
            break
    page.evaluate(WAIT_MATHJAX)
    page.wait_for_timeout(600)  # widgets render after their models resolve
    ready_s = time.perf_counter() - start
    seen = {
        "requests": net["requests"],
        "bytes": net["bytes"],
        "decoded": net["decoded"],
        "load_s": load_s,
        "ready_s": ready_s,
        "errors": errors + [f"request failed: {f}" for f in net["failed"]],
    }
    return seen, page, ctx


@pytest.mark.parametrize("width", list(WIDTHS))
@pytest.mark.parametrize("docname", toc_pages())
def test_page_as_a_reader_sees_it(browser, base_url, allowlist, table, docname, width):
    url = urljoin(base_url, f"{docname}.html")
    seen, page, ctx = visit(browser, url, width)
    problems: list[str] = list(seen["errors"])
    try:
        problems += page.evaluate(MATH_ERRORS)
        problems += [f"raw TeX: {t!r}" for t in page.evaluate(RAW_TEX)]
        if width == "phone":
            o = page.evaluate(OVERFLOW)
            if o["scrollWidth"] > o["vw"] + 1 or o["culprits"]:
                problems.append(
                    f"page overflows {o['vw']} px (scrollWidth {o['scrollWidth']}): "
                    f"{o['culprits'][:5]}"
                )
        else:
            # the figure rule (tests/test_book_figures.py) assumes this column width
            column = page.evaluate(
                "() => Math.max(0, ...[...document.querySelectorAll('.cell_output')]"
                ".map(e => e.getBoundingClientRect().width))"
            )
            if column and column < figures.COLUMN_PX - 0.5:
                problems.append(
                    f"output column {column:.0f} px < figures.COLUMN_PX "
                    f"{figures.COLUMN_PX}: the figure rule assumes more room"
                )
            budget = {"max_bytes": MAX_BYTES, "max_requests": MAX_REQUESTS}
            for entry in allowlist["weight"]:
                if entry["page"] == docname:
                    budget.update(entry)
            if seen["bytes"] > budget["max_bytes"]:
                problems.append(f"{seen['bytes']:,} bytes > {budget['max_bytes']:,}")
            if seen["requests"] > budget["max_requests"]:
                problems.append(
                    f"{seen['requests']} requests > {budget['max_requests']}"
                )
        # how far figures are shrunk (displayed / natural width): recorded, not judged
        # here (figure sizes and fonts belong to the plotting helpers)
        scales = page.evaluate(
            "() => [...document.querySelectorAll('main img')]"
            ".filter(i => i.naturalWidth > 0 && i.getBoundingClientRect().width > 0)"
            ".map(i => i.getBoundingClientRect().width / i.naturalWidth)"
        )
        page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
        counts: dict[str, int] = {}
        for v in page.evaluate(AXE_RUN):
            counts[v["impact"]] = counts.get(v["impact"], 0) + len(v["nodes"])
            if v["impact"] not in BLOCKING:
                continue
            for target in v["nodes"]:
                if not _allowed(v, target, docname, allowlist["axe"]):
                    problems.append(f"axe {v['impact']} {v['id']}: {target}")
        OUT.mkdir(parents=True, exist_ok=True)
        shot = OUT / f"{docname.replace('/', '_')}-{WIDTHS[width][0]}.png"
        page.screenshot(path=str(shot), full_page=True)
    finally:
        ctx.close()
    table.append(
        {
            "page": docname,
            "width": WIDTHS[width][0],
            "bytes": seen["bytes"],
            "decoded_bytes": seen["decoded"],
            "requests": seen["requests"],
            "load_s": round(seen["load_s"], 2),
            "ready_s": round(seen["ready_s"], 2),
            "axe": counts,
            "min_figure_scale": round(min(scales), 2) if scales else None,
            "problems": problems,
        }
    )
    assert not problems, f"{docname} at {WIDTHS[width][0]} px:\n" + "\n".join(problems)
