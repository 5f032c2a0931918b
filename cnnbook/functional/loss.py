"""Losses, each returning the loss and its gradient with respect to the prediction.

softmax cross-entropy, for logits z (N, K) and integer classes t (N,):

    L = (1/N) Σₙ [ log Σₖ e^{z[n,k]} − z[n, t[n]] ]
    ∂L/∂z = (softmax(z) − onehot(t)) / N

computed with the log-sum-exp trick (subtract each row's maximum first), so
logits of ±1e4 give finite results. Mean squared error, for any shape:

    L = mean((p − y)²),   ∂L/∂p = 2 (p − y) / numel
"""

from __future__ import annotations

from typing import Any

from cnnbook.backend import device_of, namespace
from cnnbook.functional import _checks

__all__ = ["log_softmax", "mse_loss", "softmax", "softmax_cross_entropy"]


def log_softmax(z: Any) -> Any:
    """z (N, K) -> log softmax along K, stable for any finite z."""
    xp = _checks.float_inputs("log_softmax", z=z)
    shifted = z - xp.max(z, axis=-1, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))


def softmax(z: Any) -> Any:
    """z (N, K) -> probabilities along K (each row sums to 1).

    >>> import numpy as np
    >>> softmax(np.array([[0.0, 0.0], [1e4, 0.0]]))
    array([[0.5, 0.5],
           [1. , 0. ]])
    """
    xp = _checks.float_inputs("softmax", z=z)
    return xp.exp(log_softmax(z))


def softmax_cross_entropy(logits: Any, targets: Any) -> tuple[Any, Any]:
    """logits (N, K), targets (N,) integer classes in [0, K) -> loss (), dlogits (N, K).

    The loss is the batch mean, a 0-d array in the logits' namespace.

    >>> import numpy as np
    >>> loss, d = softmax_cross_entropy(np.array([[2.0, 0.0]]), np.array([0]))
    >>> round(float(loss), 4)
    0.1269
    """
    op = "softmax_cross_entropy"
    xp = _checks.float_inputs(op, logits=logits)
    namespace(op, logits=logits, targets=targets)  # same library and device
    _checks.ndim(op, "logits", logits, (2,), "2-D (N, classes)")
    N, K = logits.shape
    if not xp.isdtype(targets.dtype, "integral"):
        raise TypeError(
            f"{op}: targets must be integer class indices, got dtype {targets.dtype}"
        )
    if tuple(targets.shape) != (N,):
        raise ValueError(
            f"{op}: targets must have shape ({N},) to match logits "
            f"{tuple(logits.shape)}, got {tuple(targets.shape)}"
        )
    if N > 0 and (bool(xp.any(targets < 0)) or bool(xp.any(targets >= K))):
        low, high = int(xp.min(targets)), int(xp.max(targets))
        raise ValueError(
            f"{op}: targets must lie in [0, {K - 1}] for {K} classes, got values "
            f"from {low} to {high}"
        )
    classes = xp.arange(K, device=device_of(logits))
    onehot = xp.astype(xp.reshape(targets, (N, 1)) == classes, logits.dtype)
    logp = log_softmax(logits)
    loss = -xp.sum(logp * onehot) / N
    dlogits = (xp.exp(logp) - onehot) / N
    return loss, dlogits


def mse_loss(pred: Any, target: Any) -> tuple[Any, Any]:
    """pred, target (same shape) -> loss () = mean((pred − target)²), dpred.

    >>> import numpy as np
    >>> float(mse_loss(np.array([1.0, 3.0]), np.array([0.0, 0.0]))[0])
    5.0
    """
    op = "mse_loss"
    xp = _checks.float_inputs(op, pred=pred, target=target)
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(
            f"{op}: pred has shape {tuple(pred.shape)} but target has shape "
            f"{tuple(target.shape)}; they must match"
        )
    diff = pred - target
    count = diff.size
    return xp.sum(diff * diff) / count, 2 * diff / count
