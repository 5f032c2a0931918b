"""cnnbook: the mathematics of convolutional neural networks, executable.

The package behind the cnnbook textbook. Operations live in
:mod:`cnnbook.functional` (forward and hand-derived backward passes), gradient
checks in :mod:`cnnbook.gradcheck`, array backends in :mod:`cnnbook.backend`.

>>> import cnnbook
>>> cnnbook.backend.current() in cnnbook.backend.BACKENDS
True
"""

from cnnbook import (
    backend,
    checkpoint,
    data,
    files,
    functional,
    gradcheck,
    history,
    models,
    nn,
    optim,
    recipes,
    train,
)
from cnnbook.backend import to_numpy, use
from cnnbook.checkpoint import load, save

__version__ = "0.1.0"

__all__ = ["backend", "functional", "gradcheck", "to_numpy", "use"]
__all__ += ["checkpoint", "data", "files", "history", "load", "models", "nn", "optim"]
__all__ += ["recipes", "save", "train"]
