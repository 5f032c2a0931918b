"""The book's helpers: one companion module per chapter (explorer widgets,
their static counterparts, plots, chapter-specific measurements) and
:mod:`cnnbook_book.show`, which displays cnnbook's own source in a chapter.

Not part of the ``cnnbook`` wheel: ``scripts/setup_env.sh`` installs it in
editable mode beside cnnbook. Import the module a chapter needs, e.g.
``from cnnbook_book import convolution as C``.
"""

from cnnbook_book import figures as _figures

_figures.install()  # in a Jupyter kernel: each figure records its smallest text
