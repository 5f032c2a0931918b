"""Every figure a chapter stores is readable at a 1366 px window: its smallest text
is at least 9 CSS px as the page shows it (rule and record:
``book/support/cnnbook_book/figures.py``)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from cnnbook_book import figures

BOOK = Path(__file__).resolve().parents[1] / "book"
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))


def stored_pngs(path: Path):
    """(cell index, PNG bytes) of each image a chapter stores in its outputs."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for index, cell in enumerate(nb["cells"]):
        for output in cell.get("outputs", []) if cell["cell_type"] == "code" else []:
            png = output.get("data", {}).get("image/png")
            if png:
                yield index, base64.b64decode("".join(png))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_figures_are_readable_at_desktop_width(path):
    problems = []
    for index, png in stored_pngs(path):
        width, dpi, size = figures.png_facts(png)
        if size is None:
            problems.append(
                f"cell {index}: no {figures.PNG_KEY} record (stored by "
                "scripts/execute_notebooks.sh, which imports cnnbook_book)"
            )
            continue
        px = figures.text_css_px(size, dpi, width)
        if px < figures.MIN_TEXT_PX - 1e-9:
            problems.append(
                f"cell {index}: smallest text {size:g} pt at {dpi:.0f} dpi in a "
                f"{width} px figure shows at {px:.1f} px (< {figures.MIN_TEXT_PX})"
            )
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


def test_smallest_text_sees_every_kind_of_text():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3), dpi=72)
    ax.plot([0, 1], [0, 1], label="line")
    ax.set_title("title", fontsize=12)
    ax.tick_params(labelsize=11)
    ax.xaxis.label.set_fontsize(11)
    assert figures.smallest_text_pt(fig) == 11  # ticks and labels: 11 pt
    ax.legend(fontsize=8)
    assert figures.smallest_text_pt(fig) == 8
    ax.text(0.5, 0.5, "6", fontsize=6)  # a heat-map's value
    assert figures.smallest_text_pt(fig) == 6
    ax.text(5.0, 5.0, "off the figure", fontsize=3)  # outside the axes: not drawn
    ax.set_xlim(0, 1), ax.set_ylim(0, 1)
    assert figures.smallest_text_pt(fig) == 6
    plt.close(fig)


def test_png_record_round_trip_and_rule():
    import matplotlib

    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 2), dpi=100)
    ax.imshow(np.eye(3))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={figures.PNG_KEY: "7.5"})
    plt.close(fig)
    width, dpi, size = figures.png_facts(buf.getvalue())
    assert (width, round(dpi), size) == (500, 100, 7.5)
    # 7.5 pt at 100 dpi is 10.4 px in a 500 px figure; in a 1514 px one, half that
    assert figures.text_css_px(size, dpi, width) == pytest.approx(
        7.5 * 100 / 72, rel=1e-4
    )
    assert figures.text_css_px(size, dpi, 2 * figures.COLUMN_PX) < figures.MIN_TEXT_PX
