"""Sphinx extension: the published pages as a reader gets them (issue 10).

Each HTML page is adjusted where configuration alone cannot reach:

1. Scripts: an inline script that two extensions both add (sphinx-thebe's
   ``THEBE_JS_URL``, sphinx-togglebutton's selector) is written once; a second
   ``const`` declaration is a SyntaxError in the browser. Thebe's files load only
   if ``launch_buttons: thebe`` is on, sphinx-design's only on pages that use it.
2. Widgets: the ipywidgets HTML manager (``nb_ipywidgets_js``, ~1.9 MB) loads only on
   pages with a widget a reader can use. A page whose widgets only *display* something
   (a finished tqdm progress bar: an HBox of HTML labels and a progress bar) gets their
   final state written as static HTML, a ``<progress>`` element and text, and neither
   the manager nor the saved widget state.
3. The theme's ``fontawesome.js`` (1.5 MB, replaces icons by SVG) is not loaded: the
   theme's stylesheet already draws the same icons with Font Awesome's web fonts.
   Sphinx's search scripts and index load on the search page only (the theme's
   search-as-you-type, which needs them everywhere, is off).
4. Accessibility of the theme's markup (axe-core): the search buttons and code-cell
   toggles carry an ``aria-label`` that does not contain their visible text
   (label-content-name-mismatch), so the label is dropped and the visible text names
   them; the frames of a JavaScript animation get alt text and its slider a name;
   bibliography entries use the deprecated ``doc-biblioentry`` role inside a
   ``role="list"``, so they become ``listitem``; the primary sidebar becomes a
   landmark (``complementary``), so that no content lies outside one.
5. The theme's colour mode defaults to ``auto`` (an empty mode is a console error).
6. Code cells carry ``id="code-cell-N"`` (their number among the chapter's code
   cells), the targets of the conclusion's links to the cell that checks a claim.
7. Live explorers (issue 11): a page whose body holds ``data-cnnbook-live="KIND"``
   (``cnnbook_book.live``) loads ``_static/explorers/KIND.js``, after
   ``_static/explorers/common.js`` (helpers shared by the scripts that use
   ``window.cnnbookLive``) where one of its scripts does; no other page does.
   An ipywidgets explorer in a cell tagged ``jupyter-only`` (one whose live
   counterpart is on the page) is replaced by a note saying where it runs: its saved
   controls would do nothing here. A page left with no widget loses the manager.

The stylesheet ``cnnbook-reader.css`` and script ``cnnbook-reader.js`` in
``book/_assets`` do the rest (phone width, scroll boxes).
"""

from __future__ import annotations

import functools
import html
import itertools
import json
import re
from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)

WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = re.compile(
    r'<script type="application/vnd.jupyter.widget-view\+json">(.*?)</script>', re.S
)
# models whose saved state says everything there is to see: they need no manager
DISPLAY_ONLY = {
    "HBoxModel",
    "VBoxModel",
    "HTMLModel",
    "LabelModel",
    "FloatProgressModel",
    "IntProgressModel",
    "LayoutModel",
    "HTMLStyleModel",
    "LabelStyleModel",
    "ProgressStyleModel",
    "DescriptionStyleModel",
}


# ----------------------------------------------------------------------------------
# widgets
# ----------------------------------------------------------------------------------
def _state_of(script_files) -> dict | None:
    for js in script_files:
        if js.attributes.get("type") == WIDGET_STATE:
            return json.loads(js.attributes.get("body", ""))
    return None


def _models(state: dict, model_id: str) -> set[str]:
    """Model names of a widget and everything it refers to."""
    seen: set[str] = set()
    names: set[str] = set()

    def walk(mid):
        if mid in seen or mid not in state["state"]:
            return
        seen.add(mid)
        model = state["state"][mid]
        names.add(model["model_name"])
        for value in model["state"].values():
            refs = value if isinstance(value, list) else [value]
            for ref in refs:
                if isinstance(ref, str) and ref.startswith("IPY_MODEL_"):
                    walk(ref.removeprefix("IPY_MODEL_"))

    walk(model_id)
    return names


