"""cnnbook_book.show: the helper chapters use to display the package's own source."""

from __future__ import annotations

import functools
import textwrap

import pytest
from cnnbook_book.show import show_source, source, source_path

from cnnbook import backend


def _decorated(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


@_decorated
def _sample(x):
    """A sample function."""
    return x + 1


class _Sample:
    def method(self):
        return "m"


def test_source_is_the_package_code():
    text = source(backend.use)
    assert text.startswith("def use(")
    assert text == text.lstrip()  # dedented
    assert text.endswith("\n")


def test_source_unwraps_decorators_and_dedents_methods():
    assert source(_sample).startswith("@_decorated\ndef _sample(x):")
    assert source(_Sample.method).startswith("def method(self):")
    assert source(_Sample).startswith("class _Sample:")


def test_source_of_module():
    assert '"""Array backends' in source(backend)


@pytest.mark.parametrize("bad", [42, "text", None])
def test_source_rejects_objects_without_code(bad):
    with pytest.raises(TypeError, match="no source code"):
        source(bad)


def test_source_path_is_relative_to_the_repository():
    assert source_path(backend.use) == "cnnbook/backend.py"
    assert source_path(_sample) == "tests/test_book_support_show.py"
    assert source_path(textwrap.dedent) == "textwrap"  # outside the repository


def test_show_source_prints_outside_ipython(capsys):
    show_source(backend.use)
    out = capsys.readouterr().out
    assert out.startswith("# cnnbook/backend.py\ndef use(")
    show_source(backend.use, header=False)
    assert capsys.readouterr().out.startswith("def use(")


def test_show_source_displays_markdown_in_ipython(monkeypatch):
    display_mod = pytest.importorskip("IPython.display")
    import IPython

    shown = []
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    monkeypatch.setattr(display_mod, "display", shown.append)
    show_source(backend.use)
    (md,) = shown
    assert isinstance(md, display_mod.Markdown)
    assert md.data.startswith("```python\n# cnnbook/backend.py\ndef use(")
    assert md.data.endswith("```")


def test_show_source_fence_survives_backticks_in_code(monkeypatch):
    display_mod = pytest.importorskip("IPython.display")
    import IPython

    def with_fence():
        return "```"

    shown = []
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    monkeypatch.setattr(display_mod, "display", shown.append)
    show_source(with_fence, header=False)
    assert shown[0].data.startswith("````python\n")


def test_animation_html_is_offline_and_repeatable():
    """Two renders of one animation give identical HTML, with the given id, no
    stylesheet from the internet and no Font Awesome icons left."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from cnnbook_book.show import animation_html
    from matplotlib.animation import FuncAnimation

    def render() -> str:
        fig, ax = plt.subplots(figsize=(1, 1), dpi=20)
        (line,) = ax.plot([0, 1], [0, 0])
        anim = FuncAnimation(fig, lambda i: line.set_ydata([i, i]), frames=2)
        html = animation_html(anim, "demo")
        plt.close(fig)
        return html

    first, second = render(), render()
    assert first == second
    assert "_anim_imgdemo" in first
    assert "https://" not in first and 'class="fa ' not in first
    assert "▶" in first
