"""Element-wise activation functions and their derivatives.

Each ``*_forward(x) -> (y, cache)`` has a mirrored ``*_backward(dy, cache) -> dx``
with dx = dy · f′(x). Shapes are anything; dtypes stay as given. NaN and ±inf
propagate as IEEE arithmetic says.
"""

from __future__ import annotations

from typing import Any

from cnnbook.backend import mask_multiply
from cnnbook.functional import _checks

__all__ = [
    "gelu_backward",
    "gelu_forward",
    "leaky_relu_backward",
    "leaky_relu_forward",
    "relu_backward",
    "relu_forward",
    "sigmoid_backward",
    "sigmoid_forward",
    "tanh_backward",
    "tanh_forward",
]


def _backward_inputs(op: str, dy: Any, saved: Any) -> Any:
    xp = _checks.float_inputs(op, dy=dy, saved=saved)
    _checks.grad_shape(op, dy, saved.shape)
    return xp


def relu_forward(x: Any) -> tuple[Any, Any]:
    """x (any shape) -> y = max(0, x), cache.

    >>> import numpy as np
    >>> relu_forward(np.array([-2.0, 0.0, 3.0]))[0]
    array([0., 0., 3.])
    """
    xp = _checks.float_inputs("relu_forward", x=x)
    return xp.maximum(x, 0.0), x


def relu_backward(dy: Any, cache: Any) -> Any:
    """dy -> dx = dy · [x > 0] (the subgradient 0 is used at x = 0)."""
    x = cache
    _backward_inputs("relu_backward", dy, x)
    return mask_multiply(dy, x > 0)


def leaky_relu_forward(x: Any, negative_slope: float = 0.01) -> tuple[Any, Any]:
    """x -> y = x for x > 0, negative_slope · x otherwise; cache."""
    xp = _checks.float_inputs("leaky_relu_forward", x=x)
    return xp.where(x > 0, x, negative_slope * x), (x, negative_slope)


def leaky_relu_backward(dy: Any, cache: Any) -> Any:
    """dy -> dx = dy · (1 if x > 0 else negative_slope)."""
    x, slope = cache
    xp = _backward_inputs("leaky_relu_backward", dy, x)
    return xp.where(x > 0, dy, slope * dy)


def sigmoid_forward(x: Any) -> tuple[Any, Any]:
    """x -> y = 1 / (1 + e^(−x)), computed without overflow for any x; cache.

    >>> import numpy as np
    >>> sigmoid_forward(np.array([-1000.0, 0.0, 1000.0]))[0]
    array([0. , 0.5, 1. ])
    """
    xp = _checks.float_inputs("sigmoid_forward", x=x)
    e = xp.exp(-xp.abs(x))  # in (0, 1]: never overflows
    y = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
    return y, y


def sigmoid_backward(dy: Any, cache: Any) -> Any:
    """dy -> dx = dy · y (1 − y), from the saved output y."""
    y = cache
    _backward_inputs("sigmoid_backward", dy, y)
    return dy * y * (1 - y)


def tanh_forward(x: Any) -> tuple[Any, Any]:
    """x -> y = tanh x; cache."""
    xp = _checks.float_inputs("tanh_forward", x=x)
    y = xp.tanh(x)
    return y, y


def tanh_backward(dy: Any, cache: Any) -> Any:
    """dy -> dx = dy · (1 − y²), from the saved output y."""
    y = cache
    _backward_inputs("tanh_backward", dy, y)
    return dy * (1 - y * y)


_SQRT_2_OVER_PI = 0.7978845608028654


def gelu_forward(x: Any) -> tuple[Any, Any]:
    """x -> y = ½ x (1 + tanh(√(2/π) (x + 0.044715 x³))), cache.

    The tanh form of GELU, equal to PyTorch's ``gelu(x, approximate="tanh")``;
    the exact form x·Φ(x) needs erf, which the array API standard lacks.
    """
    xp = _checks.float_inputs("gelu_forward", x=x)
    t = xp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x**3))
    return 0.5 * x * (1 + t), (x, t)


def gelu_backward(dy: Any, cache: Any) -> Any:
    """dy -> dx = dy · [½ (1 + t) + ½ x (1 − t²) √(2/π) (1 + 3·0.044715 x²)]."""
    x, t = cache
    _backward_inputs("gelu_backward", dy, x)
    inner = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
    return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * inner)
