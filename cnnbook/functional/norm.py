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

import math
from typing import Any, NamedTuple

from cnnbook.functional import _checks

__all__ = [
    "batch_norm_backward",
    "batch_norm_forward",
    "group_norm_backward",
    "group_norm_forward",
    "layer_norm_backward",
    "layer_norm_forward",
]


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
    """x (N, C), (N, C, L) or (N, C, H, W); gamma, beta, running_mean,
    running_var (C,)
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
    _checks.ndim(op, "x", x, (2, 3, 4), "(N, C), (N, C, L) or (N, C, H, W)")
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
    axes = (0, *range(2, x.ndim))
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


# ---------------------------------------------------------------------------
# layer and group normalisation: statistics per sample, never running
# ---------------------------------------------------------------------------
class NormCache(NamedTuple):
    xhat: Any  # normalised x, in the grouped layout
    inv_std: Any  # broadcastable to xhat
    weight: Any  # None, or broadcastable to x
    axes: tuple[int, ...]  # the axes of xhat the statistics run over
    shape: tuple[int, ...]  # of x
    param_axes: tuple[int, ...]  # axes of x summed for dweight and dbias
    param_shape: tuple[int, ...]


def _normalize(xp: Any, x: Any, axes: tuple[int, ...], eps: float):
    mean = xp.mean(x, axis=axes, keepdims=True)
    centred = x - mean
    var = xp.mean(centred * centred, axis=axes, keepdims=True)
    inv_std = 1 / xp.sqrt(var + eps)
    return centred * inv_std, inv_std


def _normalize_backward(xp: Any, dxhat: Any, xhat: Any, inv_std: Any, axes):
    """dx of x̂ = (x − μ)/σ over ``axes`` (m values):
    dx = (1/σ)(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂))."""
    mean_d = xp.mean(dxhat, axis=axes, keepdims=True)
    mean_dx = xp.mean(dxhat * xhat, axis=axes, keepdims=True)
    return inv_std * (dxhat - mean_d - xhat * mean_dx)


def _affine_backward(
    op: str, dy: Any, xhat: Any, weight: Any, shape: tuple[int, ...]
) -> tuple[Any, Any]:
    """Check dy (``shape``) -> (namespace, dx̂ = dy·weight, or dy without one)."""
    xp = _checks.float_inputs(op, dy=dy, xhat=xhat)
    _checks.grad_shape(op, dy, shape)
    return xp, (dy * weight if weight is not None else dy)


def _affine_grads(xp, dx, dy, xhat, weight, axes) -> tuple[Any, Any, Any]:
    """(dx, dweight = Σ dy·x̂, dbias = Σ dy) over ``axes``; (dx, None, None)
    without the affine part."""
    if weight is None:
        return dx, None, None
    return dx, xp.sum(dy * xhat, axis=axes), xp.sum(dy, axis=axes)


def _affine_checks(op, weight, bias, shape):
    for name, v in (("weight", weight), ("bias", bias)):
        if v is not None and tuple(v.shape) != tuple(shape):
            raise ValueError(
                f"{op}: {name} must have shape {tuple(shape)}, got {tuple(v.shape)}"
            )


def layer_norm_forward(
    x: Any, normalized_shape: Any, weight: Any = None, bias: Any = None, eps=1e-5
) -> tuple[Any, NormCache]:
    """``x (…, *normalized_shape)`` -> y (shape of x), normalised over the last
    len(normalized_shape) axes of each sample; weight, bias of
    normalized_shape (or None). As PyTorch's ``layer_norm`` (biased variance).
    """
    op = "layer_norm_forward"
    xp = _checks.float_inputs(op, x=x, weight=weight, bias=bias)
    if isinstance(normalized_shape, int) or hasattr(normalized_shape, "__index__"):
        normalized_shape = (normalized_shape,)
    ns = tuple(int(n) for n in normalized_shape)
    k = len(ns)
    if k == 0 or x.ndim < k or tuple(x.shape[x.ndim - k :]) != ns:
        raise ValueError(
            f"{op}: x of shape {tuple(x.shape)} does not end in normalized_shape {ns}"
        )
    if not eps > 0:
        raise ValueError(f"{op}: eps must be positive, got {eps!r}")
    _affine_checks(op, weight, bias, ns)
    axes = tuple(range(x.ndim - k, x.ndim))
    xhat, inv_std = _normalize(xp, x, axes, eps)
    y = xhat * weight if weight is not None else xhat
    if bias is not None:
        y = y + bias
    lead = tuple(range(x.ndim - k))
    return y, NormCache(xhat, inv_std, weight, axes, tuple(x.shape), lead, ns)


def layer_norm_backward(dy: Any, cache: NormCache) -> tuple[Any, Any, Any]:
    """dy (shape of x) -> dx, dweight, dbias (None without them)."""
    xhat, inv_std, weight, axes, shape, lead, _ = cache
    xp, dxhat = _affine_backward("layer_norm_backward", dy, xhat, weight, shape)
    dx = _normalize_backward(xp, dxhat, xhat, inv_std, axes)
    return _affine_grads(xp, dx, dy, xhat, weight, lead)


def group_norm_forward(
    x: Any, num_groups: int, weight: Any = None, bias: Any = None, eps=1e-5
) -> tuple[Any, NormCache]:
    """``x (N, C, *)`` -> y (shape of x): the C channels in ``num_groups`` groups,
    each group of each sample normalised over its channels and positions;
    weight, bias (C,) per channel (or None). As PyTorch's ``group_norm``."""
    op = "group_norm_forward"
    xp = _checks.float_inputs(op, x=x, weight=weight, bias=bias)
    if x.ndim < 2:
        raise ValueError(f"{op}: x must be (N, C, ...), got shape {tuple(x.shape)}")
    N, C = x.shape[0], x.shape[1]
    G = num_groups
    if isinstance(G, bool) or not hasattr(G, "__index__") or G < 1 or C % G:
        raise ValueError(
            f"{op}: num_groups must be a positive int dividing the {C} channels "
            f"of x {tuple(x.shape)}, got {G!r}"
        )
    if not eps > 0:
        raise ValueError(f"{op}: eps must be positive, got {eps!r}")
    _affine_checks(op, weight, bias, (C,))
    rest = math.prod(x.shape[2:])
    grouped = xp.reshape(x, (N, int(G), (C // int(G)) * rest))
    xhat_g, inv_std = _normalize(xp, grouped, (2,), eps)
    xhat = xp.reshape(xhat_g, tuple(x.shape))
    view = (1, C) + (1,) * (x.ndim - 2)
    w = xp.reshape(weight, view) if weight is not None else None
    y = xhat * w if w is not None else xhat
    if bias is not None:
        y = y + xp.reshape(bias, view)
    param_axes = (0, *range(2, x.ndim))
    cache = NormCache(xhat_g, inv_std, w, (2,), tuple(x.shape), param_axes, (C,))
    return y, cache


def group_norm_backward(dy: Any, cache: NormCache) -> tuple[Any, Any, Any]:
    """dy (shape of x) -> dx, dweight (C,), dbias (C,) (None without them)."""
    xhat_g, inv_std, w, axes, shape, param_axes, _ = cache
    xp, dxhat = _affine_backward("group_norm_backward", dy, xhat_g, w, shape)
    dx_g = _normalize_backward(
        xp, xp.reshape(dxhat, tuple(xhat_g.shape)), xhat_g, inv_std, axes
    )
    dx = xp.reshape(dx_g, shape)
    xhat = xp.reshape(xhat_g, shape)
    return _affine_grads(xp, dx, dy, xhat, w, param_axes)
