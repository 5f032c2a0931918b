"""The built book in a real browser: every page of _toc.yml opened in headless Chromium.

Needs the built site (``bash scripts/build_book.sh`` writes ``_build/html``; this test
builds nothing) and Debian's ``chromium`` (``apt-get install -y chromium``), or Chrome,
or the browser named by ``$CHROMIUM``. Without either it fails when the environment
variable ``CI`` is set and skips otherwise.

The site is served on loopback by a server that records every request, so for each
page the test sees what the browser actually fetched. It asserts:

- equations are typeset: at least one ``<mjx-container>`` per math element Sphinx
  wrote, and no math element left as raw TeX;
- figures are present: every image output stored in the notebook appears as an
  ``<img>``, and the browser fetched each image successfully;
- saved widgets render: each widget view stored in the notebook became a
  ``widget-subarea`` with rendered ipywidgets inside, or, on a page whose widgets only
  display something (a finished progress bar), static HTML (``cnnbook_reader.py``);
- exercise solutions (``{admonition}`` with ``:class: dropdown``) start collapsed;
- no missing local assets: every local ``src``/``href`` in the rendered DOM exists in
  ``_build/html``, no request the page made got a 404, and no script or stylesheet is
  loaded from another host.

A screenshot per page goes to ``artifacts/screenshots/`` (not committed).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest
from book_pages import toc_pages, unavailable

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "artifacts" / "screenshots"
REPORTS = ROOT / "artifacts" / "browser"  # one JSON per page: what the test saw

pytestmark = pytest.mark.slow

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1280,1800",
    "--virtual-time-budget=20000",
]
IMAGE_MIME = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


# ----------------------------------------------------------------------------------
# the pages: _toc.yml
# ----------------------------------------------------------------------------------
def source_file(docname: str) -> Path:
    for suffix in (".ipynb", ".md", ".rst"):
        path = ROOT / (docname + suffix)
        if path.exists():
            return path
    raise FileNotFoundError(f"_toc.yml lists {docname!r} but no such source exists")


@dataclass
class Expected:
    """What a page must show, read from its notebook's stored outputs."""

    images: int = 0
    widget_views: int = 0  # rendered by the ipywidgets manager
    static_widgets: int = 0  # display-only, written as HTML by cnnbook_reader.py
    jupyter_only: int = 0  # explorers replaced by a note (their live twin is there)


def _reader_ext():
    """book/_ext/cnnbook_reader.py, which decides where the widget manager loads."""
    import importlib.util

    path = ROOT / "book" / "_ext" / "cnnbook_reader.py"
    spec = importlib.util.spec_from_file_location("cnnbook_reader", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def expected_from_source(path: Path) -> Expected:
    if path.suffix != ".ipynb":
        return Expected()
    nb = json.loads(path.read_text(encoding="utf-8"))
    exp = Expected()
    has_state = bool(
        nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state")
    )
    views = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code" or "remove-output" in cell.get(
            "metadata", {}
        ).get("tags", []):
            continue
        jupyter_only = "jupyter-only" in cell.get("metadata", {}).get("tags", [])
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if has_state and WIDGET_VIEW in data and jupyter_only:
                exp.jupyter_only += 1
            elif has_state and WIDGET_VIEW in data:
                views.append(data[WIDGET_VIEW]["model_id"])  # instead of a fallback
            elif any(m in data for m in IMAGE_MIME):
                exp.images += 1
    if views:
        ext = _reader_ext()
        state = nb["metadata"]["widgets"][WIDGET_STATE]
        if all(ext._models(state, v) <= ext.DISPLAY_ONLY for v in views):
            exp.static_widgets = len(views)
        else:
            exp.widget_views = len(views)
    return exp


