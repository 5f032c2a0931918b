"""Companion to the *Conclusion*: the claims the book checks, found in its notebooks.

A *claim* is a code cell that contains at least one ``assert`` statement: the cell
checks, every time the chapter runs, something the text says. This module reads the
chapters (``book/*.ipynb``, JSON) without executing them and lists, for each claim,
the chapter, the section heading above the cell, the cell's number among the chapter's
code cells (the ``In [n]`` of an executed notebook), how many asserts it holds, the
claim in words (the comment on or above the first assert), the first assert itself,
and the condition of any ``if`` that an assert sits under (such an assert checks
nothing when the branch does not run, e.g. without a GPU), so the recap table is
generated from the chapters and never copied by hand. An assert whose line carries
the comment ``# bookkeeping`` (a page-size limit, a check of the experiment's set-up)
is not a claim about the subject and is not counted.

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
    "cell_link",
    "claims",
    "claims_html",
    "claims_per_chapter",
    "notebook_claims",
    "section_link",
    "summary_html",
    "toc_chapters",
]

ROOT = Path(__file__).resolve().parents[3]  # the repository: book/support/..
_MAGIC = re.compile(r"^\s*[%!]")
_ASSERT = re.compile(r"^\s*assert\b(.*)$")


class Claim(NamedTuple):
    """One checking cell: chapter (notebook stem), title (its ``#`` heading),
    section (the nearest heading above the cell), cell (1-based among code
    cells), asserts (how many, bookkeeping left out), comment (first comment
    line, or ""), check (the first assert statement, on one line), claim (the
    comment on or above the first assert, or the cell's first comment, or ""),
    condition (the tests of the ``if`` statements that asserts sit under,
    joined by "; ", or "")."""

    chapter: str
    title: str
    section: str
    cell: int
    asserts: int
    comment: str
    check: str
    claim: str = ""
    condition: str = ""


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


class _Assert(NamedTuple):
    check: str  # the statement, on one line
    words: str  # the comment on its first line, or on the line above, or ""
    condition: str  # the tests of the enclosing ``if`` statements, or ""
    bookkeeping: bool


def _trailing_comment(line: str) -> str:
    import io
    import tokenize

    try:
        for tok in tokenize.generate_tokens(io.StringIO(line).readline):
            if tok.type == tokenize.COMMENT:
                return tok.string.lstrip("# ").strip()
    except (tokenize.TokenError, IndentationError):
        pass
    return ""


def _assert_info(code: str) -> list[_Assert]:
    """The assert statements of a code cell (magics skipped), in order."""
    lines = ["" if _MAGIC.match(line) else line for line in code.splitlines()]
    clean = "\n".join(lines)
    try:
        tree = ast.parse(clean)
    except SyntaxError:  # not plain Python: fall back to the lines
        return [
            _Assert(f"assert{m.group(1)}", "", "", False)
            for m in map(_ASSERT.match, lines)
            if m
        ]
    found: list[tuple[ast.Assert, list[str]]] = []

    def visit(node: ast.AST, conditions: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Assert):
                found.append((child, conditions))
            inner = conditions
            if isinstance(child, ast.If):
                test = " ".join(ast.get_source_segment(clean, child.test).split())
                inner = [*conditions, f"if {test}"]
            visit(child, inner)

    visit(tree, [])
    found.sort(key=lambda item: (item[0].lineno, item[0].col_offset))
    out = []
    for node, conditions in found:
        first = lines[node.lineno - 1]
        words = _trailing_comment(first)
        above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
        if not words and above.startswith("#"):
            words = above.lstrip("# ").strip()
        check = " ".join(ast.get_source_segment(clean, node).split())
        out.append(_Assert(check, words, "; ".join(conditions), "bookkeeping" in words))
    return out


def _asserts(code: str) -> list[str]:
    """The assert statements of a code cell, each on one line (magics skipped)."""
    return [a.check for a in _assert_info(code)]


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
        checks = [a for a in _assert_info(text) if not a.bookkeeping]
        if checks:
            conditions = dict.fromkeys(
                part for a in checks if a.condition for part in a.condition.split("; ")
            )
            found.append(
                Claim(
                    path.stem,
                    title,
                    section,
                    number,
                    len(checks),
                    _comment(text),
                    checks[0].check,
                    checks[0].words or _comment(text),
                    "; ".join(conditions),
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


_TEX_WORDS = {
    "times": "×",
    "cdot": "·",
    "le": "≤",
    "ge": "≥",
    "to": "→",
    "infty": "∞",
    "alpha": "α",
    "beta": "β",
    "gamma": "γ",
    "delta": "δ",
    "epsilon": "ε",
    "varepsilon": "ε",
    "eta": "η",
    "theta": "θ",
    "lambda": "λ",
    "mu": "μ",
    "sigma": "σ",
    "star": "⋆",
    "partial": "∂",
    "ell": "ℓ",
}
_SUPERSCRIPTS = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def tex_inline(text: str) -> str:
    """Markdown's inline maths as plain text for an HTML table, which MathJax does
    not typeset (it leaves outputs alone): the dollars dropped, a few commands as
    their Unicode symbols, one-character superscripts raised.

    >>> tex_inline(r"$1 \\times 1$ convolutions, $L^2$ pooling, $\\eta$")
    '1 × 1 convolutions, L² pooling, η'
    """

    def plain(m: re.Match) -> str:
        t = re.sub(r"\\([a-zA-Z]+)", lambda w: _TEX_WORDS.get(w[1], w[1]), m[1])
        t = re.sub(r"\^\{?([0-9-]+)\}?", lambda e: e[1].translate(_SUPERSCRIPTS), t)
        return t.replace("{", "").replace("}", "")

    return re.sub(r"\$([^$]+)\$", plain, text)


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def section_link(chapter: str, section: str, title: str) -> str:
    """The address of ``section`` in the built page of ``chapter``: the page
    itself for its title, else the anchor Sphinx derives from the heading text
    (markup removed, then :func:`docutils.nodes.make_id`)."""
    from docutils.nodes import make_id

    if section == title:
        return f"{chapter}.html"
    text = re.sub(r"[`$*]", "", section)
    return f"{chapter}.html#{make_id(text)}"


def cell_link(chapter: str, cell: int) -> str:
    """The address of code cell ``cell`` (1-based among the chapter's code cells)
    in the built page: ``book/_ext/cnnbook_reader.py`` numbers the cells there.

    >>> cell_link("pooling", 12)
    'pooling.html#code-cell-12'
    """
    return f"{chapter}.html#code-cell-{cell}"


def claims_html(found: Iterable[Claim], width: int = 70) -> str:
    """An HTML table: chapter title, section (linked), code cell (``In [n]``,
    linked to the cell),
    asserts, the claim in words (else the first assert, as code; shortened to
    ``width`` characters) and, flagged, the condition an assert depends on."""
    rows = []
    for c in found:
        href = html.escape(section_link(c.chapter, c.section, c.title))
        cell_href = html.escape(cell_link(c.chapter, c.cell))
        if c.claim:
            claim = tex_inline(html.escape(_short(c.claim, width)))
        else:
            claim = f"<code>{html.escape(_short(c.check, width))}</code>"
        if c.condition:
            claim += (
                f" <strong>(only {html.escape(c.condition)}: not checked "
                "when that branch does not run)</strong>"
            )
        rows.append(
            "<tr>"
            f"<td>{html.escape(c.title)}</td>"
            f'<td><a href="{href}">{tex_inline(html.escape(c.section))}</a></td>'
            f'<td style="text-align:right"><a href="{cell_href}">{c.cell}</a></td>'
            f'<td style="text-align:right">{c.asserts}</td>'
            f"<td>{claim}</td>"
            "</tr>"
        )
    head = (
        "<tr><th>chapter</th><th>section</th><th>code cell</th><th>asserts</th>"
        "<th>claim (the comment at its first assert; else the assert)</th></tr>"
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
