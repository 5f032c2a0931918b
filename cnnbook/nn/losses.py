"""Losses: ``loss = criterion(pred, target)``, then ``dpred = criterion.backward()``.

The loss is a 0-d array of the prediction's namespace (``float(loss)`` reads
it on the host); the gradient is kept from the forward pass.
"""

from __future__ import annotations

from typing import Any

from cnnbook import functional as F

__all__ = ["CrossEntropyLoss", "MSELoss"]


class _Loss:
    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(
                f"{type(self).__name__}: reduction must be 'mean', 'sum' or "
                f"'none', got {reduction!r}"
            )
        self.reduction = reduction
        self._grad: Any = None

    def backward(self, dloss: Any = None) -> Any:
        """d loss / d pred, same shape as pred. With ``reduction="none"`` an
        upstream gradient ``dloss`` (shape of the loss) may be given; the
        default is ones (the gradient of the losses' sum)."""
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward: call the loss first")
        if dloss is None:
            return self._grad
        if self.reduction != "none":
            return self._grad * dloss
        g = self._grad
        shape = tuple(dloss.shape)
        if g.ndim > len(shape):  # cross-entropy: the class axis is 1
            return g * _insert_axis(dloss, 1)
        return g * dloss

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _insert_axis(a: Any, axis: int) -> Any:
    from cnnbook.backend import namespace

    xp = namespace("backward", dloss=a)
    return xp.expand_dims(a, axis=axis)


class CrossEntropyLoss(_Loss):
    """logits (N, K) or (N, K, d…), targets (N,) or (N, d…) ints -> mean of
    −log softmax(logits)[target]; ``weight``, ``ignore_index``, ``reduction``
    and ``label_smoothing`` as PyTorch's
    (:func:`cnnbook.functional.softmax_cross_entropy`).

    >>> import numpy as np
    >>> crit = CrossEntropyLoss()
    >>> round(float(crit(np.array([[2.0, 0.0]]), np.array([0]))), 4)
    0.1269
    >>> crit.backward().shape
    (1, 2)
    """

    def __init__(
        self,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(reduction)
        self.weight, self.ignore_index = weight, ignore_index
        self.label_smoothing = label_smoothing

    def __call__(self, logits: Any, targets: Any) -> Any:
        loss, self._grad = F.softmax_cross_entropy(
            logits,
            targets,
            self.weight,
            self.ignore_index,
            self.reduction,
            self.label_smoothing,
        )
        return loss


class MSELoss(_Loss):
    """pred, target (same shape) -> mean((pred − target)²) (``reduction``:
    "mean", "sum" or "none")."""

    def __call__(self, pred: Any, target: Any) -> Any:
        loss, self._grad = F.mse_loss(pred, target, self.reduction)
        return loss
