"""Writing a file so that readers see the old one or the new one, never half.

:func:`atomic_write` writes to a temporary file beside the target and renames
it into place (``os.replace``) only when the writing finished without an
exception; otherwise the temporary file is removed and an existing target is
untouched. Used by :func:`cnnbook.checkpoint.save` and
:func:`cnnbook.data.download`.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "note.txt")
>>> with atomic_write(path) as f:
...     _ = f.write(b"all or nothing")
>>> open(path, "rb").read()
b'all or nothing'
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write"]


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path`` for binary writing; when the
    ``with`` block ends normally, flush it to disk and rename it to ``path``.

    The file gets the mode a plain ``open(path, "w")`` would give it (0o666
    less the umask), not ``tempfile.mkstemp``'s private 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _umask() -> int:
    """The process's file-creation mask (reading it means setting it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
