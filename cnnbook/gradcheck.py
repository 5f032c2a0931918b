"""Checking hand-derived gradients against finite differences.

For a scalar function L(x), the central difference

    ∂L/∂x_i ≈ (L(x + ε e_i) − L(x − ε e_i)) / 2ε

has error O(ε²) from truncation plus O(u/ε) from rounding (u the unit
roundoff); in float64 with ε = 1e-6 both are far below 1e-7 relative. An
operation y = f(x) is checked through L(x) = Σ y ⊙ dy with a random upstream
gradient dy, so every element of the backward pass is exercised.

>>> import numpy as np
>>> from cnnbook.functional import conv2d_forward, conv2d_backward
>>> rng = np.random.default_rng(0)
>>> x, w = rng.normal(size=(2, 3, 6, 5)), rng.normal(size=(4, 3, 3, 2))
>>> b = rng.normal(size=4)
>>> errors = check(conv2d_forward, conv2d_backward, x, w, b, stride=2, padding=1)
>>> sorted(errors), all(e < 1e-7 for e in errors.values())
(['b', 'w', 'x'], True)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from cnnbook.backend import asarray, device_of, namespace, numpy_dtype, to_numpy

__all__ = ["below", "check", "check_loss", "numerical_gradient", "rel_error"]


def below(err: float, limit: float) -> str:
    """A relative error shown as the bound it was checked against: ``"< 1e-8"``.

    The last digits of a finite-difference error depend on the machine's
    arithmetic (BLAS kernels, SIMD width, thread count); the bound a claim needs
    does not. So the book prints this, and it raises if the bound does not hold.

    >>> below(3e-10, 1e-8)
    '< 1e-8'
    >>> below(2e-7, 1e-7)
    Traceback (most recent call last):
    AssertionError: relative error 2.0e-07 is not below 1e-07
    """
    if not err < limit:
        raise AssertionError(f"relative error {err:.1e} is not below {limit:.0e}")
    mantissa, exponent = f"{limit:.0e}".split("e")
    return f"< {mantissa}e{int(exponent)}"


def rel_error(a: Any, b: Any) -> float:
    """‖a − b‖ / max(‖a‖ + ‖b‖, tiny): 0 for equal arrays, 1 for unrelated ones.

    A norm-wise error, so tiny entries that rounding dominates do not decide.

    >>> rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.0 + 1e-9])) < 1e-9
    True
    """
    a = to_numpy(a).astype(np.float64)
    b = to_numpy(b).astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error: shapes differ, {a.shape} and {b.shape}")
    scale = np.linalg.norm(a) + np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / max(scale, np.finfo(np.float64).tiny))


def numerical_gradient(f: Callable[[Any], Any], x: Any, eps: float = 1e-6) -> Any:
    """x (any shape) -> ∂f/∂x (shape of x, NumPy float64) by central differences.

    ``f`` maps an array like ``x`` (same namespace, device and dtype) to a
    scalar. Each evaluation gets a fresh perturbed copy of ``x``.

    >>> g = numerical_gradient(lambda v: float((v**2).sum()), np.array([1.0, -3.0]))
    >>> np.allclose(g, [2.0, -6.0])
    True
    """
    xp = namespace("numerical_gradient", x=x)
    host = to_numpy(x).astype(np.float64)
    grad = np.zeros_like(host)
    dtype, device = numpy_dtype(x.dtype), device_of(x)

    def at(values: np.ndarray) -> float:
        return float(f(asarray(values, xp, device, dtype=dtype)))

    for i in np.ndindex(host.shape):
        original = host[i]
        host[i] = original + eps
        up = at(host)
        host[i] = original - eps
        down = at(host)
        host[i] = original
        grad[i] = (up - down) / (2 * eps)
    return grad


def _float_arrays(forward: Callable, args: tuple, kwargs: dict) -> list[str]:
    """Names of the floating-point array arguments, in the forward's order."""
    bound = inspect.signature(forward).bind(*args, **kwargs)
    names = []
    for name, value in bound.arguments.items():
        if hasattr(value, "dtype") and hasattr(value, "shape"):
            xp = namespace("gradcheck", **{name: value})
            if xp.isdtype(value.dtype, "real floating"):
                names.append(name)
    return names


def check(
    forward: Callable,
    backward: Callable,
    *args: Any,
    seed: int = 0,
    step: float = 1e-6,
    **kwargs: Any,
) -> dict[str, float]:
    """Compare ``backward`` with finite differences of ``forward``, in float64.

    ``forward(*args, **kwargs) -> (y, cache)`` and ``backward(dy, cache)``
    returning the gradient of each floating-point array argument in order (a
    single array or a tuple; extra arrays such as running statistics that get
    no gradient come last). Returns ``{argument name: relative error}``. A
    stochastic forward pass must be made repeatable (e.g. ``rng=0``).
    ``step`` is the finite-difference step; every other keyword goes to
    ``forward`` (so batch norm's own ``eps`` reaches it). The upstream gradient
    is drawn from a stream spawned from ``seed``, never equal to data drawn
    with ``default_rng(seed)``.
    """
    bound = inspect.signature(forward).bind(*args, **kwargs)
    names = _float_arrays(forward, args, kwargs)
    xp = namespace("gradcheck.check", **{n: bound.arguments[n] for n in names})
    for n in names:  # finite differences need float64
        bound.arguments[n] = xp.astype(bound.arguments[n], xp.float64)

    def run(**override: Any) -> Any:
        values = dict(bound.arguments, **override)
        return forward(**values)

    y, cache = run()
    dy = asarray(
        np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0]).normal(
            size=tuple(y.shape)
        ),
        xp,
        device_of(y),
        dtype=np.float64,
    )
    grads = backward(dy, cache)
    if not isinstance(grads, tuple):
        grads = (grads,)
    while grads and grads[-1] is None:  # e.g. db when there is no bias
        grads = grads[:-1]
    if len(grads) > len(names):
        raise ValueError(
            f"gradcheck.check: backward returned {len(grads)} gradients but the "
            f"forward has only {len(names)} floating-point arrays {names}"
        )
    errors = {}
    for name, analytic in zip(names, grads, strict=False):
        if analytic is None:
            continue

        def loss(value: Any, name: str = name) -> Any:
            return xp.sum(run(**{name: value})[0] * dy)

        numeric = numerical_gradient(loss, bound.arguments[name], step)
        errors[name] = rel_error(analytic, numeric)
    return errors


def check_loss(loss_fn: Callable, pred: Any, target: Any, eps: float = 1e-6) -> float:
    """Relative error between ``loss_fn``'s returned gradient and finite
    differences, for ``loss_fn(pred, target) -> (loss, dpred)``, in float64."""
    xp = namespace("gradcheck.check_loss", pred=pred)
    pred = xp.astype(pred, xp.float64)
    if xp.isdtype(target.dtype, "real floating"):
        target = xp.astype(target, xp.float64)
    _, analytic = loss_fn(pred, target)
    numeric = numerical_gradient(lambda p: loss_fn(p, target)[0], pred, eps)
    return rel_error(analytic, numeric)
