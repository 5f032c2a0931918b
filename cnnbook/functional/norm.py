"""Batch normalization (Ioffe & Szegedy, 2015).

Notation: x (N, C) or (N, C, H, W); statistics are taken per channel c over
the m = N (or N·H·W) values of that channel:

    μ = mean(x),  σ² = mean((x − μ)²),  x̂ = (x − μ) / √(σ² + ε),  y = γ x̂ + β

In training the batch statistics normalise x and the running estimates move
toward them: running ← (1 − momentum)·running + momentum·batch, with the
unbiased variance σ²·m/(m − 1) in the running variance (as PyTorch does). In
evaluation the running estimates normalise x. Backward (training):

    dx = (1/m) · (1/√(σ² + ε)) · (m·dx̂ − Σ dx̂ − x̂ · Σ dx̂·x̂),   dx̂ = dy·γ
"""

from __future__ import annotations

from typing import Any, NamedTuple

from cnnbook.functional import _checks

__all__ = ["batch_norm_backward", "batch_norm_forward"]


class BatchNormCache(NamedTuple):
    xhat: Any
    inv_std: Any  # broadcastable to x
    gamma: Any  # broadcastable to x
    axes: tuple[int, ...]
    training: bool


def _channel_view(xp: Any, v: Any, ndim: int) -> Any:
    """(C,) -> shape broadcastable against (N, C) or (N, C, H, W)."""
    return xp.reshape(v, (1, -1) + (1,) * (ndim - 2))


def batch_norm_forward(
    x: Any,
    gamma: Any,
    beta: Any,
    running_mean: Any,
    running_var: Any,
    training: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[Any, BatchNormCache]:
    """x (N, C) or (N, C, H, W); gamma, beta, running_mean, running_var (C,)
    -> y (shape of x), cache. Updates the running statistics in place when
    training.
    """
    op = "batch_norm_forward"
    xp = _checks.float_inputs(
        op,
        x=x,
        gamma=gamma,
        beta=beta,
        running_mean=running_mean,
        running_var=running_var,
    )
    _checks.ndim(op, "x", x, (2, 4), "2-D (N, C) or 4-D (N, C, H, W)")
    C = x.shape[1]
    for name, v in (
        ("gamma", gamma),
        ("beta", beta),
        ("running_mean", running_mean),
        ("running_var", running_var),
    ):
        if tuple(v.shape) != (C,):
            raise ValueError(
                f"{op}: {name} must have shape ({C},) for x of shape "
                f"{tuple(x.shape)}, got {tuple(v.shape)}"
            )
    if not eps > 0:
        raise ValueError(f"{op}: eps must be positive, got {eps!r}")
    if not 0 <= momentum <= 1:
        raise ValueError(f"{op}: momentum must lie in [0, 1], got {momentum!r}")
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    m = x.size // C
    if training and x.shape[0] == 0:  # an empty batch: empty output, statistics
        training = False  # untouched (as PyTorch)
    if training:
        if m < 2:
            raise ValueError(
                f"{op}: training needs more than 1 value per channel, got x of "
                f"shape {tuple(x.shape)}"
            )
        mean = xp.mean(x, axis=axes)
        var = xp.mean((x - _channel_view(xp, mean, x.ndim)) ** 2, axis=axes)
        running_mean[...] = (1 - momentum) * running_mean + momentum * mean
        running_var[...] = (1 - momentum) * running_var + momentum * var * (m / (m - 1))
    else:
        mean, var = running_mean, running_var
    inv_std = _channel_view(xp, 1 / xp.sqrt(var + eps), x.ndim)
    xhat = (x - _channel_view(xp, mean, x.ndim)) * inv_std
    gamma_view = _channel_view(xp, gamma, x.ndim)  # broadcastable to x
    y = gamma_view * xhat + _channel_view(xp, beta, x.ndim)
    return y, BatchNormCache(xhat, inv_std, gamma_view, axes, training)


def batch_norm_backward(dy: Any, cache: BatchNormCache) -> tuple[Any, Any, Any]:
    """dy (shape of x) -> dx (shape of x), dgamma (C,), dbeta (C,)."""
    xhat, inv_std, gamma_view, axes, training = cache
    op = "batch_norm_backward"
    xp = _checks.float_inputs(op, dy=dy, xhat=xhat)
    _checks.grad_shape(op, dy, xhat.shape)
    dbeta = xp.sum(dy, axis=axes)
    dgamma = xp.sum(dy * xhat, axis=axes)
    dxhat = dy * gamma_view
    if not training:  # statistics are constants: y is affine in x
        return dxhat * inv_std, dgamma, dbeta
    m = xhat.size // xhat.shape[1]
    sum_dxhat = xp.sum(dxhat, axis=axes, keepdims=True)
    sum_dxhat_xhat = xp.sum(dxhat * xhat, axis=axes, keepdims=True)
    dx = (inv_std / m) * (m * dxhat - sum_dxhat - xhat * sum_dxhat_xhat)
    return dx, dgamma, dbeta
