"""Writing a file so that readers see the old one or the new one, never half.

:func:`atomic_write` writes to a temporary file beside the target and renames
it into place (``os.replace``) only when the writing finished without an
exception; otherwise the temporary file is removed and an existing target is
untouched. A process killed mid-write cannot remove its temporary file, so
each write first removes the stale ones beside its target: those named with
the id of a process that no longer runs, or untouched for a day.
:func:`check_writable` says before a long computation whether a path can be
written. Used by :func:`cnnbook.checkpoint.save` and
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
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "check_writable"]

STALE_SECONDS = 24 * 3600  # a temporary file untouched this long is stale


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's) or unknowable: keep the file
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove ``.{name}.{pid}.*.tmp`` beside ``path`` left by dead processes
    (or untouched for :data:`STALE_SECONDS`); returns what was removed."""
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.[^/]*\.tmp")
    removed = []
    try:
        candidates = list(path.parent.iterdir())
    except OSError:
        return removed
    now = time.time()
    for f in candidates:
        m = pattern.fullmatch(f.name)
        if not m:
            continue
        try:
            old = now - f.stat().st_mtime > STALE_SECONDS
            if old or not _alive(int(m.group(1))):
                f.unlink()
                removed.append(f)
        except OSError:
            continue
    return removed


def check_writable(op: str, path: str | os.PathLike) -> Path:
    """Raise ``OSError`` naming ``op`` unless a file can be written at
    ``path`` (missing parent folders count as creatable if the nearest
    existing one is a writable folder). Returns ``path`` as a Path."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{op}: {path} is a folder, not a file name")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise NotADirectoryError(f"{op}: cannot write {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"{op}: cannot write {path}: {parent} is not writable")
    return path


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path`` for binary writing; when the
    ``with`` block ends normally, flush it to disk and rename it to ``path``.

    The file gets the mode a plain ``open(path, "w")`` would give it (0o666
    less the umask), not ``tempfile.mkstemp``'s private 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp"
    )
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
