"""Sphinx directive ``cnnbook-api``: one API section per public cnnbook module.

The module list is read from the installed package (``pkgutil``), so a module that is
added, renamed or removed changes the API reference by itself; the entries come from
the docstrings (``automodule`` with ``:members:``). Each object appears once, under the
module that defines it (``:ignore-module-all:``: a package's re-exports are not
documented twice). Modules with a private component (``cnnbook.__main__``) are left out.

References may use any public name of an object: ``cnnbook.use`` and
``cnnbook.functional.conv2d_forward`` resolve to the entries documented under
``cnnbook.backend.use`` and ``cnnbook.functional.conv.conv2d_forward``
(:func:`resolve_alias`, a ``missing-reference`` handler).

Used from book/api.md inside an ``{eval-rst}`` block::

    .. cnnbook-api::
       :only: cnnbook.functional* cnnbook.gradcheck
    .. cnnbook-api::
       :others:
    .. cnnbook-api:: cnnbook_book

The optional argument names another package (the book's helpers). ``:only:`` keeps
the modules named (a trailing ``*`` includes the submodules), so the page can group
them; ``:others:`` keeps every public module that no earlier directive of the page
documented, so a new module always appears somewhere. A module named in ``:only:``
that does not exist is an error.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
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


def select(names: list[str], patterns: list[str]) -> list[str]:
    """The names matched by ``patterns``: a name itself, or ``name*`` for the
    module and its submodules; in the order of ``names``. A pattern that
    matches nothing raises ``ValueError``."""
    out = []
    for pattern in patterns:
        base = pattern.rstrip("*")
        hits = [
            n
            for n in names
            if n == base or (pattern.endswith("*") and n.startswith(base + "."))
        ]
        if not hits:
            raise ValueError(f"cnnbook-api: no public module matches {pattern!r}")
        out += [n for n in hits if n not in out]
    return [n for n in names if n in out]


class CnnbookApi(SphinxDirective):
    """Expand to an ``automodule`` section for every public module of cnnbook
    (or of the package named by the optional argument), or for those selected
    by ``:only:`` / ``:others:``."""

    has_content = False
    optional_arguments = 1
    option_spec: ClassVar[dict[str, Any]] = {
        "only": directives.unchanged_required,
        "others": directives.flag,
    }

    def run(self) -> list[nodes.Node]:
        lines: list[str] = []
        package = self.arguments[0] if self.arguments else "cnnbook"
        names = public_modules(package)
        done = self.env.temp_data.setdefault("cnnbook_api_done", {})
        seen = done.setdefault(self.env.docname, set())
        if "only" in self.options:
            names = select(names, self.options["only"].split())
        elif "others" in self.options:
            names = [n for n in names if n not in seen]
        seen.update(names)
        for name in names:
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


def _import_dotted(name: str) -> Any:
    """The object a dotted name refers to, importing the longest module prefix."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def resolve_alias(app, env, node, contnode):
    """Resolve ``cnnbook.<alias>`` to where the object is documented (its module)."""
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or not target.startswith("cnnbook."):
        return None
    obj = _import_dotted(target)
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if obj is None or module is None or qualname is None:
        return None
    canonical = f"{module}.{qualname}"
    if canonical == target:
        return None
    return env.get_domain("py").resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], canonical, node, contnode
    )


def setup(app):
    app.add_directive("cnnbook-api", CnnbookApi)
    app.connect("missing-reference", resolve_alias)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
