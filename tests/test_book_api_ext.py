"""The API page's directive: grouping the public modules."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))
import cnnbook_api

NAMES = ["cnnbook", "cnnbook.backend", "cnnbook.functional", "cnnbook.functional.conv",
         "cnnbook.gradcheck", "cnnbook.nn", "cnnbook.nn.init"]  # fmt: skip


def test_select_names_and_submodules_in_module_order():
    got = cnnbook_api.select(NAMES, ["cnnbook.gradcheck", "cnnbook.functional*"])
    assert got == ["cnnbook.functional", "cnnbook.functional.conv", "cnnbook.gradcheck"]
    assert cnnbook_api.select(NAMES, ["cnnbook"]) == ["cnnbook"]  # no star: itself


def test_select_rejects_a_pattern_that_matches_nothing():
    with pytest.raises(ValueError, match=r"cnnbook\.optim"):
        cnnbook_api.select(NAMES, ["cnnbook.optim"])


def test_the_api_page_groups_every_public_module():
    page = (Path(__file__).resolve().parents[1] / "book" / "api.md").read_text()
    patterns = [
        word
        for line in page.splitlines()
        if line.strip().startswith(":only:")
        for word in line.split()[1:]
    ]
    names = cnnbook_api.public_modules()
    grouped = cnnbook_api.select(names, patterns)
    assert grouped == names  # nothing falls through to "Other modules"
