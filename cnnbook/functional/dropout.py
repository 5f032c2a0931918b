"""Inverted dropout (Srivastava et al., 2014).

In training each element is kept with probability 1 − p and scaled by
1/(1 − p), so the expected output equals the input and evaluation needs no
rescaling: there dropout is the identity. Masks are drawn on the host from a
seeded NumPy generator, so every backend drops the same elements.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnbook.backend import uniform
from cnnbook.functional import _checks

__all__ = ["dropout_backward", "dropout_forward"]


def dropout_forward(
    x: Any,
    p: float,
    training: bool = True,
    rng: np.random.Generator | int | None = None,
) -> tuple[Any, Any]:
    """x (any shape) -> y (same shape), cache (the scaled mask, or None).

    ``rng`` is a NumPy Generator or a seed; None draws fresh entropy.

    >>> import numpy as np
    >>> y, mask = dropout_forward(np.ones(6), 0.5, rng=0)
    >>> sorted(set(y.tolist()))
    [0.0, 2.0]
    """
    op = "dropout_forward"
    xp = _checks.float_inputs(op, x=x)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ValueError(f"{op}: p must be a probability in [0, 1], got {p!r}")
    if not training or p == 0:
        return x, None
    if p == 1:
        mask = xp.zeros_like(x)
    else:
        keep = uniform(np.random.default_rng(rng), tuple(x.shape), like=x) >= p
        mask = xp.astype(keep, x.dtype) / (1.0 - p)
    return x * mask, mask


def dropout_backward(dy: Any, cache: Any) -> Any:
    """dy -> dx = dy · mask (the identity when the forward pass dropped nothing)."""
    mask = cache
    op = "dropout_backward"
    if mask is None:
        _checks.float_inputs(op, dy=dy)
        return dy
    _checks.float_inputs(op, dy=dy, mask=mask)
    _checks.grad_shape(op, dy, mask.shape)
    return dy * mask
