"""Losses: ``loss = criterion(pred, target)``, then ``dpred = criterion.backward()``.

The loss is a 0-d array of the prediction's namespace (``float(loss)`` reads
it on the host); the gradient is kept from the forward pass.
"""

from __future__ import annotations

from typing import Any

from cnnbook import functional as F

__all__ = ["CrossEntropyLoss", "MSELoss"]


class _Loss:
    def __init__(self) -> None:
        self._grad: Any = None

    def backward(self) -> Any:
        """d loss / d pred, same shape as pred."""
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward: call the loss first")
        return self._grad

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class CrossEntropyLoss(_Loss):
    """logits (N, K), targets (N,) ints -> mean of −log softmax(logits)[target].

    >>> import numpy as np
    >>> crit = CrossEntropyLoss()
    >>> round(float(crit(np.array([[2.0, 0.0]]), np.array([0]))), 4)
    0.1269
    >>> crit.backward().shape
    (1, 2)
    """

    def __call__(self, logits: Any, targets: Any) -> Any:
        loss, self._grad = F.softmax_cross_entropy(logits, targets)
        return loss


class MSELoss(_Loss):
    """pred, target (same shape) -> mean((pred − target)²)."""

    def __call__(self, pred: Any, target: Any) -> Any:
        loss, self._grad = F.mse_loss(pred, target)
        return loss
