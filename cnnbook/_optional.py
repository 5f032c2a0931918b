"""Optional dependencies: import one, or say which extra installs it."""

from __future__ import annotations

import importlib
from typing import Any

#: The extras of ``pyproject.toml`` whose modules :func:`require` imports.
#: (The array libraries of the ``gpu`` and ``strict`` extras are the business
#: of :mod:`cnnbook.backend` alone, which names those extras itself.)
EXTRAS: dict[str, tuple[str, ...]] = {
    "data": ("mlxtend", "sklearn", "skimage"),
    "plot": ("matplotlib",),
    "widgets": ("ipywidgets",),
}


def require(module: str, extra: str, what: str) -> Any:
    """Import ``module``; if it is missing, raise a ModuleNotFoundError whose
    message names ``what`` needs it and the pip command that installs it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        top = module.partition(".")[0]
        if err.name is not None and err.name.partition(".")[0] != top:
            raise  # something the optional module itself needs
        raise ModuleNotFoundError(
            f"{what} needs {top}, which comes with an optional extra: "
            f"pip install 'cnnbook[{extra}]'",
            name=err.name,
        ) from err
