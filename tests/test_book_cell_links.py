"""The conclusion's claims table links each claim to the cell that checks it.

``book/_ext/cnnbook_reader.py`` numbers the code cells of each built chapter
(``id="code-cell-N"``), ``cnnbook_book.recap.cell_link`` writes the links. Reads the
built site (``bash scripts/build_book.sh`` writes ``_build/html``)."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from book_pages import toc_pages, unavailable

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
CHAPTERS = [p for p in toc_pages() if (ROOT / f"{p}.ipynb").exists()]
CELL_ID = re.compile(r'<div class="cell[^"]*" id="code-cell-(\d+)"')


def built(docname: str) -> str:
    page = SITE / f"{docname}.html"
    if not page.exists():
        unavailable(f"{page} is not built: run `bash scripts/build_book.sh` first")
    return page.read_text(encoding="utf-8")


def code_cells(docname: str) -> list[str]:
    nb = json.loads((ROOT / f"{docname}.ipynb").read_text(encoding="utf-8"))
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def cell_html(page: str, n: int) -> str:
    """The HTML of code cell n, up to the next code cell."""
    start = page.index(f'id="code-cell-{n}"')
    nxt = page.find('id="code-cell-', start + 1)
    return page[start : nxt if nxt > 0 else len(page)]


@pytest.mark.parametrize("docname", CHAPTERS)
def test_every_code_cell_is_numbered_in_order(docname):
    numbers = [int(n) for n in CELL_ID.findall(built(docname))]
    assert numbers == list(range(1, len(code_cells(docname)) + 1))


def test_each_claim_link_lands_on_a_cell_that_asserts():
    page = built("book/conclusion")
    links = re.findall(r'href="([a-z_]+)\.html#code-cell-(\d+)"', page)
    assert len(links) > 50, "the claims table links its cells"
    for chapter, n in sorted(set(links)):
        target = cell_html(built(f"book/{chapter}"), int(n))
        code = html.unescape(re.sub(r"<[^>]+>", "", target))
        assert re.search(r"\bassert\b", code), f"{chapter} code cell {n}: no assert"
        # and it is the same cell as in the notebook
        source = code_cells(f"book/{chapter}")[int(n) - 1]
        first = next(line for line in source.splitlines() if line.strip())
        assert first.strip() in code, f"{chapter} code cell {n} is another cell"
