"""One backend fixture for the whole suite: NumPy, the strict stand-in device, CuPy.

``array_api_strict`` on ``Device("device1")`` refuses silent conversion to NumPy
and mixing devices, the failure modes of CuPy code, so a green run on it proves
the GPU path's discipline on a CPU-only machine. CuPy runs where it and a CUDA
device exist and skips with the reason otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import cnnbook.backend as B


@dataclass
class Backend:
    """What a test needs to place data on one backend and read it back."""

    name: str
    xp: Any
    device: Any

    def asarray(self, a, dtype=None):
        """Host data -> this backend (dtype: a NumPy dtype)."""
        return B.asarray(np.asarray(a), self.xp, self.device, dtype=dtype)

    def to_numpy(self, a):
        return B.to_numpy(a)


def _available(name: str) -> str | None:
    try:
        B.default_namespace(name)
    except RuntimeError as err:
        return str(err)
    return None


@pytest.fixture(params=["numpy", "strict", "cupy"])
def backend(request):
    """Each test that takes ``backend`` runs once per available backend, with
    that backend made the default for arrays the package creates."""
    name = request.param
    reason = _available(name)
    if reason:
        pytest.skip(reason)
    previous = B.current()
    B.use(name)
    try:
        yield Backend(name, B.default_namespace(name), B.default_device(name))
    finally:
        B.use(previous)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
