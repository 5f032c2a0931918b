"""book/_ext/cnnbook_reader.py without a browser: what it writes into the pages."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def _ext():
    path = ROOT / "book" / "_ext" / "cnnbook_reader.py"
    spec = importlib.util.spec_from_file_location("cnnbook_reader", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


R = _ext()


class JS:  # stands in for Sphinx's _JavaScript
    def __init__(self, filename, **attributes):
        self.filename, self.attributes = filename, attributes


def _progress_state():
    """A finished tqdm bar as ipywidgets saves it: HBox(HTML, FloatProgress, HTML)."""
    m = {
        "box": (
            "HBoxModel",
            {"children": ["IPY_MODEL_a", "IPY_MODEL_bar", "IPY_MODEL_b"]},
        ),
        "a": ("HTMLModel", {"value": "epoch 3/3: 100%"}),
        "bar": ("FloatProgressModel", {"min": 0.0, "max": 375.0, "value": 375.0}),
        "b": ("HTMLModel", {"value": " 375/375 [00:02&lt;00:00]"}),
    }
    state = {k: {"model_name": n, "state": s} for k, (n, s) in m.items()}
    return {"state": state, "version_major": 2, "version_minor": 0}


def _app():
    config = SimpleNamespace(
        nb_ipywidgets_js={"widgets-setup.js": {}, "html-manager/embed.js": {}},
        html_theme_options={"launch_buttons": {}},
    )
    return SimpleNamespace(config=config, srcdir=ROOT)


def _context(state, view_id):
    view = json.dumps({"model_id": view_id, "version_major": 2, "version_minor": 0})
    scripts = [
        JS(None, body="const THEBE_JS_URL = 1"),
        JS("", body="const THEBE_JS_URL = 1"),
        JS("_static/sphinx-thebe.js"),
        JS(None, type=WIDGET_STATE, body=json.dumps(state)),
        JS("_static/widgets-setup.js"),
        JS("_static/html-manager/embed.js"),
        JS("_static/design-tabs.js"),
    ]
    body = (
        '<div class="cell_output"><script type="application/vnd.jupyter.widget-view'
        f'+json">{view}</script></div>'
    )
    return {"script_files": scripts, "css_files": [], "body": body}


def test_a_finished_progress_bar_is_static_html_and_needs_no_manager():
    state = _progress_state()
    context = _context(state, "box")
    R.page_widgets(_app(), "book/intro", "page.html", context, None)
    names = [js.filename for js in context["script_files"]]
    assert names == []  # no manager, no state, no thebe, no sphinx-design
    body = context["body"]
    assert "widget-view+json" not in body
    assert '<progress max="375.0" value="375.0" aria-label="progress 100%">' in body
    assert "epoch 3/3: 100%" in body and "375/375" in body


def test_a_widget_a_reader_can_use_keeps_the_manager():
    state = _progress_state()
    state["state"]["s"] = {"model_name": "IntSliderModel", "state": {"value": 1}}
    context = _context(state, "s")
    R.page_widgets(_app(), "book/convolution", "page.html", context, None)
    names = [js.filename for js in context["script_files"]]
    assert "_static/html-manager/embed.js" in names
    assert (
        sum(1 for js in context["script_files"] if "THEBE" in str(js.attributes)) == 0
    )
    assert "widget-view+json" in context["body"]


def test_the_finished_page():
    page = (
        '<script defer src="../_static/scripts/fontawesome.js?digest=1"></script>\n'
        '<button class="btn search-button-field search-button__button" title="Search" '
        'aria-label="Search">\n'
        '<summary aria-label="Toggle hidden content">\n'
        '<img id="_anim_imgravine_optimizers">\n'
        '<input id="_anim_sliderravine_optimizers" type="range" class="anim-slider">\n'
        '<img alt="Binder logo" src="x.svg">\n'
        '<div class="citation" id="id1" role="doc-biblioentry">'
    )
    out = R.finish(page)
    assert "fontawesome.js" not in out
    assert 'aria-label="Search"' not in out and "<summary>" in out
    assert 'alt="Animation: ravine optimizers' in out
    assert 'type="range" aria-label="Animation frame"' in out
    assert 'alt="Binder logo" loading="lazy"' in out
    assert 'role="listitem"' in out and "doc-biblioentry" not in out


def test_an_inline_script_added_twice_is_written_once():
    app = _app()
    app.config.html_theme_options["launch_buttons"]["thebe"] = True
    context = _context(_progress_state(), "box")
    R.page_widgets(app, "book/intro", "page.html", context, None)
    thebe = [js for js in context["script_files"] if "THEBE" in str(js.attributes)]
    assert len(thebe) == 1  # two copies declared a const twice: a SyntaxError
    assert "_static/sphinx-thebe.js" in [js.filename for js in context["script_files"]]


def test_search_scripts_are_matched_for_removal():
    page = (
        '<script src="../_static/searchtools.js"></script>\n'
        '<script src="../_static/language_data.js"></script>\n'
        '<script src="../searchindex.js"></script>\n'
        '<script src="../_static/doctools.js?v=1"></script>'
    )
    assert R.SEARCH_SCRIPTS.sub("", page).strip() == (
        '<script src="../_static/doctools.js?v=1"></script>'
    )


def test_a_live_explorer_loads_its_script_only_where_it_is():
    body = '<div class="cnnbook-live" data-cnnbook-live="conv"></div>' * 2
    context = {"script_files": [JS("_static/cnnbook-reader.js")], "body": body}
    R.page_widgets(_app(), "book/convolution", "page.html", context, None)
    added = [js.filename for js in context["script_files"]]
    # conv.js takes its decoder from common.js, which loads first
    assert added == [
        "_static/cnnbook-reader.js",
        "_static/explorers/common.js",
        "_static/explorers/conv.js",
    ]
    assert context["script_files"][-1].attributes == {"defer": "defer"}
    plain = {"script_files": [JS("_static/cnnbook-reader.js")], "body": "<p>x</p>"}
    R.page_widgets(_app(), "book/intro", "page.html", plain, None)
    assert [js.filename for js in plain["script_files"]] == [
        "_static/cnnbook-reader.js"
    ]


def test_explorers_that_share_helpers_load_common_js_first():
    body = "".join(f'<div data-cnnbook-live="{k}"></div>' for k in ("gradnorm", "conv"))
    context = {"script_files": [], "body": body}
    R.page_widgets(_app(), "book/x", "page.html", context, None)
    added = [js.filename for js in context["script_files"]]
    assert added == [
        "_static/explorers/common.js",
        "_static/explorers/conv.js",
        "_static/explorers/gradnorm.js",
    ]


def test_a_jupyter_only_explorer_becomes_a_note_and_drops_the_manager():
    state = _progress_state()
    state["state"]["s"] = {"model_name": "IntSliderModel", "state": {"value": 1}}
    context = _context(state, "s")
    view = context["body"]
    context["body"] = (
        '<div class="cell tag_jupyter-only docutils container">'
        '<div class="cell_output docutils container">'
        f"{view}</div></div>"
        '<div class="cell docutils container"><p>next cell</p></div>'
    )
    R.page_widgets(_app(), "book/pooling", "page.html", context, None)
    names = [js.filename for js in context["script_files"]]
    assert "_static/html-manager/embed.js" not in names  # nothing left to render
    assert not [
        js for js in context["script_files"] if WIDGET_STATE in str(js.attributes)
    ]
    body = context["body"]
    assert "widget-view+json" not in body
    assert body.count('class="cnnbook-jupyter-only"') == 1
    assert body.endswith("<p>next cell</p></div>")


def test_an_untagged_explorer_is_left_alone():
    body = (
        '<div class="cell docutils container"><div class="cell_output docutils '
        'container"><script type="application/vnd.jupyter.widget-view+json">{}</script>'
        "</div></div>"
    )
    assert R.replace_jupyter_only(body) == body
