"""Companion to the *Conclusion*: the claims the book checks, found in its notebooks.

A *claim* is a code cell that contains at least one ``assert`` statement: the cell
checks, every time the chapter runs, something the text says. This module reads the
chapters (``book/*.ipynb``, JSON) without executing them and lists, for each claim,
the chapter, the section heading above the cell, the cell's number among the chapter's
code cells, how many asserts it holds, its first comment line and its first assert, so
the recap table is generated from the chapters and never copied by hand.

- :func:`toc_chapters` lists the notebook chapters of ``_toc.yml`` in book order.
- :func:`notebook_claims` finds the claims of one notebook.
- :func:`claims` does it for several chapters; :func:`claims_per_chapter`,
  :func:`claims_html` and :func:`summary_html` summarise them (HTML tables
  render alike in Jupyter and in the book).
"""

from __future__ import annotations

import ast
import html
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "Claim",
    "claims",
    "claims_html",
    "claims_per_chapter",
    "notebook_claims",
    "summary_html",
    "toc_chapters",
]

ROOT = Path(__file__).resolve().parents[3]  # the repository: book/support/..
_MAGIC = re.compile(r"^\s*[%!]")
_ASSERT = re.compile(r"^\s*assert\b(.*)$")


class Claim(NamedTuple):
    """One checking cell: chapter (notebook stem), title (its ``#`` heading),
    section (the nearest heading above the cell), cell (1-based among code
    cells), asserts (how many), comment (first comment line, or ""), check
    (the first assert statement, on one line)."""

    chapter: str
    title: str
    section: str
    cell: int
    asserts: int
    comment: str
    check: str


def _text(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _headings(markdown: str) -> list[tuple[int, str]]:
    found, fenced = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith(("```", ":::")):
            fenced = not fenced
        m = None if fenced else re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if m:
            found.append((len(m.group(1)), m.group(2)))
    return found


def _asserts(code: str) -> list[str]:
    """The assert statements of a code cell, each on one line (magics skipped)."""
    lines = ["" if _MAGIC.match(line) else line for line in code.splitlines()]
    clean = "\n".join(lines)
    try:
        tree = ast.parse(clean)
    except SyntaxError:  # not plain Python: fall back to the lines
        return [f"assert{m.group(1)}" for m in map(_ASSERT.match, lines) if m]
    found = [n for n in ast.walk(tree) if isinstance(n, ast.Assert)]
    found.sort(key=lambda n: (n.lineno, n.col_offset))
    return [" ".join(ast.get_source_segment(clean, n).split()) for n in found]


def _comment(code: str) -> str:
    for line in code.splitlines():
        s = line.strip()
        if s.startswith("#") and not s.lstrip("# ").startswith("NBVAL"):
            return s.lstrip("# ").strip()
    return ""


def notebook_claims(path: Path | str) -> list[Claim]:
    """The claims of one notebook, in cell order (see :class:`Claim`)."""
    path = Path(path)
    nb = json.loads(path.read_text(encoding="utf-8"))
    title, section, number, found = path.stem, "", 0, []
    for cell in nb.get("cells", []):
        text = _text(cell)
        if cell.get("cell_type") == "markdown":
            for level, heading in _headings(text):
                if level == 1 and title == path.stem:
                    title = section = heading
                else:
                    section = heading
            continue
        if cell.get("cell_type") != "code":
            continue
        number += 1
        checks = _asserts(text)
        if checks:
            found.append(
                Claim(
                    path.stem,
                    title,
                    section,
                    number,
                    len(checks),
                    _comment(text),
                    checks[0],
                )
            )
    return found


def toc_chapters(toc: Path | str | None = None) -> list[str]:
    """The notebook pages of ``_toc.yml`` (root first, then in order), as
    stems such as ``"convolution"``; pages that are not notebooks are left out."""
    import yaml

    toc = Path(toc) if toc is not None else ROOT / "_toc.yml"
    spec = yaml.safe_load(toc.read_text(encoding="utf-8"))
    files = [spec["root"]]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for key in ("parts", "chapters", "sections"):
                walk(node.get(key, []))
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(spec)
    base = toc.parent
    return [Path(f).stem for f in files if (base / f).with_suffix(".ipynb").is_file()]


def claims(
    chapters: Iterable[str] | None = None, book: Path | str | None = None
) -> list[Claim]:
    """The claims of ``chapters`` (stems; default: every notebook chapter of
    the toc) in the folder ``book`` (default: the repository's ``book/``)."""
    book = Path(book) if book is not None else ROOT / "book"
    if chapters is None:
        chapters = toc_chapters()
    out: list[Claim] = []
    for stem in chapters:
        out.extend(notebook_claims(book / f"{stem}.ipynb"))
    return out


def claims_per_chapter(found: Iterable[Claim]) -> dict[str, tuple[int, int]]:
    """{chapter: (checking cells, assert statements)}, in first-seen order."""
    out: dict[str, tuple[int, int]] = {}
    for c in found:
        cells, asserts = out.get(c.chapter, (0, 0))
        out[c.chapter] = (cells + 1, asserts + c.asserts)
    return out


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def claims_html(found: Iterable[Claim], width: int = 70) -> str:
    """An HTML table: chapter title, section, cell, asserts, first assert
    (shortened to ``width`` characters, as code)."""
    rows = [
        "<tr>"
        f"<td>{html.escape(c.title)}</td><td>{html.escape(c.section)}</td>"
        f'<td style="text-align:right">{c.cell}</td>'
        f'<td style="text-align:right">{c.asserts}</td>'
        f"<td><code>{html.escape(_short(c.check, width))}</code></td>"
        "</tr>"
        for c in found
    ]
    head = (
        "<tr><th>chapter</th><th>section</th><th>cell</th><th>asserts</th>"
        "<th>first check</th></tr>"
    )
    return "\n".join(["<table>", "<thead>", head, "</thead>", "<tbody>", *rows,
                      "</tbody>", "</table>"])  # fmt: skip


def summary_html(found: Iterable[Claim]) -> str:
    """An HTML table: per chapter (title), checking cells and asserts."""
    found = list(found)
    titles = {c.chapter: c.title for c in found}
    rows = [
        f'<tr><td>{html.escape(titles[ch])}</td><td style="text-align:right">{n}'
        f'</td><td style="text-align:right">{a}</td></tr>'
        for ch, (n, a) in claims_per_chapter(found).items()
    ]
    head = "<tr><th>chapter</th><th>checking cells</th><th>asserts</th></tr>"
    return "\n".join(["<table>", "<thead>", head, "</thead>", "<tbody>", *rows,
                      "</tbody>", "</table>"])  # fmt: skip