def _static(state: dict, model_id: str) -> str:
    """HTML for a display-only widget in its saved (final) state."""
    model = state["state"][model_id]
    name, s = model["model_name"], model["state"]
    if name in ("HBoxModel", "VBoxModel"):
        kind = "hbox" if name == "HBoxModel" else "vbox"
        inner = "".join(
            _static(state, ref.removeprefix("IPY_MODEL_")) for ref in s["children"]
        )
        return f'<div class="cnnbook-static-widget {kind}">{inner}</div>'
    if name == "HTMLModel":
        return f"<span>{s.get('value', '')}</span>"
    if name == "LabelModel":
        return f"<span>{html.escape(s.get('value', ''))}</span>"
    lo, hi, value = s.get("min", 0), s.get("max", 100), s.get("value", 0)
    percent = 100 * (value - lo) / (hi - lo) if hi > lo else 100
    return (
        f'<progress max="{hi - lo}" value="{value - lo}" '
        f'aria-label="progress {percent:.0f}%"></progress>'
    )


def page_widgets(app, pagename, templatename, context, doctree):
    """Keep the widget manager only where a widget does something."""
    scripts = context.get("script_files")
    if scripts is None:
        return
    # 1. an inline script added twice is written once
    seen, unique = set(), []
    for js in scripts:
        # ('' and None both mean "inline": the two copies differ only there)
        key = (js.filename or "", js.attributes.get("body"), js.attributes.get("type"))
        if js.attributes.get("body") and key in seen:
            continue
        seen.add(key)
        unique.append(js)
    scripts[:] = unique

    body = context["body"] = replace_jupyter_only(context.get("body", ""))
    drop_unused_assets(app, context, body)
    add_live_explorers(app, context, body)
    state = _state_of(scripts)
    if state is None:
        return
    views = [json.loads(m.group(1)) for m in WIDGET_VIEW.finditer(body)]
    if not views:  # every explorer was Jupyter-only: no manager, no saved state
        manager = {f"_static/{p}" for p in app.config.nb_ipywidgets_js}
        scripts[:] = [
            js
            for js in scripts
            if js.filename not in manager and js.attributes.get("type") != WIDGET_STATE
        ]
        return
    if any(
        not _models(state, v["model_id"]) <= DISPLAY_ONLY
        or v["model_id"] not in state["state"]
        for v in views
    ):
        return  # a control a reader can use: the manager stays
    manager = {f"_static/{p}" for p in app.config.nb_ipywidgets_js}
    scripts[:] = [
        js
        for js in scripts
        if js.filename not in manager and js.attributes.get("type") != WIDGET_STATE
    ]
    context["body"] = WIDGET_VIEW.sub(
        lambda m: _static(state, json.loads(m.group(1))["model_id"]), body
    )


CELL = re.compile(r'<div class="cell[ "]')
JUPYTER_ONLY_CELL = re.compile(r'<div class="cell [^"]*\btag_jupyter-only\b')
JUPYTER_ONLY_NOTE = (
    '<p class="cnnbook-jupyter-only">This explorer runs Python, so it works in '
    "Jupyter (<code>bash scripts/lab.sh</code> opens the chapters there); on this "
    "page the explorer beside it runs in your browser.</p>"
)


def replace_jupyter_only(body: str) -> str:
    """The ipywidgets explorers of cells tagged ``jupyter-only`` (those with a live
    counterpart on the page) become a note: their saved state would show controls
    that do nothing without a kernel."""
    out, end = [], 0
    for match in JUPYTER_ONLY_CELL.finditer(body):
        start = match.start()
        nxt = CELL.search(body, match.end())
        stop = nxt.start() if nxt else len(body)
        cell = body[start:stop]
        if WIDGET_VIEW.search(cell):
            cell = WIDGET_VIEW.sub("", cell)
            cell = cell.replace(
                '<div class="cell_output docutils container">',
                '<div class="cell_output docutils container">' + JUPYTER_ONLY_NOTE,
                1,
            )
        out += [body[end:start], cell]
        end = stop
    out.append(body[end:])
    return "".join(out)


LIVE = re.compile(r'data-cnnbook-live="([a-z_]+)"')
COMMON = "common"  # _static/explorers/common.js: shared by the explorers' scripts


def add_live_explorers(app, context, body: str) -> None:
    """The script of each kind of live explorer the page holds, once, deferred,
    after the helpers they share if one of them uses them (deferred scripts run
    in document order)."""
    from sphinx.builders.html._assets import _JavaScript

    kinds = sorted(set(LIVE.findall(body)))
    if any(uses_common(app.srcdir, kind) for kind in kinds):
        context["script_files"].append(
            _JavaScript(f"_static/explorers/{COMMON}.js", defer="defer")
        )
    for kind in kinds:
        context["script_files"].append(
            _JavaScript(f"_static/explorers/{kind}.js", defer="defer")
        )


@functools.cache
def uses_common(srcdir, kind: str) -> bool:
    """Whether ``book/_assets/explorers/KIND.js`` calls the shared helpers."""
    script = Path(srcdir) / "book" / "_assets" / "explorers" / f"{kind}.js"
    return script.is_file() and "window.cnnbookLive" in script.read_text("utf-8")


