"""Sphinx directive ``cnnbook-api``: one API section per public cnnbook module.

The module list is read from the installed package (``pkgutil``), so a module that is
added, renamed or removed changes the API reference by itself; the entries come from the
docstrings (``automodule`` with ``:members:``). Each object appears once, under the
module that defines it (``:ignore-module-all:`` keeps a package's re-exports, listed in
its ``__all__``, from being documented a second time). Modules whose name has a component that
starts with an underscore (``cnnbook.__main__``) are private and left out.

Used from book/api.md inside an ``{eval-rst}`` block::

    .. cnnbook-api::
"""

from __future__ import annotations

import importlib
import pkgutil

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles


def public_modules(package: str = "cnnbook") -> list[str]:
    """Names of the package and its public submodules, the package first."""
    pkg = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(pkg.__path__, prefix=package + "."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        names.append(info.name)
    return [names[0], *sorted(names[1:])]


class CnnbookApi(SphinxDirective):
    """Expand to an ``automodule`` section for every public cnnbook module."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        lines: list[str] = []
        for name in public_modules():
            lines += [
                f"``{name}``",
                "-" * (len(name) + 4),
                "",
                f".. automodule:: {name}",
                "   :members:",
                "   :undoc-members:",
                "   :ignore-module-all:",
                "",
            ]
        content = StringList(lines, source="cnnbook-api")
        container = nodes.section()
        container.document = self.state.document
        nested_parse_with_titles(self.state, content, container)
        return container.children


def setup(app):
    app.add_directive("cnnbook-api", CnnbookApi)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
