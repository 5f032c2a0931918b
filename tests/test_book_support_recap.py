"""The Conclusion's companion: finding the checked claims in the book's notebooks."""

from __future__ import annotations

import nbformat
import pytest
from cnnbook_book import recap as R


def _notebook(path, cells):
    nb = nbformat.v4.new_notebook()
    for kind, text in cells:
        make = (
            nbformat.v4.new_markdown_cell if kind == "md" else nbformat.v4.new_code_cell
        )
        nb.cells.append(make(text))
    nbformat.write(nb, str(path))
    return path


def test_notebook_claims_finds_asserts_sections_and_numbers(tmp_path):
    path = _notebook(
        tmp_path / "demo.ipynb",
        [
            ("md", "# Demo chapter\n\nText with\n```python\n# not a heading\n```"),
            ("code", "x = 1"),
            ("md", "## First section"),
            ("code", "# NBVAL_IGNORE_OUTPUT\n# sizes agree\nassert x == 1\nassert (\n"
                     "    x + 1\n    == 2\n), 'msg'"),
            ("md", "### Sub | part"),
            ("code", "%%time\ny = [assert_ for assert_ in (1,)]\nprint('assert no')"),
            ("code", "def f():\n    assert True\n"),
        ],
    )  # fmt: skip
    got = R.notebook_claims(path)
    assert [c.cell for c in got] == [2, 4]
    first = got[0]
    assert first.chapter == "demo" and first.title == "Demo chapter"
    assert first.section == "First section" and first.asserts == 2
    assert first.comment == "sizes agree" and first.check == "assert x == 1"
    assert got[1].section == "Sub | part" and got[1].check == "assert True"


def test_magics_and_invalid_python_fall_back_to_lines(tmp_path):
    path = _notebook(
        tmp_path / "m.ipynb",
        [("code", "%matplotlib inline\nassert 1 < 2"), ("code", "x = (\nassert 3")],
    )
    got = R.notebook_claims(path)
    assert [(c.cell, c.check) for c in got] == [(1, "assert 1 < 2"), (2, "assert 3")]


def test_toc_chapters_in_book_order(tmp_path):
    (tmp_path / "book").mkdir()
    for stem in ("intro", "a", "b"):
        _notebook(tmp_path / "book" / f"{stem}.ipynb", [])
    (tmp_path / "book" / "api.md").write_text("# API")
    toc = tmp_path / "_toc.yml"
    toc.write_text(
        "format: jb-book\nroot: book/intro\nparts:\n"
        "  - caption: One\n    chapters:\n      - file: book/b\n      - file: book/a\n"
        "  - caption: Two\n    chapters:\n      - file: book/api\n"
    )
    assert R.toc_chapters(toc) == ["intro", "b", "a"]


def test_claims_table_and_counts(tmp_path):
    _notebook(tmp_path / "a.ipynb", [("md", "# A"), ("code", "assert 'x|y' != '`'")])
    _notebook(tmp_path / "b.ipynb", [("md", "# B"), ("code", "assert 1\nassert 2")])
    found = R.claims(["a", "b"], book=tmp_path)
    assert R.claims_per_chapter(found) == {"a": (1, 1), "b": (1, 2)}
    table = R.claims_html(found, width=12)
    assert table.count("<tr>") == 3
    assert '<td>A</td><td><a href="a.html">A</a></td>' in table
    assert "<code>assert &#x27;x|y…</code>" in table  # shortened to 12 characters
    assert "<code>assert 1</code>" in table
    summary = R.summary_html(found)
    assert '<td>B</td><td style="text-align:right">1</td>' in summary
    assert '<td style="text-align:right">2</td></tr>' in summary
    assert "&lt;" in R.claims_html([found[0]._replace(check="a < b")])


def test_missing_chapter_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        R.claims(["nope"], book=tmp_path)


def test_the_book_has_claims_in_every_toc_chapter():
    chapters = R.toc_chapters()
    assert "intro" in chapters and "conclusion" in chapters
    found = R.claims([c for c in chapters if c != "conclusion"])
    per = R.claims_per_chapter(found)
    placeholders = [c for c in chapters if c not in per and c != "conclusion"]
    # chapters still being written may be placeholders without code
    assert len(per) >= 1, placeholders


def test_claim_words_conditions_and_bookkeeping(tmp_path):
    path = _notebook(
        tmp_path / "w.ipynb",
        [
            ("md", "# W"),
            ("md", "## Choosing `use` and $x$"),
            ("code", "# set-up\nx = 2\nassert x > 1  # x exceeds one\nassert x"),
            ("code", "# the sizes\nassert len('ab') == 2  # bookkeeping: page size"),
            ("code", "if gpu:\n    # the GPU agrees\n    assert ok\nassert 1"),
        ],
    )  # fmt: skip
    got = R.notebook_claims(path)
    assert [c.cell for c in got] == [1, 3]  # the bookkeeping-only cell is no claim
    first, gpu = got
    assert first.claim == "x exceeds one" and first.asserts == 2
    assert first.condition == ""
    assert gpu.claim == "the GPU agrees" and gpu.condition == "if gpu"
    assert R.section_link("w", first.section, "W") == "w.html#choosing-use-and-x"
    assert R.section_link("w", "W", "W") == "w.html"
    table = R.claims_html(got)
    assert ">x exceeds one</td>" in table and "(only if gpu: not checked" in table
