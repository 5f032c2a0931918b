"""``deferred_interrupt()``: hold Ctrl-C back while state changes as one piece.

Inside the block a SIGINT is remembered instead of raised; on leaving it, the
previous handler runs (for Python's default one: ``KeyboardInterrupt``), so
an optimizer step is either applied to every parameter or to none. Outside
the main thread signals cannot be caught and the block changes nothing.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["deferred_interrupt"]


@contextmanager
def deferred_interrupt() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[tuple] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda s, f: received.append((s, f)))
    except (ValueError, OSError):  # no signal handling here (embedded Python)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            if callable(previous):
                previous(*received[0])
            elif previous == signal.SIG_DFL:
                raise KeyboardInterrupt
