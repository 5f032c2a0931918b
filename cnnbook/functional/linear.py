"""The fully connected (dense) layer: y = x Wᵀ + b.

Notation: x (N, D) input; w (M, D) weight, laid out as PyTorch's
(out_features, in_features); b (M,); y (N, M). Any number of leading
dimensions works as PyTorch's: x (…, D) -> y (…, M), computed on the rows of
x reshaped to (−1, D).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from cnnbook.functional import _checks

__all__ = ["linear_backward", "linear_forward"]


class LinearCache(NamedTuple):
    x: Any
    w: Any
    has_bias: bool


def linear_forward(x: Any, w: Any, b: Any = None) -> tuple[Any, LinearCache]:
    """x (N, D), w (M, D), b (M,) or None -> y (N, M) = x wᵀ + b, cache.

    >>> import numpy as np
    >>> linear_forward(np.ones((2, 3)), np.eye(3)[:2], np.array([0.0, 1.0]))[0]
    array([[1., 2.],
           [1., 2.]])
    """
    op = "linear_forward"
    xp = _checks.float_inputs(op, x=x, w=w, b=b)
    if x.ndim < 1:
        raise ValueError(
            f"{op}: x must be (..., in_features), got shape {tuple(x.shape)} (0-D)"
        )
    _checks.ndim(op, "w", w, (2,), "2-D (out_features, in_features)")
    if x.shape[-1] != w.shape[1]:
        raise ValueError(
            f"{op}: x has {x.shape[-1]} features (x shape {tuple(x.shape)}) but w "
            f"expects {w.shape[1]} (w shape {tuple(w.shape)}, (out, in))"
        )
    if b is not None and tuple(b.shape) != (w.shape[0],):
        raise ValueError(
            f"{op}: b must have shape ({w.shape[0]},) to match w "
            f"{tuple(w.shape)}, got {tuple(b.shape)}"
        )
    lead = tuple(x.shape[:-1])
    rows = x if x.ndim == 2 else xp.reshape(x, (math.prod(lead), w.shape[1]))
    y = rows @ xp.matrix_transpose(w)
    if b is not None:
        y = y + b
    if x.ndim != 2:
        y = xp.reshape(y, (*lead, w.shape[0]))
    return y, LinearCache(x, w, b is not None)


def linear_backward(dy: Any, cache: LinearCache) -> tuple[Any, Any, Any]:
    """dy (N, M) -> dx (N, D) = dy w, dw (M, D) = dyᵀ x, db (M,) = Σₙ dy or None."""
    x, w, has_bias = cache
    op = "linear_backward"
    xp = _checks.float_inputs(op, dy=dy, w=w)
    lead = tuple(x.shape[:-1])
    _checks.grad_shape(op, dy, (*lead, w.shape[0]))
    if x.ndim != 2:
        M = math.prod(lead)
        dy, x = xp.reshape(dy, (M, w.shape[0])), xp.reshape(x, (M, w.shape[1]))
    dx = dy @ w
    dw = xp.matrix_transpose(dy) @ x
    db = xp.sum(dy, axis=0) if has_bias else None
    if len(lead) != 1:
        dx = xp.reshape(dx, (*lead, w.shape[1]))
    return dx, dw, db
