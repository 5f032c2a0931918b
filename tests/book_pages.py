"""Helpers shared by the tests that open the book in a browser (browser, reader, lab):
the pages of _toc.yml, and what a missing tool means."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
IN_CI = bool(os.environ.get("CI"))


def unavailable(reason: str):
    """A missing browser or build fails in CI and skips, with the reason, elsewhere."""
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


def toc_pages() -> list[str]:
    """Document names in _toc.yml order: ["book/intro", "book/convolution", ...]."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    pages = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                pages.append(entry["file"])
            for key in ("sections", "chapters", "parts"):
                walk(entry.get(key))

    for key in ("parts", "chapters", "sections"):
        walk(toc.get(key))
    return [re.sub(r"\.(ipynb|md|rst)$", "", p) for p in pages]
