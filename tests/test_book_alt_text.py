"""Every figure a chapter stores carries alt text that says what it shows.

myst-nb writes a cell's ``mystnb.image.alt`` metadata into the ``alt`` of its output
images; without it the published page's alt is the PNG's file name, which axe accepts
but which tells a screen-reader user nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))


def figure_cells(path: Path):
    """(index, cell) of each code cell with a stored PNG or JPEG output."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for index, cell in enumerate(nb["cells"]):
        outputs = cell.get("outputs", []) if cell["cell_type"] == "code" else []
        data = [o.get("data", {}) for o in outputs]
        if any("image/png" in d or "image/jpeg" in d for d in data):
            yield index, cell


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_figure_has_alt_text(path):
    missing = []
    for index, cell in figure_cells(path):
        alt = cell["metadata"].get("mystnb", {}).get("image", {}).get("alt", "")
        # a sentence, not a placeholder such as "image" or a file name
        if len(alt.split()) < 8 or alt.lower().endswith((".png", ".jpg")):
            missing.append(index)
    assert not missing, f"{path.name}: figure cells without alt text: {missing}"


def test_the_check_sees_figures():
    # so the test above is not vacuous: the chapters do store figures
    assert sum(1 for p in NOTEBOOKS for _ in figure_cells(p)) >= 20
