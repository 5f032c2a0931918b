"""Show cnnbook's own source code in the book, never a copy of it.

A chapter that explains ``conv2d_forward`` shows the function the package runs:
``show_source(cnnbook.functional.conv2d_forward)``. Renaming or deleting the function
breaks the chapter (the notebook stops executing and nbval fails), so the text can
never drift from the code.

``source(obj) -> str``
    The source text (plain, for tests and doctests).
``show_source(obj)``
    Displays it in a notebook: a highlighted Markdown code block headed by the file
    it comes from; plain text outside Jupyter.
``animation_html(anim, name)``
    A matplotlib animation as self-contained, repeatable HTML: the static
    counterpart of an explorer, for pages without a Python kernel.

>>> print(source(source).splitlines()[0])
def source(obj: Any) -> str:
"""

from __future__ import annotations

import inspect
import re
import textwrap
from pathlib import Path
from typing import Any

import cnnbook

__all__ = ["animation_html", "show_source", "source", "source_path"]


def source(obj: Any) -> str:
    """Source code of a function, class, method or module, dedented.

    Decorated functions are unwrapped (``functools.wraps``) to the code underneath.

    >>> def double(x):
    ...     return 2 * x
    >>> "return 2 * x" in source(double)
    True
    >>> source(42)
    Traceback (most recent call last):
    ...
    TypeError: source: no source code for 42 (int); pass a function, class or module
    """
    target = inspect.unwrap(obj) if callable(obj) else obj
    try:
        text = inspect.getsource(target)
    except (TypeError, OSError) as err:
        raise TypeError(
            f"source: no source code for {obj!r} ({type(obj).__name__}); "
            "pass a function, class or module"
        ) from err
    return textwrap.dedent(text).rstrip() + "\n"


# Folders whose files are named relative to them: the repository (this
# package lives in its book/support/) and the folder holding cnnbook.
_BASES = (
    Path(__file__).resolve().parents[3],
    Path(cnnbook.__file__).resolve().parents[1],
)


def source_path(obj: Any) -> str:
    """Where ``obj`` is defined, relative to the repository:
    ``cnnbook/functional/conv.py``, ``book/support/cnnbook_book/show.py``.

    Anything defined elsewhere is named by its module.

    >>> import cnnbook.functional
    >>> source_path(cnnbook.functional.conv2d_forward)
    'cnnbook/functional/conv.py'
    >>> source_path(source_path)
    'book/support/cnnbook_book/show.py'
    """
    target = inspect.unwrap(obj) if callable(obj) else obj
    path = Path(inspect.getsourcefile(target) or "").resolve()
    for base in _BASES:
        if path.is_relative_to(base):
            return path.relative_to(base).as_posix()
    module = inspect.getmodule(target)
    return module.__name__ if module is not None else "<unknown>"


def show_source(obj: Any, *, header: bool = True) -> None:
    """Display the source of ``obj``, syntax-highlighted in Jupyter and in the book.

    In IPython the code is displayed as a Markdown code block (``text/markdown``),
    which Jupyter highlights and the book renders like any other code block (with a
    copy button); elsewhere it is printed. ``header`` adds a comment line naming the
    file, e.g. ``# cnnbook/functional/conv.py``.
    """
    code = source(obj)
    if header:
        code = f"# {source_path(obj)}\n{code}"
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:  # plain Python: no rich display
        print(code, end="")
        return
    if get_ipython() is None:
        print(code, end="")
        return
    fence = "```"
    while fence in code:  # a fence longer than any backtick run inside the code
        fence += "`"
    display(Markdown(f"{fence}python\n{code}{fence}"))


# matplotlib's player buttons use Font Awesome from a CDN; Unicode works offline
_PLAYER_ICONS = {
    "fa fa-minus": "−",
    "fa fa-fast-backward": "|◀◀",
    "fa fa-step-backward": "|◀",
    "fa fa-play fa-flip-horizontal": "◀",
    "fa fa-pause": "❚❚",
    "fa fa-play": "▶",
    "fa fa-step-forward": "▶|",
    "fa fa-fast-forward": "▶▶|",
    "fa fa-plus": "+",
}


def animation_html(
    anim: Any, name: str, default_mode: str = "once", fps: float | None = None
) -> str:
    """``anim.to_jshtml()`` made self-contained and stable.

    matplotlib's random element id becomes ``name`` (re-executing a notebook
    stores the same text, which nbval compares), and the player's Font Awesome
    icons, fetched from a CDN, become Unicode symbols (the page works offline).
    ``default_mode`` is "once", "loop" or "reflect".
    """
    html = anim.to_jshtml(fps=fps, default_mode=default_mode)
    found = re.search(r"_anim_img([0-9a-f]{32})", html)
    if found:
        html = html.replace(found.group(1), name)
    html = re.sub(r'<link rel="stylesheet"\s*href="https?://[^"]*">', "", html)
    for icon, symbol in _PLAYER_ICONS.items():
        html = html.replace(f'<i class="{icon}"></i>', symbol)
    return html
