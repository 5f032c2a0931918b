"""Explorers that stay live in the published page (issue 11).

A live explorer is one HTML output: a ``<div data-cnnbook-live="KIND">`` holding its
inputs as JSON (computed here, in Python, when the notebook runs) and labelled
controls. The published page loads ``_static/explorers/KIND.js`` (vendored in
``book/_assets/explorers``, dependency-free) only where such a div is present
(``book/_ext/cnnbook_reader.py``); the script recomputes the result in the reader's
browser on every change. In Jupyter the script is not loaded and the output says so:
there the chapter's ipywidgets explorer, which calls the package itself, is live.

Arrays travel as little-endian float32, base64-encoded (:func:`encode_array`).
"""

from __future__ import annotations

import base64
import html
import json
from typing import Any

import numpy as np

from cnnbook.backend import to_numpy

#: The marker attribute ``cnnbook_reader.py`` looks for (``data-cnnbook-live``).
MARKER = "data-cnnbook-live"


def encode_array(a: Any) -> dict:
    """(..., ) array -> {"shape": [...], "f32": base64 of little-endian float32}.

    >>> encode_array(np.array([[1.0, 0.5]]))
    {'shape': [1, 2], 'f32': 'AACAPwAAAD8='}
    """
    a = np.ascontiguousarray(to_numpy(a), dtype="<f4")
    return {"shape": list(a.shape), "f32": base64.b64encode(a.tobytes()).decode()}


def decode_array(d: dict) -> np.ndarray:
    """The inverse of :func:`encode_array` (float32).

    >>> decode_array(encode_array(np.eye(2))).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    raw = base64.b64decode(d["f32"])
    return np.frombuffer(raw, dtype="<f4").reshape(d["shape"])


def payload_of(html_text: str) -> dict:
    """The JSON payload inside a live explorer's HTML (for tests).

    >>> payload_of(live_html("demo", {"a": 1}, "<p>x</p>", "demo"))["a"]
    1
    """
    start = html_text.index('<script type="application/json"')
    start = html_text.index(">", start) + 1
    end = html_text.index("</script>", start)
    return json.loads(html_text[start:end])


def live_html(kind: str, payload: dict, markup: str, label: str) -> str:
    """The HTML of one live explorer of kind ``kind`` (the script's name).

    ``label`` names the explorer for assistive technology; ``markup`` is its
    controls and output elements, hidden until the script has started.
    """
    data = json.dumps(payload, separators=(",", ":")).replace("</", "<\\/")
    note = (
        "This explorer computes in the browser of the published book. In Jupyter, "
        "the ipywidgets explorer above is the live one."
    )
    return (
        f'<div class="cnnbook-live" {MARKER}="{html.escape(kind)}" role="group" '
        f'aria-label="{html.escape(label)}">'
        f'<script type="application/json" class="cnnbook-live-data">{data}</script>'
        f'<p class="cnnbook-live-fallback">{note}</p>'
        f'<div class="cnnbook-live-body" hidden>{markup}</div></div>'
    )


def range_control(name: str, label: str, lo: float, hi: float, step: float, value):
    """A labelled ``<input type="range">`` with its value shown in an ``<output>``."""
    return (
        f'<label class="cnnbook-live-range">{html.escape(label)} '
        f'<input type="range" name="{name}" min="{lo}" max="{hi}" step="{step}" '
        f'value="{value}"> <output name="{name}-value">{value}</output></label>'
    )