# ----------------------------------------------------------------------------------
# serving the site
# ----------------------------------------------------------------------------------
@dataclass
class Site:
    base: str
    requests: list[tuple[str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_requests(self) -> list[tuple[str, int]]:
        with self.lock:
            taken, self.requests[:] = list(self.requests), []
        return taken


@pytest.fixture(scope="module")
def site():
    if not (HTML / "index.html").exists():
        unavailable(f"{HTML} is not built: run `bash scripts/build_book.sh` first")
    recorder = Site(base="")

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(HTML), **kwargs)

        def log_request(self, code="-", size="-"):
            status = code.value if hasattr(code, "value") else int(code)
            with recorder.lock:
                recorder.requests.append((urlsplit(self.path).path, status))

        def log_message(self, format, *args):  # keep the test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    recorder.base = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@functools.cache
def chromium() -> str:
    """The browser: $CHROMIUM if set, else Debian's chromium (or Chrome) on PATH."""
    names = [os.environ.get("CHROMIUM", ""), "chromium", "chromium-browser"]
    for name in [*names, "google-chrome", "google-chrome-stable"]:
        path = shutil.which(name) if name else None
        if path:
            return path
    return ""


def run_chromium(*args: str) -> subprocess.CompletedProcess:
    exe = chromium()
    if not exe:
        unavailable("chromium is not installed: apt-get install -y chromium")
    with tempfile.TemporaryDirectory(prefix="cnnbook-chromium-") as profile:
        return subprocess.run(
            [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )


# ----------------------------------------------------------------------------------
# reading the rendered DOM
# ----------------------------------------------------------------------------------
class DomScan(HTMLParser):
    """Collect (tag, attribute, value) for every src/href, and every class list."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str, str, dict]] = []
        self.classes: list[list[str]] = []

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        self.classes.append(attrs.get("class", "").split())
        for name in ("src", "href"):
            if attrs.get(name):
                self.links.append((tag, name, attrs[name], attrs))


def count_class(scan: DomScan, name: str) -> int:
    return sum(name in classes for classes in scan.classes)


def local_file(url: str) -> Path:
    path = unquote(urlsplit(url).path).lstrip("/")
    target = HTML / path
    return target / "index.html" if target.is_dir() or not path else target


# ----------------------------------------------------------------------------------
# the test
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize("docname", toc_pages())
def test_page_renders_in_chromium(site, docname):
    page = HTML / f"{docname}.html"
    assert page.exists(), f"{docname} is in _toc.yml but {page} was not built"
    static = page.read_text(encoding="utf-8")
    expected = expected_from_source(source_file(docname))
    url = urljoin(site.base, f"{docname}.html")

    site.take_requests()
    result = run_chromium("--dump-dom", url)
    dom = result.stdout
    requests = site.take_requests()
    assert "</html>" in dom, (
        f"chromium rendered nothing for {url}: {result.stderr[-2000:]}"
    )
    scan = DomScan()
    scan.feed(dom)

    # equations typeset (Sphinx writes one class="math" element per equation)
    math_elements = len(re.findall(r'class="math[ "]', static))
    typeset = dom.count("<mjx-container")
    assert typeset >= math_elements, (
        f"{docname}: {typeset} typeset equations for {math_elements} math elements"
    )
    raw = re.findall(r'class="math[^"]*">\s*(\\[(\[][^<]{0,60})', dom)
    assert not raw, f"{docname}: math left as raw TeX: {raw[:3]}"

    # figures: every stored image output is on the page and was fetched
    images = [v for tag, name, v, _ in scan.links if tag == "img" and name == "src"]
    content_images = [v for v in images if "/_images/" in urljoin(url, v)]
    assert len(content_images) >= expected.images, (
        f"{docname}: {len(content_images)} output images, notebook stores "
        f"{expected.images}"
    )
    fetched = {path for path, status in requests if status == 200}
    for src in content_images:
        assert urlsplit(urljoin(url, src)).path in fetched, (
            f"{docname}: {src} not loaded"
        )

    # widgets: each stored view rendered by the (local) ipywidgets HTML manager
    if expected.widget_views:
        subareas = count_class(scan, "widget-subarea")
        rendered = count_class(scan, "jupyter-widgets")
        assert subareas >= expected.widget_views and rendered >= subareas, (
            f"{docname}: {expected.widget_views} widget views stored, {subareas} "
            f"rendered areas, {rendered} rendered widgets"
        )
        assert not re.search(r'<div class="widget-subarea"></div>', dom), (
            f"{docname}: an empty widget area (the widget manager did not render it)"
        )

    # display-only widgets (a finished progress bar) are static HTML, no manager
    if expected.static_widgets:
        static_areas = count_class(scan, "cnnbook-static-widget")
        assert static_areas >= expected.static_widgets, (
            f"{docname}: {expected.static_widgets} display-only widgets stored, "
            f"{static_areas} written as static HTML"
        )

    # an ipywidgets explorer whose live twin is on the page is replaced by a note
    # (its saved controls would do nothing without a kernel)
    notes = count_class(scan, "cnnbook-jupyter-only")
    assert notes == expected.jupyter_only, (
        f"{docname}: {expected.jupyter_only} Jupyter-only explorers stored, "
        f"{notes} notes in their place"
    )

    # exercise solutions (dropdown admonitions) start collapsed (sphinx-togglebutton)
    dropdowns = len(re.findall(r'class="dropdown admonition', static))
    hidden = sum(
        {"dropdown", "admonition", "toggle-hidden"} <= set(c) for c in scan.classes
    )
    assert hidden >= dropdowns, f"{docname}: {dropdowns - hidden} solutions not hidden"

    # local assets exist; nothing executable or styling comes from elsewhere
    host = urlsplit(site.base).netloc
    missing, external = [], []
    for tag, _attr, value, attrs in scan.links:
        if value.startswith(("#", "data:", "mailto:", "javascript:", "about:")):
            continue
        absolute = urljoin(url, value)
        parts = urlsplit(absolute)
        if parts.netloc == host:
            if not local_file(absolute).exists():
                missing.append(value)
        elif tag == "script" or (
            tag == "link" and "stylesheet" in attrs.get("rel", "")
        ):
            external.append(value)
    assert not missing, f"{docname}: local files missing from _build/html: {missing}"
    assert not external, (
        f"{docname}: loads scripts/styles from the internet: {external}"
    )
    failed = [(p, s) for p, s in requests if s >= 400 and p != "/favicon.ico"]
    assert not failed, f"{docname}: requests that failed while rendering: {failed}"

    # what was seen, for people (and issue notes) to read
    REPORTS.mkdir(parents=True, exist_ok=True)
    seen = {
        "page": docname,
        "equations_typeset": typeset,
        "math_elements": math_elements,
        "output_images": len(content_images),
        "widget_views_stored": expected.widget_views,
        "widgets_rendered": count_class(scan, "jupyter-widgets"),
        "hidden_solutions": hidden,
        "local_requests": len(requests),
    }
    (REPORTS / f"{docname.replace('/', '_')}.json").write_text(json.dumps(seen))

    # a screenshot for people to look at
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / (docname.replace("/", "_") + ".png")
    shot.unlink(missing_ok=True)
    run_chromium(f"--screenshot={shot}", url)
    assert shot.exists() and shot.stat().st_size > 10_000, f"no screenshot of {url}"
