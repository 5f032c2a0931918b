"""The introduction's "first CNN in ten lines" is ten lines of the real API.

The teaser is an executed code cell (nbval reruns it; its progress bar is excused from
comparison and the next cell asserts the accuracy). This test keeps the promise in the
heading: at most ten lines, every ``cnnbook`` name it uses exists and every call's
arguments bind to the real signature.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
from pathlib import Path

INTRO = Path(__file__).resolve().parents[1] / "book" / "intro.ipynb"


def teaser() -> str:
    """The first code cell after the "first CNN in ten lines" heading."""
    cells = json.loads(INTRO.read_text(encoding="utf-8"))["cells"]
    (start,) = [
        i
        for i, c in enumerate(cells)
        if c["cell_type"] == "markdown"
        and "first CNN in ten lines" in "".join(c["source"])
    ]
    code = next(c for c in cells[start:] if c["cell_type"] == "code")
    return "".join(code["source"])


def test_teaser_is_ten_lines_of_code():
    lines = [ln for ln in teaser().splitlines() if ln.strip()]
    statements = ast.parse(teaser()).body
    assert len(lines) <= 10 and len(statements) <= 10


def test_teaser_calls_bind_to_the_package_api():
    tree = ast.parse(teaser())
    modules = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "cnnbook":
            for alias in node.names:
                modules[alias.asname or alias.name] = importlib.import_module(
                    f"cnnbook.{alias.name}"
                )
    assert set(modules) >= {"data", "models", "nn", "optim", "train"}
    checked = 0
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value
        if not (isinstance(owner, ast.Name) and owner.id in modules):
            continue
        func = getattr(modules[owner.id], node.func.attr)  # AttributeError: renamed
        args = [None] * len(node.args)
        kwargs = {kw.arg: None for kw in node.keywords}
        inspect.signature(func).bind(*args, **kwargs)  # TypeError: changed signature
        checked += 1
    assert checked >= 6
