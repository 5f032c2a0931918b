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


def log_softmax(z: Any, dim: int = -1) -> Any:
    """z (any shape) -> log softmax along axis ``dim`` (default the last),
    stable for any finite z."""
    xp = _checks.float_inputs("log_softmax", z=z)
    _checks.axis("log_softmax", "dim", dim, z.ndim)
    shifted = z - xp.max(z, axis=dim, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=dim, keepdims=True))


def softmax(z: Any, dim: int = -1) -> Any:
    """z (any shape) -> probabilities along axis ``dim`` (default the last;
    each slice sums to 1).

    >>> import numpy as np
    >>> softmax(np.array([[0.0, 0.0], [1e4, 0.0]]))
    array([[0.5, 0.5],
           [1. , 0. ]])
    """
    xp = _checks.float_inputs("softmax", z=z)
    return xp.exp(log_softmax(z, dim))


_REDUCTIONS = ("mean", "sum", "none")


def _reduction(op: str, reduction: Any) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(
            f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}"
        )
    return reduction


def softmax_cross_entropy(
    logits: Any,
    targets: Any,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> tuple[Any, Any]:
    """logits (N, K) or (N, K, d1, …), targets (N,) or (N, d1, …) integer
    classes in [0, K) -> loss, dlogits (shape of logits), as PyTorch's
    ``cross_entropy``.

    Per element i with class t: q = (1 − ε)·onehot(t) + ε/K (``label_smoothing``
    ε), class weights w (``weight``, default 1), p = softmax(z)::

        lᵢ = −(1 − ε) w_t log p_t − (ε/K) Σₖ wₖ log pₖ
        ∂lᵢ/∂z = (1 − ε) w_t (p − onehot(t)) + (ε/K)(Σₖwₖ · p − w)

    Elements whose target is ``ignore_index`` give 0 and do not count.
    ``reduction="mean"`` divides the sum by Σᵢ w_tᵢ over counted elements
    (their number without weights), ``"sum"`` does not, ``"none"`` returns
    each lᵢ (shape of targets); dlogits is always the gradient of the
    returned loss's sum.

    >>> import numpy as np
    >>> loss, d = softmax_cross_entropy(np.array([[2.0, 0.0]]), np.array([0]))
    >>> round(float(loss), 4)
    0.1269
    """
    op = "softmax_cross_entropy"
    xp = _checks.float_inputs(op, logits=logits, weight=weight)
    if targets is None:
        raise TypeError(f"{op}: targets must be an array of class indices, got None")
    namespace(op, logits=logits, targets=targets)  # same library and device
    reduction = _reduction(op, reduction)
    if logits.ndim < 2:
        raise ValueError(
            f"{op}: logits must be (N, classes) or (N, classes, d1, ...), got "
            f"shape {tuple(logits.shape)} ({logits.ndim}-D)"
        )
    N, K = logits.shape[0], logits.shape[1]
    extra = tuple(logits.shape[2:])
    if not xp.isdtype(targets.dtype, "integral"):
        raise TypeError(
            f"{op}: targets must be integer class indices, got dtype {targets.dtype}"
        )
    if tuple(targets.shape) != (N, *extra):
        raise ValueError(
            f"{op}: targets must have shape {(N, *extra)} to match logits "
            f"{tuple(logits.shape)}, got {tuple(targets.shape)}"
        )
    if weight is not None and tuple(weight.shape) != (K,):
        raise ValueError(
            f"{op}: weight must have shape ({K},) for {K} classes, got "
            f"{tuple(weight.shape)}"
        )
    if isinstance(ignore_index, bool) or not hasattr(ignore_index, "__index__"):
        raise TypeError(f"{op}: ignore_index must be an int, got {ignore_index!r}")
    eps = label_smoothing
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 <= eps <= 1:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1], got {eps!r}")
    # classes last: (N, K, d…) -> (M, K) rows, M = N·d1·…
    order = (0, *range(2, logits.ndim), 1)
    z = xp.reshape(xp.permute_dims(logits, order), (-1, K)) if extra else logits
    M = z.shape[0]
    t = xp.reshape(targets, (M,))
    valid = t != ignore_index
    counted = t[valid]
    if counted.size and (bool(xp.any(counted < 0)) or bool(xp.any(counted >= K))):
        low, high = int(xp.min(counted)), int(xp.max(counted))
        raise ValueError(
            f"{op}: targets must lie in [0, {K - 1}] for {K} classes (or be "
            f"ignore_index={ignore_index}), got values from {low} to {high}"
        )
    dev = device_of(logits)
    classes = xp.arange(K, device=dev)
    t_safe = xp.where(valid, t, xp.zeros_like(t))
    onehot = xp.astype(xp.reshape(t_safe, (M, 1)) == classes, z.dtype)
    w = weight if weight is not None else xp.ones((K,), dtype=z.dtype, device=dev)
    valid_f = xp.astype(valid, z.dtype)
    w_t = xp.sum(onehot * w, axis=1) * valid_f  # (M,)
    logp = log_softmax(z)
    per = -(1 - eps) * w_t * xp.sum(onehot * logp, axis=1)
    if eps:
        per = per - (eps / K) * valid_f * xp.sum(w * logp, axis=1)
    p = xp.exp(logp)
    grad = (1 - eps) * xp.reshape(w_t, (M, 1)) * (p - onehot)
    if eps:
        grad = grad + (eps / K) * xp.reshape(valid_f, (M, 1)) * (xp.sum(w) * p - w)
    if reduction == "mean":
        denom = xp.sum(w_t)
        loss, grad = xp.sum(per) / denom, grad / denom
    elif reduction == "sum":
        loss = xp.sum(per)
    else:
        loss = xp.reshape(per, tuple(targets.shape))
    if extra:
        inverse = (0, logits.ndim - 1, *range(1, logits.ndim - 1))
        grad = xp.permute_dims(xp.reshape(grad, (N, *extra, K)), inverse)
    return loss, grad


def mse_loss(pred: Any, target: Any, reduction: str = "mean") -> tuple[Any, Any]:
    """pred, target (same shape) -> loss = mean((pred − target)²) (or the sum,
    or each term with ``reduction="none"``), dpred (the gradient of the
    returned loss's sum).

    >>> import numpy as np
    >>> float(mse_loss(np.array([1.0, 3.0]), np.array([0.0, 0.0]))[0])
    5.0
    """
    op = "mse_loss"
    xp = _checks.float_inputs(op, pred=pred, target=target)
    reduction = _reduction(op, reduction)
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(
            f"{op}: pred has shape {tuple(pred.shape)} but target has shape "
            f"{tuple(target.shape)}; they must match"
        )
    diff = pred - target
    if reduction == "none":
        return diff * diff, 2 * diff
    if reduction == "sum":
        return xp.sum(diff * diff), 2 * diff
    count = diff.size
    return xp.sum(diff * diff) / count, 2 * diff / count