def drop_unused_assets(app, context, body: str) -> None:
    """Thebe when it is not configured; sphinx-design where the page has none of it."""
    unused = []
    if not app.config.html_theme_options.get("launch_buttons", {}).get("thebe"):
        unused += ["sphinx-thebe", "THEBE_JS_URL"]
    if 'class="sd-' not in body:
        unused += ["design-tabs.js", "sphinx-design"]

    def used(asset) -> bool:
        text = f"{asset.filename} {asset.attributes.get('body', '')}"
        return not any(name in text for name in unused)

    for key in ("script_files", "css_files"):
        if key in context:
            context[key][:] = [a for a in context[key] if used(a)]


# ----------------------------------------------------------------------------------
# the finished page
# ----------------------------------------------------------------------------------
FIXES = [
    # the theme's SVG icon script: its stylesheet already draws the icons
    (re.compile(r'\s*<script defer src="[^"]*_static/scripts/fontawesome\.js[^"]*">'
                r"</script>"), ""),
    # an aria-label that hides the visible text from speech input
    (re.compile(r'(<button class="btn search-button-field[^>]*?) aria-label="Search"'),
     r"\1"),
    (re.compile(r'<summary aria-label="Toggle hidden content">'), "<summary>"),
    # matplotlib's JavaScript animations (cnnbook.show.animation_html): the frame
    # image gets a text alternative and the frame slider a name
    (re.compile(r'<img id="_anim_img(\w+)">'),
     lambda m: f'<img id="_anim_img{m[1]}" alt="Animation: '
               f'{m[1].replace("_", " ")}, one frame at a time (controls below)">'),
    (re.compile(r'(<input id="_anim_slider\w+" type="range")'),
     r'\1 aria-label="Animation frame"'),
    # the launch menu's logos are fetched when the menu opens, not with every page
    (re.compile(r'(<img alt="(?:Binder|Colab|JupyterHub) logo")'),
     r'\1 loading="lazy"'),
    # the primary sidebar (book title, table of contents) as a landmark: axe's
    # "region" rule wants all content inside one
    (re.compile(r'(<div id="pst-primary-sidebar" class="bd-sidebar-primary '
                r'bd-sidebar")>'),
     r'\1 role="complementary" aria-label="Book title and contents">'),
    # bibliography: children of role="list" must be list items
    (re.compile(r'role="doc-biblioentry"'), 'role="listitem"'),
]  # fmt: skip


CODE_CELL = re.compile(r'<div class="cell(?: [^"]*)? docutils container"')


def number_cells(page_html: str) -> str:
    """Each code cell gets ``id="code-cell-N"``, N its number among the chapter's
    code cells (the ``In [n]`` of a notebook run from the top): the conclusion's
    claims table links to the cell that checks each claim."""
    count = itertools.count(1)
    return CODE_CELL.sub(lambda m: f'{m[0]} id="code-cell-{next(count)}"', page_html)


def finish(page_html: str) -> str:
    for pattern, replacement in FIXES:
        page_html = pattern.sub(replacement, page_html)
    return number_cells(page_html)


# pydata-sphinx-theme loads Sphinx's search (searchtools.js, language_data.js and the
# whole searchindex.js) on every page for its search-as-you-type box; with that option
# off (the default) the search box sends the reader to search.html, which loads them.
SEARCH_SCRIPTS = re.compile(
    r'\s*<script src="[^"]*(?:_static/searchtools\.js|_static/language_data\.js|'
    r'searchindex\.js)"></script>'
)


def wrap_renderer(app):
    if app.builder.format != "html" or not hasattr(app.builder, "templates"):
        return
    templates = app.builder.templates
    render = templates.render
    as_you_type = app.config.html_theme_options.get("search_as_you_type", False)

    def render_finished(template, context):
        page_html = finish(render(template, context))
        if not as_you_type and context.get("pagename") != "search":
            page_html = SEARCH_SCRIPTS.sub("", page_html)
        return page_html

    templates.render = render_finished


def theme_defaults(app, config):
    # pydata-sphinx-theme reads the mode from html_context; empty is an error in its JS
    config.html_context.setdefault("default_mode", "auto")


def setup(app):
    app.connect("config-inited", theme_defaults)
    app.connect("builder-inited", wrap_renderer)
    # after myst-nb (500) has added the widget files and Sphinx its MathJax
    app.connect("html-page-context", page_widgets, priority=900)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
