"""Readable figures: the rule every figure of the book meets, and the record
that lets a test check it over the notebooks' stored outputs.

The rule. Read at a 1366 px window, a chapter's outputs are :data:`COLUMN_PX`
CSS px wide, and a PNG wider than that is shrunk to fit. Its smallest text, f pt
drawn at d dpi, is then ``f · d/72 · min(1, COLUMN_PX / width)`` CSS px
(:func:`text_css_px`), and must be at least :data:`MIN_TEXT_PX`. On a phone a
figure shrinks to no less than 0.6 of its natural size and scrolls inside its own
box instead (``book/_assets/cnnbook-reader.css``).

The record. Inside a Jupyter kernel, importing :mod:`cnnbook_book` calls
:func:`install`, which wraps the inline backend's PNG output: each figure a
chapter shows is laid out, its smallest drawn text measured
(:func:`smallest_text_pt`) and written into the PNG as a text chunk
(:data:`PNG_KEY`). ``tests/test_book_figures.py`` reads every stored PNG back
(:func:`png_facts`) and applies the rule.
"""

from __future__ import annotations

import io
from typing import Any

#: smallest text a reader gets, in CSS px, at a 1366 px window
MIN_TEXT_PX = 9
#: width of a chapter's output area at a 1366 px window (the theme's text
#: column; tests/test_book_reader.py checks it is not narrower)
COLUMN_PX = 757
#: the PNG text chunk holding a figure's smallest text size, in points
PNG_KEY = "cnnbook:min-text-pt"


def smallest_text_pt(fig: Any) -> float | None:
    """The font size (pt) of the smallest non-empty text drawn inside the
    figure (titles, labels, tick labels, legends, annotations); None if none."""
    from matplotlib.text import Text

    fig.draw_without_rendering()  # ticks and legends laid out as they will be drawn
    renderer = fig.canvas.get_renderer()
    sizes = []
    for text in fig.findobj(Text):
        if not (text.get_visible() and text.get_text().strip()):
            continue
        if text.axes is not None and not text.axes.get_visible():
            continue
        box = text.get_window_extent(renderer)
        if box.width > 0 and box.overlaps(fig.bbox):
            sizes.append(float(text.get_fontsize()))
    return min(sizes) if sizes else None


def text_css_px(size_pt: float, dpi: float, width_px: int) -> float:
    """CSS px of ``size_pt`` text drawn at ``dpi`` in a PNG ``width_px`` wide,
    as a reader sees it at 1366 px.

    >>> text_css_px(10, 72, 600)  # natural size
    10.0
    >>> round(text_css_px(10, 100, 1514), 2)  # shrunk to half
    6.94
    """
    return size_pt * dpi / 72 * min(1.0, COLUMN_PX / width_px)


def png_facts(png: bytes) -> tuple[int, float, float | None]:
    """(width px, dpi, smallest text pt or None) of a PNG written by a chapter."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        dpi = float(im.info.get("dpi", (72.0, 72.0))[0])
        size = im.info.get(PNG_KEY)
        return im.width, dpi, (None if size in (None, "none") else float(size))


def install() -> None:
    """Inside a Jupyter kernel: record each shown figure's smallest text size
    in its PNG (see the module's docstring). Anywhere else: nothing."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    # pyplot picks its backend on first use, and the inline backend registers its
    # PNG formatter then: use it once so that there is a formatter to wrap
    plt.close(plt.figure())

    png = shell.display_formatter.formatters["image/png"]
    try:
        original = png.lookup_by_type(Figure)
    except KeyError:
        return
    if getattr(original, "records_text_size", False):
        return

    def png_with_text_size(fig):
        size = smallest_text_pt(fig)
        meta = {PNG_KEY: "none" if size is None else f"{size:g}"}
        return original(fig, metadata=meta)

    png_with_text_size.records_text_size = True
    png.for_type(Figure, png_with_text_size)
