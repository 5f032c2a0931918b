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
    "elu_backward",
    "elu_forward",
    "erf",
    "gelu_backward",
    "gelu_forward",
    "leaky_relu_backward",
    "leaky_relu_forward",
    "relu_backward",
    "relu_forward",
    "sigmoid_backward",
    "sigmoid_forward",
    "silu_backward",
    "silu_forward",
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
_SQRT_HALF = 0.7071067811865476
_TWO_OVER_SQRT_PI = 1.1283791670955126
_INV_SQRT_2PI = 0.3989422804014327


def erf(x: Any) -> Any:
    """erf(x) elementwise, to float64 rounding, in any array namespace.

    The array API standard has no erf, so this sums the series with positive
    terms (Abramowitz & Stegun 7.1.6), which has no cancellation::

        erf(a) = (2/√π) e^(−a²) Σₙ 2ⁿ a^(2n+1) / (1·3·5···(2n+1))

    for ``|a| ≤ 6``; beyond, erf(a) = ±1 to double precision. The number of
    terms grows with the largest ``|a|`` (about 2a² + 30).

    >>> import numpy as np, math
    >>> bool(abs(erf(np.array([0.5]))[0] - math.erf(0.5)) < 1e-15)
    True
    """
    xp = _checks.float_inputs("erf", x=x)
    a = xp.clip(x, -6.0, 6.0)
    a2 = a * a
    peak = float(xp.max(a2)) if a.size else 0.0
    terms = int(2 * peak) + 30
    term, total = a, a
    for n in range(1, terms):
        term = term * (2 * a2) / (2 * n + 1)
        total = total + term
    return _TWO_OVER_SQRT_PI * xp.exp(-a2) * total


def gelu_forward(x: Any, approximate: str = "none") -> tuple[Any, Any]:
    """x -> y = x·Φ(x) = ½ x (1 + erf(x/√2)), cache (PyTorch's ``gelu``).

    ``approximate="tanh"`` gives ½ x (1 + tanh(√(2/π) (x + 0.044715 x³))),
    PyTorch's ``gelu(x, approximate="tanh")``, within 5e-4 of the exact form.
    """
    xp = _checks.float_inputs("gelu_forward", x=x)
    if approximate == "tanh":
        t = xp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x**3))
        return 0.5 * x * (1 + t), (x, t, "tanh")
    if approximate != "none":
        raise ValueError(
            f"gelu_forward: approximate must be 'none' or 'tanh', got {approximate!r}"
        )
    cdf = 0.5 * (1 + erf(x * _SQRT_HALF))
    return x * cdf, (x, cdf, "none")


def gelu_backward(dy: Any, cache: Any) -> Any:
    """dy -> dx = dy · (Φ(x) + x φ(x)) (exact), or for the tanh form
    dy · [½ (1 + t) + ½ x (1 − t²) √(2/π) (1 + 3·0.044715 x²)]."""
    x, t, approximate = cache
    xp = _backward_inputs("gelu_backward", dy, x)
    if approximate == "none":
        pdf = _INV_SQRT_2PI * xp.exp(-0.5 * x * x)
        return dy * (t + x * pdf)
    inner = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
    return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * inner)


def silu_forward(x: Any) -> tuple[Any, Any]:
    """x -> y = x·σ(x) (SiLU, "swish"), cache."""
    xp = _checks.float_inputs("silu_forward", x=x)
    s = 1 / (1 + xp.exp(-x))
    return x * s, (x, s)


def silu_backward(dy: Any, cache: Any) -> Any:
    """dy -> dx = dy · σ(x)(1 + x(1 − σ(x)))."""
    x, s = cache
    _backward_inputs("silu_backward", dy, x)
    return dy * (s * (1 + x * (1 - s)))


def elu_forward(x: Any, alpha: float = 1.0) -> tuple[Any, Any]:
    """x -> y = x for x > 0, α(eˣ − 1) otherwise, cache."""
    xp = _checks.float_inputs("elu_forward", x=x)
    e = alpha * (xp.exp(xp.minimum(x, 0.0)) - 1)
    return xp.where(x > 0, x, e), (x, e, alpha)


def elu_backward(dy: Any, cache: Any) -> Any:
    """dy -> dx = dy for x > 0, dy · (y + α) otherwise."""
    x, e, alpha = cache
    xp = _backward_inputs("elu_backward", dy, x)
    return xp.where(x > 0, dy, dy * (e + alpha))
